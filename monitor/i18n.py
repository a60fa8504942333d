"""Showing words, times, durations and numbers to people, in Indonesian or English.

One place for formatting so that pages, statements and alerts agree. The interface
words come from the gettext catalogs under ``templates/locale`` (msgid = the English
text); dates and numbers are formatted by Babel with the page's locale.
"""

from __future__ import annotations

import functools
import io
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import Translations

from monitor.resources import templates_dir

#: The gettext domain: ``templates/locale/<lang>/LC_MESSAGES/pantau.po``.
DOMAIN = "pantau"
#: The languages Babel formats for; any other falls back to the first English one.
_LOCALES = ("id", "en")


@functools.cache
def translations(lang: str) -> Translations:
    """The catalog of ``lang``, compiled in memory from its ``.po`` (no build step).

    A language without a catalog gets empty translations, which answer every msgid with
    itself (English). Raises OSError when a catalog exists but cannot be read.
    """
    path = templates_dir() / "locale" / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not path.is_file():
        return Translations(domain=DOMAIN)
    with path.open("rb") as source:
        catalog = read_po(source, locale=lang, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


def gettext(lang: str, message: str) -> str:
    """``message`` (an English msgid) in ``lang``; the msgid itself when untranslated."""
    return str(translations(lang).gettext(message))


def _locale(lang: str) -> str:
    return lang if lang in _LOCALES else "en"


def format_time(moment: datetime, zone: ZoneInfo, lang: str) -> str:
    """``17 Sep 2026, 14.05 WIB`` (Indonesian) or ``17 Sep 2026, 14:05 WIB`` (English)."""
    local = moment.astimezone(zone)
    pattern = "d MMM y, HH.mm" if lang == "id" else "d MMM y, HH:mm"
    abbreviation = local.strftime("%Z")
    if abbreviation.startswith(("+", "-")):  # zones without a letter abbreviation give "+07"
        abbreviation = f"UTC{abbreviation}"
    text = format_datetime(local, pattern, tzinfo=zone, locale=_locale(lang))
    return f"{text} {abbreviation}"


def format_day(day: date, lang: str) -> str:
    """``17 Agu 2026`` / ``17 Aug 2026``."""
    return format_date(day, "d MMM y", locale=_locale(lang))


def format_month(year: int, month: int, lang: str) -> str:
    """``Agustus 2026`` / ``August 2026`` (the stand-alone month name)."""
    return format_date(date(year, month, 1), "LLLL y", locale=_locale(lang))


def format_duration(span: timedelta, lang: str) -> str:
    """``1 jam 5 menit`` / ``1 h 5 min``; under a minute in seconds.

    Made by hand: Babel's ``format_timedelta`` rounds to one unit (``1 jam``) and has no
    compound form such as ``1 jam 5 menit``.
    """
    seconds = max(int(span.total_seconds()), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    units = ("jam", "menit", "detik") if lang == "id" else ("h", "min", "s")
    parts = [f"{hours} {units[0]}"] if hours else []
    if minutes:
        parts.append(f"{minutes} {units[1]}")
    if not hours and not minutes:
        parts.append(f"{secs} {units[2]}")
    return " ".join(parts)


def join_names(names: list[str], lang: str) -> str:
    """``Masuk, Pendaftaran dan OTP`` / ``Login, Signup and OTP``.

    Made by hand: Babel's ``format_list`` puts a serial comma in English (``A, B, and C``).
    """
    if len(names) <= 1:
        return "".join(names)
    word = "dan" if lang == "id" else "and"
    return f"{', '.join(names[:-1])} {word} {names[-1]}"


def format_number(value: float | Decimal, pattern: str, lang: str) -> str:
    """``value`` by a CLDR number ``pattern`` (``#,##0``, ``0.00``) in the locale of ``lang``.

    A float is formatted from its exact binary value, so it rounds as Python's own
    ``format`` does (half to even).
    """
    exact = value if isinstance(value, Decimal) else Decimal(value)
    return format_decimal(exact, pattern, locale=_locale(lang))


def format_percent(ratio: float | None, lang: str) -> str:
    """``45%`` (both languages; ``4,5%`` / ``4.5%`` under 10%); empty when unknown."""
    if ratio is None:
        return ""
    percent = ratio * 100
    pattern = "0.0" if 0 < percent < 10 and percent != int(percent) else "0"
    return format_number(percent, pattern, lang) + "%"
