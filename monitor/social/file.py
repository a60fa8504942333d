"""The ``file`` source and ``pantau complaints import``: posts exported by social-listening tools.

A file is JSON lines (one object per line: ``.jsonl``, ``.ndjson``, ``.json-lines``) or
CSV with a header row (``.csv``); any other name is JSON lines when its first non-blank
character is ``{``, else CSV. Fields (CSV column names are matched without regard to
case): ``text`` and ``created_at`` are required; ``id``, ``lang``, ``url`` and
``author`` (or ``username``) are optional; other fields are ignored. ``created_at`` is
ISO 8601 with or without a ``Z`` or an offset (naive means UTC), epoch seconds (or
milliseconds, from 10^11 up), or X's classic ``Tue Sep 17 07:00:31 +0000 2026``.
Empty lines are skipped and a UTF-8 byte-order mark is tolerated. A line is malformed
when it is not UTF-8, not a JSON object (or CSV record), lacks ``text`` or
``created_at``, or has a field no database stores: a NUL character, or a lone
surrogate (a JSON escape such as ``\\ud800`` that is no Unicode text).

:func:`read_posts` reads a whole file and refuses it at its first malformed line
(:class:`ImportFileError`), so an import stores all of a file or nothing.
:class:`FileSource` tails a growing file: its cursor is the byte offset after the last
complete line read (with a fingerprint of the file's start, to tell a rotated file); a
malformed line is skipped and reported, never blocking later ones.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from monitor.clock import utc
from monitor.social.classify import MAX_CHARS
from monitor.social.sources import PollResult, PostIn, iso_language

if TYPE_CHECKING:
    from monitor.config import Settings

log = logging.getLogger(__name__)

Format = Literal["jsonl", "csv"]

#: The most a poll reads of a growing file; the rest is read by the next polls.
MAX_READ = 8 * 1024 * 1024
#: What is read of a file's start to tell its format and find a CSV header.
HEAD_BYTES = 64 * 1024
#: The bytes of a file's start that the cursor's fingerprint covers.
FINGERPRINT_BYTES = 1024
JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson", ".json-lines", ".jsonlines"})
CSV_SUFFIXES = frozenset({".csv"})

_EPOCH = re.compile(r"-?\d+(?:\.\d+)?")
_DATE_ONLY = re.compile(r"\d{4}-?\d{2}-?\d{2}")
# Epoch values from here up are milliseconds (as seconds they would be after year 5000).
_EPOCH_MILLISECONDS = 10**11
_CLASSIC_X_TIME = "%a %b %d %H:%M:%S %z %Y"


class ImportFileError(Exception):
    """A file of posts cannot be read or has a malformed line. ``line`` is the line
    number (1-based) when the problem is on one; ``str()`` reads ``line 7: ...``."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line is not None else message)
        self.message = message
        self.line = line


class _BadPost(Exception):
    """One line (or CSV record) is not a post; the message says why."""


class _NotText(Exception):
    """A line is not UTF-8."""


# -- fields -------------------------------------------------------------------------


def parse_created_at(value: object) -> datetime:
    """A post's time as aware UTC; raises ValueError saying why it is not one."""
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"created_at is not a date: {shown}")
    text = value.strip() if isinstance(value, str) else str(value)
    if _DATE_ONLY.fullmatch(text):
        raise ValueError(f"created_at has a date but no time: {shown}")
    try:
        return _time_of(text, number=not isinstance(value, str))
    except (ValueError, OverflowError, OSError):
        raise ValueError(f"created_at is not a date: {shown}") from None


def _time_of(text: str, *, number: bool) -> datetime:
    if number or _EPOCH.fullmatch(text):
        seconds = float(text)
        if abs(seconds) >= _EPOCH_MILLISECONDS:
            seconds /= 1000
        return datetime.fromtimestamp(seconds, UTC)
    try:
        return utc(datetime.fromisoformat(text))
    except ValueError:
        return utc(datetime.strptime(text, _CLASSIC_X_TIME))


def _optional(value: object, name: str) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = _storable(str(value), name).strip()
    return text or None


