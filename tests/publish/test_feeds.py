"""The incident history: history.html by month, history.atom and history.rss."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.etree import ElementTree as ET
from zoneinfo import ZoneInfo

import feedparser
import pytest
from test_publish import parse_page, tree_files, words

from monitor.config import Settings
from monitor.feeds import FEED_LIMIT, history_months, month_name
from monitor.publish import IncidentView, Words, load_snapshot, publish_site, render_site
from monitor.store import Store

MakeSettings = Callable[..., Settings]
AddIncident = Callable[..., int]

ATOM = "{http://www.w3.org/2005/Atom}"
EVIL = "<script>alert(1)</script> & \"quotes\" 'too'"


@pytest.fixture
def site(wave_store: Store, settings: Settings, now: datetime, tmp_path: Path) -> Path:
    return publish_site(wave_store, settings, now=now, out_dir=tmp_path / "site")


def month_sections(page: Path) -> list[tuple[str, list[str]]]:
    """The history's months: each heading with the words of its entries (or its note)."""
    root, _ = parse_page(page)
    sections = []
    for section in root.find("main").find_all("section"):
        items = [words(li.text()) for li in section.find_all("li")]
        if not items:
            items = [words(p.text()) for p in section.find_all("p")]
        sections.append((words(section.find("h2").text()), items))
    return sections


def parse_feed(path: Path) -> feedparser.FeedParserDict:
    parsed = feedparser.parse(path.read_bytes())
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    return parsed


# -- history.html -------------------------------------------------------------------------------


def test_history_and_feeds_are_in_the_published_tree(site: Path) -> None:
    files = tree_files(site)
    assert {"history.html", "en/history.html", "history.atom", "history.rss"} <= files
    assert "en/history.atom" not in files  # the feeds speak the first language only


def test_render_site_writes_the_history_into_a_plain_folder(
    wave_store: Store, settings: Settings, now: datetime, tmp_path: Path
) -> None:
    out = render_site(load_snapshot(wave_store, settings, now=now), settings, tmp_path / "plain")
    assert {"history.html", "en/history.html", "history.atom", "history.rss"} <= tree_files(out)


def test_history_groups_incidents_by_month_in_indonesian(site: Path) -> None:
    assert month_sections(site / "history.html") == [
        (
            "September 2026",
            [
                "Gagal masuk saat gelombang 9 dibuka ◐ Penyebab ditemukan "
                "Mulai 17 Sep 2026, 13.25 WIB · masih berlangsung "
                "Komponen terdampak: Masuk, Pendaftaran",
                "Kode OTP terlambat ✓ Selesai Mulai 14 Sep 2026, 09.05 WIB · "
                "Selesai 14 Sep 2026, 09.55 WIB · Durasi 50 menit Komponen terdampak: OTP",
            ],
        ),
        (
            "Agustus 2026",
            [
                "Pemeliharaan basis data ✓ Selesai Mulai 28 Agu 2026, 14.05 WIB · "
                "Selesai 28 Agu 2026, 14.05 WIB · Durasi 0 detik Komponen terdampak: Beranda"
            ],
        ),
    ]


def test_history_groups_incidents_by_month_in_english(site: Path) -> None:
    sections = month_sections(site / "en/history.html")
    assert [heading for heading, _ in sections] == ["September 2026", "August 2026"]
    september = sections[0][1]
    assert september[0].startswith("Login failing as wave 9 opens ◐ Identified Started 17 Sep")
    assert "still ongoing Affected components: Login, Signup" in september[0]
    assert "Resolved 14 Sep 2026, 09:55 WIB · Duration 50 min" in september[1]


