"""The ``x`` source: complaint volume from X's recent counts, samples from its recent search.

Each poll asks ``GET /2/tweets/counts/recent`` (``granularity=minute``) for the complete
minutes since the cursor, and ``GET /2/tweets/search/recent`` for the newest posts since
the last sample. The first poll reaches back as far as X allows (seven days, less
:data:`BACKFILL_MARGIN`), so the baseline starts with a week. Later polls ask again for
the last :data:`REVISED` minutes, as X revises recent counts while it indexes, and those
counts replace the stored ones (``counts_final``). The minute in progress is never
asked for.

The cursor is a small JSON object: ``counts_until`` (the end of the last complete minute
counted, ISO 8601), ``since_id`` (the newest sample's id) and ``failures`` (consecutive
failed polls, for the backoff: the source keeps it in the cursor so that it survives a
restart and the source object holds no state). A failed poll returns
``retry_after = now + min(2**failures minutes, 30 minutes)`` (1, 2, 4, ... minutes), or
the end of X's rate-limit window when X names it.

:class:`XSource` is the one place that talks to X for listening (tweepy, with a request
timeout); tweepy's and requests' exceptions become a status and a short, secret-free
error. tweepy logs the ``Authorization`` header at debug level: the bearer token is
masked in those records (:class:`_MaskBearerToken`).
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import requests

from monitor.clock import utc
from monitor.social.sources import PollResult, PostIn, SourceStatus, iso_language, minute_of

if TYPE_CHECKING:
    from monitor.config import Settings
    from monitor.fields import Secret

log = logging.getLogger(__name__)

#: How long one request to X may take.
DEFAULT_TIMEOUT = 20.0
#: X keeps seven days for the recent endpoints and refuses an older ``start_time``.
LOOKBACK = timedelta(days=7)
#: The first poll starts this much inside the seven days (time passes during the request).
BACKFILL_MARGIN = timedelta(minutes=5)
#: X revises the counts of the last minutes while it indexes: they are asked for again.
REVISED = timedelta(minutes=5)
#: X wants ``end_time`` at least 10 s before the request; the last minute ends before this.
END_LAG = timedelta(seconds=15)
#: At most this many pages of counts per poll (a week of minutes may take several).
MAX_COUNT_PAGES = 10
#: The longest wait after failures (a rate limit waits as long as X says).
MAX_BACKOFF = timedelta(minutes=30)

COUNTS_ROUTE = "/2/tweets/counts/recent"
# Twitter's snowflake epoch: an id holds its creation time in milliseconds from this.
_SNOWFLAKE_EPOCH_MS = 1_288_834_974_657


class XClient(Protocol):
    """What :class:`XSource` needs of ``tweepy.Client`` (built with ``return_type=dict``)."""

    def request(self, method: str, route: str, params: dict[str, Any] | None = None) -> Any:
        """The ``requests.Response`` of one API call; raises tweepy's HTTP exceptions."""
        ...

    def search_recent_tweets(self, query: str, **params: Any) -> Any:
        """The JSON body of ``GET /2/tweets/search/recent``."""
        ...


@dataclass(frozen=True, slots=True)
class _Cursor:
    """Where the x source resumes (stored as JSON in ``social_source.cursor``)."""

    counts_until: datetime | None = None
    since_id: str | None = None
    failures: int = 0

    @classmethod
    def parse(cls, text: str | None) -> _Cursor:
        """The cursor in ``text``; a fresh one when there is none or it is unreadable."""
        try:
            data = json.loads(text) if text else {}
            until = data.get("counts_until")
            since_id = data.get("since_id")
            return cls(
                counts_until=utc(datetime.fromisoformat(until)) if until else None,
                since_id=str(since_id) if since_id else None,
                failures=max(int(data.get("failures", 0)), 0),
            )
        except (AttributeError, TypeError, ValueError):
            log.warning("x cursor unreadable, starting afresh")
            return cls()

    def dump(self) -> str:
        data: dict[str, Any] = {
            "counts_until": self.counts_until.isoformat() if self.counts_until else None,
            "since_id": self.since_id,
        }
        if self.failures:
            data["failures"] = self.failures
        return json.dumps(data)


class _XFailure(Exception):
    """One request to X failed: its status for the source, and a secret-free message."""

    def __init__(self, status: SourceStatus, message: str, *, reset: datetime | None = None):
        super().__init__(message)
        self.status: SourceStatus = status
        self.message = message
        self.reset = reset


