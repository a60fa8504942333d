"""The incident report: measured from a real outage replayed through the engine.

The outage (times in UTC; WIB is UTC+7), probe rounds every 20 seconds from 07:00:00:

* login-page fails from 07:01:00 to 07:09:40: Login partial at 07:01:20 (the incident
  opens), major from 07:03:00 while login-api fails too, partial again at 07:04:20,
  operational at 07:10:20 (the incident resolves itself): 9 minutes of outage;
* otp-page fails at 07:02:20, 07:02:40 and 07:03:00: OTP joins at 07:02:40 and recovers
  at 07:03:40, before Login: 1 minute of outage;
* the comms team posts two statements (07:05:00 and 07:08:00); the first went to X;
* alerts go to two targets, the second of which always refuses.
"""

from __future__ import annotations

import html.parser
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from engine_support import Replay, make_config
from selectolax.lexbor import LexborHTMLParser as HTMLParser

from checks.base import ErrorClass, ProbeResult
from monitor.alerts import DeliveryError, deliver_pending
from monitor.clock import ManualClock
from monitor.config import Settings, parse_settings
from monitor.fields import Secret
from monitor.incidents import open_incident, update_incident
from monitor.report import (
    IncidentReport,
    PeakErrorRate,
    SocialSummary,
    build_report,
    escape_markdown,
    render_html,
    render_markdown,
)
from monitor.rollup import catch_up
from monitor.statements import Statement
from monitor.store import Store, XPostRow

WIB = ZoneInfo("Asia/Jakarta")
T0 = datetime(2026, 9, 17, 7, 0, tzinfo=UTC)
SCRIPT = "<script>alert(1)</script>"
FIRST = Statement(
    id=f"Penyebab ditemukan: server *OTP* | antrean penuh.\n{SCRIPT}\n- bukan daftar",
    en=f"Cause identified: *OTP* server | queue full.\n{SCRIPT}",
)
SECOND = Statement(id="Perbaikan diterapkan (monitoring).", en="Perbaikan diterapkan (monitoring).")
AUTHOR = "Rina | Humas"
POST_IDS = ["1835000000000000001", "1835000000000000002"]


def wib(hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2026, 9, 17, hour, minute, second, tzinfo=WIB)


def _settings() -> Settings:
    """Two alert targets (the second refuses) and a public address for the links."""
    config = make_config(
        notify=["json://127.0.0.1:9/a", "json://127.0.0.1:9/b"],
        site={"base_url": "https://status.example.id"},
    )
    return parse_settings(config, env={})


@pytest.fixture
def settings() -> Settings:
    return _settings()


class _SecondTargetRefuses:
    """A Notifier: the target ending in ``/b`` always refuses."""

    def send(self, target: Secret, *, title: str, body: str) -> None:
        if target.reveal().endswith("/b"):
            raise DeliveryError("refused")


def _failing(second: int) -> set[str]:
    """The checks failing in the round ``second`` seconds after 07:00:00."""
    failing = {"login-page"} if 60 <= second < 600 else set()
    if second == 160 or 180 <= second < 240:
        failing.add("login-api")
    if second in (140, 160, 180):
        failing.add("otp-page")
    return failing


def _statement(
    store: Store, settings: Settings, clock: ManualClock, statement: Statement, status: str
) -> int:
    """A statement of the comms team on incident 1; returns its update id."""
    with store.tx() as tx:
        update_incident(
            tx, settings, 1, now=clock.now(), author=AUTHOR, statement=statement, status=status
        )
        update_id = tx.updates(1)[-1].id
    assert update_id is not None
    return update_id


def _x_post(
    store: Store, update_id: int, *, status: str, ids: list[str], error: str | None
) -> None:
    with store.tx() as tx:
        tx.add_x_post(
            XPostRow(
                incident_id=1,
                update_id=update_id,
                parts=json.dumps(["part 1", "part 2"]),
                post_ids=json.dumps(ids),
                status=status,
                error=error,
                created_at=T0,
            )
        )


