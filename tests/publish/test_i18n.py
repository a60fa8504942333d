"""The page's words come from the gettext catalogs; dates and numbers from Babel."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from monitor.config import Settings
from monitor.feeds import month_name
from monitor.i18n import (
    format_day,
    format_duration,
    format_percent,
    format_time,
    gettext,
    translations,
)
from monitor.publish import (
    _OVERALL_MESSAGES,
    _STATUS_MESSAGES,
    _UI_MESSAGES,
    InterfaceText,
    publish_site,
    status_word,
    uptime_text,
)
from monitor.resources import templates_dir
from monitor.store import Store

LOCALE = templates_dir() / "locale"
LANGS = ("id", "en")
#: ``t.<name>`` in a template, but not ``incident.t.<name>`` or ``chart.<name>``.
TEMPLATE_KEY = re.compile(r"(?<![\w.])t\.(\w+)")


def _catalog(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as source:
        return read_po(source, locale=locale)


def _po(lang: str) -> Catalog:
    return _catalog(LOCALE / lang / "LC_MESSAGES" / "pantau.po", lang)


def _msgids(catalog: Catalog) -> set[str]:
    return {str(message.id) for message in catalog if message.id}


def _code_msgids() -> set[str]:
    return {*_UI_MESSAGES.values(), *_STATUS_MESSAGES.values(), *_OVERALL_MESSAGES.values()}


def _template_keys() -> set[str]:
    texts = (path.read_text(encoding="utf-8") for path in (templates_dir() / "site").glob("*.j2"))
    return {key for text in texts for key in TEMPLATE_KEY.findall(text)}


# -- the catalogs ---------------------------------------------------------------------------


def test_every_word_a_template_uses_has_a_message() -> None:
    keys = _template_keys()
    assert keys, "no t.<name> found: has the template syntax changed?"
    assert keys - _UI_MESSAGES.keys() == set()


@pytest.mark.parametrize("lang", LANGS)
def test_every_message_is_in_the_catalog(lang: str) -> None:
    assert _code_msgids() - _msgids(_po(lang)) == set()


def test_the_indonesian_catalog_translates_every_message() -> None:
    untranslated = [message.id for message in _po("id") if message.id and not message.string]
    assert untranslated == []


def test_the_template_catalog_is_in_sync_with_the_code() -> None:
    template = _catalog(LOCALE / "pantau.pot")
    assert _msgids(template) == _code_msgids()
    assert all(not message.string for message in template if message.id)
    for lang in LANGS:
        assert _msgids(_po(lang)) == _msgids(template), lang


@pytest.mark.parametrize("lang", LANGS)
def test_placeholders_survive_translation(lang: str) -> None:
    fields = re.compile(r"\{(\w+)\}")
    for message in _po(lang):
        if message.id and message.string:
            assert sorted(fields.findall(message.string)) == sorted(fields.findall(message.id))
            assert ("python-brace-format" in message.flags) == bool(fields.search(message.id))


def test_translations_are_compiled_once_per_language() -> None:
    assert translations("id") is translations("id")
    assert translations("id") is not translations("en")


def test_a_language_without_a_catalog_answers_in_english() -> None:
    assert gettext("xx", "Components") == "Components"


@pytest.mark.parametrize(
    ("name", "indonesian", "english"),
    [
        ("components", "Komponen", "Components"),
        ("language_name", "Bahasa Indonesia", "English"),
        ("resolved_at", "Selesai", "Resolved"),
    ],
)
def test_interface_text_reads_the_catalog(name: str, indonesian: str, english: str) -> None:
    assert getattr(InterfaceText("id"), name) == indonesian
    assert getattr(InterfaceText("en"), name) == english


def test_an_unknown_interface_word_is_an_error() -> None:
    with pytest.raises(AttributeError):
        _ = InterfaceText("id").no_such_word


@pytest.mark.parametrize(
    ("status", "indonesian", "english"),
    [
        ("major_outage", "Gangguan besar", "Major outage"),
        ("monitoring", "Dipantau", "Monitoring"),
        ("somewhere_else", "somewhere_else", "somewhere_else"),
    ],
)
def test_status_words_follow_the_language(status: str, indonesian: str, english: str) -> None:
    assert status_word(status, "id") == indonesian
    assert status_word(status, "en") == english


# -- the rendered page ----------------------------------------------------------------------

#: Words shown on every index page, by interface name.
SAMPLE = ("components", "active_incidents", "latest_update", "uptime_heading", "history_link")


def test_each_page_speaks_only_its_own_language(
    wave_store: Store, settings: Settings, now: datetime, tmp_path: Path
) -> None:
    site = publish_site(wave_store, settings, now=now, out_dir=tmp_path / "site")
    pages = {
        "id": (site / "index.html").read_text(encoding="utf-8"),
        "en": (site / "en" / "index.html").read_text(encoding="utf-8"),
    }
    for lang, other in (("id", "en"), ("en", "id")):
        for name in SAMPLE:
            assert getattr(InterfaceText(lang), name) in pages[lang], (lang, name)
            assert getattr(InterfaceText(other), name) not in pages[lang], (lang, name)


# -- dates and numbers ----------------------------------------------------------------------

JAKARTA = ZoneInfo("Asia/Jakarta")


@pytest.mark.parametrize(
    ("moment", "zone", "indonesian", "english"),
    [
        (
            datetime(2026, 9, 17, 7, 5, tzinfo=UTC),
            JAKARTA,
            "17 Sep 2026, 14.05 WIB",
            "17 Sep 2026, 14:05 WIB",
        ),
        (
            datetime(2026, 8, 1, 23, 59, tzinfo=UTC),
            JAKARTA,
            "2 Agu 2026, 06.59 WIB",
            "2 Aug 2026, 06:59 WIB",
        ),
        (
            datetime(2026, 5, 4, 1, 0, tzinfo=UTC),
            ZoneInfo("Asia/Makassar"),
            "4 Mei 2026, 09.00 WITA",
            "4 May 2026, 09:00 WITA",
        ),
        (
            datetime(2026, 12, 31, 16, 0, tzinfo=UTC),
            ZoneInfo("Asia/Jayapura"),
            "1 Jan 2027, 01.00 WIT",
            "1 Jan 2027, 01:00 WIT",
        ),
        (
            datetime(2026, 10, 3, 0, 30, tzinfo=UTC),
            ZoneInfo("Asia/Ho_Chi_Minh"),
            "3 Okt 2026, 07.30 UTC+07",
            "3 Oct 2026, 07:30 UTC+07",
        ),
    ],
)
def test_times_are_shown_in_the_zone_and_language(
    moment: datetime, zone: ZoneInfo, indonesian: str, english: str
) -> None:
    assert format_time(moment, zone, "id") == indonesian
    assert format_time(moment, zone, "en") == english


@pytest.mark.parametrize(
    ("day", "indonesian", "english"),
    [
        (date(2026, 8, 17), "17 Agu 2026", "17 Aug 2026"),
        (date(2026, 12, 1), "1 Des 2026", "1 Dec 2026"),
    ],
)
def test_days_use_the_abbreviated_month(day: date, indonesian: str, english: str) -> None:
    assert format_day(day, "id") == indonesian
    assert format_day(day, "en") == english


def test_month_names_are_the_stand_alone_form() -> None:
    assert month_name(2026, 5, "id") == "Mei 2026"
    assert month_name(2026, 5, "en") == "May 2026"


@pytest.mark.parametrize(
    ("ratio", "indonesian", "english"),
    [
        (None, "", ""),
        (0.0, "0%", "0%"),
        (0.45, "45%", "45%"),
        (0.045, "4,5%", "4.5%"),
        (0.04, "4%", "4%"),
        (0.0999, "10,0%", "10.0%"),
        (1.0, "100%", "100%"),
    ],
)
def test_percents_use_the_decimal_mark_of_the_language(
    ratio: float | None, indonesian: str, english: str
) -> None:
    assert format_percent(ratio, "id") == indonesian
    assert format_percent(ratio, "en") == english


@pytest.mark.parametrize(
    ("ratio", "indonesian", "english"),
    [(1.0, "100%", "100%"), (0.99999, "99,99%", "99.99%"), (0.9791, "97,91%", "97.91%")],
)
def test_uptime_is_rounded_down_in_the_language(
    ratio: float, indonesian: str, english: str
) -> None:
    assert uptime_text(ratio, "id") == indonesian
    assert uptime_text(ratio, "en") == english


@pytest.mark.parametrize(
    ("span", "indonesian", "english"),
    [
        (timedelta(hours=1, minutes=5), "1 jam 5 menit", "1 h 5 min"),
        (timedelta(minutes=3), "3 menit", "3 min"),
        (timedelta(seconds=42), "42 detik", "42 s"),
    ],
)
def test_durations_are_compound(span: timedelta, indonesian: str, english: str) -> None:
    assert format_duration(span, "id") == indonesian
    assert format_duration(span, "en") == english
