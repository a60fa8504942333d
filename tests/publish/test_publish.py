"""The published site: contract files, Statuspage-shaped JSON, pages, escaping, atomic swap."""

from __future__ import annotations

import gzip
import json
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.exc import SQLAlchemyError

from monitor.config import Settings
from monitor.publish import (
    SITE_GITIGNORE,
    format_time,
    load_snapshot,
    overall_status,
    publish_site,
    render_site,
    swap_directory,
)
from monitor.store import Store, StoreError

MakeSettings = Callable[..., Settings]
AddIncident = Callable[..., int]

GOLDEN = Path(__file__).parent / "golden"

CONTRACT_FILES = {
    ".gitignore",
    "style.css",
    "index.html",
    "history.html",
    "en/history.html",
    "history.atom",
    "history.rss",
    *(
        f"badge/{name}.{ext}"
        for name in ("status", "home", "login", "signup", "otp")
        for ext in ("svg", "json")
    ),
    "en/index.html",
    "incidents/1.html",
    "incidents/2.html",
    "incidents/3.html",
    "en/incidents/1.html",
    "en/incidents/2.html",
    "en/incidents/3.html",
    "api/v2/summary.json",
    "api/v2/status.json",
    "api/v2/components.json",
    "api/v2/incidents.json",
    "api/v2/incidents/unresolved.json",
    "api/v2/scheduled-maintenances.json",
}
PAGE_KEYS = {"id", "name", "url", "time_zone", "updated_at"}
COMPONENT_KEYS = {
    "id",
    "name",
    "status",
    "created_at",
    "updated_at",
    "position",
    "description",
    "showcase",
    "start_date",
    "group_id",
    "page_id",
    "group",
    "only_show_if_degraded",
}
INCIDENT_KEYS = {
    "id",
    "name",
    "status",
    "created_at",
    "updated_at",
    "monitoring_at",
    "resolved_at",
    "impact",
    "shortlink",
    "started_at",
    "page_id",
    "incident_updates",
    "components",
}
UPDATE_KEYS = {
    "id",
    "status",
    "body",
    "incident_id",
    "created_at",
    "updated_at",
    "display_at",
    "affected_components",
    "deliver_notifications",
    "custom_tweet",
    "tweet_id",
}
VOID = {"meta", "link", "br", "hr", "img", "input", "source", "wbr", "area", "base", "col"}


# -- a tiny DOM over html.parser --------------------------------------------------------------


@dataclass
class Node:
    tag: str
    attrs: dict[str, str | None]
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def find_all(self, tag: str, **attrs: str) -> list[Node]:
        found: list[Node] = []
        for child in self.children:
            if isinstance(child, Node):
                if child.tag == tag and all(child.attrs.get(k) == v for k, v in attrs.items()):
                    found.append(child)
                found.extend(child.find_all(tag, **attrs))
        return found

    def find(self, tag: str, **attrs: str) -> Node:
        found = self.find_all(tag, **attrs)
        assert found, f"no <{tag} {attrs}>"
        return found[0]


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]
        self.doctype: str | None = None

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        assert tag not in VOID, f"end tag of void element <{tag}>"
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse_page(path: Path) -> tuple[Node, str | None]:
    """Parse a page strictly (every element closed in order); return its root and doctype."""
    builder = _TreeBuilder()
    builder.feed(path.read_text(encoding="utf-8"))
    builder.close()
    assert builder.stack == [builder.root], "unclosed elements"
    return builder.root, builder.doctype


def words(text: str) -> str:
    return " ".join(text.split())


def tree_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def site(wave_store: Store, settings: Settings, now: datetime, tmp_path: Path) -> Path:
    return publish_site(wave_store, settings, now=now, out_dir=tmp_path / "site")


def load(site: Path, name: str) -> Any:
    return json.loads((site / name).read_text(encoding="utf-8"))


# -- the tree ----------------------------------------------------------------------------------


def test_publish_writes_every_file_of_the_contract(site: Path) -> None:
    assert tree_files(site) == CONTRACT_FILES


def test_gitignore_keeps_the_published_tree_out_of_git(site: Path) -> None:
    assert (site / ".gitignore").read_bytes() == b"*\n!.gitignore\n" == SITE_GITIGNORE.encode()


