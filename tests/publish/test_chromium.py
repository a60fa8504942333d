"""The published page in real Chromium (Debian's chromium and chromium-driver, through
Selenium): it reads without JavaScript, and is screenshotted at phone and desktop widths
(kept under ``artifacts/screenshots/`` for people to look at)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from monitor.config import Settings
from monitor.publish import publish_site
from monitor.store import Store

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
SIZES = {"phone": (390, 844), "desktop": (1280, 900)}
# Without these flags Chromium tries to reach Google's hosts on a closed network.
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def start_chromium() -> Iterator[webdriver.Chrome]:
    """A headless Chromium for a module's ``driver`` fixture, quit afterwards.

    Skips when chromium or chromedriver is missing, except under CI (``.ci/run``
    installs both), where that fails.
    """
    tools = (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER))
    missing = [name for name, path in tools if not path]
    if missing:
        reason = f"{' and '.join(missing)} not installed (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; .ci/run must install them")
        pytest.skip(reason)
    assert CHROMIUM is not None and CHROMEDRIVER is not None
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    chrome = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield chrome
    finally:
        chrome.quit()


def emulate(driver: webdriver.Chrome, size: str, *, scheme: str = "light") -> None:
    """An exact viewport (a phone's is mobile) and a colour scheme, for the next loads."""
    width, height = SIZES[size]
    metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": size == "phone"}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    features = [{"name": "prefers-color-scheme", "value": scheme}]
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": features})


@pytest.fixture(scope="module")
def driver() -> Iterator[webdriver.Chrome]:
    yield from start_chromium()


def test_the_page_reads_in_chromium_without_javascript(
    driver: webdriver.Chrome, wave_store: Store, settings: Settings, now: datetime, tmp_path: Path
) -> None:
    # Chromium has no --disable-javascript switch; DevTools turns the page's scripts off.
    site = publish_site(wave_store, settings, now=now, out_dir=tmp_path / "site")
    driver.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
    try:
        driver.get((site / "index.html").as_uri())
        assert driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == "id"
        assert "Masuk" in driver.find_element(By.TAG_NAME, "main").text
        # Months old, but only the script could say so: the footer's time still tells.
        assert not driver.find_element(By.ID, "stale").is_displayed()
        footer = driver.find_element(By.TAG_NAME, "footer")
        assert "Halaman dibuat: 17 Sep 2026, 14.05 WIB" in footer.text
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for page in ("index.html", "en/index.html", "incidents/3.html"):
            for size in SIZES:
                emulate(driver, size)
                driver.get((site / page).as_uri())
                shot = ARTIFACTS / f"{page.replace('/', '-').removesuffix('.html')}-{size}.png"
                assert driver.save_screenshot(str(shot))
                assert shot.stat().st_size > 5000
    finally:
        driver.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": False})
