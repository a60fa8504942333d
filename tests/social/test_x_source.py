"""The x source through tweepy, against X API v2 shapes (``responses``, no network).

Counts come from ``GET /2/tweets/counts/recent``, samples from ``GET /2/tweets/search/recent``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from social_support import COMPLAINTS, NOT_COMPLAINTS, TOKEN, x_settings

from monitor.config import Settings
from monitor.social.sources import PollResult, record_poll
from monitor.social.x import MAX_COUNT_PAGES, XSource
from monitor.store import Store

API = "https://api.twitter.com/2/tweets"
COUNTS = f"{API}/counts/recent"
SEARCH = f"{API}/search/recent"
NOW = datetime(2026, 9, 17, 7, 5, 20, tzinfo=UTC)
T0 = datetime(2026, 9, 17, 7, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'p.db'}")
    yield store
    store.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return x_settings(tmp_path)


def _z(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _snowflake(when: datetime, sequence: int = 0) -> str:
    """An X id made at ``when`` (X ids hold their time)."""
    return str(((int(when.timestamp() * 1000) - 1_288_834_974_657) << 22) + sequence)


def _counts(*counts: tuple[datetime, int], next_token: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"total_tweet_count": sum(n for _, n in counts)}
    if next_token:
        meta["next_token"] = next_token
    data = [{"end": _z(at + MINUTE), "start": _z(at), "tweet_count": n} for at, n in counts]
    return {"json": {"data": data, "meta": meta}}


def _tweet(text: str, at: datetime, *, author: str = "99", lang: str = "in") -> dict[str, Any]:
    post_id = _snowflake(at)
    return {
        "id": post_id,
        "text": text,
        "created_at": _z(at),
        "lang": lang,
        "author_id": author,
        "edit_history_tweet_ids": [post_id],
    }


def _search(*tweets: dict[str, Any]) -> dict[str, Any]:
    if not tweets:
        return {"json": {"meta": {"result_count": 0}}}
    ids = sorted((t["id"] for t in tweets), key=int)
    users = [{"id": "99", "name": "Warga", "username": "user5513"}]
    meta = {"newest_id": ids[-1], "oldest_id": ids[0], "result_count": len(tweets)}
    return {"json": {"data": list(tweets), "includes": {"users": users}, "meta": meta}}


def _error(status: int, title: str, **headers: str) -> dict[str, Any]:
    body = {"title": title, "type": "about:blank", "status": status, "detail": title}
    return {"json": body, "status": status, "headers": headers}


TWEETS = (
    _tweet(COMPLAINTS[0], T0 + timedelta(seconds=31)),
    _tweet(NOT_COMPLAINTS[0], T0 + timedelta(seconds=45), author="7", lang="en"),
)


@contextmanager
def x_api(
    counts: list[dict[str, Any]], search: list[dict[str, Any]]
) -> Iterator[list[requests.PreparedRequest]]:
    """X answering the counts and the search with these, in order (each one used once);
    yields the requests made, filled in when the block ends."""
    made: list[requests.PreparedRequest] = []
    with responses.RequestsMock(assert_all_requests_are_fired=True) as api:
        for answer in counts:
            api.get(COUNTS, **answer)
        for answer in search:
            api.get(SEARCH, **answer)
        try:
            yield made
        finally:
            made.extend(call.request for call in api.calls)


def _params(request: requests.PreparedRequest) -> dict[str, str]:
    return {key: value[0] for key, value in parse_qs(urlsplit(request.url).query).items()}


def _routes(made: list[requests.PreparedRequest]) -> list[str]:
    return [urlsplit(request.url).path.rsplit("/", 2)[-2] for request in made]


def _poll(source: XSource, store: Store, now: datetime) -> PollResult:
    with store.read() as tx:
        cursor = tx.social_source("x").cursor
    result, cursor = source.poll(now=now, cursor=cursor)
    with store.tx() as tx:
        record_poll(tx, result, cursor, now=now)
    return result


def _cursor(store: Store) -> dict[str, Any]:
    with store.read() as tx:
        cursor = tx.social_source("x").cursor
    assert cursor is not None
    data: dict[str, Any] = json.loads(cursor)
    return data


# -- counts and samples ----------------------------------------------------------------


def test_the_first_poll_reaches_back_a_week_and_never_asks_for_the_current_minute(
    settings: Settings, store: Store
) -> None:
    counts = [_counts((T0, 12), (T0 + MINUTE, 3), (T0 + 4 * MINUTE, 0))]
    with x_api(counts, [_search(*TWEETS)]) as made:
        result = _poll(XSource(settings), store, NOW)
    assert _routes(made) == ["counts", "search"]
    sent = _params(made[0])
    start = datetime.fromisoformat(sent["start_time"])
    end = datetime.fromisoformat(sent["end_time"])
    assert (sent["query"], sent["granularity"]) == (settings.social.x_query(), "minute")
    assert NOW - timedelta(days=7) < start <= NOW - timedelta(days=7) + 6 * MINUTE
    assert (start.second, end.second, end) == (0, 0, datetime(2026, 9, 17, 7, 5, tzinfo=UTC))
    assert end <= NOW - timedelta(seconds=10)  # X wants end_time 10 s before the request
    assert made[0].req_kwargs["timeout"] == 20  # type: ignore[attr-defined]
    assert (result.status, result.error, result.counts_final) == ("ok", None, True)
    assert result.counts == {T0: 12, T0 + MINUTE: 3, T0 + 4 * MINUTE: 0}
    with store.read() as tx:
        assert tx.counts(since=T0, until=NOW, source="x") == result.counts
        row = tx.social_source("x")
    assert (row.status, row.last_success_at, row.failures) == ("ok", NOW, 0)
    assert _cursor(store) == {
        "counts_until": "2026-09-17T07:05:00+00:00",
        "since_id": TWEETS[1]["id"],
    }


def test_samples_are_asked_for_with_their_authors_and_stored_as_posts(
    settings: Settings, store: Store
) -> None:
    with x_api([_counts()], [_search(*TWEETS)]) as made:
        result = _poll(XSource(settings), store, NOW)
    sent = _params(made[1])
    assert sent == {
        "query": settings.social.x_query(),
        "max_results": "20",
        "tweet.fields": "created_at,lang,author_id",
        "expansions": "author_id",
        "user.fields": "username",
    }
    first, second = result.posts
    assert (first.id, first.text, first.lang, first.author) == (
        TWEETS[0]["id"],
        COMPLAINTS[0],
        "id",  # X's "in" is Indonesian
        "user5513",
    )
    assert first.url == f"https://x.com/user5513/status/{first.id}"
    assert first.created_at == T0 + timedelta(seconds=31)
    assert (second.author, second.lang, second.url) == (
        None,
        "en",
        f"https://x.com/i/web/status/{second.id}",
    )
    with store.read() as tx:
        rows = {row.external_id: row for row in tx.posts()}
        assert tx.counts(since=T0, until=NOW, source="x") == {}  # samples are not the volume
    assert (rows[first.id].complaint, rows[first.id].dedupe_key) == (True, f"x:{first.id}")
    assert rows[second.id].complaint is False


def test_the_next_poll_asks_again_for_recent_minutes_and_for_posts_since_the_last(
    settings: Settings, store: Store
) -> None:
    source = XSource(settings)
    with x_api([_counts((T0 + 4 * MINUTE, 2))], [_search(*TWEETS)]):
        _poll(source, store, NOW)
    later = NOW + MINUTE
    newer = _tweet(COMPLAINTS[1], NOW + timedelta(seconds=2))
    revised = [_counts((T0 + 4 * MINUTE, 5), (T0 + 5 * MINUTE, 1))]
    with x_api(revised, [_search(newer, *TWEETS)]) as made:
        result = _poll(source, store, later)
    counts, search = (_params(request) for request in made)
    assert counts["start_time"] == "2026-09-17T07:00:00Z"  # five minutes before the cursor
    assert counts["end_time"] == "2026-09-17T07:06:00Z"
    assert search["since_id"] == TWEETS[1]["id"]
    assert len(result.posts) == 3
    with store.read() as tx:
        assert tx.counts(since=T0, until=later, source="x") == {
            T0 + 4 * MINUTE: 5,  # replaced, not added to
            T0 + 5 * MINUTE: 1,
        }
        assert len(tx.posts()) == 3  # the two already stored are not stored again
    assert _cursor(store)["since_id"] == newer["id"]


def test_a_poll_with_nothing_new_keeps_the_last_sample_id(settings: Settings, store: Store) -> None:
    source = XSource(settings)
    with x_api([_counts()], [_search(*TWEETS)]):
        _poll(source, store, NOW)
    with x_api([_counts()], [_search()]):
        result = _poll(source, store, NOW + MINUTE)
    assert (result.status, result.posts) == ("ok", [])
    assert _cursor(store)["since_id"] == TWEETS[1]["id"]


def test_counts_are_read_page_after_page(settings: Settings, store: Store) -> None:
    pages = [
        _counts((T0, 1), next_token="1jzu9lk96gu5npW"),
        _counts((T0 + MINUTE, 2), next_token="1jzu9lk96gu5npX"),
        _counts((T0 + 2 * MINUTE, 3)),
    ]
    with x_api(pages, [_search()]) as made:
        result = _poll(XSource(settings), store, NOW)
    tokens = [_params(request).get("next_token") for request in made[:3]]
    assert tokens == [None, "1jzu9lk96gu5npW", "1jzu9lk96gu5npX"]
    assert {_params(request)["start_time"] for request in made[:3]} == {
        _params(made[0])["start_time"]
    }
    assert result.counts == {T0: 1, T0 + MINUTE: 2, T0 + 2 * MINUTE: 3}


def test_pages_of_counts_are_bounded_per_poll(
    settings: Settings, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    pages = [_counts((T0 - n * MINUTE, n), next_token=f"t{n}") for n in range(MAX_COUNT_PAGES)]
    with x_api(pages, [_search()]) as made:
        result = _poll(XSource(settings), store, NOW)
    assert _routes(made) == ["counts"] * MAX_COUNT_PAGES + ["search"]
    assert len(result.counts) == MAX_COUNT_PAGES
    assert "x counts truncated" in caplog.text
    assert _cursor(store)["counts_until"] == "2026-09-17T07:05:00+00:00"


def test_after_a_week_away_the_window_and_the_sample_id_stay_within_seven_days(
    settings: Settings,
) -> None:
    old = NOW - timedelta(days=9)
    cursor = json.dumps({"counts_until": old.isoformat(), "since_id": _snowflake(old)})
    with x_api([_counts()], [_search()]) as made:
        XSource(settings).poll(now=NOW, cursor=cursor)
    counts, search = (_params(request) for request in made)
    assert datetime.fromisoformat(counts["start_time"]) > NOW - timedelta(days=7)
    assert "since_id" not in search


def test_an_unreadable_cursor_starts_afresh(settings: Settings) -> None:
    with x_api([_counts()], [_search()]) as made:
        result, cursor = XSource(settings).poll(now=NOW, cursor="{not json")
    start = datetime.fromisoformat(_params(made[0])["start_time"])
    assert start < NOW - timedelta(days=6)
    assert result.status == "ok" and cursor is not None


# -- failures ----------------------------------------------------------------------------


def test_a_rate_limit_waits_until_x_says(settings: Settings, store: Store) -> None:
    reset = int((NOW + timedelta(minutes=12)).timestamp())
    limited = _error(429, "Too Many Requests", **{"x-rate-limit-reset": str(reset)})
    with x_api([limited], []):
        result = _poll(XSource(settings), store, NOW)
    at = datetime.fromtimestamp(reset, UTC)
    assert (result.status, result.error, result.retry_after) == (
        "rate_limited",
        "rate limited by X (429)",
        at,
    )
    with store.read() as tx:
        row = tx.social_source("x")
    assert (row.status, row.retry_after, row.failures, row.last_success_at) == (
        "rate_limited",
        at,
        1,
        None,
    )
    assert _cursor(store) == {"counts_until": None, "since_id": None, "failures": 1}


def test_a_rate_limit_without_a_reset_backs_off(settings: Settings) -> None:
    with x_api([_error(429, "Too Many Requests")], []):
        result, _ = XSource(settings).poll(now=NOW, cursor=None)
    assert (result.status, result.retry_after) == ("rate_limited", NOW + MINUTE)


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (_error(503, "Service Unavailable"), "X had a server error (503)"),
        ({"body": requests.ConnectionError("connection refused")}, "could not reach X"),
        ({"body": requests.ReadTimeout("read timed out")}, "X did not answer within 20s"),
        ({"body": "<html>Bad gateway</html>"}, "X answered in an unexpected shape (not JSON)"),
        ({"json": {"data": [{"start": "yesterday"}]}}, "X answered in an unexpected shape"),
    ],
)
def test_a_failing_x_is_unavailable_with_a_growing_backoff(
    settings: Settings, store: Store, answer: dict[str, Any], error: str
) -> None:
    source = XSource(settings)
    waits = []
    for _ in range(7):
        with x_api([answer], []):
            result = _poll(source, store, NOW)
        assert result.status == "unavailable"
        assert result.error is not None and result.error.startswith(error)
        assert result.retry_after is not None
        waits.append(result.retry_after - NOW)
    assert waits == [timedelta(minutes=m) for m in (1, 2, 4, 8, 16, 30, 30)]
    with store.read() as tx:
        row = tx.social_source("x")
    assert (row.status, row.failures, row.last_error) == ("unavailable", 7, result.error)
    with x_api([_counts()], [_search()]):
        _poll(source, store, NOW)
    with store.read() as tx:
        row = tx.social_source("x")
    assert (row.status, row.failures, row.retry_after) == ("ok", 0, None)
    assert "failures" not in _cursor(store)


def test_counts_fetched_before_the_search_failed_are_kept(settings: Settings, store: Store) -> None:
    source = XSource(settings)
    with x_api([_counts()], [_search(*TWEETS)]):
        _poll(source, store, NOW)
    with x_api([_counts((T0 + 5 * MINUTE, 4))], [_error(503, "Service Unavailable")]):
        result = _poll(source, store, NOW + MINUTE)
    assert (result.status, result.counts) == ("unavailable", {T0 + 5 * MINUTE: 4})
    with store.read() as tx:
        assert tx.counts(since=T0, until=NOW + MINUTE, source="x") == {T0 + 5 * MINUTE: 4}
    assert _cursor(store) == {
        "counts_until": "2026-09-17T07:06:00+00:00",
        "since_id": TWEETS[1]["id"],
        "failures": 1,
    }


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_token_is_reported_without_the_token_anywhere(
    settings: Settings, store: Store, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    caplog.set_level(logging.DEBUG)
    source = XSource(settings)
    with x_api([_error(status, "Unauthorized")], []) as made:
        result = _poll(source, store, NOW)
    assert made[0].headers["Authorization"] == f"Bearer {TOKEN}"  # it was sent, to X only
    assert (result.status, result.error) == (
        "unavailable",
        f"X refused the bearer token ({status})",
    )
    with store.read() as tx:
        row = tx.social_source("x")
    shown = [repr(result), repr(settings), repr(source.__dict__)]
    shown += [str(value) for value in row.model_dump().values()]
    logged = [record.getMessage() for record in caplog.records]
    assert any("Bearer ***" in message for message in logged)  # tweepy's debug, masked
    assert not any(TOKEN in text for text in shown + logged)
    assert not any(TOKEN[:20] in text for text in shown + logged)