def test_default_output_is_the_configured_folder_beside_the_config(
    wave_store: Store, make_settings: MakeSettings, tmp_path: Path, now: datetime
) -> None:
    settings = make_settings(output_dir="public/status")
    out = publish_site(wave_store, settings, now=now)
    assert out == tmp_path / "public" / "status"
    assert (out / "index.html").is_file()


def test_published_tree_is_readable_by_a_web_server(site: Path) -> None:
    assert stat.S_IMODE(site.stat().st_mode) & 0o055 == 0o055
    assert stat.S_IMODE((site / "index.html").stat().st_mode) & 0o044 == 0o044


def test_no_staging_folders_are_left_beside_the_site(site: Path) -> None:
    assert [p.name for p in site.parent.iterdir() if p.name.startswith(".")] == []


# -- JSON: Statuspage v2 -----------------------------------------------------------------------


def test_summary_has_the_statuspage_shape(site: Path) -> None:
    summary = load(site, "api/v2/summary.json")
    assert set(summary) == {"page", "components", "incidents", "scheduled_maintenances", "status"}
    assert set(summary["page"]) == PAGE_KEYS
    assert summary["page"]["name"] == "Status Kartu Prakerja"
    assert summary["page"]["time_zone"] == "Asia/Jakarta"
    assert [set(c) for c in summary["components"]] == [COMPONENT_KEYS] * 4
    assert [c["id"] for c in summary["components"]] == ["home", "login", "signup", "otp"]
    assert [c["position"] for c in summary["components"]] == [1, 2, 3, 4]
    assert [c["status"] for c in summary["components"]] == [
        "operational",
        "major_outage",
        "degraded_performance",
        "operational",
    ]
    assert summary["status"] == {"indicator": "major", "description": "Gangguan besar pada layanan"}


def test_incidents_have_the_statuspage_shape(site: Path) -> None:
    incidents = load(site, "api/v2/incidents.json")["incidents"]
    assert [i["id"] for i in incidents] == ["3", "2", "1"]  # newest first, old ones too
    for incident in incidents:
        assert set(incident) == INCIDENT_KEYS
        assert {c["id"] for c in incident["components"]} <= {"home", "login", "signup", "otp"}
        for update in incident["incident_updates"]:
            assert set(update) == UPDATE_KEYS
            assert isinstance(update["id"], str)
            assert update["incident_id"] == incident["id"]
    active, otp, _old = incidents
    assert active["shortlink"] == "https://status.prakerja.example/incidents/3.html"
    assert [u["status"] for u in active["incident_updates"]] == ["identified", "investigating"]
    # The API speaks the first language, falling back to the other.
    assert active["name"] == "Gagal masuk saat gelombang 9 dibuka"
    assert active["incident_updates"][0]["body"].startswith("Lalu lintas sangat tinggi.")
    assert otp["monitoring_at"] == "2026-09-14T09:25:00+07:00"
    assert otp["resolved_at"] == "2026-09-14T09:55:00+07:00"
    assert otp["impact"] == "minor"


def test_timestamps_are_iso_8601_with_the_zone_offset(site: Path) -> None:
    summary = load(site, "api/v2/summary.json")
    stamps = [summary["page"]["updated_at"], summary["components"][1]["updated_at"]]
    stamps += [u["created_at"] for i in summary["incidents"] for u in i["incident_updates"]]
    for stamp in stamps:
        parsed = datetime.fromisoformat(stamp)
        assert parsed.utcoffset() == timedelta(hours=7), stamp
    assert summary["page"]["updated_at"] == "2026-09-17T14:05:00+07:00"


def test_unresolved_lists_only_unresolved_incidents(site: Path) -> None:
    unresolved = load(site, "api/v2/incidents/unresolved.json")
    assert set(unresolved) == {"page", "incidents"}
    assert [(i["id"], i["status"]) for i in unresolved["incidents"]] == [("3", "identified")]
    assert load(site, "api/v2/summary.json")["incidents"] == unresolved["incidents"]


def test_status_and_components_documents_agree_with_the_summary(site: Path) -> None:
    summary = load(site, "api/v2/summary.json")
    assert load(site, "api/v2/status.json") == {
        "page": summary["page"],
        "status": summary["status"],
    }
    components = load(site, "api/v2/components.json")
    assert components == {"page": summary["page"], "components": summary["components"]}


