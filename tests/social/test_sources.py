"""The social-source seam: posts read from exports, deduplicated, classified and counted;
the file source tailing a growing export; source health rows."""

from __future__ import annotations

import json
import typing
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from social_support import COMPLAINTS, NOT_COMPLAINTS, file_settings, x_settings

from monitor.config import SocialSettings
from monitor.social.file import FileSource, ImportFileError, read_posts
from monitor.social.sources import (
    PollResult,
    PostIn,
    build_sources,
    ingest,
    record_poll,
    source_kinds,
)
from monitor.social.x import XSource
from monitor.store import Store

HERE = Path(__file__).resolve().parent
NOW = datetime(2026, 9, 17, 7, 30, tzinfo=UTC)
T0 = datetime(2026, 9, 17, 7, 0, tzinfo=UTC)
#: Where the tests of each registered source kind are.
TESTS_OF_KIND = {"file": "test_sources.py", "x": "test_x_source.py"}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'p.db'}")
    yield store
    store.close()


def _jsonl(*records: dict[str, object]) -> str:
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def _write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode())
    return path


def _append(path: Path, text: str) -> None:
    with path.open("ab") as handle:
        handle.write(text.encode())


def _stored(store: Store) -> list[tuple[str, str, bool, str]]:
    with store.read() as tx:
        posts = tx.posts()
    return sorted((p.source, p.text, p.complaint, p.topics) for p in posts)


# -- the registry ---------------------------------------------------------------------


def test_every_registered_kind_is_a_config_choice_and_has_tests() -> None:
    choices = typing.get_args(typing.get_args(SocialSettings.model_fields["sources"].annotation)[0])
    assert sorted(source_kinds()) == sorted(choices) == sorted(TESTS_OF_KIND)
    for name in TESTS_OF_KIND.values():
        assert (HERE / name).is_file()


def test_build_sources_builds_the_configured_kinds_in_order(tmp_path: Path) -> None:
    settings = x_settings(tmp_path, file="posts.jsonl")
    settings = settings.model_copy(
        update={"social": settings.social.model_copy(update={"sources": ("file", "x")})}
    )
    sources = build_sources(settings)
    assert [type(source) for source in sources] == [FileSource, XSource]
    assert [source.name for source in sources] == ["file", "x"]
    assert build_sources(settings.model_copy(update={"social": SocialSettings()})) == []


# -- reading exports -------------------------------------------------------------------


def test_jsonl_posts_with_every_date_format_and_optional_field(tmp_path: Path) -> None:
    text = "\ufeff" + _jsonl(
        {"id": "1850001", "text": COMPLAINTS[0], "created_at": "2026-09-17T07:00:31.000Z"},
        {"id": 1850002, "text": "b", "created_at": "2026-09-17T14:00:31+07:00", "lang": "in"},
        {"text": "c", "created_at": "2026-09-17 07:00:31", "username": "user5513"},
        {"text": "d", "created_at": 1789628431, "author": "ani", "url": "https://x.com/ani/1"},
        {"text": "e", "created_at": "1789628431", "likes": 3, "nested": {"a": 1}},
        {"text": "f", "created_at": 1789628431000},
        {"text": "g", "created_at": "Thu Sep 17 07:00:31 +0000 2026", "lang": "EN"},
    )
    path = _write(tmp_path / "posts.jsonl", text.replace("\n", "\r\n", 1) + "\n  \n")
    posts = read_posts(path)
    at = datetime(2026, 9, 17, 7, 0, 31, tzinfo=UTC)
    assert [p.created_at for p in posts] == [at] * 7
    assert [p.text for p in posts] == [COMPLAINTS[0], "b", "c", "d", "e", "f", "g"]
    assert [p.id for p in posts] == ["1850001", "1850002", None, None, None, None, None]
    assert [p.lang for p in posts] == [None, "id", None, None, None, None, "en"]
    assert [p.author for p in posts] == [None, None, "user5513", "ani", None, None, None]
    assert posts[3].url == "https://x.com/ani/1"


