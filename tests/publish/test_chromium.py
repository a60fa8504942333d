"""The published page in real Chromium: it renders without JavaScript and is screenshotted
at phone and desktop widths (kept under ``artifacts/screenshots/`` for people to look at)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from datetime import datetime
from pathlib import Path

import pytest

from monitor.config import Settings
from monitor.publish import publish_site
from monitor.store import Store

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Without these flags Chromium tries to reach Google's hosts on a closed network.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-javascript",
]


@pytest.fixture(scope="module")
def chromium() -> str:
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed; .ci/run must install Debian's chromium")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return CHROMIUM


def _run(chromium: str, *args: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [chromium, *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )


def test_the_page_renders_in_chromium_without_javascript(
    chromium: str, wave_store: Store, settings: Settings, now: datetime, tmp_path: Path
) -> None:
    site = publish_site(wave_store, settings, now=now, out_dir=tmp_path / "site")
    dom = _run(chromium, "--dump-dom", (site / "index.html").as_uri()).stdout
    assert '<html lang="id"' in dom
    assert "Masuk" in dom
    for page in ("index.html", "en/index.html"):
        for name, size in (("phone", "390,844"), ("desktop", "1280,900")):
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shot = ARTIFACTS / f"{page.replace('/', '-').removesuffix('.html')}-{name}.png"
            _run(chromium, f"--window-size={size}", f"--screenshot={shot}", (site / page).as_uri())
            assert shot.stat().st_size > 5000