@pytest.mark.parametrize(
    ("statuses", "impacts", "indicator", "english"),
    [
        ([], [], "none", "All Systems Operational"),
        (["operational"] * 4, [], "none", "All Systems Operational"),
        (["operational", "under_maintenance"], [], "none", "Service Under Maintenance"),
        (["operational", "degraded_performance"], [], "minor", "Partially Degraded Service"),
        (["operational", "partial_outage"], [], "minor", "Partially Degraded Service"),
        (["partial_outage", "major_outage"], [], "major", "Major Service Outage"),
        (["major_outage", "major_outage"], [], "critical", "Major System Outage"),
        (["operational", "operational"], ["major"], "major", "Major Service Outage"),
        (["major_outage", "operational"], ["minor"], "major", "Major Service Outage"),
        (["operational"], ["none"], "none", "All Systems Operational"),
        (["something_new"], ["bogus"], "none", "All Systems Operational"),
    ],
)
def test_overall_indicator_follows_statuspage(
    statuses: list[str], impacts: list[str], indicator: str, english: str
) -> None:
    overall = overall_status(statuses, impacts)
    assert (overall.indicator, overall.description.get("en")) == (indicator, english)
    assert overall.description.get("id")


# -- the snapshot -----------------------------------------------------------------------------


def test_snapshot_reads_components_in_config_order_defaulting_to_operational(
    wave_store: Store, settings: Settings, now: datetime
) -> None:
    snapshot = load_snapshot(wave_store, settings, now=now)
    assert [(c.id, c.status) for c in snapshot.components] == [
        ("home", "operational"),
        ("login", "major_outage"),
        ("signup", "degraded_performance"),
        ("otp", "operational"),
    ]
    assert snapshot.components[3].since is None


def test_snapshot_keeps_old_unresolved_incidents_and_old_resolved_ones_only_in_history(
    wave_store: Store, settings: Settings, now: datetime, add_incident: AddIncident
) -> None:
    stale = now - timedelta(days=30)
    add_incident(
        wave_store,
        title=("Lama", "Old"),
        status="monitoring",
        started_at=stale,
        components={},
        updates=[],
    )
    snapshot = load_snapshot(wave_store, settings, now=now)
    assert [i.id for i in snapshot.unresolved] == [3, 4]
    assert [i.id for i in snapshot.recent] == [3, 2]
    assert [i.id for i in snapshot.incidents] == [3, 2, 1, 4]
    active = snapshot.incidents[0]
    assert [u.status for u in active.updates] == ["investigating", "identified"]
    assert [(c.id, c.status) for c in active.components] == [
        ("login", "major_outage"),
        ("signup", "degraded_performance"),
    ]


# -- HTML --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("page", "lang"),
    [
        ("index.html", "id"),
        ("en/index.html", "en"),
        ("incidents/3.html", "id"),
        ("en/incidents/2.html", "en"),
    ],
)
def test_pages_are_valid_accessible_html5(site: Path, page: str, lang: str) -> None:
    root, doctype = parse_page(site / page)
    assert doctype is not None
    assert doctype.lower() == "doctype html"
    html = root.find("html")
    assert html.attrs["lang"] == lang
    head = html.find("head")
    assert head.find_all("meta", charset="utf-8")
    assert head.find("meta", name="viewport")
    assert head.find("meta", **{"http-equiv": "refresh"}).attrs["content"] == "60"
    assert words(head.find("title").text())
    body = html.find("body")
    assert len(body.find_all("main")) == 1
    assert body.find_all("header") and body.find_all("footer")
    assert len(body.find_all("h1")) == 1
    (script,) = root.find_all("script")  # only the inline stale-data check
    assert not script.attrs and "Date.now()" in script.text()
    for element in root.find_all("link") + root.find_all("a"):
        assert "//" not in (element.attrs.get("href") or ""), "no external requests or links"


def test_every_relative_link_resolves_within_the_tree(site: Path) -> None:
    for page in sorted(p for p in tree_files(site) if p.endswith(".html")):
        root, _ = parse_page(site / page)
        for element in root.find_all("a") + root.find_all("link"):
            href = element.attrs["href"]
            assert href
            target = (site / page).parent / href
            assert target.resolve().is_file(), f"{page}: broken link {href}"
            assert target.resolve().is_relative_to(site.resolve())