def _replay_outage(store: Store, settings: Settings, clock: ManualClock, *, until: int) -> None:
    """Rounds from 07:00:00 up to ``until`` seconds later (excluded), as described above."""
    replay = Replay(store, settings, clock)
    for second in range(0, until, 20):
        clock.set(T0 + timedelta(seconds=second))
        if second == 300:
            update_id = _statement(store, settings, clock, FIRST, "identified")
            _x_post(store, update_id, status="posted", ids=POST_IDS, error=None)
        if second == 480:
            update_id = _statement(store, settings, clock, SECOND, "monitoring")
            _x_post(store, update_id, status="failed", ids=[], error="429 <rate limited>")
        replay.round(failing=_failing(second))
        replay.evaluate()
        deliver_pending(store, settings, _SecondTargetRefuses(), now=clock.now())


def _report(
    store: Store,
    settings: Settings,
    clock: ManualClock,
    *,
    until: int = 640,
    social: SocialSummary | None = None,
) -> IncidentReport:
    _replay_outage(store, settings, clock, until=until)
    with store.read() as tx:
        return build_report(tx, settings, 1, now=clock.now(), social=social)


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Settings]]:
    """The whole outage, replayed once for the tests that only read it."""
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('report') / 'pantau.db'}")
    settings = _settings()
    _replay_outage(store, settings, ManualClock(), until=640)
    yield store, settings
    store.close()


def _read(outage: tuple[Store, Settings], social: SocialSummary | None = None) -> IncidentReport:
    store, settings = outage
    with store.read() as tx:
        return build_report(tx, settings, 1, now=T0 + timedelta(minutes=20), social=social)


@pytest.fixture
def report(outage: tuple[Store, Settings]) -> IncidentReport:
    return _read(outage)


# -- what is measured ------------------------------------------------------------------


def test_the_report_tells_the_incident_in_wib(report: IncidentReport) -> None:
    assert report.incident_id == 1
    assert report.automatic
    assert report.status == "resolved"
    assert report.title == Statement(
        id="Gangguan pada Masuk dan OTP", en="Login and OTP disruption"
    )
    assert report.started_at == wib(14, 1, 20)
    assert report.started_at.utcoffset() == timedelta(hours=7)
    assert report.resolved_at == report.measured_until == wib(14, 10, 20)
    assert report.duration == timedelta(minutes=9)
    assert report.url == "https://status.example.id/incidents/1.html"


def test_the_timeline_keeps_every_entry_in_order(report: IncidentReport) -> None:
    assert [(e.at, e.event, e.status, e.automatic) for e in report.timeline] == [
        (wib(14, 1, 20), "opened", "investigating", True),
        (wib(14, 2, 40), "joined", "investigating", True),
        (wib(14, 3, 0), "changed", "investigating", True),
        (wib(14, 3, 40), "recovered", "investigating", True),
        (wib(14, 4, 20), "changed", "investigating", True),
        (wib(14, 5, 0), "update", "identified", False),
        (wib(14, 8, 0), "update", "monitoring", False),
        (wib(14, 10, 20), "resolved", "resolved", True),
    ]
    opened = report.timeline[0]
    assert opened.evidence is not None and opened.evidence.error_classes == {"http_status": 2}
    assert all(e.evidence is None for e in report.timeline if not e.automatic)
    assert report.timeline[5].author == AUTHOR


def test_impact_is_measured_per_component_from_its_transitions(report: IncidentReport) -> None:
    login, otp = report.impacts
    assert login.component_id == "login"
    assert login.name == Statement(id="Masuk", en="Login")
    assert login.worst_status == "major_outage"
    assert login.impact == timedelta(minutes=9)  # partial, major, partial: all count
    assert login.degraded == timedelta(0)
    assert login.first_failure_at == wib(14, 1, 20)
    assert login.recovered_at == wib(14, 10, 20)
    # OTP joined later and recovered before Login
    assert otp.component_id == "otp"
    assert otp.impact == timedelta(minutes=1)
    assert otp.first_failure_at == wib(14, 2, 40)
    assert otp.recovered_at == wib(14, 3, 40)
    assert report.worst_status == "major_outage"


