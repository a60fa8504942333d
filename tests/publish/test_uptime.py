"""The 90-day uptime bars and the 24-hour response-time charts: read from the rollups only,
told in words in both languages, and small."""

from __future__ import annotations

import gzip
import html
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from checks.base import ErrorClass, ProbeResult
from monitor.config import Settings
from monitor.publish import (
    LATENCY_HOURS,
    UPTIME_DAYS,
    LatencyPoint,
    latency_chart,
    load_snapshot,
    publish_site,
    uptime_text,
)
from monitor.rollup import DAY, rollup, uptime
from monitor.store import Store

CELL = re.compile(r'<li class="day day-([a-z_]+)"><span class="vh">([^<]*)</span></li>')
BARS = re.compile(r'<ol class="uptime" aria-label="([^"]*)">(.*?)</ol>', re.DOTALL)
SVG = re.compile(r"<svg .*?</svg>", re.DOTALL)


@pytest.fixture
def history_store(wave_store: Store, settings: Settings, now: datetime) -> Store:
    """The wave scenario with three days of results every 10 minutes per component (login
    failing since its outage began 45 minutes ago), OTP's outage of three days ago as
    transitions, and the rollups brought up to ``now``."""
    with wave_store.tx() as tx:
        at = now - timedelta(days=3, minutes=2)  # runs at :03, :13, ... up to 14.03 WIB
        while at < now:
            for component in ("home", "login", "signup", "otp"):
                failing = component == "login" and at >= now - timedelta(minutes=45)
                tx.add_result(_result(component, at, ok=not failing))
            at += timedelta(minutes=10)
    otp = now - timedelta(days=3, hours=5)  # as the OTP incident of the wave scenario
    with wave_store.tx() as tx:
        tx.set_component_status("otp", "partial_outage", at=otp, cause="probe")
        tx.set_component_status("otp", "operational", at=otp + timedelta(minutes=50), cause="p")
        rollup(tx, settings, now=now)
    return wave_store


def _result(component: str, at: datetime, *, ok: bool) -> ProbeResult:
    return ProbeResult(
        check_id=f"{component}-page",
        component_id=component,
        started_at=at,
        ok=ok,
        latency_ms=80.0 + 20 * (at.hour % 6) if ok else None,
        error=None if ok else ErrorClass.TIMEOUT,
    )


@pytest.fixture
def history_site(history_store: Store, settings: Settings, now: datetime, tmp_path: Path) -> Path:
    return publish_site(history_store, settings, now=now, out_dir=tmp_path / "site")


def bars(page: str) -> dict[str, list[tuple[str, str]]]:
    """Each component's bars: its ``aria-label`` -> ``(status, label)`` per day."""
    return {
        html.unescape(label): [(s, html.unescape(text)) for s, text in CELL.findall(cells)]
        for label, cells in BARS.findall(page)
    }


def read(site: Path, name: str) -> str:
    return (site / name).read_text(encoding="utf-8")


# -- the bars ----------------------------------------------------------------------------------


def test_each_component_has_90_days_oldest_first_today_last(history_site: Path) -> None:
    found = bars(read(history_site, "index.html"))
    assert list(found) == [
        f"Ketersediaan harian {name}, 90 hari terakhir"
        for name in ("Beranda", "Masuk", "Pendaftaran", "OTP")
    ]
    for cells in found.values():
        assert len(cells) == UPTIME_DAYS
        assert cells[0][1].startswith("20 Jun 2026: ")
        assert cells[-1][1].startswith("17 Sep 2026: ")
    english = bars(read(history_site, "en/index.html"))
    assert list(english)[1] == "Daily uptime of Login, last 90 days"


@pytest.mark.parametrize(
    ("page", "component", "day", "cell"),
    [
        # Login today: before its first transition (13.20 WIB) its runs all passed; then
        # 45 minutes of major outage out of 14 h 5 min watched: 1 - 2700 / 50700.
        (
            "index.html",
            1,
            -1,
            (
                "major_outage",
                "17 Sep 2026: Gangguan besar, 94,67%. Insiden: Gagal masuk saat gelombang 9 dibuka",
            ),
        ),
        (
            "en/index.html",
            1,
            -1,
            (
                "major_outage",
                "17 Sep 2026: Major outage, 94.67%. Incident: Login failing as wave 9 opens",
            ),
        ),
        # OTP three days ago: 50 minutes of partial outage from 9.05 WIB, watched until midnight.
        (
            "index.html",
            3,
            -4,
            (
                "partial_outage",
                "14 Sep 2026: Gangguan sebagian, 94,41%. Insiden: Kode OTP terlambat",
            ),
        ),
        (
            "en/index.html",
            3,
            -4,
            ("partial_outage", "14 Sep 2026: Partial outage, 94.41%. Incident: OTP codes delayed"),
        ),
        # Home never changed status: its uptime comes from its runs, all passing.
        ("index.html", 0, -3, ("operational", "15 Sep 2026: Normal, 100%")),
        ("index.html", 0, 0, ("no_data", "20 Jun 2026: Tidak ada data")),
        ("en/index.html", 0, 0, ("no_data", "20 Jun 2026: No data")),
        # Incident 1 (database maintenance, 20 days ago) named home: no data, but its title.
        (
            "en/index.html",
            0,
            -21,
            ("no_data", "28 Aug 2026: No data. Incident: Database maintenance"),
        ),
    ],
)
def test_a_day_says_its_date_status_uptime_and_incidents_in_words(
    history_site: Path, page: str, component: int, day: int, cell: tuple[str, str]
) -> None:
    assert list(bars(read(history_site, page)).values())[component][day] == cell


