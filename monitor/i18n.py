"""Showing times, durations and numbers to people, in Indonesian or English.

One place for formatting so that pages, statements and alerts agree.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

_MONTHS = {
    "id": ("Jan", "Feb", "Mar", "Apr", "Mei", "Jun", "Jul", "Agu", "Sep", "Okt", "Nov", "Des"),
    "en": ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
}


def format_time(moment: datetime, zone: ZoneInfo, lang: str) -> str:
    """``17 Sep 2026, 14.05 WIB`` (Indonesian) or ``17 Sep 2026, 14:05 WIB`` (English)."""
    local = moment.astimezone(zone)
    months = _MONTHS.get(lang, _MONTHS["en"])
    sep = "." if lang == "id" else ":"
    abbreviation = local.strftime("%Z")
    if abbreviation.startswith(("+", "-")):  # zones without a letter abbreviation give "+07"
        abbreviation = f"UTC{abbreviation}"
    return (
        f"{local.day} {months[local.month - 1]} {local.year}, "
        f"{local.hour:02d}{sep}{local.minute:02d} {abbreviation}"
    )


def format_duration(span: timedelta, lang: str) -> str:
    """``1 jam 5 menit`` / ``1 h 5 min``; under a minute in seconds."""
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
    """``Masuk, Pendaftaran dan OTP`` / ``Login, Signup and OTP``."""
    if len(names) <= 1:
        return "".join(names)
    word = "dan" if lang == "id" else "and"
    return f"{', '.join(names[:-1])} {word} {names[-1]}"


def format_percent(ratio: float | None, lang: str) -> str:
    """``45%`` (both languages; ``4,5%`` / ``4.5%`` under 10%); empty when unknown."""
    if ratio is None:
        return ""
    percent = ratio * 100
    text = f"{percent:.1f}" if 0 < percent < 10 and percent != int(percent) else f"{percent:.0f}"
    return (text.replace(".", ",") if lang == "id" else text) + "%"
