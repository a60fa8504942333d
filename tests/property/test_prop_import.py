"""``pantau complaints import FILE`` under hostile files: all of a file, or nothing.

Files of posts (JSON lines and CSV) are generated with good records, one known-bad line
or arbitrary junk, byte-order marks, CRLF, blank lines and very long lines. Properties:

* a file of good records is imported whole: every post is stored once (by its dedupe
  key), with its text as written;
* a file with one bad line is refused naming exactly that line, and nothing is stored;
* any file at all is imported or refused with a line number: never another exception,
  never a file that reads but then fails to store;
* the ``file`` source tailing a growing file never raises, and what it reads is stored;
* a post from any source (X's API too) is stored, whatever code points it holds.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prop_support import examples, hostile_text, visible
from sqlmodel import delete

from monitor.config import parse_settings
from monitor.social.classify import MAX_CHARS
from monitor.social.file import FileSource, ImportFileError, read_posts
from monitor.social.sources import PostIn, ingest, record_poll, storable
from monitor.store import ComplaintCountRow, ComplaintPostRow, Store

NOW = datetime(2026, 9, 17, 8, 0, tzinfo=UTC)
WAVE = datetime(2026, 9, 17, 7, 0, tzinfo=UTC)

texts = hostile_text.filter(lambda text: visible(text) and "\x00" not in text)
moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@st.composite
def created_ats(draw: st.DrawFn) -> object:
    """A valid ``created_at`` in one of the accepted spellings."""
    at = draw(moments)
    spelling = draw(st.sampled_from(["iso", "z", "offset", "naive", "epoch", "ms", "str", "x"]))
    if spelling == "iso":
        return at.isoformat()
    if spelling == "z":
        return at.strftime("%Y-%m-%dT%H:%M:%SZ")
    if spelling == "offset":
        return at.astimezone(timezone(timedelta(hours=7))).isoformat()
    if spelling == "naive":
        return at.replace(tzinfo=None).isoformat(sep=" ")
    if spelling == "epoch":
        return int(at.timestamp())
    if spelling == "ms":
        return int(at.timestamp() * 1000)
    if spelling == "str":
        return str(int(at.timestamp()))
    return at.strftime("%a %b %d %H:%M:%S +0000 %Y")


optional_values = st.one_of(
    st.none(), st.text(max_size=20), st.integers(), st.booleans(), st.floats(), st.just([1])
)


@st.composite
def good_records(draw: st.DrawFn) -> dict[str, Any]:
    record: dict[str, Any] = {"text": draw(texts), "created_at": draw(created_ats())}
    for key in draw(st.lists(st.sampled_from(["id", "lang", "url", "author", "username"]))):
        record[key] = draw(optional_values.filter(lambda v: "\x00" not in str(v)))
    if draw(st.booleans()):
        record["extra"] = draw(optional_values)
    return record


#: JSON lines that are not a post, whatever surrounds them.
BAD_JSON_LINES = (
    '{"text": "prakerja error"',
    '["prakerja error", "2026-09-17T07:00:00Z"]',
    '"prakerja error"',
    "null",
    '{"text": 5, "created_at": "2026-09-17T07:00:00Z"}',
    '{"text": "   ", "created_at": "2026-09-17T07:00:00Z"}',
    '{"created_at": "2026-09-17T07:00:00Z"}',
    '{"text": "prakerja error"}',
    '{"text": "prakerja error", "created_at": "kemarin"}',
    '{"text": "prakerja error", "created_at": "2026-09-17"}',
    '{"text": "prakerja error", "created_at": "2026-02-30T07:00:00Z"}',
    '{"text": "prakerja error", "created_at": 1e400}',
    '{"text": "prakerja error", "created_at": NaN}',
    '{"text": "prakerja error", "created_at": true}',
    '{"text": "prakerja error", "created_at": ' + "9" * 5000 + "}",
    '{"text": "prakerja error", "created_at": "2026-09-17T07:00:00Z", "id": ' + "1" * 5000 + "}",
    '{"text": "prakerja error", "created_at": "2026-09-17T07:00:00Z", "x": '
    + "[" * 50_000
    + "]" * 50_000
    + "}",
    '{"text": "prakerja \\ud800 error", "created_at": "2026-09-17T07:00:00Z"}',
    '{"text": "prakerja error", "author": "\\udfff", "created_at": "2026-09-17T07:00:00Z"}',
    '{"text": "prakerja\\u0000error", "created_at": "2026-09-17T07:00:00Z"}',
    '{"text": "' + "x" * (MAX_CHARS + 1) + '", "created_at": "2026-09-17T07:00:00Z"}',
    "\ufeff{}",  # a byte-order mark that is not at the file's start
)


def _jsonl_line(record: dict[str, Any], *, ascii_only: bool) -> str:
    return json.dumps(record, ensure_ascii=ascii_only)


@st.composite
def jsonl_files(draw: st.DrawFn, *, bad: bool) -> tuple[bytes, list[dict[str, Any]], int | None]:
    """``(file, good records, line number of the bad line or None)``."""
    records = draw(st.lists(good_records(), max_size=8))
    lines = [_jsonl_line(r, ascii_only=draw(st.booleans())) for r in records]
    bad_line = None
    if bad:
        at = draw(st.integers(0, len(lines)))
        lines.insert(at, draw(st.sampled_from(BAD_JSON_LINES)))
    # Blank lines anywhere (skipped, but counted in line numbers).
    for _ in range(draw(st.integers(0, 3))):
        lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(["", "  ", "\t"])))
    if bad:
        bad_line = next(
            i + 1 for i, line in enumerate(lines) if line.strip() and _is_bad_json(line)
        )
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = newline.join(lines) + draw(st.sampled_from(["", newline]))
    bom = draw(st.sampled_from([b"", b"\xef\xbb\xbf"]))
    return bom + text.encode("utf-8", "surrogatepass"), records, bad_line


def _is_bad_json(line: str) -> bool:
    return line in BAD_JSON_LINES


CSV_COLUMNS = ("id", "created_at", "author", "text", "lang", "url", "other")


@st.composite
def csv_files(draw: st.DrawFn, *, bad: bool) -> tuple[bytes, list[dict[str, Any]], int | None]:
    """A CSV export: a header in any case and order, records quoted as needed."""
    columns = draw(st.permutations(CSV_COLUMNS))
    header = [draw(st.sampled_from([c, c.upper(), f" {c.title()} "])) for c in columns]
    records = [
        {k: "" if v is None else str(v) for k, v in record.items()}  # as a CSV cell holds it
        for record in draw(st.lists(good_records(), max_size=8))
    ]
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    chunks = [_csv_row(header, newline)]
    chunks += [_csv_row([record.get(c, "") for c in columns], newline) for record in records]
    bad_line = None
    if bad:
        at = draw(st.integers(1, len(chunks)))
        bad_line = 1 + sum(c.count("\n") for c in chunks[:at])
        chunks.insert(at, draw(st.sampled_from(_bad_csv_rows(columns))) + newline)
    bom = draw(st.sampled_from([b"", b"\xef\xbb\xbf"]))
    return bom + "".join(chunks).encode(), records, bad_line


def _csv_row(cells: list[str], newline: str) -> str:
    """One record as RFC 4180 writes it: a field holding CR or LF is quoted (Python's
    writer quotes only for the characters of its own line terminator)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(cells)
    return out.getvalue().removesuffix("\r\n") + newline