def test_the_90_day_uptime_sums_the_days(
    history_store: Store, history_site: Path, settings: Settings, now: datetime
) -> None:
    with history_store.read() as tx:
        days = tx.rollups(
            DAY, since=now - timedelta(days=UPTIME_DAYS), until=now, component_id="login"
        )
        expected = uptime(
            sum(d.observed_seconds for d in days), sum(d.downtime_seconds for d in days)
        )
    snapshot = load_snapshot(history_store, settings, now=now)
    assert expected is not None and snapshot.components[1].uptime_90d == pytest.approx(expected)
    page = read(history_site, "index.html")
    assert f"Masuk <small>Ketersediaan 90 hari: {uptime_text(expected, 'id')}</small></h3>" in page
    assert f"Login <small>90-day uptime: {uptime_text(expected, 'en')}</small></h3>" in read(
        history_site, "en/index.html"
    )


def test_a_legend_gives_each_colour_and_height_a_word(history_site: Path) -> None:
    page = read(history_site, "en/index.html")
    legend = re.search(r'<p class="legend" aria-hidden="true">(.*?)</p>', page)
    assert legend is not None
    assert re.findall(r'<i class="day-([a-z_]+)"></i>([^<]+)</span>', legend[1]) == [
        ("operational", "Operational"),
        ("degraded_performance", "Degraded performance"),
        ("partial_outage", "Partial outage"),
        ("major_outage", "Major outage"),
        ("under_maintenance", "Under maintenance"),
        ("no_data", "No data"),
    ]


def test_without_rollups_every_day_says_no_data(
    wave_store: Store, settings: Settings, now: datetime, tmp_path: Path
) -> None:
    site = publish_site(wave_store, settings, now=now, out_dir=tmp_path / "site")
    page = read(site, "index.html")
    for cells in bars(page).values():
        assert {status for status, _ in cells} == {"no_data"}
    assert "Beranda <small>Ketersediaan 90 hari: Tidak ada data</small>" in page
    assert "<svg" not in page and page.count("Belum ada data waktu respons.") == 4


# -- the charts --------------------------------------------------------------------------------


def charts(page: str) -> list[ET.Element]:
    """Every inline SVG of the page, parsed as XML (which it must be)."""
    return [ET.fromstring(svg) for svg in SVG.findall(page)]


@pytest.mark.parametrize(
    ("page", "title", "words"),
    [
        (
            "index.html",
            "Waktu respons Beranda, 24 jam terakhir (median per jam)",
            ("24 jam lalu", "sekarang"),
        ),
        (
            "en/index.html",
            "Response time of Home, last 24 hours (median per hour)",
            ("24 h ago", "now"),
        ),
    ],
)
def test_a_chart_is_an_svg_image_with_a_title_a_description_and_axis_labels(
    history_site: Path, page: str, title: str, words: tuple[str, str]
) -> None:
    svgs = charts(read(history_site, page))
    assert len(svgs) == 4
    home = svgs[0]
    assert home.get("role") == "img"
    title_id, desc_id = home.get("aria-labelledby", "").split()
    assert home.find("title") is not None and home.find("title").get("id") == title_id  # type: ignore[union-attr]
    assert home.findtext("title") == title
    assert home.find("desc").get("id") == desc_id  # type: ignore[union-attr]
    description = home.findtext("desc") or ""
    number = r"\d[\d.,]* ms"
    pattern = (
        rf"Terendah {number}, tertinggi {number}, terakhir {number}\. Persentil ke-95 jam terakhir: {number}\."
        if page == "index.html"
        else rf"Lowest {number}, highest {number}, latest {number}\. 95th percentile in the latest hour: {number}\."
    )
    assert re.fullmatch(pattern, description), description
    texts = [t.text for t in home.iter("text")]
    assert texts[1:] == list(words) and texts[0] is not None and texts[0].endswith(" ms")