def test_index_shows_every_component_status_in_words(site: Path) -> None:
    root, _ = parse_page(site / "index.html")
    section = root.find("section", **{"aria-labelledby": "components"})
    rows = [words(li.text()) for li in section.find_all("li")]
    assert rows == [
        "Beranda ✓ Normal",
        "Masuk ✕ Gangguan besar Masuk ke akun",
        "Pendaftaran ! Kinerja menurun",
        "OTP ✓ Normal",
    ]
    english, _ = parse_page(site / "en/index.html")
    section = english.find("section", **{"aria-labelledby": "components"})
    assert [
        words(li.find("span", **{"class": "name"}).text()) for li in section.find_all("li")
    ] == [
        "Home",
        "Login",
        "Signup",
        "OTP",
    ]
    assert "Major outage" in words(section.text())


def test_index_banner_says_the_overall_status_in_words_and_symbol(site: Path) -> None:
    root, _ = parse_page(site / "index.html")
    banner = root.find("p", role="status")
    assert words(banner.text()) == "✕ Gangguan besar pada layanan"
    assert banner.find("span").attrs["aria-hidden"] == "true"


def test_index_shows_the_active_incident_with_its_latest_statement(site: Path) -> None:
    root, _ = parse_page(site / "index.html")
    active = words(root.find("section", **{"aria-labelledby": "active"}).text())
    assert "Gagal masuk saat gelombang 9 dibuka" in active
    assert "Lalu lintas sangat tinggi. Kami menambah kapasitas." in active
    assert "Penyebab ditemukan, 17 Sep 2026, 13.50 WIB" in active
    assert "Banyak pendaftar" not in active  # only the latest statement
    links = [a.attrs["href"] for a in root.find("article").find_all("a")]
    assert set(links) == {"incidents/3.html"}


def test_english_index_falls_back_to_the_indonesian_statement_and_marks_its_language(
    site: Path,
) -> None:
    root, _ = parse_page(site / "en/index.html")
    message = root.find("p", **{"class": "msg"})
    assert message.attrs["lang"] == "id"
    assert words(message.text()) == "Lalu lintas sangat tinggi. Kami menambah kapasitas."
    note = root.find("p", **{"class": "note"})
    assert words(note.text()) == "This statement is only available in Indonesian."
    assert "Identified, 17 Sep 2026, 13:50 WIB" in words(root.find("article").text())
    indonesian, _ = parse_page(site / "index.html")
    assert indonesian.find_all("p", **{"class": "note"}) == []  # given in Indonesian: no note


def test_index_lists_incidents_of_the_last_14_days(site: Path) -> None:
    root, _ = parse_page(site / "index.html")
    recent = words(root.find("section", **{"aria-labelledby": "recent"}).text())
    assert "Kode OTP terlambat" in recent
    assert "Selesai 14 Sep 2026, 09.55 WIB" in recent
    assert "Pemeliharaan basis data" not in recent


def test_index_says_when_it_was_generated_and_links_the_other_language(site: Path) -> None:
    root, _ = parse_page(site / "index.html")
    footer = words(root.find("footer").text())
    assert "17 Sep 2026, 14.05 WIB" in footer
    nav = root.find("nav")
    assert [(a.attrs["href"], a.attrs["lang"]) for a in nav.find_all("a")] == [
        ("en/index.html", "en")
    ]
    english, _ = parse_page(site / "en/index.html")
    assert english.find("nav").find("a").attrs["href"] == "../index.html"
    assert english.find("link", rel="stylesheet").attrs["href"] == "../style.css"


def test_incident_page_shows_the_full_timeline_newest_first(site: Path) -> None:
    root, _ = parse_page(site / "en/incidents/2.html")
    entries = [words(li.text()) for li in root.find("ol").find_all("li")]
    assert entries == [
        "✓ Resolved 14 Sep 2026, 09:55 WIB OTP is back.",
        "◕ Monitoring 14 Sep 2026, 09:25 WIB A fix is live.",
        "○ Investigating 14 Sep 2026, 09:05 WIB We are looking into it.",
    ]
    assert root.find("link", rel="stylesheet").attrs["href"] == "../../style.css"
    indonesian, _ = parse_page(site / "incidents/2.html")
    assert words(indonesian.find("h1").text()) == "Kode OTP terlambat"
    assert "Dipantau 14 Sep 2026, 09.25 WIB Perbaikan diterapkan." in words(
        indonesian.find("ol").text()
    )


# -- escaping ---------------------------------------------------------------------------------

EVIL = "<script>alert('x')</script>&\u2028"