def test_csv_posts_with_quoted_lines_any_header_case_and_no_ids(tmp_path: Path) -> None:
    text = (
        "\ufeffCreated_At,Text,Username,Likes\r\n"
        '2026-09-17T07:00:31Z,"prakerja error,\ngak bisa login",user5513,4\r\n'
        "\r\n"
        '1789628431,"kata ""mereka"" down",,0\r\n'
    )
    posts = read_posts(_write(tmp_path / "export.csv", text))
    assert [(p.text, p.author, p.id) for p in posts] == [
        ("prakerja error,\ngak bisa login", "user5513", None),
        ('kata "mereka" down', None, None),
    ]
    assert {p.created_at for p in posts} == {datetime(2026, 9, 17, 7, 0, 31, tzinfo=UTC)}


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("posts.txt", '\n  {"text": "a", "created_at": 0}\n', "a"),
        ("posts.txt", "text,created_at\nb,0\n", "b"),
        ("posts.ndjson", '{"text": "c", "created_at": 0}', "c"),
    ],
)
def test_the_format_is_known_by_the_name_else_by_the_first_character(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    assert [post.text for post in read_posts(_write(tmp_path / name, text))] == [expected]


def test_an_empty_file_has_no_posts(tmp_path: Path) -> None:
    assert read_posts(_write(tmp_path / "posts.txt", "\n\n")) == []


GOOD = '{"text": "ok", "created_at": "2026-09-17T07:00:00Z"}\n'


@pytest.mark.parametrize(
    ("name", "text", "error"),
    [
        ("p.jsonl", GOOD * 2 + '{"text": "x", created_at: 1}\n', "line 3: not valid JSON"),
        ("p.jsonl", GOOD + '{"created_at": "2026-09-17T07:00:00Z"}\n', "line 2: text is missing"),
        ("p.jsonl", GOOD + '{"text": " ", "created_at": 1}\n', "line 2: text is missing"),
        ("p.jsonl", '{"text": "x"}\n', "line 1: created_at is missing"),
        (
            "p.jsonl",
            GOOD * 6 + '{"text": "x", "created_at": "kemarin"}\n',
            "line 7: created_at is not a date: 'kemarin'",
        ),
        (
            "p.jsonl",
            '{"text": "x", "created_at": "2026-09-17"}\n',
            "line 1: created_at has a date but no time: '2026-09-17'",
        ),
        ("p.jsonl", '{"text": "x", "created_at": true}\n', "line 1: created_at is not a date"),
        ("p.jsonl", GOOD + '["text", "x"]\n', "line 2: not a JSON object"),
        ("p.jsonl", '{"text": 5, "created_at": 1}\n', "line 1: text is not a string"),
        (
            "p.jsonl",
            json.dumps({"text": "a" * 25_001, "created_at": 1}) + "\n",
            "line 1: text is longer than 25,000 characters",
        ),
        ("p.json", '[{"text": "x", "created_at": 1}]', "line 1: a JSON array is not supported"),
        ("p.csv", "created_at,body\n1,x\n", "line 1: no 'text' column in the CSV header"),
        ("p.csv", "text\nx\n", "line 1: no 'created_at' column in the CSV header"),
        ("p.csv", "text,created_at\nx,1\ny,kemarin\n", "line 3: created_at is not a date"),
        ("p.csv", 'text,created_at\nx,1\n"open,1\nmore\n', "line 3: a quoted field is not closed"),
        ("p.csv", 'text,created_at\n"a"b,1\n', "line 2: not valid CSV"),
    ],
)
def test_a_malformed_file_names_its_line_and_nothing_is_imported(
    tmp_path: Path, store: Store, name: str, text: str, error: str
) -> None:
    path = _write(tmp_path / name, text)
    with pytest.raises(ImportFileError) as caught, store.tx() as tx:
        ingest(tx, "file", read_posts(path), now=NOW)
    assert str(caught.value).startswith(error)
    assert caught.value.line == int(error.split(":")[0].removeprefix("line "))
    assert _stored(store) == []


def test_a_line_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(GOOD.encode() + b'{"text": "\xff", "created_at": 1}\n')
    with pytest.raises(ImportFileError, match=r"^line 2: not UTF-8 text$"):
        read_posts(path)


def test_a_missing_file_is_an_import_error_without_a_line(tmp_path: Path) -> None:
    with pytest.raises(ImportFileError, match="file not found") as caught:
        read_posts(tmp_path / "nope.jsonl")
    assert caught.value.line is None


# -- deduplication -----------------------------------------------------------------------


def test_a_post_with_an_id_is_known_by_its_source_and_id() -> None:
    post = PostIn(text="a", created_at=T0, id="1850")
    assert post.dedupe_key("x") == "x:1850"
    assert PostIn(text="b", created_at=NOW, id="1850").dedupe_key("x") == "x:1850"
    assert len(PostIn(text="a", created_at=T0, id="9" * 400).dedupe_key("file")) <= 200


def test_a_post_without_id_is_known_by_its_text_and_minute() -> None:
    key = PostIn(text="Prakerja  ERROR\nlagi", created_at=T0).dedupe_key("file")
    assert key.startswith("text:")
    same = PostIn(text="prakerja error lagi ", created_at=T0 + timedelta(seconds=59))
    naive = PostIn(text="prakerja error lagi", created_at=datetime(2026, 9, 17, 7, 0, 12))
    wib = PostIn(text="prakerja error lagi", created_at=datetime(2026, 9, 17, 14, 0, tzinfo=WIB))
    assert same.dedupe_key("other") == naive.dedupe_key("file") == wib.dedupe_key("file") == key
    later = PostIn(text="prakerja error lagi", created_at=T0 + timedelta(minutes=1))
    other = PostIn(text="prakerja error terus", created_at=T0)
    assert len({key, later.dedupe_key("file"), other.dedupe_key("file")}) == 3
    assert naive.created_at == datetime(2026, 9, 17, 7, 0, 12, tzinfo=UTC)


WIB = timezone(timedelta(hours=7))


def test_the_same_export_imported_twice_is_stored_once(tmp_path: Path, store: Store) -> None:
    records = [
        {"id": "1", "text": COMPLAINTS[0], "created_at": "2026-09-17T07:00:10Z"},
        {"text": COMPLAINTS[1], "created_at": "2026-09-17T07:00:20Z"},
        {"text": NOT_COMPLAINTS[0], "created_at": "2026-09-17T07:01:20Z"},
    ]
    path = _write(tmp_path / "p.jsonl", _jsonl(*records))
    with store.tx() as tx:
        first = ingest(tx, "file", read_posts(path) + read_posts(path), now=NOW)
    with store.tx() as tx:
        second = ingest(tx, "file", read_posts(path) + read_posts(path), now=NOW)
    assert (first.posts_added, first.duplicates, first.complaints) == (3, 3, 2)
    assert (second.posts_added, second.duplicates, second.complaints, second.minutes) == (
        0,
        6,
        0,
        0,
    )
    with store.read() as tx:
        assert len(tx.posts()) == 3
        assert tx.counts(since=T0, until=NOW) == {T0: 2}


# -- classifying and counting ------------------------------------------------------------


def test_only_complaint_posts_are_counted_per_minute(store: Store) -> None:
    minute = timedelta(minutes=1)
    posts = [
        PostIn(text=COMPLAINTS[0], created_at=T0 + timedelta(seconds=5), id="1", lang="id"),
        PostIn(text=COMPLAINTS[1], created_at=T0 + timedelta(seconds=50), id="2"),
        PostIn(text=COMPLAINTS[2], created_at=T0 + minute, id="3"),
        PostIn(text=NOT_COMPLAINTS[0], created_at=T0 + minute, id="4"),
        PostIn(text=NOT_COMPLAINTS[1], created_at=T0 + 2 * minute, id="5"),
    ]
    with store.tx() as tx:
        report = ingest(tx, "file", posts, now=NOW)
    assert (report.posts_added, report.duplicates, report.complaints, report.minutes) == (
        5,
        0,
        3,
        2,
    )
    with store.read() as tx:
        assert tx.counts(since=T0, until=NOW, source="file") == {T0: 2, T0 + minute: 1}
        rows = {row.external_id: row for row in tx.posts()}
    assert (rows["1"].complaint, rows["1"].topics, rows["1"].lang) == (True, "login,down", "id")
    assert (rows["4"].complaint, rows["4"].topics) == (False, "")
    assert {row.imported_at for row in rows.values()} == {NOW}
    assert {row.dedupe_key for row in rows.values()} == {f"file:{n}" for n in "12345"}


def test_given_counts_replace_or_add_and_samples_are_not_counted(store: Store) -> None:
    sample = [PostIn(text=COMPLAINTS[0], created_at=T0, id="9")]
    with store.tx() as tx:
        report = ingest(tx, "x", sample, now=NOW, counts={T0: 5}, counts_final=True)
        ingest(
            tx, "x", [], now=NOW, counts={T0: 7, T0 + timedelta(minutes=1): 1}, counts_final=True
        )
        ingest(tx, "y", [], now=NOW, counts={T0: 2})
        ingest(tx, "y", [], now=NOW, counts={T0: 3})
    assert (report.posts_added, report.complaints, report.minutes) == (1, 1, 1)
    with store.read() as tx:
        assert tx.counts(since=T0, until=NOW, source="x") == {T0: 7, T0 + timedelta(minutes=1): 1}
        assert tx.counts(since=T0, until=NOW, source="y") == {T0: 5}


def test_overlong_optional_fields_fit_the_columns(store: Store) -> None:
    post = PostIn(
        text="x", created_at=T0, id="7" * 300, url="https://x.com/" + "a" * 600, author="b" * 300
    )
    with store.tx() as tx:
        ingest(tx, "file", [post], now=NOW)
    with store.read() as tx:
        (row,) = tx.posts()
    assert (len(row.external_id or ""), row.url, len(row.author or "")) == (128, None, 128)


# -- source health -----------------------------------------------------------------------


def test_record_poll_keeps_the_health_of_a_source(store: Store) -> None:
    later = NOW + timedelta(minutes=1)
    failed = PollResult(
        source="x",
        counts={},
        counts_final=True,
        posts=[],
        error="X had a server error (503)",
        status="unavailable",
        retry_after=later,
    )
    ok = PollResult(source="x", counts={T0: 4}, counts_final=True, posts=[])
    with store.tx() as tx:
        record_poll(tx, ok, '{"since_id": "1"}', now=NOW)
    with store.tx() as tx:
        record_poll(tx, failed, '{"since_id": "1", "failures": 1}', now=later)
        record_poll(tx, failed, '{"since_id": "1", "failures": 2}', now=later)
    with store.read() as tx:
        row = tx.social_source("x")
    assert (row.status, row.failures, row.last_error) == ("unavailable", 2, failed.error)
    assert (row.last_success_at, row.retry_after, row.updated_at) == (NOW, later, later)
    assert row.cursor == '{"since_id": "1", "failures": 2}'
    with store.tx() as tx:
        record_poll(tx, ok, "c", now=later)
    with store.read() as tx:
        row = tx.social_source("x")
        assert tx.counts(since=T0, until=NOW, source="x") == {T0: 4}
    assert (row.status, row.failures, row.last_error, row.retry_after) == ("ok", 0, None, None)
    assert (row.last_success_at, row.cursor) == (later, "c")


def test_record_poll_counts_the_posts_of_a_source_without_counts(store: Store) -> None:
    posts = [PostIn(text=text, created_at=T0) for text in (*COMPLAINTS, *NOT_COMPLAINTS)]
    result = PollResult(source="file", counts={}, counts_final=False, posts=posts, error="skipped")
    with store.tx() as tx:
        report = record_poll(tx, result, "120", now=NOW)
    assert (report.posts_added, report.complaints) == (5, 3)
    with store.read() as tx:
        assert tx.counts(since=T0, until=NOW) == {T0: 3}
        row = tx.social_source("file")
    assert (row.status, row.last_error, row.cursor, row.last_success_at) == (
        "ok",
        "skipped",
        "120",
        NOW,
    )


# -- tailing a file ------------------------------------------------------------------------


def _poll(source: FileSource, store: Store, now: datetime = NOW) -> PollResult:
    with store.read() as tx:
        cursor = tx.social_source(source.name).cursor
    result, cursor = source.poll(now=now, cursor=cursor)
    with store.tx() as tx:
        record_poll(tx, result, cursor, now=now)
    return result


def _offset(store: Store) -> int:
    """The byte offset in the file source's stored cursor."""
    with store.read() as tx:
        cursor = tx.social_source("file").cursor
    assert cursor is not None
    return int(cursor.split(":")[0])


def _line(text: str, second: int = 0, **extra: object) -> str:
    return _jsonl({"text": text, "created_at": f"2026-09-17T07:00:{second:02d}Z", **extra})


def test_the_file_source_reads_complete_lines_as_the_file_grows(
    tmp_path: Path, store: Store
) -> None:
    source = FileSource(file_settings(tmp_path))
    path = _write(tmp_path / "posts.jsonl", _line(COMPLAINTS[0], 1) + _line(NOT_COMPLAINTS[0], 2))
    assert [p.text for p in _poll(source, store).posts] == [COMPLAINTS[0], NOT_COMPLAINTS[0]]
    partial = _line(COMPLAINTS[2], 4)
    _append(path, _line(COMPLAINTS[1], 3) + partial[:20])
    assert [p.text for p in _poll(source, store).posts] == [COMPLAINTS[1]]
    assert _offset(store) == path.stat().st_size - 20
    assert _poll(source, store).posts == []
    _append(path, partial[20:])
    assert [p.text for p in _poll(source, store).posts] == [COMPLAINTS[2]]
    with store.read() as tx:
        row = tx.social_source("file")
        assert tx.counts(since=T0, until=NOW, source="file") == {T0: 3}
    assert (row.status, _offset(store), row.last_error) == ("ok", path.stat().st_size, None)
    assert len(_stored(store)) == 4


def test_a_rotated_file_is_read_again_from_the_start(tmp_path: Path, store: Store) -> None:
    source = FileSource(file_settings(tmp_path))
    path = _write(tmp_path / "posts.jsonl", _line(COMPLAINTS[0], 1) + _line(COMPLAINTS[1], 2))
    _poll(source, store)
    _write(path, _line(COMPLAINTS[1], 2))  # rotated: a new, smaller file
    result = _poll(source, store)
    assert [p.text for p in result.posts] == [COMPLAINTS[1]]
    assert _offset(store) == path.stat().st_size
    with store.read() as tx:
        assert tx.counts(since=T0, until=NOW) == {T0: 2}  # the duplicate is not counted
    assert len(_stored(store)) == 2
    # Rotated again, and grown past the offset before the next poll: it starts differently.
    _write(path, _line(COMPLAINTS[2], 3) + _line(NOT_COMPLAINTS[0], 4) + _line(COMPLAINTS[0], 5))
    result = _poll(source, store)
    assert ([p.text for p in result.posts], result.error) == (
        [COMPLAINTS[2], NOT_COMPLAINTS[0], COMPLAINTS[0]],
        None,
    )
    assert _offset(store) == path.stat().st_size


def test_a_missing_file_makes_the_source_unavailable_until_it_appears(tmp_path: Path) -> None:
    source = FileSource(file_settings(tmp_path, "exports/posts.jsonl"))
    result, cursor = source.poll(now=NOW, cursor=None)
    assert (result.status, result.error, cursor) == (
        "unavailable",
        "file not found: exports/posts.jsonl",
        None,
    )
    (tmp_path / "exports").mkdir()
    path = _write(tmp_path / "exports" / "posts.jsonl", _line(COMPLAINTS[0]) + _line(COMPLAINTS[1]))
    result, cursor = source.poll(now=NOW, cursor=None)
    assert (result.status, len(result.posts)) == ("ok", 2)
    path.unlink()  # moved away by the tool, a new file to come
    assert source.poll(now=NOW, cursor=cursor) == (
        PollResult(
            source="file", error="file not found: exports/posts.jsonl", status="unavailable"
        ),
        cursor,
    )
    _write(path, _line(COMPLAINTS[2]) + _line(NOT_COMPLAINTS[0]) + _line(NOT_COMPLAINTS[1]))
    result, cursor = source.poll(now=NOW, cursor=cursor)
    assert (result.status, len(result.posts), result.error) == ("ok", 3, None)
    assert cursor is not None and cursor.startswith(f"{path.stat().st_size}:")


def test_a_malformed_line_is_skipped_and_reported_without_blocking_later_ones(
    tmp_path: Path, store: Store
) -> None:
    source = FileSource(file_settings(tmp_path))
    path = _write(tmp_path / "posts.jsonl", _line(COMPLAINTS[0], 1) + "\n")
    _poll(source, store)
    _append(path, '{"text": "x", "created_at": "kemarin"}\n{oops\n' + _line(COMPLAINTS[1], 2))
    result = _poll(source, store)
    assert [p.text for p in result.posts] == [COMPLAINTS[1]]
    expected = "skipped line 3: created_at is not a date: 'kemarin' (and 1 more)"
    assert (result.status, result.error) == ("ok", expected)
    with store.read() as tx:
        row = tx.social_source("file")
    assert (row.status, row.last_error, _offset(store)) == ("ok", expected, path.stat().st_size)
    assert _poll(source, store).error is None


def test_the_file_source_tails_a_csv_reading_its_header_each_time(
    tmp_path: Path, store: Store
) -> None:
    source = FileSource(file_settings(tmp_path, "posts.csv"))
    path = _write(tmp_path / "posts.csv", "id,created_at,text\n")
    assert _poll(source, store).posts == []
    _append(path, f'1,2026-09-17T07:00:01Z,{COMPLAINTS[0]}\n2,1789628400,"half')
    assert [p.id for p in _poll(source, store).posts] == ["1"]
    _append(path, ' written\nline"\n3,kemarin,x\n')
    result = _poll(source, store)
    assert [(p.id, p.text) for p in result.posts] == [("2", "half written\nline")]
    assert result.error == "skipped line 5: created_at is not a date: 'kemarin'"


def test_a_csv_export_without_a_text_column_makes_the_source_unavailable(
    tmp_path: Path, store: Store
) -> None:
    source = FileSource(file_settings(tmp_path, "posts.csv"))
    _write(tmp_path / "posts.csv", "created_at,body\n1,x\n")
    result, cursor = source.poll(now=NOW, cursor=None)
    assert (result.status, cursor) == ("unavailable", None)
    assert result.error == "posts.csv: line 1: no 'text' column in the CSV header"


def test_an_empty_or_blank_file_waits(tmp_path: Path) -> None:
    source = FileSource(file_settings(tmp_path, "posts.txt"))
    _write(tmp_path / "posts.txt", "")
    assert source.poll(now=NOW, cursor=None) == (PollResult(source="file"), "0")
    _write(tmp_path / "posts.txt", '  \n{"text": "x", "created_at"')
    assert source.poll(now=NOW, cursor=None)[0] == PollResult(source="file")


def test_a_line_longer_than_a_read_is_skipped(tmp_path: Path) -> None:
    source = FileSource(file_settings(tmp_path), max_read=64)
    path = _write(tmp_path / "posts.jsonl", "x" * 100 + "\n" + _line("ok"))
    result, cursor = source.poll(now=NOW, cursor=None)
    assert (result.posts, result.error) == ([], "skipped line 1: a line longer than 64 bytes")
    assert cursor is not None and cursor.startswith("64:")
    errors, posts = [], []
    while not cursor.startswith(f"{path.stat().st_size}:"):
        result, cursor = source.poll(now=NOW, cursor=cursor)
        assert cursor is not None
        errors.append(result.error)
        posts += [p.text for p in result.posts]
    assert posts == ["ok"]
    assert [e for e in errors if e] == [
        "skipped line 1: not valid JSON (Expecting value at column 1)"
    ]