def test_a_chart_has_a_point_per_hour_with_passed_runs(history_site: Path) -> None:
    home, login = charts(read(history_site, "index.html"))[:2]
    (line,) = home.iter("polyline")
    points = [tuple(map(float, p.split(","))) for p in (line.get("points") or "").split()]
    assert len(points) == LATENCY_HOURS  # the current hour included
    xs = [x for x, _ in points]
    assert xs == sorted(xs) and xs[0] == 0 and xs[-1] == 300
    assert all(16 <= y <= 66 for _, y in points)
    (line,) = login.iter("polyline")  # login's current hour has failing runs only
    assert len((line.get("points") or "").split()) == LATENCY_HOURS - 1


def _points(*medians: float | None) -> tuple[LatencyPoint, ...]:
    start = datetime(2026, 9, 17, tzinfo=UTC)
    return tuple(
        LatencyPoint(start + timedelta(hours=n), runs=1, p50_ms=m, p95_ms=m and m * 2)
        for n, m in enumerate(medians)
    )


def test_chart_geometry_breaks_lines_at_hours_without_data() -> None:
    chart = latency_chart(_points(100, 200, None, 300, None, 50, 60))
    assert chart is not None
    assert chart.top_ms == 500
    assert chart.lines == ("0,56 50,46", "250,61 300,60")
    assert chart.dots == ((150.0, 36.0),)
    assert (chart.low_ms, chart.high_ms, chart.last_ms, chart.last_p95_ms) == (50, 300, 60, 120)
    assert chart.describe("en") == (
        "Lowest 50 ms, highest 300 ms, latest 60 ms. 95th percentile in the latest hour: 120 ms."
    )
    assert chart.top_label("id") == "500 ms"


def test_no_chart_without_response_times() -> None:
    assert latency_chart(_points(None, None)) is None
    assert latency_chart(()) is None


@pytest.mark.parametrize(
    ("highest", "top"), [(0.4, 1), (7, 10), (120, 200), (1500, 2000), (2001, 5000), (5000, 5000)]
)
def test_the_chart_top_is_a_round_number_above_the_highest_median(
    highest: float, top: float
) -> None:
    chart = latency_chart(_points(highest))
    assert chart is not None and chart.top_ms == top


@pytest.mark.parametrize(
    ("ratio", "indonesian", "english"),
    [
        (1.0, "100%", "100%"),
        (0.99999, "99,99%", "99.99%"),
        (0.9467, "94,67%", "94.67%"),
        (0.0, "0,00%", "0.00%"),
    ],
)
def test_uptime_is_rounded_down_so_any_downtime_shows(
    ratio: float, indonesian: str, english: str
) -> None:
    assert (uptime_text(ratio, "id"), uptime_text(ratio, "en")) == (indonesian, english)


def test_thousands_are_grouped_per_language() -> None:
    chart = latency_chart(_points(1234.0))
    assert chart is not None
    assert (
        chart.describe("id").startswith("Terendah 1.234 ms") and chart.top_label("en") == "2,000 ms"
    )


# -- reading and size --------------------------------------------------------------------------


@pytest.fixture
def statements(history_store: Store) -> Iterator[list[str]]:
    """The SQL statements run on the store while the test runs."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(history_store.engine, "before_cursor_execute", note)
    yield seen
    event.remove(history_store.engine, "before_cursor_execute", note)


def test_load_snapshot_reads_rollups_never_raw_results(
    history_store: Store, settings: Settings, now: datetime, statements: list[str]
) -> None:
    snapshot = load_snapshot(history_store, settings, now=now)
    assert statements and not [s for s in statements if "probe_result" in s]
    assert sum("FROM result_rollup" in s for s in statements) == 2  # the days, the hours
    login = snapshot.components[1]
    assert len(login.days) == UPTIME_DAYS and login.days[-1].day == date(2026, 9, 17)
    assert len(login.latency) == LATENCY_HOURS
    assert login.latency[-1].start == datetime(2026, 9, 17, 7, tzinfo=UTC)  # 14.00 WIB
    assert login.latency[-1].runs == 1 and login.latency[-1].p50_ms is None


def test_index_and_css_stay_small_with_a_full_history(history_site: Path) -> None:
    """Four components with 90 days each stay far below the 30 KB budget (ten are measured
    by ``bench/publish_speed.py`` and ``test_validity.py``)."""
    size = sum(
        len(gzip.compress((history_site / n).read_bytes())) for n in ("index.html", "style.css")
    )
    assert size < 12 * 1024