def test_the_peak_error_rate_is_the_worst_minute(report: IncidentReport) -> None:
    peak = report.peak
    assert peak is not None
    # 07:03 UTC: three rounds of both login checks failing (OTP had one pass that minute)
    assert (peak.component_id, peak.runs, peak.failures, peak.ratio) == ("login", 6, 6, 1.0)
    assert peak.at == wib(14, 3)
    assert (
        "100% (6 dari 6 percobaan gagal) pada Masuk, dalam menit mulai 17 Sep 2026, 14.03 WIB"
        in (render_markdown(report))
    )


def test_statements_are_the_human_entries_with_their_x_posts(report: IncidentReport) -> None:
    first, second = report.statements
    assert (first.entry.at, first.entry.author, first.entry.message) == (wib(14, 5), AUTHOR, FIRST)
    assert first.x_post is not None
    assert first.x_post.status == "posted"
    assert first.x_post.urls == tuple(f"https://x.com/i/web/status/{i}" for i in POST_IDS)
    assert second.x_post is not None
    assert (second.x_post.status, second.x_post.urls) == ("failed", ())
    text = render_markdown(report, lang="en")
    assert "<https://x.com/i/web/status/1835000000000000001>" in text
    assert "<https://x.com/i/web/status/1835000000000000002>" in text
    assert "Posting to X failed: 429 &lt;rate limited&gt;" in text


def test_the_alert_summary_counts_messages_and_delivery_outcomes(report: IncidentReport) -> None:
    alerts = report.alerts
    assert alerts.messages == (("firing", 1), ("resolved", 1))
    # the firing message reached /a and failed for good at /b; the resolved one is
    # retrying at /b
    assert alerts.deliveries == (("sent", 2), ("failed", 1), ("pending", 1))
    assert alerts.targets == 2
    assert alerts.first_sent_at == wib(14, 1, 40)
    text = render_markdown(report)
    assert "- Pesan: 2 (peringatan 1, pulih 1)" in text
    assert "- Pengiriman: terkirim 2, gagal 1, menunggu 1 (2 tujuan)" in text
    assert "- Terkirim pertama: 17 Sep 2026, 14.01 WIB (20 detik setelah insiden mulai)" in text


def test_an_unresolved_incident_is_measured_up_to_now(
    store: Store, settings: Settings, clock: ManualClock
) -> None:
    report = _report(store, settings, clock, until=380)  # last round at 07:06:00
    assert report.resolved_at is None
    assert report.measured_until == report.generated_at == wib(14, 6)
    assert report.duration == timedelta(minutes=4, seconds=40)
    login, otp = report.impacts
    assert login.impact == timedelta(minutes=4, seconds=40)
    assert login.recovered_at is None
    assert otp.recovered_at == wib(14, 3, 40)
    id_text, en_text = render_markdown(report), render_markdown(report, lang="en")
    assert "- **Selesai:** Belum selesai; diukur hingga 17 Sep 2026, 14.06 WIB" in id_text
    assert "- **Durasi:** 4 menit" in id_text
    assert "- **Resolved:** Not resolved; measured up to 17 Sep 2026, 14:06 WIB" in en_text
    assert "| Login | Major outage | 4 min | 0 s | 17 Sep 2026, 14:01 WIB | not recovered |" in (
        en_text
    )