def test_text_from_outside_is_escaped_in_html_and_json(
    store: Store,
    make_settings: MakeSettings,
    add_incident: AddIncident,
    tmp_path: Path,
    now: datetime,
) -> None:
    settings = make_settings(
        title={"id": f"Status {EVIL}", "en": f"Status {EVIL}"},
        components=[
            {
                "id": "home",
                "name": {"id": f"Beranda {EVIL}", "en": f"Home {EVIL}"},
                "description": f"Deskripsi {EVIL}",
            }
        ],
    )
    with store.tx() as tx:
        tx.set_component_status("home", "partial_outage", at=now, cause="probe")
    add_incident(
        store,
        title=(f"Judul {EVIL}", f"Title {EVIL}"),
        status="investigating",
        started_at=now,
        components={"home": "partial_outage"},
        updates=[(now, "investigating", f"Pesan {EVIL}", f"Message {EVIL}")],
    )
    site = publish_site(store, settings, now=now, out_dir=tmp_path / "site")
    for page in ("index.html", "en/index.html", "incidents/1.html", "en/incidents/1.html"):
        raw = (site / page).read_text(encoding="utf-8")
        assert "<script>alert" not in raw
        root, _ = parse_page(site / page)
        assert len(root.find_all("script")) == 1  # only the stale-data check
        assert "<script>alert('x')</script>" in root.text()
    for document in tree_files(site):
        if document.endswith(".json"):
            raw = (site / document).read_text(encoding="utf-8")
            assert "<" not in raw and ">" not in raw and "&" not in raw and "\u2028" not in raw
    summary = load(site, "api/v2/summary.json")
    assert summary["page"]["name"] == f"Status {EVIL}"
    assert summary["components"][0]["name"] == f"Beranda {EVIL}"
    assert summary["incidents"][0]["name"] == f"Judul {EVIL}"
    assert summary["incidents"][0]["incident_updates"][0]["body"] == f"Pesan {EVIL}"


# -- time --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "lang", "expected"),
    [
        ("Asia/Jakarta", "id", "17 Sep 2026, 14.05 WIB"),
        ("Asia/Jakarta", "en", "17 Sep 2026, 14:05 WIB"),
        ("Asia/Makassar", "id", "17 Sep 2026, 15.05 WITA"),
        ("Asia/Jayapura", "en", "17 Sep 2026, 16:05 WIT"),
        ("UTC", "en", "17 Sep 2026, 07:05 UTC"),
        ("Asia/Ho_Chi_Minh", "en", "17 Sep 2026, 14:05 UTC+07"),
    ],
)
def test_times_are_shown_in_the_configured_zone(
    now: datetime, zone: str, lang: str, expected: str
) -> None:
    assert format_time(now, ZoneInfo(zone), lang) == expected


@pytest.mark.parametrize(
    ("month", "indonesian", "english"),
    [(5, "Mei", "May"), (8, "Agu", "Aug"), (10, "Okt", "Oct"), (12, "Des", "Dec")],
)
def test_months_are_abbreviated_per_language(month: int, indonesian: str, english: str) -> None:
    moment = datetime(2026, month, 3, 1, 2, tzinfo=UTC)
    zone = ZoneInfo("Asia/Jakarta")
    assert format_time(moment, zone, "id") == f"3 {indonesian} 2026, 08.02 WIB"
    assert format_time(moment, zone, "en") == f"3 {english} 2026, 08:02 WIB"


def test_pages_show_times_in_the_configured_zone(
    wave_store: Store, make_settings: MakeSettings, tmp_path: Path, now: datetime
) -> None:
    settings = make_settings(timezone="Asia/Makassar")
    site = publish_site(wave_store, settings, now=now, out_dir=tmp_path / "site")
    root, _ = parse_page(site / "index.html")
    assert "17 Sep 2026, 15.05 WITA" in words(root.find("footer").text())
    assert load(site, "api/v2/status.json")["page"]["updated_at"] == "2026-09-17T15:05:00+08:00"


# -- atomic replacement ----------------------------------------------------------------------