@pytest.mark.parametrize(
    ("page", "lang", "other", "incident_link"),
    [
        ("history.html", "id", "en/history.html", "incidents/3.html"),
        ("en/history.html", "en", "../history.html", "incidents/3.html"),
    ],
)
def test_history_page_has_the_base_layout(
    site: Path, page: str, lang: str, other: str, incident_link: str
) -> None:
    root, doctype = parse_page(site / page)
    assert doctype is not None and doctype.lower() == "doctype html"
    assert root.find("html").attrs["lang"] == lang
    assert len(root.find_all("h1")) == 1
    assert root.find("nav").find("a").attrs["href"] == other
    links = [a.attrs["href"] for a in root.find("main").find_all("a")]
    assert incident_link in links
    feeds = {a.attrs.get("type"): a.attrs["href"] for a in root.find("main").find_all("a")}
    prefix = "../" if lang == "en" else ""
    assert feeds["application/atom+xml"] == f"{prefix}history.atom"
    assert feeds["application/rss+xml"] == f"{prefix}history.rss"


def test_history_says_so_for_a_month_without_incidents(
    wave_store: Store, settings: Settings, now: datetime, add_incident: AddIncident, tmp_path: Path
) -> None:
    june = datetime(2026, 6, 10, 3, 0, tzinfo=UTC)
    add_incident(
        wave_store,
        title=("Lambat di bulan Juni", "Slow in June"),
        status="resolved",
        started_at=june,
        components={"home": "degraded_performance"},
        updates=[(june + timedelta(hours=1, minutes=5), "resolved", "Pulih.", "Recovered.")],
    )
    site = publish_site(wave_store, settings, now=now, out_dir=tmp_path / "site")
    sections = month_sections(site / "history.html")
    assert [heading for heading, _ in sections] == [
        "September 2026",
        "Agustus 2026",
        "Juli 2026",
        "Juni 2026",
    ]
    assert sections[2][1] == ["Tidak ada insiden yang dilaporkan pada bulan ini."]
    assert "Durasi 1 jam 5 menit" in sections[3][1][0]
    english = month_sections(site / "en/history.html")
    assert english[2] == ("July 2026", ["No incidents reported this month."])


def test_history_without_incidents_shows_the_current_month(
    store: Store, settings: Settings, now: datetime, tmp_path: Path
) -> None:
    site = publish_site(store, settings, now=now, out_dir=tmp_path / "site")
    assert month_sections(site / "history.html") == [
        ("September 2026", ["Tidak ada insiden yang dilaporkan pada bulan ini."])
    ]


def test_index_links_to_the_history_after_the_recent_incidents(site: Path) -> None:
    for page in ("index.html", "en/index.html"):
        root, _ = parse_page(site / page)
        recent = root.find("section", **{"aria-labelledby": "recent"})
        assert recent.find_all("a")[-1].attrs["href"] == "history.html"


@pytest.mark.parametrize(
    ("zone", "month"),
    [("Asia/Jakarta", 9), ("UTC", 8)],  # 31 Aug, 17.30 UTC is already 1 September in Jakarta
)
def test_an_incident_belongs_to_the_month_it_started_in_the_site_zone(
    zone: str, month: int
) -> None:
    incident = IncidentView(
        id=7,
        title=Words(id="t", en="t"),
        status="resolved",
        impact="minor",
        started_at=datetime(2026, 8, 31, 17, 30, tzinfo=UTC),
        updated_at=datetime(2026, 8, 31, 18, 0, tzinfo=UTC),
        resolved_at=datetime(2026, 8, 31, 18, 0, tzinfo=UTC),
        components=(),
        updates=(),
    )
    until = datetime(2026, 9, 2, tzinfo=UTC)
    months = history_months([incident], ZoneInfo(zone), until=until)
    assert [(m.month, len(m.incidents)) for m in months if m.incidents] == [(month, 1)]
    assert months[0].anchor == "2026-09"


@pytest.mark.parametrize(
    ("month", "indonesian", "english"),
    [(1, "Januari", "January"), (8, "Agustus", "August"), (12, "Desember", "December")],
)
def test_month_names_follow_the_page_language(month: int, indonesian: str, english: str) -> None:
    assert month_name(2026, month, "id") == f"{indonesian} 2026"
    assert month_name(2026, month, "en") == f"{english} 2026"