def test_time_in_degraded_and_outage_is_clipped_to_the_incident(
    store: Store, settings: Settings
) -> None:
    """A hand-opened incident: Login was already down before it opened."""
    start = T0 + timedelta(minutes=10)
    with store.tx() as tx:
        tx.set_component_status("login", "major_outage", at=T0, cause="test")
        open_incident(
            tx,
            settings,
            now=start,
            components={"login": "major_outage", "signup": "degraded_performance"},
            statement=Statement(id="Kami menyelidiki.", en="We are investigating."),
            title=Statement(id="Gangguan", en="Disruption"),
            author="Rina",
        )
        tx.set_component_status("signup", "degraded_performance", at=start, cause="test")
        tx.set_component_status(
            "login", "degraded_performance", at=start + timedelta(minutes=5), cause="test"
        )
        tx.set_component_status(
            "login", "operational", at=start + timedelta(minutes=7), cause="test"
        )
        tx.set_component_status(
            "signup", "partial_outage", at=start + timedelta(minutes=8), cause="test"
        )
    with store.read() as tx:
        report = build_report(tx, settings, 1, now=start + timedelta(minutes=20))
    login, signup = report.impacts
    assert (login.impact, login.degraded) == (timedelta(minutes=5), timedelta(minutes=2))
    assert login.first_failure_at == wib(14, 10)  # the incident's start, not 14.00
    assert login.recovered_at == wib(14, 17)
    assert (signup.impact, signup.degraded) == (timedelta(minutes=12), timedelta(minutes=8))
    assert (signup.worst_status, signup.first_failure_at) == ("partial_outage", wib(14, 18))
    assert report.peak is None
    assert report.alerts.messages == ()
    text = render_markdown(report, lang="en")
    assert "No minute had enough probe runs (at least 2) to measure." in text
    assert "No alert messages were sent for this incident." in text


def test_a_reprobe_that_passed_is_no_failure_and_a_lone_run_is_no_minute(
    store: Store, settings: Settings
) -> None:
    def result(check_id: str, at: datetime, *, ok: bool, attempt: int = 1) -> ProbeResult:
        return ProbeResult(
            check_id=check_id,
            component_id="login",
            started_at=at,
            ok=ok,
            latency_ms=100.0,
            error=None if ok else ErrorClass.TIMEOUT,
            attempt=attempt,
        )

    start = T0 + timedelta(minutes=1)
    with store.tx() as tx:
        open_incident(
            tx,
            settings,
            now=start,
            components={"login": "partial_outage"},
            statement=Statement(id="a", en="a"),
            title=Statement(id="t", en="t"),
            author="Rina",
        )
        # 07:01: a failure answered by its re-probe, and a failure: 1 of 2 runs failed
        tx.add_result(result("login-page", start, ok=False))
        tx.add_result(result("login-page", start + timedelta(seconds=1), ok=True, attempt=2))
        tx.add_result(result("login-api", start + timedelta(seconds=5), ok=False))
        # 07:02: one failed run alone does not make a 100% minute
        tx.add_result(result("login-api", start + timedelta(minutes=1), ok=False))
    with store.read() as tx:
        report = build_report(tx, settings, 1, now=start + timedelta(minutes=5))
    assert report.peak is not None
    assert (report.peak.at, report.peak.runs, report.peak.failures) == (wib(14, 1), 2, 1)
    assert report.peak.ratio == 0.5


def test_an_unknown_incident_raises_key_error(store: Store, settings: Settings) -> None:
    with store.read() as tx, pytest.raises(KeyError):
        build_report(tx, settings, 42, now=T0)


# -- after the raw results are gone --------------------------------------------------------

# The outage's 14.00 WIB hour (07:00 UTC): 32 rounds; Login's two checks failed 27 times
# (login-page) and 4 times (login-api), OTP's one check 3 times.
LOGIN_HOUR = ("login", 64, 31, "hour", 14)


def _after_retention(
    store: Store, settings: Settings, clock: ManualClock, *, later: datetime
) -> IncidentReport:
    """The outage, then a probe round just before ``later`` (the monitor went on) and the
    coordinator's rollup and prune at ``later``; the report as of ``later``."""
    _replay_outage(store, settings, clock, until=640)
    clock.set(later - timedelta(minutes=1))
    Replay(store, settings, clock).round()
    catch_up(store, settings, now=lambda: later)
    with store.read() as tx:
        return build_report(tx, settings, 1, now=later)


