"""Silences: an engineer holds back the alerts of a component for a while.

A silence never hides anything from the public page or the incident timeline; it only
keeps alert messages from being sent (``monitor.alerts.suppressions``). Removing one
ends it early and keeps the row, so ``pantau silence list --all`` shows what was silenced.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from monitor.config import Settings
from monitor.store import SilenceRow, StoreTx

#: The longest silence: a forgotten one must not hide alerts for weeks.
MAX_SILENCE = timedelta(days=7)


class SilenceError(Exception):
    """A silence was refused (unknown component or silence, a bad duration, no reason)."""


def add_silence(
    tx: StoreTx,
    settings: Settings,
    *,
    component_id: str,
    duration: timedelta,
    reason: str,
    author: str,
    now: datetime,
) -> SilenceRow:
    """Silence ``component_id`` from ``now`` for ``duration``. Raises SilenceError."""
    known = [c.id for c in settings.components]
    if component_id not in known:
        raise SilenceError(f"unknown component {component_id!r}; known: {', '.join(known)}")
    if duration <= timedelta(0) or duration > MAX_SILENCE:
        raise SilenceError("a silence lasts more than zero and at most 7 days")
    if not reason.strip():
        raise SilenceError("give a --reason: the next engineer needs to know why")
    return tx.add_silence(
        SilenceRow(
            component_id=component_id,
            starts_at=now,
            ends_at=now + duration,
            reason=reason.strip()[:500],
            author=author[:128],
            created_at=now,
        )
    )


def remove_silence(tx: StoreTx, silence_id: int, *, now: datetime) -> SilenceRow:
    """End a silence now. Raises SilenceError when it does not exist or is already over."""
    silence = tx.silence(silence_id)
    if silence is None:
        raise SilenceError(f"no silence {silence_id}")
    if silence.removed_at is not None or silence.ends_at <= now:
        raise SilenceError(f"silence {silence_id} is already over")
    silence.removed_at = now
    return silence