def test_a_second_publish_replaces_the_whole_tree(
    wave_store: Store, settings: Settings, now: datetime, tmp_path: Path
) -> None:
    out = tmp_path / "site"
    publish_site(wave_store, settings, now=now, out_dir=out)
    (out / "stale.html").write_text("old", encoding="utf-8")
    later = now + timedelta(days=12)  # the OTP incident leaves the 14-day window
    publish_site(wave_store, settings, now=later, out_dir=out)
    files = tree_files(out)
    assert "stale.html" not in files
    assert "incidents/2.html" in files  # out of the 14-day list, still in the history
    assert "incidents/3.html" in files
    assert "29 Sep 2026, 14.05 WIB" in (out / "index.html").read_text(encoding="utf-8")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("exchange", [True, False])
def test_swap_directory_replaces_an_existing_tree(tmp_path: Path, exchange: bool) -> None:
    target, new = tmp_path / "site", tmp_path / "new"
    (target / "sub").mkdir(parents=True)
    (target / "sub" / "old.txt").write_text("old", encoding="utf-8")
    new.mkdir()
    (new / "index.html").write_text("new", encoding="utf-8")
    swap_directory(new, target, exchange=exchange)
    assert tree_files(target) == {"index.html"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]


def test_swap_directory_creates_a_missing_target(tmp_path: Path) -> None:
    new = tmp_path / "new"
    new.mkdir()
    (new / "index.html").write_text("new", encoding="utf-8")
    swap_directory(new, tmp_path / "site")
    assert tree_files(tmp_path / "site") == {"index.html"}
    assert not new.exists()


def test_readers_never_see_a_missing_or_partial_site(
    wave_store: Store, settings: Settings, now: datetime, tmp_path: Path
) -> None:
    out = tmp_path / "site"
    publish_site(wave_store, settings, now=now, out_dir=out)
    stop = threading.Event()
    errors: list[BaseException] = []
    counts = {"publishes": 0, "reads": 0}

    def publisher() -> None:
        try:
            minute = 0
            while not stop.is_set():
                minute += 1
                publish_site(wave_store, settings, now=now + timedelta(minutes=minute), out_dir=out)
                counts["publishes"] += 1
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=publisher)
    thread.start()
    # Read while at least three publishes swap the tree (bounded in time, not by it).
    deadline = time.monotonic() + 30.0
    try:
        while time.monotonic() < deadline and not errors:
            if counts["publishes"] >= 3 and counts["reads"] >= 3:
                break
            root, _ = parse_page(out / "index.html")
            assert root.find("html").attrs["lang"] == "id"
            assert "</html>" in (out / "en" / "index.html").read_text(encoding="utf-8")
            json.loads((out / "api" / "v2" / "summary.json").read_text(encoding="utf-8"))
            counts["reads"] += 1
    finally:
        stop.set()
        thread.join()
    assert not errors
    assert counts["publishes"] >= 2 and counts["reads"] >= 2, counts


def test_a_failed_publish_leaves_the_published_site_alone(
    wave_store: Store, settings: Settings, now: datetime, tmp_path: Path
) -> None:
    out = tmp_path / "site"
    publish_site(wave_store, settings, now=now, out_dir=out)
    before = (out / "index.html").read_bytes()
    with wave_store.engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE incident_update")
    # store.read() does not yet translate SQLAlchemy errors into StoreError as store.tx() does.
    with pytest.raises((StoreError, SQLAlchemyError)):
        publish_site(wave_store, settings, now=now + timedelta(minutes=1), out_dir=out)
    assert (out / "index.html").read_bytes() == before
    assert tree_files(out) == CONTRACT_FILES
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# -- budget and golden -------------------------------------------------------------------------


def test_index_and_css_stay_well_under_the_size_budget(site: Path) -> None:
    size = sum(len(gzip.compress((site / n).read_bytes())) for n in ("index.html", "style.css"))
    assert size < 10 * 1024


def test_the_whole_published_tree_matches_the_golden_files(site: Path) -> None:
    """Set ``PANTAU_UPDATE_GOLDEN=1`` to rewrite ``tests/publish/golden/`` from this run.

    The tree's ``.gitignore`` is checked above and not stored: it would hide the golden files.
    """
    files = sorted(tree_files(site) - {".gitignore"})
    if os.environ.get("PANTAU_UPDATE_GOLDEN") == "1":
        for stale in tree_files(GOLDEN) if GOLDEN.exists() else set():
            (GOLDEN / stale).unlink()
        for name in files:
            (GOLDEN / name).parent.mkdir(parents=True, exist_ok=True)
            (GOLDEN / name).write_bytes((site / name).read_bytes())
    assert sorted(tree_files(GOLDEN)) == files
    for name in files:
        assert (site / name).read_text(encoding="utf-8") == (GOLDEN / name).read_text(
            encoding="utf-8"
        ), name
        assert (site / name).read_bytes() == (GOLDEN / name).read_bytes(), name