def _peak_of(report: IncidentReport) -> PeakErrorRate:
    assert report.peak is not None
    return report.peak


def test_an_incident_older_than_the_raw_results_peaks_per_hour_from_the_rollups(
    store: Store, settings: Settings, clock: ManualClock
) -> None:
    assert settings.storage.raw_days == 14
    report = _after_retention(store, settings, clock, later=T0 + timedelta(days=20))
    with store.read() as tx:  # the outage's raw results are gone; today's are kept
        assert tx.results(until=T0 + timedelta(days=1)) == []
        assert tx.count_results() > 0
    peak = _peak_of(report)
    assert (peak.component_id, peak.runs, peak.failures, peak.resolution, peak.raw_days) == (
        LOGIN_HOUR
    )
    assert peak.at == wib(14, 0)
    assert peak.ratio == 31 / 64
    id_text = "48% (31 dari 64 percobaan gagal) pada Masuk, dalam satu jam mulai 17 Sep 2026, "
    id_text += "14.00 WIB (angka per jam: data mentah yang berumur lebih dari 14 hari tidak "
    id_text += "disimpan lagi)."
    en_text = "48% (31 of 64 runs failed) on Login, in the hour from 17 Sep 2026, 14:00 WIB "
    en_text += "(hourly figures: raw results older than 14 days are no longer kept)."
    for lang, text in (("id", id_text), ("en", en_text)):
        assert text in render_markdown(report, lang=lang)
        assert text in _text_of(render_html(report, lang=lang))
    assert "in the minute from" not in render_markdown(report, lang="en")
    # Everything else of the report is kept: transitions, the timeline's evidence, alerts
    login, otp = report.impacts
    assert (login.impact, login.worst_status, login.recovered_at) == (
        timedelta(minutes=9),
        "major_outage",
        wib(14, 10, 20),
    )
    assert otp.impact == timedelta(minutes=1)
    opened = report.timeline[0]
    assert opened.evidence is not None and opened.evidence.error_classes == {"http_status": 2}
    assert report.alerts.messages == (("firing", 1), ("resolved", 1))


def test_an_incident_across_the_raw_horizon_peaks_per_hour_too(
    store: Store, settings: Settings, clock: ManualClock
) -> None:
    """Raw results before 07:05 UTC went, those after stayed: minutes of what is left
    (3 of 6 failed at 14.05) would understate the peak, so the whole window is hourly."""
    report = _after_retention(store, settings, clock, later=T0 + timedelta(days=14, minutes=5))
    with store.read() as tx:
        kept = tx.results(component_id="login", until=T0 + timedelta(days=1))
    assert kept and min(r.started_at for r in kept) == T0 + timedelta(minutes=5)
    peak = _peak_of(report)
    assert (peak.component_id, peak.runs, peak.failures, peak.resolution, peak.raw_days) == (
        LOGIN_HOUR
    )
    assert peak.at == wib(14, 0)


def test_a_recent_incident_keeps_its_worst_minute_once_rolled_up(
    store: Store, settings: Settings, clock: ManualClock
) -> None:
    report = _after_retention(store, settings, clock, later=T0 + timedelta(days=13))
    peak = _peak_of(report)
    assert (peak.component_id, peak.runs, peak.failures, peak.ratio) == ("login", 6, 6, 1.0)
    assert (peak.at, peak.resolution, peak.raw_days) == (wib(14, 3), "minute", None)
    text = render_markdown(report, lang="en")
    assert "100% (6 of 6 runs failed) on Login, in the minute from 17 Sep 2026, 14:03 WIB." in (
        text
    )
    assert "hourly figures" not in text