def _bad_csv_rows(columns: tuple[str, ...]) -> list[str]:
    def row(**cells: str) -> str:
        return _csv_row([cells.get(c, "") for c in columns], "")

    return [
        row(text="prakerja error", created_at="kemarin"),
        row(text="prakerja error"),
        row(created_at="2026-09-17T07:00:00Z", id="7"),
        row(text="prakerja error", created_at="2026-09-17"),
        row(text="prakerja\x00error", created_at="2026-09-17T07:00:00Z"),
        row(text="x" * (MAX_CHARS + 1), created_at="2026-09-17T07:00:00Z"),
        '"prakerja error, 2026-09-17T07:00:00Z',  # a quote never closed: to the end
    ]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """One SQLite store per test (creating one costs more than an example), emptied by
    :func:`emptied` at the start of each example."""
    store = Store(f"sqlite:///{tmp_path / 'p.db'}")
    yield store
    store.close()


def emptied(store: Store) -> Store:
    with store.tx() as tx:
        tx.session.exec(delete(ComplaintPostRow))  # type: ignore[call-overload]
        tx.session.exec(delete(ComplaintCountRow))  # type: ignore[call-overload]
    return store


def import_file(store: Store, path: Path) -> int:
    """What ``pantau complaints import`` does: read all, then store all in one transaction."""
    posts = read_posts(path)
    with store.tx() as tx:
        return ingest(tx, "file", posts, now=NOW).posts_added