def _storable(text: str, name: str) -> str:
    """``text``, unless it holds a character no database stores: a NUL (PostgreSQL
    refuses it) or a lone surrogate (a JSON escape such as ``\\ud800``, not Unicode
    text: no UTF-8 encoding exists). Raises _BadPost."""
    if "\x00" in text:
        raise _BadPost(f"{name} holds a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _BadPost(f"{name} holds a lone surrogate (not Unicode text)") from None
    return text


def _post_from(fields: Mapping[str, object]) -> PostIn:
    """The post in one record's fields; raises _BadPost."""
    named = {str(key).strip().lower(): value for key, value in fields.items()}
    text = named.get("text")
    if text is None or (isinstance(text, str) and not text.strip()):
        raise _BadPost("text is missing")
    if not isinstance(text, str):
        raise _BadPost(f"text is not a string: {text!r}"[:80])
    if len(text) > MAX_CHARS:
        raise _BadPost(f"text is longer than {MAX_CHARS:,} characters ({len(text):,})")
    created = named.get("created_at")
    if created is None or created == "":
        raise _BadPost("created_at is missing")
    try:
        created_at = parse_created_at(created)
    except ValueError as exc:
        raise _BadPost(str(exc)) from None
    return PostIn(
        text=_storable(text, "text"),
        created_at=created_at,
        id=_optional(named.get("id"), "id"),
        lang=iso_language(_optional(named.get("lang"), "lang")),
        url=_optional(named.get("url"), "url"),
        author=_optional(named.get("author"), "author")
        or _optional(named.get("username"), "username"),
    )


# -- lines and records ----------------------------------------------------------------


@dataclass(slots=True)
class _Parsed:
    """Posts read from a chunk, the malformed lines (line within the chunk, why), and
    how many bytes of the chunk were read to the end of a line."""

    posts: list[PostIn] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)
    consumed: int = 0


def _lines(data: bytes, *, final: bool) -> Iterator[tuple[int, int, bytes]]:
    """``(number, end offset, line without its newline)`` of each line of ``data``; the
    last line without a newline only when ``final`` (otherwise it is still being written)."""
    start, number = 0, 0
    while start < len(data):
        end = data.find(b"\n", start)
        if end < 0:
            if final:
                yield number + 1, len(data), data[start:]
            return
        number += 1
        yield number, end + 1, data[start:end]
        start = end + 1


def _decode(raw: bytes, number: int) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _NotText from None
    return text.removeprefix("\ufeff") if number == 1 else text