def test_probing_that_began_after_the_incident_opened_is_still_counted_per_minute(
    store: Store, settings: Settings
) -> None:
    """The oldest raw result is after the incident's start, yet nothing was pruned: the
    rollup of its hour counted exactly the runs still stored."""
    with store.tx() as tx:
        open_incident(
            tx,
            settings,
            now=T0 - timedelta(minutes=10),
            components={"login": "partial_outage"},
            statement=Statement(id="a", en="a"),
            title=Statement(id="t", en="t"),
            author="Rina",
        )
        for second in (0, 20, 40):
            tx.add_result(
                ProbeResult(
                    check_id="login-page",
                    component_id="login",
                    started_at=T0 + timedelta(seconds=second),
                    ok=second == 40,
                    latency_ms=100.0,
                    error=None if second == 40 else ErrorClass.TIMEOUT,
                )
            )
    later = T0 + timedelta(minutes=30)
    catch_up(store, settings, now=lambda: later)
    with store.read() as tx:
        assert [r.runs for r in tx.rollups("hour", since=T0, until=later)] == [3]
        report = build_report(tx, settings, 1, now=later)
    peak = _peak_of(report)
    assert (peak.at, peak.runs, peak.failures, peak.resolution) == (wib(14, 0), 3, 2, "minute")


# -- how it is shown -------------------------------------------------------------------


ID_LINES = [
    "# Laporan insiden #1: Gangguan pada Masuk dan OTP",
    "*Login and OTP disruption*",
    "## Linimasa",
    "- **Mulai:** 17 Sep 2026, 14.01 WIB",
    "- **Durasi:** 9 menit",
    "- **Dampak:** Gangguan besar",
    "| Masuk | Gangguan besar | 9 menit | 0 detik | 17 Sep 2026, 14.01 WIB | 17 Sep 2026, 14.10 WIB |",
    "| OTP | Gangguan besar | 1 menit | 0 detik | 17 Sep 2026, 14.02 WIB | 17 Sep 2026, 14.03 WIB |",
    "- **17 Sep 2026, 14.02 WIB** · Sedang diselidiki · Komponen bergabung · Pantau (otomatis)",
    "  Juga terdampak: OTP tidak dapat diakses.",
    "  > Also affected: OTP unavailable.",
    "  Bukti: 2 dari 7 percobaan gagal (29%); galat: http\\_status 2",
    "- Sinyal media sosial belum dikonfigurasi.",
]
EN_LINES = [
    "# Incident report #1: Login and OTP disruption",
    "*Gangguan pada Masuk dan OTP*",
    "## Timeline",
    "- **Started:** 17 Sep 2026, 14:01 WIB",
    "- **Duration:** 9 min",
    "| Login | Major outage | 9 min | 0 s | 17 Sep 2026, 14:01 WIB | 17 Sep 2026, 14:10 WIB |",
    "  Also affected: OTP unavailable.",
    "  > Juga terdampak: OTP tidak dapat diakses.",
    "  Evidence: 2 of 7 runs failed (29%); errors: http\\_status 2",
    "- Social signal not configured.",
]


@pytest.mark.parametrize(("lang", "expected"), [("id", ID_LINES), ("en", EN_LINES)])
def test_markdown_speaks_the_chosen_language(
    report: IncidentReport, lang: str, expected: list[str]
) -> None:
    lines = render_markdown(report, lang=lang).splitlines()
    for line in expected:
        assert any(got.startswith(line) for got in lines), line


def test_a_statement_shows_the_other_language_only_when_it_differs(
    report: IncidentReport,
) -> None:
    first, second = report.statements
    assert first.entry.texts("en") == (FIRST.en, FIRST.id)
    assert second.entry.texts("en") == (SECOND.en, None)
    text = render_markdown(report, lang="en")
    assert (
        text.count("Perbaikan diterapkan (monitoring).") == 2
    )  # timeline and statements, once each


