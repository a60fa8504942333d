"""axe-core in real Chromium (Debian's chromium and chromium-driver, driven by Selenium):
no serious or critical violation on any page, at phone and desktop widths, in light and
dark colours, with the stale-data warning showing so that it is checked too."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from axe_selenium_python import Axe
from selenium import webdriver
from selenium.webdriver.common.by import By
from test_chromium import ARTIFACTS, emulate, start_chromium
from test_validity import AddIncident, publish_busy_site

from monitor.config import Settings
from monitor.publish import publish_site
from monitor.store import Store

SERIOUS = {"serious", "critical"}
#: Violations known and left to a decision (none now).
KNOWN: set[str] = set()


@pytest.fixture(scope="module")
def driver() -> Iterator[webdriver.Chrome]:
    """One headless Chromium for the module (starting one costs over a second)."""
    yield from start_chromium()


def _serious_violations(
    driver: webdriver.Chrome, options: str | None = None
) -> list[dict[str, Any]]:
    """axe's serious and critical violations on the loaded page (``options``: a JS object)."""
    axe = Axe(driver)
    axe.inject()  # axe.min.js from the package: nothing is fetched
    results = axe.run(options=options)
    return [v for v in results["violations"] if v["impact"] in SERIOUS]


def _describe(page: str, violation: dict[str, Any]) -> str:
    targets = ", ".join(str(t) for node in violation["nodes"][:3] for t in node["target"])
    return f"{page}: {violation['id']} ({violation['impact']}): {violation['help']} at {targets}"


@pytest.fixture
def busy_site(add_incident: AddIncident, now: datetime, tmp_path: Path) -> Iterator[Path]:
    """test_validity's busy site: ten components with 90 days of uptime bars, ten incidents."""
    store = Store(f"sqlite:///{tmp_path}/busy.db")
    try:
        yield publish_busy_site(store, add_incident, now, tmp_path / "busy")
    finally:
        store.close()


@pytest.mark.parametrize(
    ("size", "scheme"), [("phone", "light"), ("desktop", "light"), ("phone", "dark")]
)
def test_no_page_has_a_serious_accessibility_violation(
    driver: webdriver.Chrome,
    wave_store: Store,
    settings: Settings,
    now: datetime,
    tmp_path: Path,
    busy_site: Path,
    size: str,
    scheme: str,
) -> None:
    # Generated at the fixed clock, months before the browser's clock: the stale-data
    # warning shows, so axe checks it as well.
    site = publish_site(wave_store, settings, now=now, out_dir=tmp_path / "site")
    pages = sorted(site.rglob("*.html"))
    assert {site / "index.html", site / "en/incidents/2.html"} <= set(pages)
    pages.append(busy_site / "index.html")  # its English one differs only in words
    emulate(driver, size, scheme=scheme)
    problems = []
    for page in pages:
        driver.get(page.as_uri())
        name = page.relative_to(tmp_path).as_posix()
        assert driver.find_element(By.ID, "stale").is_displayed(), name
        problems += [
            _describe(name, v) for v in _serious_violations(driver) if v["id"] not in KNOWN
        ]
    if scheme == "light":  # what the warning looks like (the page itself: test_chromium.py)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        driver.get((site / "index.html").as_uri())
        assert driver.save_screenshot(str(ARTIFACTS / f"index-stale-{size}.png"))
    assert not problems, "\n".join(problems)


def test_the_page_does_not_reload_itself_under_the_reader(
    driver: webdriver.Chrome, wave_store: Store, settings: Settings, now: datetime, tmp_path: Path
) -> None:
    """WCAG 2.2.1: no meta refresh with scripts on (the script reloads only an idle page;
    the meta refresh is for readers without JavaScript, inside <noscript>)."""
    site = publish_site(wave_store, settings, now=now, out_dir=tmp_path / "site")
    driver.get((site / "index.html").as_uri())
    only = '{"runOnly": {"type": "rule", "values": ["meta-refresh"]}}'
    assert _serious_violations(driver, only) == []