class XSource:
    """The ``x`` source (see the module docstring). ``client`` replaces the tweepy
    client built from ``[social] bearer_token``."""

    name = "x"

    def __init__(
        self,
        settings: Settings,
        *,
        client: XClient | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        social = settings.social
        self.query = social.x_query()
        self.sample_size = social.sample_size
        self.timeout = timeout
        if client is None:
            if social.bearer_token is None:
                raise ValueError("the x source needs [social] bearer_token")
            client = tweepy_client(social.bearer_token, timeout=timeout)
        self._client = client

    def poll(self, *, now: datetime, cursor: str | None) -> tuple[PollResult, str | None]:
        """Counts of the complete minutes since the cursor, and new samples.

        A failure stops the poll: what was fetched before it (the counts, when the
        search failed) is returned with the failure's status; the cursor then keeps its
        ``since_id`` and counts one more failure. Never raises for a failure of X.
        """
        state = _Cursor.parse(cursor)
        counts: dict[datetime, int] = {}
        try:
            window = _counts_window(state.counts_until, now=now)
            if window is not None:
                counts = self._counts(*window)
                state = replace(state, counts_until=window[1])
            posts, newest = self._samples(_usable_since_id(state.since_id, now=now))
        except _XFailure as failure:
            waited = failure.reset if failure.reset and failure.reset > now else None
            result = PollResult(
                source=self.name,
                counts=counts,
                counts_final=True,
                posts=[],
                error=failure.message,
                status=failure.status,
                retry_after=waited or now + backoff(state.failures),
            )
            return result, replace(state, failures=state.failures + 1).dump()
        state = replace(state, since_id=newest or state.since_id, failures=0)
        result = PollResult(source=self.name, counts=counts, counts_final=True, posts=posts)
        return result, state.dump()

    def _counts(self, start: datetime, end: datetime) -> dict[datetime, int]:
        """Tweets per minute in ``[start, end)``, over at most MAX_COUNT_PAGES pages."""
        params: dict[str, Any] = {
            "query": self.query,
            "granularity": "minute",
            "start_time": _x_time(start),
            "end_time": _x_time(end),
        }
        counts: dict[datetime, int] = {}
        for _ in range(MAX_COUNT_PAGES):
            # tweepy's get_recent_tweets_count does not take next_token (it sends it, but
            # warns through the deprecated Logger.warn), so the route is called directly.
            body = self._call(self._client.request, "GET", COUNTS_ROUTE, params=params)
            with _reading_x():
                for bucket in body.get("data") or []:
                    minute = minute_of(_parse_x_time(bucket["start"]))
                    if start <= minute < end:
                        counts[minute] = int(bucket["tweet_count"])
                token = (body.get("meta") or {}).get("next_token")
            if not token:
                return counts
            params["next_token"] = token
        log.warning(
            "x counts truncated pages=%s start=%s end=%s minutes=%s",
            MAX_COUNT_PAGES,
            start.isoformat(),
            end.isoformat(),
            len(counts),
        )
        return counts

    def _samples(self, since_id: str | None) -> tuple[list[PostIn], str | None]:
        """The newest posts (at most ``sample_size``) after ``since_id``, and the newest id."""
        body = self._call(
            self._client.search_recent_tweets,
            self.query,
            max_results=self.sample_size,
            tweet_fields=["created_at", "lang", "author_id"],
            expansions=["author_id"],
            user_fields=["username"],
            since_id=since_id,
        )
        with _reading_x():
            users = {
                str(user["id"]): str(user["username"])
                for user in (body.get("includes") or {}).get("users") or []
                if user.get("username")
            }
            posts = [_post(tweet, users) for tweet in body.get("data") or []]
            newest = (body.get("meta") or {}).get("newest_id")
        if posts and not newest:
            newest = max((post.id for post in posts if post.id), key=int, default=None)
        return posts, str(newest) if newest else None

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The JSON object X answered; raises _XFailure (never with a secret in it)."""
        import tweepy

        try:
            answer = method(*args, **kwargs)
            body = answer.json() if isinstance(answer, requests.Response) else answer
        except tweepy.TooManyRequests as exc:
            reset = datetime.fromtimestamp(exc.reset_time, UTC) if exc.reset_time else None
            raise _XFailure("rate_limited", "rate limited by X (429)", reset=reset) from exc
        except tweepy.HTTPException as exc:
            raise _http_failure(exc.response.status_code) from exc
        except requests.JSONDecodeError as exc:
            raise _XFailure("unavailable", "X answered in an unexpected shape (not JSON)") from exc
        except requests.Timeout as exc:
            raise _XFailure("unavailable", f"X did not answer within {self.timeout:g}s") from exc
        except requests.ConnectionError as exc:
            message = f"could not reach X ({type(exc).__name__})"
            raise _XFailure("unavailable", message) from exc
        except (requests.RequestException, tweepy.TweepyException, ValueError) as exc:
            message = f"the request to X failed ({type(exc).__name__})"
            raise _XFailure("unavailable", message) from exc
        if not isinstance(body, dict):
            raise _XFailure("unavailable", "X answered in an unexpected shape")
        return body


def backoff(failures: int) -> timedelta:
    """The wait after ``failures`` earlier consecutive failures: 1, 2, 4 ... minutes,
    at most MAX_BACKOFF."""
    return min(timedelta(minutes=2 ** min(max(failures, 0), 6)), MAX_BACKOFF)


def tweepy_client(token: Secret, *, timeout: float = DEFAULT_TIMEOUT) -> XClient:
    """A tweepy client for X API v2 (app-only bearer token) whose requests time out."""
    import tweepy

    _mask_bearer_token_in_tweepy_logs()
    client = tweepy.Client(
        bearer_token=token.reveal(),
        return_type=dict,
        # A rate limit is reported (with when to try again), never slept through.
        wait_on_rate_limit=False,
    )
    # tweepy gives requests no timeout: one hung connection would hang the poller.
    session = client.session
    session.request = functools.partial(session.request, timeout=timeout)
    return client  # type: ignore[no-any-return]


class _MaskBearerToken(logging.Filter):
    """Masks ``Bearer <token>`` in tweepy's records (it logs request headers at debug)."""

    _BEARER = re.compile(r"(Bearer\s+)[^\s'\",}]+")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "Bearer" in message:
            record.msg, record.args = self._BEARER.sub(r"\1***", message), ()
        return True


def _mask_bearer_token_in_tweepy_logs() -> None:
    logger = logging.getLogger("tweepy.client")
    if not any(isinstance(existing, _MaskBearerToken) for existing in logger.filters):
        logger.addFilter(_MaskBearerToken())


def _http_failure(status: int) -> _XFailure:
    if status in (401, 403):
        return _XFailure("unavailable", f"X refused the bearer token ({status})")
    if status >= 500:
        return _XFailure("unavailable", f"X had a server error ({status})")
    return _XFailure("unavailable", f"X rejected the request ({status})")


@contextmanager
def _reading_x() -> Iterator[None]:
    """Turns a KeyError/TypeError/ValueError while reading X's JSON into an _XFailure."""
    try:
        yield
    except (KeyError, TypeError, ValueError) as exc:
        message = f"X answered in an unexpected shape ({type(exc).__name__})"
        raise _XFailure("unavailable", message) from exc


def _counts_window(
    counts_until: datetime | None, *, now: datetime
) -> tuple[datetime, datetime] | None:
    """``[start, end)`` of the counts to ask for: whole minutes, none in progress, within
    X's seven days; None when there is no complete minute to ask for."""
    end = minute_of(now - END_LAG)
    earliest = minute_of(now - LOOKBACK) + BACKFILL_MARGIN
    start = earliest if counts_until is None else max(minute_of(counts_until) - REVISED, earliest)
    return (start, end) if start < end else None


def _usable_since_id(since_id: str | None, *, now: datetime) -> str | None:
    """``since_id`` unless its post is older than X's seven days (X would refuse it)."""
    if since_id is None or not since_id.isdigit():
        return None
    return since_id if _snowflake_time(since_id) > now - LOOKBACK + BACKFILL_MARGIN else None


def _snowflake_time(post_id: str) -> datetime:
    """When the post with this X id was made (the id holds it, in milliseconds)."""
    return datetime.fromtimestamp(((int(post_id) >> 22) + _SNOWFLAKE_EPOCH_MS) / 1000, UTC)


def _post(tweet: dict[str, Any], users: dict[str, str]) -> PostIn:
    """A search result as a PostIn (raises KeyError/TypeError/ValueError on a bad shape)."""
    post_id = str(tweet["id"])
    username = users.get(str(tweet.get("author_id")))
    made = tweet.get("created_at")
    created_at = _parse_x_time(made) if made else _snowflake_time(post_id)
    lang = tweet.get("lang")
    return PostIn(
        text=str(tweet["text"]),
        created_at=created_at,
        id=post_id,
        lang=iso_language(lang) if isinstance(lang, str) else None,
        url=f"https://x.com/{username}/status/{post_id}"
        if username
        else f"https://x.com/i/web/status/{post_id}",
        author=username,
    )


def _parse_x_time(value: str) -> datetime:
    """X's ``2026-09-17T07:00:31.000Z`` as an aware UTC datetime."""
    return utc(datetime.fromisoformat(value))


def _x_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