def test_a_statement_in_one_language_is_shown_once_and_marked(store: Store) -> None:
    settings = parse_settings(make_config(), env={})  # no [site] base_url
    with store.tx() as tx:
        open_incident(
            tx,
            settings,
            now=T0,
            components={"otp": "partial_outage"},
            statement=Statement(id="Hanya dalam bahasa Indonesia.", en=""),
            title=Statement(id="Gangguan OTP", en=""),
            author="Rina",
        )
    with store.read() as tx:
        report = build_report(tx, settings, 1, now=T0 + timedelta(minutes=1))
    assert report.timeline[0].texts("en") == ("Hanya dalam bahasa Indonesia.", None)
    assert render_markdown(report, lang="en").count("Hanya dalam bahasa Indonesia.") == 2
    tree = HTMLParser(render_html(report, lang="en"))
    marked = [p.attributes.get("lang") for p in tree.css("p.msg")]
    assert marked == ["id", "id"]  # the timeline and the statements
    heading = tree.css_first("h1 span")
    assert heading is not None and heading.attributes["lang"] == "id"
    assert tree.css("a") == []  # a relative page address is no link in a standalone file
    assert "incidents/1.html" in _text_of(render_html(report, lang="en"))


@pytest.mark.parametrize(
    ("social", "lang", "expected"),
    [
        (None, "id", ["Sinyal media sosial belum dikonfigurasi."]),
        (None, "en", ["Social signal not configured."]),
        (
            SocialSummary(1520, 2.5, 48.0, timedelta(minutes=3), "X: prakerja"),
            "id",
            [
                "Sumber: X: prakerja",
                "Keluhan selama insiden: 1.520",
                "Normal: 2,5 per menit",
                "Puncak: 48,0 per menit",
                "Keluhan naik: 3 menit setelah insiden mulai",
            ],
        ),
        (
            SocialSummary(1520, 2.5, 48.0, timedelta(minutes=-2), "X: prakerja"),
            "en",
            [
                "Complaints during the incident: 1,520",
                "Normal: 2.5 per minute",
                "Peak: 48.0 per minute",
                "Complaints rose: 2 min before the incident started",
            ],
        ),
        (SocialSummary(3, 2.5, 3.0, None, "X"), "en", ["Complaints rose: no rise"]),
    ],
)
def test_the_social_signal_is_shown_or_said_to_be_missing(
    outage: tuple[Store, Settings], social: SocialSummary | None, lang: str, expected: list[str]
) -> None:
    report = _read(outage, social)
    assert report.social == social
    for text in (render_markdown(report, lang=lang), _text_of(render_html(report, lang=lang))):
        for line in expected:
            assert line in text
    if social is not None:
        assert "not configured" not in render_markdown(report, lang="en")


def test_an_unknown_language_is_refused(report: IncidentReport) -> None:
    with pytest.raises(ValueError, match="unknown language"):
        render_markdown(report, lang="fr")


# -- escaping ----------------------------------------------------------------------------


def _text_of(document: str) -> str:
    tree = HTMLParser(document)
    assert tree.body is not None
    return tree.body.text(separator=" ")