def _parse_jsonl(data: bytes, *, final: bool) -> _Parsed:
    parsed = _Parsed()
    for number, end, raw in _lines(data, final=final):
        parsed.consumed = end
        try:
            line = _decode(raw, number).strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise _BadPost(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
            except ValueError:  # an integer of over 4,300 digits
                raise _BadPost("not valid JSON (a number too long to read)") from None
            except RecursionError:
                raise _BadPost("not valid JSON (arrays or objects nested too deeply)") from None
            if not isinstance(record, dict):
                raise _BadPost("not a JSON object")
            parsed.posts.append(_post_from(record))
        except _BadPost as exc:
            parsed.errors.append((number, str(exc)))
        except _NotText:
            parsed.errors.append((number, "not UTF-8 text"))
    return parsed


class _LineFeed:
    """Feeds the lines of a chunk to ``csv.reader``, remembering the last one fed."""

    def __init__(self, data: bytes, *, final: bool) -> None:
        self._lines = _lines(data, final=final)
        self.number = 0
        self.end = 0
        self.exhausted = False

    def __iter__(self) -> _LineFeed:
        return self

    def __next__(self) -> str:
        try:
            number, end, raw = next(self._lines)
        except StopIteration:
            self.exhausted = True
            raise
        self.number, self.end = number, end
        return _decode(raw, number) + "\n"


def _columns(row: list[str], line: int) -> list[str]:
    """The header's column names; raises ImportFileError when text or created_at is missing."""
    columns = [cell.strip().lower() for cell in row]
    for required in ("text", "created_at"):
        if required not in columns:
            raise ImportFileError(f"no {required!r} column in the CSV header", line)
    return columns


def _parse_csv(data: bytes, *, final: bool, columns: list[str] | None) -> _Parsed:
    """Records of a CSV chunk; the first record is the header unless ``columns`` are
    given. Raises ImportFileError for a header without text or created_at."""
    parsed = _Parsed()
    feed = _LineFeed(data, final=final)
    while True:
        first_line = feed.number + 1
        try:
            row = next(csv.reader(feed, strict=True))
        except StopIteration:
            break
        except csv.Error as exc:
            if feed.exhausted and not final:
                break  # a quoted field still being written: read it next time
            reason = "a quoted field is not closed" if feed.exhausted else f"not valid CSV ({exc})"
            parsed.errors.append((first_line, reason))
            parsed.consumed = feed.end
            continue
        except _NotText:
            parsed.errors.append((feed.number, "not UTF-8 text"))
            parsed.consumed = feed.end
            continue
        if not any(cell.strip() for cell in row):
            parsed.consumed = feed.end
            continue
        if columns is None:
            columns = _columns(row, first_line)
        else:
            try:
                parsed.posts.append(_post_from(dict(zip(columns, row, strict=False))))
            except _BadPost as exc:
                parsed.errors.append((first_line, str(exc)))
        parsed.consumed = feed.end
    return parsed


def file_format(path: Path, head: bytes) -> Format | None:
    """The format of a file by its name, else by its first non-blank character (None
    while the file is blank). Raises ImportFileError for a JSON array."""
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    if suffix in CSV_SUFFIXES:
        return "csv"
    start = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if not start:
        return None
    if start.startswith(b"["):
        raise ImportFileError(
            "a JSON array is not supported: export JSON lines (one object per line)", 1
        )
    return "jsonl" if start.startswith(b"{") else "csv"


def _parse(data: bytes, kind: Format, *, final: bool, columns: list[str] | None) -> _Parsed:
    if kind == "jsonl":
        return _parse_jsonl(data, final=final)
    return _parse_csv(data, final=final, columns=columns)


# -- importing a file -------------------------------------------------------------------


def read_posts(path: Path) -> list[PostIn]:
    """Every post of a JSONL or CSV file, in file order.

    Raises ImportFileError naming the first malformed line (``line 7: created_at is not
    a date: 'kemarin'``), or when the file cannot be read: nothing of a file with a bad
    line is returned, so an import stores all of it or nothing. Posts are not
    deduplicated here (:func:`~monitor.social.sources.ingest` does that).
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImportFileError(f"file not found: {path}") from None
    except OSError as exc:
        raise ImportFileError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    kind = file_format(path, data[:HEAD_BYTES])
    if kind is None:
        return []
    parsed = _parse(data, kind, final=True, columns=None)
    if parsed.errors:
        line, message = parsed.errors[0]
        raise ImportFileError(message, line)
    return parsed.posts


# -- tailing a growing file -------------------------------------------------------------


def _parse_cursor(cursor: str | None) -> tuple[int, str | None]:
    """``(offset, fingerprint)`` of a cursor ``OFFSET:FINGERPRINT`` (or a bare offset)."""
    offset, _, fingerprint = (cursor or "0").partition(":")
    try:
        return max(int(offset), 0), fingerprint or None
    except ValueError:
        return 0, None


def _fingerprint(head: bytes, offset: int) -> str:
    """A digest of the file's first bytes (those read already, at most FINGERPRINT_BYTES):
    a file replaced by another (rotated) starts differently, even when it is larger."""
    return hashlib.sha256(head[: min(offset, FINGERPRINT_BYTES)]).hexdigest()[:16]


def _cursor(offset: int, head: bytes) -> str:
    return f"{offset}:{_fingerprint(head, offset)}" if offset else "0"


def _lines_before(path: Path, offset: int) -> int:
    """How many lines end before byte ``offset`` (read only when a line is reported)."""
    count, left = 0, offset
    with path.open("rb") as handle:
        while left > 0:
            block = handle.read(min(left, 1024 * 1024))
            if not block:
                break
            count += block.count(b"\n")
            left -= len(block)
    return count


def _csv_header(head: bytes) -> list[str] | None:
    """The columns of a CSV file's first line; None while that line is not complete."""
    end = head.find(b"\n")
    if end < 0:
        return None
    row = next(csv.reader([head[:end].decode("utf-8", "replace").removeprefix("\ufeff")]), [])
    return _columns(row, 1)


class FileSource:
    """The ``file`` source: tails ``[social] file`` (see the module docstring).

    The cursor is ``OFFSET:FINGERPRINT``: the byte offset after the last complete line
    read, and a digest of the file's first bytes. A last line without its newline is
    left for the next poll; a file smaller than the offset, or starting differently, was
    replaced (rotated) and is read again from the start (duplicates are not stored
    twice). A missing file is ``unavailable``; a malformed line is skipped and named in
    ``error`` with status ``ok``.
    """

    name = "file"

    def __init__(self, settings: Settings, *, max_read: int = MAX_READ) -> None:
        if settings.social.file is None:
            raise ValueError("the file source needs [social] file")
        #: The file as configured (shown in errors).
        self.shown = str(settings.social.file)
        self.path = settings.resolve_path(settings.social.file)
        self.max_read = max_read

    def poll(self, *, now: datetime, cursor: str | None) -> tuple[PollResult, str | None]:
        """The posts of the complete lines after the cursor. Never raises."""
        offset, fingerprint = _parse_cursor(cursor)
        try:
            head, data, offset = self._read(offset, fingerprint)
            kind = file_format(self.path, head)
            columns = _csv_header(head) if kind == "csv" and offset > 0 else None
        except FileNotFoundError:
            return self._unavailable(f"file not found: {self.shown}"), cursor
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            return self._unavailable(f"cannot read {self.shown}: {reason}"), cursor
        except ImportFileError as exc:
            return self._unavailable(f"{self.shown}: {exc}"), cursor
        if kind is None or (kind == "csv" and offset > 0 and columns is None):
            return PollResult(source=self.name), _cursor(offset, head)
        try:
            parsed = _parse(data, kind, final=False, columns=columns)
        except ImportFileError as exc:
            return self._unavailable(f"{self.shown}: {exc}"), cursor
        if parsed.consumed == 0 and len(data) >= self.max_read:
            parsed.errors.append((1, f"a line longer than {self.max_read:,} bytes"))
            parsed.consumed = len(data)
        error = self._report(parsed.errors, offset) if parsed.errors else None
        result = PollResult(source=self.name, posts=parsed.posts, error=error)
        return result, _cursor(offset + parsed.consumed, head)

    def _read(self, offset: int, fingerprint: str | None) -> tuple[bytes, bytes, int]:
        """The file's head, and the bytes from ``offset``, or from 0 when the file was
        replaced (it is smaller than the offset, or starts differently)."""
        with self.path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            head = handle.read(HEAD_BYTES)
            if size < offset or (fingerprint and _fingerprint(head, offset) != fingerprint):
                log.info("file replaced path=%s size=%s cursor=%s", self.shown, size, offset)
                offset = 0
            handle.seek(offset)
            data = handle.read(self.max_read)
            if len(head) < HEAD_BYTES:  # the file may have grown: the head covers what is read
                handle.seek(0)
                head = handle.read(HEAD_BYTES)
            return head, data, offset

    def _unavailable(self, error: str) -> PollResult:
        return PollResult(source=self.name, error=error, status="unavailable")

    def _report(self, errors: list[tuple[int, str]], offset: int) -> str:
        """``skipped line 7: ...`` for the first malformed line (and how many more)."""
        try:
            before = _lines_before(self.path, offset)
        except OSError:
            before = 0
        for line, message in errors:
            log.warning(
                "file line skipped path=%s line=%s error=%s", self.shown, before + line, message
            )
        line, message = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return f"skipped line {before + line}: {message}{more}"
