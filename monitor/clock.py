"""The one clock of Pantau.

Every stage reads time from an injected :class:`Clock`, once per evaluation, so
tests can step it to exact threshold instants instead of sleeping.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """A source of wall-clock and monotonic time."""

    def now(self) -> datetime:
        """Return the current time as an aware UTC datetime."""
        ...

    def monotonic(self) -> float:
        """Return seconds from an arbitrary origin that never goes backwards."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock that moves only when told to; for tests and replays."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = (start or datetime(2026, 9, 17, 7, 0, tzinfo=UTC)).astimezone(UTC)
        self._mono = 1000.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float | timedelta) -> datetime:
        """Step the clock forward and return the new time."""
        step = seconds.total_seconds() if isinstance(seconds, timedelta) else float(seconds)
        self._now += timedelta(seconds=step)
        self._mono += step
        return self._now

    def set(self, when: datetime) -> None:
        """Jump wall-clock time (monotonic time follows forward jumps only)."""
        delta = (when - self._now).total_seconds()
        self._now = when.astimezone(UTC)
        self._mono += max(delta, 0.0)


def utc(value: datetime) -> datetime:
    """Return ``value`` as an aware UTC datetime (naive values are taken as UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def floor_time(moment: datetime, step: timedelta) -> datetime:
    """The start of the ``step``-long slot holding ``moment``, on a grid from the Unix
    epoch (so slots of complaint counts and spike buckets line up everywhere)."""
    return _EPOCH + ((utc(moment) - _EPOCH) // step) * step