class _Strict(html.parser.HTMLParser):
    """Records start tags and fails on any tag left open or closed out of order."""

    VOID = frozenset({"meta", "br", "link", "img", "hr", "input"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, (tag, self.stack[-3:])
        self.stack.pop()


@pytest.mark.parametrize("lang", ["id", "en"])
def test_html_is_one_standalone_escaped_document(report: IncidentReport, lang: str) -> None:
    document = render_html(report, lang=lang)
    assert document.startswith("<!DOCTYPE html>\n")
    assert SCRIPT not in document
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in document
    strict = _Strict()
    strict.feed(document)
    strict.close()
    assert strict.stack == []
    assert "script" not in strict.tags
    tree = HTMLParser(document)
    root = tree.css_first("html")
    assert root is not None and root.attributes["lang"] == lang
    assert tree.css("link, img, iframe, object, embed, [src]") == []  # no external requests
    assert len(tree.css("style")) == 1
    policy = tree.css_first('meta[http-equiv="Content-Security-Policy"]')
    assert policy is not None and "default-src 'none'" in (policy.attributes["content"] or "")
    assert SCRIPT in _text_of(document)  # shown as written
    links = [a.attributes["href"] for a in tree.css("a")]
    assert links == [
        "https://status.example.id/incidents/1.html",
        *(f"https://x.com/i/web/status/{i}" for i in POST_IDS),
    ]
    assert "429 <rate limited>" in _text_of(document)
    assert AUTHOR in _text_of(document)


def test_markdown_escapes_text_from_outside(report: IncidentReport) -> None:
    text = render_markdown(report, lang="id")
    assert SCRIPT not in text
    assert "  Penyebab ditemukan: server \\*OTP\\* \\| antrean penuh.  " in text
    assert "  &lt;script&gt;alert(1)&lt;/script&gt;  " in text
    assert "  \\- bukan daftar" in text  # not a list item
    assert "Rina \\| Humas" in text


def test_rendered_markdown_shows_statements_as_written(report: IncidentReport) -> None:
    """Through a real CommonMark renderer (with GitHub's tables): no raw HTML, no emphasis
    or table cells made from a statement."""
    markdown_it = pytest.importorskip("markdown_it")
    rendered = (
        markdown_it.MarkdownIt("commonmark")
        .enable("table")
        .render(render_markdown(report, lang="id"))
    )
    assert "<script" not in rendered
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered
    assert "server *OTP* | antrean penuh." in rendered
    assert "<em>OTP</em>" not in rendered
    text = _text_of(f"<body>{rendered}</body>")
    assert "Rina | Humas" in text


def test_a_pipe_in_a_component_name_stays_in_its_cell(store: Store) -> None:
    config = make_config()
    config["components"] = [
        {"id": "login", "name": {"id": "Masuk | *Login*", "en": "Login | *Masuk*"}},
        *config["components"][2:],
    ]
    config["checks"] = [c for c in config["checks"] if c["component"] != "home"]
    settings = parse_settings(config, env={})
    with store.tx() as tx:
        open_incident(
            tx,
            settings,
            now=T0,
            components={"login": "major_outage"},
            statement=Statement(id="a", en="a"),
            title=Statement(id="t", en="t"),
            author="Rina",
        )
    with store.read() as tx:
        text = render_markdown(build_report(tx, settings, 1, now=T0), lang="id")
    (row,) = [line for line in text.splitlines() if line.startswith("| Masuk")]
    assert row.startswith("| Masuk \\| \\*Login\\* | Normal |")
    markdown_it = pytest.importorskip("markdown_it")
    rendered = markdown_it.MarkdownIt("commonmark").enable("table").render(text)
    cells = HTMLParser(rendered).css("tbody tr td")
    assert len(cells) == 6
    assert cells[0].text() == "Masuk | *Login*"


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("a | b", "a \\| b"),
        (
            "*tebal* _miring_ `kode` ~~coret~~",
            "\\*tebal\\* \\_miring\\_ \\`kode\\` \\~\\~coret\\~\\~",
        ),
        (SCRIPT, "&lt;script&gt;alert(1)&lt;/script&gt;"),
        ("[tautan](javascript:alert(1))", "\\[tautan\\](javascript:alert(1))"),
        ("&amp; tetap teks", "&amp;amp; tetap teks"),
        ("# judul", "\\# judul"),
        ("- butir\n+ butir\n1. nomor\n2) nomor", "\\- butir\n\\+ butir\n1\\. nomor\n2\\) nomor"),
        ("baris\n===", "baris\n\\==="),
        ("    kode?", "kode?"),
        ("> kutipan", "&gt; kutipan"),
        ("a\\*b", "a\\\\\\*b"),
        ("14.05 WIB, 45% - normal", "14.05 WIB, 45% - normal"),
    ],
)
def test_escape_markdown(text: str, escaped: str) -> None:
    assert escape_markdown(text) == escaped