def test_render_site_writes_into_a_plain_folder(
    wave_store: Store, settings: Settings, now: datetime, tmp_path: Path
) -> None:
    snapshot = load_snapshot(wave_store, settings, now=now)
    out = render_site(snapshot, settings, tmp_path / "plain")
    assert tree_files(out) == CONTRACT_FILES


def test_an_unresolved_incident_declares_its_components_status(
    store: Store, settings: Settings, now: datetime, add_incident: AddIncident, tmp_path: Path
) -> None:
    # The probes see OTP as fine, but the comms team declared a partial outage of it.
    add_incident(
        store,
        title=("OTP terlambat", "OTP delayed"),
        status="identified",
        started_at=now - timedelta(minutes=10),
        components={"otp": "partial_outage"},
        updates=[(now - timedelta(minutes=10), "identified", "SMS terlambat.", "SMS delayed.")],
    )
    site = publish_site(store, settings, now=now, out_dir=tmp_path / "declared")
    statuses = {c["id"]: c["status"] for c in load(site, "api/v2/components.json")["components"]}
    assert statuses["otp"] == "partial_outage"
    assert statuses["home"] == "operational"


# -- planned events ---------------------------------------------------------------------------


def test_planned_events_show_on_the_page_and_maintenance_in_the_api(
    store: Store, tmp_path: Path, now: datetime
) -> None:
    from monitor.config import parse_settings
    from monitor.publish import publish_site

    events = [
        {
            "id": "db-upgrade",
            "kind": "maintenance",
            "name": {"id": "Peningkatan basis data", "en": "Database upgrade"},
            "message": {"id": "Masuk tidak tersedia <sebentar>.", "en": "Login briefly off."},
            "start": (now - timedelta(minutes=10)).isoformat(),
            "end": (now + timedelta(minutes=50)).isoformat(),
            "components": ["login"],
        },
        {
            "id": "wave-10",
            "kind": "surge",
            "name": {"id": "Pembukaan gelombang 10", "en": "Wave 10 opens"},
            "message": {"id": "Harap bersabar jika ada antrean.", "en": "Expect queues."},
            "start": (now + timedelta(days=3)).isoformat(),
            "end": (now + timedelta(days=3, hours=6)).isoformat(),
        },
        {
            "id": "long-ago",
            "kind": "maintenance",
            "name": "Sudah lewat",
            "start": (now - timedelta(days=3)).isoformat(),
            "end": (now - timedelta(days=2)).isoformat(),
        },
    ]
    site = {
        "site": {"title": "Status Kartu Prakerja", "base_url": "https://status.prakerja.example/"},
        "components": [
            {"id": "home", "name": {"id": "Beranda", "en": "Home"}},
            {"id": "login", "name": {"id": "Masuk", "en": "Login"}},
        ],
    }
    settings = parse_settings({**site, "events": events}, base_dir=tmp_path)
    out = publish_site(store, settings, now=now, out_dir=tmp_path / "site")
    index = (out / "index.html").read_text()
    english = (out / "en/index.html").read_text()
    assert "Agenda terjadwal" in index and "Planned events" in english
    assert "Peningkatan basis data" in index and "sedang berlangsung" in index
    assert "Masuk tidak tersedia &lt;sebentar&gt;." in index
    assert "Pembukaan gelombang 10" in index and "Expect queues." in english
    assert "Sudah lewat" not in index
    summary = json.loads((out / "api/v2/summary.json").read_text())
    statuses = {c["id"]: c["status"] for c in summary["components"]}
    assert statuses["login"] == "under_maintenance"
    assert statuses["home"] == "operational"
    (maintenance,) = summary["scheduled_maintenances"]
    assert maintenance["id"] == "db-upgrade" and maintenance["status"] == "in_progress"
    assert maintenance["impact"] == "maintenance"
    assert [c["id"] for c in maintenance["components"]] == ["login"]
    listed = json.loads((out / "api/v2/scheduled-maintenances.json").read_text())
    assert listed["scheduled_maintenances"] == summary["scheduled_maintenances"]
    assert summary["status"]["indicator"] == "none"
