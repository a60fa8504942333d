"""The social-source seam: posts and volume from the public, stored the same way.

A :class:`Source` is polled with the time and its cursor and returns a
:class:`PollResult` with the new cursor; it never raises for a failure of its own
(a refusal, a rate limit, a missing file), it reports it in the result. The kinds
are :mod:`monitor.social.x` and :mod:`monitor.social.file`; :func:`source_kinds`
maps the config's ``[social] sources`` names to them.

:func:`ingest` classifies and stores posts, deduplicated by :meth:`PostIn.dedupe_key`,
and keeps the per-minute complaint counts; :func:`record_poll` does that for one poll
and updates the source's health row, in the caller's transaction.

Polling talks to the world, so the runtime polls outside any transaction::

    with store.tx() as tx:
        row = tx.social_source(source.name)
        due = row.retry_after is None or row.retry_after <= now
        cursor = row.cursor
    if due:
        result, cursor = source.poll(now=now, cursor=cursor)
        with store.tx() as tx:
            record_poll(tx, result, cursor, now=now)
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal, Protocol

from monitor.clock import floor_time
from monitor.social.classify import classify
from monitor.store import ComplaintPostRow, StoreTx

if TYPE_CHECKING:
    from monitor.config import Settings

log = logging.getLogger(__name__)

SourceStatus = Literal["ok", "unavailable", "rate_limited"]

# Column widths of ComplaintPostRow (PostgreSQL enforces them).
_ID_CHARS, _URL_CHARS, _AUTHOR_CHARS, _LANG_CHARS, _KEY_CHARS = 128, 500, 128, 16, 200


def minute_of(when: datetime) -> datetime:
    """The aware-UTC minute holding ``when`` (a naive time is taken as UTC)."""
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return when.replace(second=0, microsecond=0)


MINUTE = timedelta(minutes=1)


def slot_of(when: datetime, resolution: timedelta = MINUTE) -> datetime:
    """The start of the counting slot holding ``when``: its minute, or a shorter slot when
    spike buckets are shorter than a minute (the demo's seconds-long buckets)."""
    if resolution >= MINUTE:
        return minute_of(when)
    return floor_time(when, resolution)


# X's and some exports' language codes that differ from ISO 639-1 (X keeps "in" for
# Indonesian); "und" is X's "undetermined".
_LANGUAGE_CODES: dict[str, str | None] = {"in": "id", "iw": "he", "und": None, "": None}


def iso_language(code: str | None) -> str | None:
    """``code`` as ISO 639-1, lower case (``in`` → ``id``); None when undetermined."""
    if code is None:
        return None
    code = code.strip().lower()
    return _LANGUAGE_CODES.get(code, code)


def _text_fingerprint(text: str) -> str:
    """The text as two exports of the same post agree on it: NFKC, casefolded, one space."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


#: Characters no database stores: NUL (PostgreSQL refuses it) and lone surrogates (a
#: JSON escape such as ``\\ud83d`` cut from its pair has no UTF-8 encoding).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> str:
    """``text`` with NUL removed and every lone surrogate replaced by U+FFFD."""
    return _UNSTORABLE.sub(lambda m: "" if m.group() == "\x00" else "\ufffd", text)


@dataclass(frozen=True, slots=True)
class PostIn:
    """One public post as a source gives it. ``created_at`` is made aware UTC
    (a naive time is taken as UTC); texts lose what no database stores (:func:`storable`:
    the file source refuses such a line instead, X's API could send one)."""

    text: str
    created_at: datetime
    #: The source's id of the post (X's id; an export's id column), when it has one.
    id: str | None = None
    #: ISO 639-1 (``id``, ``en``), when known.
    lang: str | None = None
    url: str | None = None
    author: str | None = None

    def __post_init__(self) -> None:
        created = self.created_at
        utc = created.replace(tzinfo=UTC) if created.tzinfo is None else created.astimezone(UTC)
        object.__setattr__(self, "created_at", utc)
        for name in ("text", "id", "lang", "url", "author"):
            value = getattr(self, name)
            if value is not None and _UNSTORABLE.search(value):
                object.__setattr__(self, name, storable(value))

    def dedupe_key(self, source: str) -> str:
        """``source:id`` when the post has an id; otherwise ``text:`` and a SHA-256 of the
        normalised text and the minute it was made, so the same post exported twice (by
        any tool) is stored once."""
        if self.id:
            key = f"{source}:{self.id}"
            if len(key) <= _KEY_CHARS:
                return key
            return f"{source}:sha256:{hashlib.sha256(self.id.encode()).hexdigest()}"
        minute = minute_of(self.created_at).isoformat()
        digest = hashlib.sha256(f"{_text_fingerprint(self.text)}\n{minute}".encode())
        return f"text:{digest.hexdigest()}"


@dataclass(frozen=True, slots=True)
class PollResult:
    """What one poll of a source brought.

    ``counts`` are the source's own complaint volume per minute (aware-UTC minutes),
    stored replacing those minutes when ``counts_final`` (X's counts, revised for a few
    minutes); a source without counts of its own (``counts_final`` false and no counts)
    has its complaint posts counted instead. ``posts`` are classified and stored.
    A failure is ``status`` ``unavailable`` or ``rate_limited`` with a short, secret-free
    ``error`` and, when the source knows it, ``retry_after``: do not poll before then.
    ``error`` may be set with status ``ok`` (a malformed line skipped in a file).
    """

    source: str
    counts: dict[datetime, int] = field(default_factory=dict)
    counts_final: bool = False
    posts: list[PostIn] = field(default_factory=list)
    error: str | None = None
    status: SourceStatus = "ok"
    retry_after: datetime | None = None

    @property
    def has_own_counts(self) -> bool:
        return self.counts_final or bool(self.counts)


class Source(Protocol):
    """A social source. ``name`` is its ``[social] sources`` name and its store name."""

    name: str

    def poll(self, *, now: datetime, cursor: str | None) -> tuple[PollResult, str | None]:
        """Fetch what is new since ``cursor``; returns the result and the cursor to store
        (the same one when nothing advanced). Never raises for a failure of the source."""
        ...


@dataclass(slots=True)
class IngestReport:
    """What :func:`ingest` stored."""

    #: New posts stored.
    posts_added: int = 0
    #: Posts already stored (same dedupe key), skipped.
    duplicates: int = 0
    #: New posts classified as outage complaints.
    complaints: int = 0
    #: Minutes whose count was written.
    minutes: int = 0


def _row(source: str, post: PostIn, *, now: datetime) -> ComplaintPostRow:
    verdict = classify(post.text)
    return ComplaintPostRow(
        source=source,
        dedupe_key=post.dedupe_key(source),
        external_id=post.id[:_ID_CHARS] if post.id else None,
        text=post.text,
        created_at=post.created_at,
        lang=post.lang[:_LANG_CHARS] if post.lang else None,
        url=post.url if post.url and len(post.url) <= _URL_CHARS else None,
        author=post.author[:_AUTHOR_CHARS] if post.author else None,
        complaint=verdict.complaint,
        topics=",".join(verdict.topics),
        imported_at=now,
    )


def ingest(
    tx: StoreTx,
    source: str,
    posts: Iterable[PostIn],
    *,
    now: datetime,
    counts: dict[datetime, int] | None = None,
    counts_final: bool = False,
    resolution: timedelta = MINUTE,
) -> IngestReport:
    """Classify and store ``posts`` under ``source``, skipping those already stored.

    Without ``counts`` (a source with no volume of its own, such as a file), each new
    complaint post adds one to the count of its minute (duplicates are not counted
    again; minutes without complaints get no row). With ``counts`` (X's volume), those
    are stored instead, replacing the stored minutes when ``counts_final``, and the
    posts are samples only. Raises StoreError (from the store) only.
    """
    report = IngestReport()
    per_minute: Counter[datetime] = Counter()
    for post in posts:
        row = _row(source, post, now=now)
        if not tx.add_post(row):
            report.duplicates += 1
            continue
        report.posts_added += 1
        if row.complaint:
            report.complaints += 1
            per_minute[slot_of(post.created_at, resolution)] += 1
    if counts is not None:
        minutes = {minute_of(minute): count for minute, count in counts.items()}
        tx.add_counts(source, minutes, replace=counts_final)
        report.minutes = len(minutes)
    elif per_minute:
        tx.add_counts(source, dict(per_minute), replace=False)
        report.minutes = len(per_minute)
    return report


def record_poll(
    tx: StoreTx,
    result: PollResult,
    cursor: str | None,
    *,
    now: datetime,
    resolution: timedelta = MINUTE,
) -> IngestReport:
    """Store what a poll brought (see :func:`ingest`) and update the source's row.

    Success: status ``ok``, ``last_success_at`` now, ``failures`` 0, ``retry_after``
    cleared, ``last_error`` the result's error (None when clean). Failure: the status,
    ``failures`` + 1, ``last_error`` and ``retry_after`` from the result. Either way
    ``cursor`` is stored and ``updated_at`` is now; whatever the failed poll did bring
    (X's counts before its search failed) is stored too.
    """
    report = ingest(
        tx,
        result.source,
        result.posts,
        now=now,
        counts=result.counts if result.has_own_counts else None,
        counts_final=result.counts_final,
        resolution=resolution,
    )
    row = tx.social_source(result.source)
    row.status = result.status
    row.last_error = result.error
    row.retry_after = result.retry_after
    row.cursor = cursor
    row.updated_at = now
    if result.status == "ok":
        row.last_success_at = now
        row.failures = 0
        row.retry_after = None
    else:
        row.failures += 1
    log.info(
        "social poll source=%s status=%s posts=%s duplicates=%s complaints=%s minutes=%s",
        result.source,
        result.status,
        report.posts_added,
        report.duplicates,
        report.complaints,
        report.minutes,
    )
    if result.status != "ok":
        log.warning(
            "social source failing source=%s status=%s failures=%s retry_after=%s error=%s",
            result.source,
            result.status,
            row.failures,
            row.retry_after.isoformat() if row.retry_after else None,
            result.error,
        )
    return report


def source_kinds() -> dict[str, Callable[[Settings], Source]]:
    """The registry: a ``[social] sources`` name to its class.

    A function rather than a module-level dict because each kind imports
    :class:`PostIn` and :class:`PollResult` from this module.
    """
    from monitor.social.file import FileSource
    from monitor.social.x import XSource

    return {"file": FileSource, "x": XSource}


def build_sources(settings: Settings) -> list[Source]:
    """The sources named in ``[social] sources``, in that order (none when empty)."""
    kinds = source_kinds()
    return [kinds[name](settings) for name in settings.social.sources]