def stored_texts(store: Store) -> list[str]:
    with store.read() as tx:
        return sorted(post.text for post in tx.posts())


def _expected_texts(records: list[dict[str, Any]], *, source: str = "file") -> list[str]:
    """The texts stored for ``records``: one per dedupe key, the first one seen."""
    from monitor.social.file import parse_created_at

    kept: dict[str, str] = {}
    for record in records:
        raw_id = record.get("id")
        post_id = None if raw_id is None or isinstance(raw_id, list) else str(raw_id).strip()
        post = PostIn(
            text=record["text"],
            created_at=parse_created_at(record["created_at"]),
            id=post_id or None,
        )
        kept.setdefault(post.dedupe_key(source), post.text)
    return sorted(kept.values())


def _check_file(
    store: Store,
    path: Path,
    data: bytes,
    records: list[dict[str, Any]],
    bad_line: int | None,
) -> None:
    path.write_bytes(data)
    emptied(store)
    if bad_line is None:
        added = import_file(store, path)
        assert added == len(_expected_texts(records))
        assert stored_texts(store) == _expected_texts(records)
        return
    with pytest.raises(ImportFileError) as info:
        import_file(store, path)
    assert info.value.line == bad_line, str(info.value)
    assert str(info.value).startswith(f"line {bad_line}: ")
    assert stored_texts(store) == []


@examples(30)
@given(jsonl_files(bad=False))
def test_a_good_jsonl_file_is_imported_whole(
    store: Store, tmp_path: Path, file: tuple[bytes, list[dict[str, Any]], int | None]
) -> None:
    _check_file(store, tmp_path / "posts.jsonl", *file)


@examples(40)
@given(jsonl_files(bad=True))
def test_a_jsonl_file_with_a_bad_line_is_refused_at_that_line(
    store: Store, tmp_path: Path, file: tuple[bytes, list[dict[str, Any]], int | None]
) -> None:
    _check_file(store, tmp_path / "posts.jsonl", *file)


@examples(30)
@given(csv_files(bad=False))
def test_a_good_csv_file_is_imported_whole(
    store: Store, tmp_path: Path, file: tuple[bytes, list[dict[str, Any]], int | None]
) -> None:
    _check_file(store, tmp_path / "posts.csv", *file)


@examples(30)
@given(csv_files(bad=True))
def test_a_csv_file_with_a_bad_line_is_refused_at_that_line(
    store: Store, tmp_path: Path, file: tuple[bytes, list[dict[str, Any]], int | None]
) -> None:
    _check_file(store, tmp_path / "posts.csv", *file)


junk_lines = st.one_of(
    st.sampled_from(BAD_JSON_LINES),
    st.text(max_size=40),
    st.binary(max_size=20).map(lambda b: b.decode("latin-1")),
    good_records().map(json.dumps),
    st.just("text,created_at"),
    st.just('"a","2026-09-17T07:00:00Z"'),
)


@examples(80)
@given(
    st.lists(junk_lines, max_size=6),
    st.sampled_from(["posts.jsonl", "posts.csv", "posts.txt"]),
    st.one_of(st.just(b""), st.binary(max_size=8)),
)
def test_any_file_is_imported_or_refused_with_a_line_number(
    store: Store, tmp_path: Path, lines: list[str], name: str, tail: bytes
) -> None:
    path = tmp_path / name
    data = "\n".join(lines).encode("utf-8", "surrogatepass") + tail
    path.write_bytes(data)
    try:
        added = import_file(emptied(store), path)
    except ImportFileError as exc:
        line = exc.line
    else:
        assert len(stored_texts(store)) == added
        return
    assert line is not None and 1 <= line <= data.count(b"\n") + 1
    assert stored_texts(store) == []


tail_lines = st.one_of(
    st.sampled_from(BAD_JSON_LINES),
    good_records().map(json.dumps),
    st.just('"prakerja error",2026-09-17T07:00:00Z'),
    st.text(max_size=20),
)