# -- history.atom and history.rss -------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "version"), [("history.atom", "atom10"), ("history.rss", "rss20")]
)
def test_feeds_parse_cleanly_with_one_entry_per_incident(
    site: Path, name: str, version: str
) -> None:
    feed = parse_feed(site / name)
    assert feed.version == version
    assert feed.feed.language == "id"
    assert feed.feed.title == "Status Kartu Prakerja – Riwayat insiden"
    assert feed.feed.link == "https://status.prakerja.example/history.html"
    assert [e.title for e in feed.entries] == [
        "Gagal masuk saat gelombang 9 dibuka",
        "Kode OTP terlambat",
        "Pemeliharaan basis data",
    ]
    assert [e.link for e in feed.entries] == [
        f"https://status.prakerja.example/incidents/{n}.html" for n in (3, 2, 1)
    ]
    assert [e.id for e in feed.entries] == [
        "tag:status.prakerja.example,2026-09-17:incident/3",
        "tag:status.prakerja.example,2026-09-14:incident/2",
        "tag:status.prakerja.example,2026-08-28:incident/1",
    ]
    # Started 13.25 WIB on the wave's day.
    assert tuple(feed.entries[0].published_parsed)[:5] == (2026, 9, 17, 6, 25)


def test_atom_entries_are_dated_by_their_incident_in_rfc_3339(site: Path) -> None:
    raw = (site / "history.atom").read_text(encoding="utf-8")
    assert "<updated>2026-09-17T13:50:00+07:00</updated>" in raw
    feed = parse_feed(site / "history.atom")
    assert tuple(feed.feed.updated_parsed)[:5] == (2026, 9, 17, 6, 50)  # the last statement
    assert tuple(feed.entries[1].updated_parsed)[:5] == (2026, 9, 14, 2, 55)  # its resolution
    assert raw.startswith('<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns=')
    assert 'xml:lang="id"' in raw
    assert (
        'rel="self" type="application/atom+xml" href="https://status.prakerja.example/history.atom"'
        in raw
    )


def test_rss_dates_are_rfc_822(site: Path) -> None:
    raw = (site / "history.rss").read_text(encoding="utf-8")
    assert "<pubDate>Thu, 17 Sep 2026 13:25:00 +0700</pubDate>" in raw
    assert "<lastBuildDate>Thu, 17 Sep 2026 13:50:00 +0700</lastBuildDate>" in raw
    assert "<language>id</language>" in raw


def test_entries_carry_every_statement_newest_first(site: Path) -> None:
    entry = parse_feed(site / "history.atom").entries[1]
    content = entry.content[0]
    assert content.type == "text/html"
    texts = [
        "14 Sep 2026, 09.55 WIB",
        "Selesai</strong> - OTP kembali normal.",
        "Dipantau</strong> - Perbaikan diterapkan.",
        "Sedang diselidiki</strong> - Kami menyelidiki keterlambatan OTP.",
        "Komponen terdampak: OTP",
    ]
    positions = [content.value.index(text) for text in texts]
    assert positions == sorted(positions)
    rss = parse_feed(site / "history.rss").entries[0]
    assert "Lalu lintas sangat tinggi.<br />Kami menambah kapasitas." in rss.summary


def test_entry_ids_stay_the_same_across_publishes(
    wave_store: Store, settings: Settings, now: datetime, tmp_path: Path
) -> None:
    first = publish_site(wave_store, settings, now=now, out_dir=tmp_path / "a")
    later = publish_site(wave_store, settings, now=now + timedelta(days=2), out_dir=tmp_path / "b")
    for name in ("history.atom", "history.rss"):
        ids = [[e.id for e in parse_feed(site / name).entries] for site in (first, later)]
        assert ids[0] == ids[1]