@examples(50)
@given(
    st.lists(
        st.one_of(
            tail_lines.map(lambda line: line + "\n"),  # most appends are whole lines
            tail_lines.map(lambda line: line + "\r\n"),
            tail_lines,
            st.sampled_from(["\n", "\r\n", "{", '"', "\xef\xbb\xbf"]),
        ),
        min_size=1,
        max_size=8,
    ),
    st.sampled_from(["posts.jsonl", "posts.csv"]),
)
def test_tailing_a_growing_file_never_raises_and_stores_what_it_reads(
    store: Store, tmp_path: Path, chunks: list[str], name: str
) -> None:
    """The ``file`` source, polled after each append: never raises, skips what it cannot
    read, and every post it hands over can be stored."""
    settings = parse_settings(
        {"social": {"sources": ["file"], "file": name}}, env={}, base_dir=tmp_path
    )
    source = FileSource(settings, max_read=4096)
    path = tmp_path / name
    path.write_bytes(b"")
    cursor: str | None = None
    emptied(store)
    for chunk in chunks:
        with path.open("ab") as handle:
            handle.write(chunk.encode("utf-8", "surrogatepass"))
        result, cursor = source.poll(now=NOW, cursor=cursor)
        assert result.status in ("ok", "unavailable")
        with store.tx() as tx:
            record_poll(tx, result, cursor, now=NOW)


#: Any code point, lone surrogates and NUL included: what a JSON API may hand over.
any_text = st.lists(
    st.one_of(
        st.characters(exclude_categories=[]), st.sampled_from(["\x00", "\ud83d", "\ude00", "😀"])
    ),
    min_size=1,
    max_size=30,
).map("".join)


@examples(40)
@given(st.lists(st.tuples(any_text, st.none() | any_text, moments), min_size=1, max_size=5))
def test_any_post_from_a_source_can_be_stored(
    store: Store, posts: list[tuple[str, str | None, datetime]]
) -> None:
    """Posts from any source (X's API too) are stored: what no database holds (NUL, lone
    surrogates) is dropped or replaced, never a failed transaction that blocks the poll."""
    given_posts = [PostIn(text=text, created_at=at, id=pid, author=text) for text, pid, at in posts]
    with emptied(store).tx() as tx:
        ingest(tx, "x", given_posts, now=NOW)
    expected = {p.dedupe_key("x"): storable(p.text) for p in reversed(given_posts)}
    assert stored_texts(store) == sorted(expected.values())


# --- the command ------------------------------------------------------------------------


def test_pantau_import_stores_all_or_nothing(tmp_path: Path) -> None:
    """Through the command: a hostile but valid export is stored whole; the same export
    with a lone surrogate on line 3 exits 2 naming the line, and stores nothing."""
    good = [
        {"text": "<script>alert(1)</script> prakerja error", "created_at": "2026-09-17T07:00:00Z"},
        {"text": "\u202eprakerja gak bisa login\u202c", "created_at": 1789628400, "id": 7},
        {"text": "otp ga masuk2 😭\r\nprakerja", "created_at": "2026-09-17 07:01:00"},
    ]
    valid = tmp_path / "valid.jsonl"
    valid.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(map(json.dumps, good)).encode() + b"\r\n")
    broken = tmp_path / "broken.jsonl"
    broken_lines = [json.dumps(good[0]), "", BAD_JSON_LINES[17], json.dumps(good[1])]
    broken.write_text("\n".join(broken_lines), encoding="utf-8")
    pantau = Path(sys.executable).with_name("pantau")

    def run(name: str) -> subprocess.CompletedProcess[str]:
        config = tmp_path / f"{name}.toml"
        config.write_text(f'[storage]\nurl = "sqlite:///{tmp_path / name}.db"\n', encoding="utf-8")
        return subprocess.run(
            [str(pantau), "-c", str(config), "complaints", "import", str(tmp_path / name)],
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=60,
            check=False,
        )

    with ThreadPoolExecutor(max_workers=2) as pool:
        imported, refused = pool.map(run, ["valid.jsonl", "broken.jsonl"])
    assert imported.returncode == 0, imported.stderr
    assert "imported 3 post(s)" in imported.stdout
    assert refused.returncode == 2, refused.stderr
    assert "line 3: text holds a lone surrogate" in refused.stderr
    assert "nothing imported" in refused.stderr and "Traceback" not in refused.stderr
    with sqlite3.connect(tmp_path / "valid.jsonl.db") as db:
        assert sorted(row[0] for row in db.execute("select text from complaint_post")) == sorted(
            r["text"] for r in good
        )
    if (tmp_path / "broken.jsonl.db").exists():
        with sqlite3.connect(tmp_path / "broken.jsonl.db") as db:
            assert db.execute("select count(*) from complaint_post").fetchone() == (0,)