def test_feeds_without_a_base_url_link_relatively_and_still_parse(
    wave_store: Store, make_settings: MakeSettings, now: datetime, tmp_path: Path
) -> None:
    settings = make_settings(base_url="")
    site = publish_site(wave_store, settings, now=now, out_dir=tmp_path / "site")
    for name in ("history.atom", "history.rss"):
        raw = (site / name).read_text(encoding="utf-8")
        assert "https://" not in raw and 'rel="self"' not in raw
        feed = parse_feed(site / name)
        assert [e.link for e in feed.entries] == [f"incidents/{n}.html" for n in (3, 2, 1)]
        assert all(e.id.startswith("urn:uuid:") for e in feed.entries)
        assert len({e.id for e in feed.entries}) == 3
    atom = ET.parse(site / "history.atom").getroot()
    assert atom.findtext(f"{ATOM}id", "").startswith("urn:uuid:")


def test_feeds_list_the_incidents_updated_last_up_to_the_limit(
    store: Store, settings: Settings, now: datetime, add_incident: AddIncident, tmp_path: Path
) -> None:
    for n in range(FEED_LIMIT + 1):
        start = now - timedelta(days=n + 1)
        add_incident(
            store,
            title=(f"Insiden {n}", f"Incident {n}"),
            status="resolved",
            started_at=start,
            components={},
            updates=[(start + timedelta(minutes=10), "resolved", "Pulih.", "Recovered.")],
        )
    oldest = now - timedelta(days=FEED_LIMIT + 30)
    add_incident(  # started long ago, updated a moment ago
        store,
        title=("Lama tapi baru diperbarui", "Old but just updated"),
        status="monitoring",
        started_at=oldest,
        components={},
        updates=[(now - timedelta(minutes=1), "monitoring", "Dipantau.", "Watching.")],
    )
    site = publish_site(store, settings, now=now, out_dir=tmp_path / "site")
    for name in ("history.atom", "history.rss"):
        titles = [e.title for e in parse_feed(site / name).entries]
        assert len(titles) == FEED_LIMIT
        assert titles[:2] == ["Lama tapi baru diperbarui", "Insiden 0"]
        assert f"Insiden {FEED_LIMIT - 1}" not in titles


def test_hostile_text_is_escaped_in_the_history_and_feeds(
    store: Store,
    make_settings: MakeSettings,
    add_incident: AddIncident,
    now: datetime,
    tmp_path: Path,
) -> None:
    settings = make_settings(
        title={"id": f"Status {EVIL}", "en": f"Status {EVIL}"},
        components=[{"id": "home", "name": {"id": f"Beranda {EVIL}", "en": f"Home {EVIL}"}}],
    )
    add_incident(
        store,
        title=(f"Judul {EVIL}", f"Title {EVIL}"),
        status="investigating",
        started_at=now,
        components={"home": "partial_outage"},
        # A vertical tab cannot be written in XML at all: it is dropped, the rest kept.
        updates=[(now, "investigating", f"Pesan {EVIL}\x0b\u2028", f"Message {EVIL}")],
    )
    site = publish_site(store, settings, now=now, out_dir=tmp_path / "site")
    for name in ("history.html", "en/history.html", "history.atom", "history.rss"):
        raw = (site / name).read_text(encoding="utf-8")
        assert "<script>alert" not in raw, name
        if not name.endswith(".html"):
            assert "<script" not in raw and "\x0b" not in raw, name
    root, _ = parse_page(site / "history.html")
    assert f"Judul {EVIL}" in root.find("main").text()
    assert f"Beranda {EVIL}" in root.find("main").text()
    atom = ET.parse(site / "history.atom").getroot()
    entry = atom.find(f"{ATOM}entry")
    assert entry is not None
    assert entry.findtext(f"{ATOM}title") == f"Judul {EVIL}"
    content = entry.findtext(f"{ATOM}content") or ""
    assert "<script>" not in content  # escaped once more as HTML inside the XML
    assert "Pesan &lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;" in content
    rss = ET.parse(site / "history.rss").getroot()
    assert rss.findtext("channel/item/title") == f"Judul {EVIL}"
    assert rss.findtext("channel/title") == f"Status {EVIL} – Riwayat insiden"
    for name in ("history.atom", "history.rss"):
        feed = parse_feed(site / name)
        assert "<script" not in feed.entries[0].summary
