"""Incident statements posted to X as a thread, recorded so a failure can be resumed.

The incident update is committed before anything is posted; posting only writes
its :class:`~monitor.store.XPostRow`. The row's parts are fixed when it is created,
and the id of every post is committed as soon as X returns it, so a failure (or a
crash) in the middle of a thread leaves a row that :func:`resume_post` continues
from the first part not yet posted, replying to the last one that was.

:class:`TweepyPoster` is the one place that talks to X (through tweepy); it turns
tweepy's and requests' exceptions into :class:`XPostError` with a short,
secret-free message.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import requests
from sqlalchemy import update
from sqlmodel import col

from monitor.alerts import incident_url
from monitor.config import Settings, XPostSettings
from monitor.i18n import format_time
from monitor.store import IncidentUpdateRow, Store, XPostRow

log = logging.getLogger(__name__)

#: The most a post may weigh, as X counts (see :func:`weighted_length`).
MAX_CHARS = 280
#: What X counts for any link it recognises, however long.
URL_WEIGHT = 23
#: How long one request to X may take.
DEFAULT_TIMEOUT = 20.0

# X's weighting (twitter-text v3): these code points count 1, every other one 2.
_LIGHT_RANGES = ((0x0000, 0x10FF), (0x2000, 0x200D), (0x2010, 0x201F), (0x2032, 0x2037))
# ... except these, which X counts as emoji (2).
_EMOJI_IN_LIGHT = frozenset({0x00A9, 0x00AE})
# A link, with or without scheme, not glued to a word before it (X links neither).
_URL = re.compile(
    r"(?<![A-Za-z0-9@$#])(?P<scheme>https?://)?"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+(?P<tld>[A-Za-z][A-Za-z0-9-]*)"
    r"(?::\d{1,5})?(?:[/?#][A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*)?",
    re.IGNORECASE,
)
# X leaves trailing punctuation out of a link; we leave out a little more (never less).
_URL_TAIL = re.compile(r"[^A-Za-z0-9/_=-]+$")
# Generic top-level domains X links (two-letter country ones are all taken as real).
_GENERIC_TLD_NAMES = (
    "com net org info biz gov edu mil int app dev xyz online site tech cloud news page link "
    "blog shop store live media world asia"
)
_GENERIC_TLDS = frozenset(_GENERIC_TLD_NAMES.split())
# Where a sentence ends: after . ! ? or … (and closing quotes or brackets), before a space.
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s)|(?=\n)")
_WORD_END = re.compile(r"(?<=\S)(?=\s)")


class XPostError(Exception):
    """Posting to X failed or cannot start. ``message`` is short and secret-free;
    ``status`` is X's HTTP status when there was one; ``retry_at`` is when a rate
    limit ends, when X said."""

    def __init__(
        self, message: str, status: int | None = None, *, retry_at: datetime | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_at = retry_at


@dataclass(frozen=True, slots=True)
class XPostResult:
    """What became of a statement's thread: its ``x_post`` row, as posted so far."""

    #: The XPostRow id (what ``resume_post`` takes).
    post_id: int
    #: posted | failed (pending only when read from a row still being posted).
    status: str
    #: The X ids of the posts made, in thread order (all of them when posted).
    post_ids: tuple[str, ...]
    #: Why it failed: short, for people, never holding a secret.
    error: str | None
    #: The thread's texts, fixed when the row was created.
    parts: tuple[str, ...] = ()

    @property
    def url(self) -> str | None:
        """The address of the thread's first post, once there is one."""
        return f"https://x.com/i/web/status/{self.post_ids[0]}" if self.post_ids else None

    @classmethod
    def from_row(cls, row: XPostRow) -> XPostResult:
        assert row.id is not None
        return cls(
            post_id=row.id,
            status=row.status,
            post_ids=tuple(json.loads(row.post_ids)),
            error=row.error,
            parts=tuple(json.loads(row.parts)),
        )


class XPoster(Protocol):
    """Makes one post. Returns its X id; raises XPostError."""

    def create(self, text: str, reply_to: str | None) -> str: ...


# -- counting and splitting -------------------------------------------------------


def _normalize(text: str) -> str:
    # X counts (and stores) text in NFC.
    return unicodedata.normalize("NFC", text.replace("\r\n", "\n"))


def _char_weight(char: str) -> int:
    point = ord(char)
    if point in _EMOJI_IN_LIGHT:
        return 2
    return 1 if any(low <= point <= high for low, high in _LIGHT_RANGES) else 2


def _url_weight(url: str, *, scheme: bool, tld: str) -> int:
    # With a scheme and a real top-level domain X always links it: 23. A bare domain is
    # linked only sometimes (a ccTLD needs a path), so count whichever is more.
    real_tld = (len(tld) == 2 and tld.isalpha()) or tld.lower() in _GENERIC_TLDS
    return URL_WEIGHT if scheme and real_tld else max(len(url), URL_WEIGHT)


def weighted_length(text: str) -> int:
    """The length of ``text`` as X counts it, or a little more, never less.

    The approximation of X's rules (twitter-text v3): text is taken in NFC; Latin,
    Indonesian, and general punctuation count 1 per code point; other code points (CJK,
    emoji, symbols) count 2 each, so an emoji sequence such as 👍🏽 counts 4 where X counts
    2; a link with ``http(s)://`` and a real top-level domain counts 23; a bare domain
    (``prakerja.go.id``) counts 23 or its length, whichever is more, as X links only some.
    """
    text = _normalize(text)
    total, pos = 0, 0
    for match in _URL.finditer(text):
        if len(match["tld"]) == 1:
            continue  # "s.d." or "a.n.": no top-level domain has one letter
        url = _URL_TAIL.sub("", match.group())  # never reaches into the domain
        total += sum(_char_weight(char) for char in text[pos : match.start()])
        total += _url_weight(url, scheme=match.group("scheme") is not None, tld=match["tld"])
        pos = match.start() + len(url)
    return total + sum(_char_weight(char) for char in text[pos:])


def _largest_fitting(cuts: Sequence[int], fits: Callable[[int], bool]) -> int | None:
    """The largest cut in ascending ``cuts`` that fits, by bisection (weights grow with
    the cut, nearly always; the answer is tested, so it fits even when they do not)."""
    low, high, best = 0, len(cuts) - 1, None
    while low <= high:
        middle = (low + high) // 2
        if fits(cuts[middle]):
            best, low = cuts[middle], middle + 1
        else:
            high = middle - 1
    return best


def _joins_previous(text: str, pos: int) -> bool:
    """True when cutting before ``pos`` would split a character from its marks."""
    char = text[pos]
    point = ord(char)
    return (
        unicodedata.combining(char) != 0
        or point in (0x200D, 0xFE0E, 0xFE0F, 0x20E3)
        or 0x1F3FB <= point <= 0x1F3FF
        or 0xE0020 <= point <= 0xE007F
        or text[pos - 1] == "\u200d"
    )


def _hard_cut(text: str, fits: Callable[[int], bool]) -> int:
    """Where to cut a word too long for one post (anywhere but inside a character)."""
    cut = _largest_fitting(range(1, len(text) + 1), fits)
    if cut is None:
        raise ValueError("a post cannot hold even one character of the statement")
    while 1 < cut < len(text) and _joins_previous(text, cut):
        cut -= 1
    return cut


def _head(text: str, fits: Callable[[str], bool]) -> tuple[str, str]:
    """Split ``text`` into the longest head that ``fits`` and the rest.

    Cuts at the end of a sentence, unless that leaves the post less than half as full
    as cutting at the end of a word would; a word too long for a post is cut anywhere.
    """
    if fits(text):
        return text, ""

    def fits_at(cut: int) -> bool:
        return fits(text[:cut].rstrip())

    sentence = _largest_fitting([m.end() for m in _SENTENCE_END.finditer(text)], fits_at)
    word = _largest_fitting([m.end() for m in _WORD_END.finditer(text)], fits_at)
    cut = sentence
    if word is not None and (
        sentence is None
        or 2 * weighted_length(text[:sentence]) < weighted_length(text[:word].rstrip())
    ):
        cut = word
    if cut is None or not text[:cut].strip():
        cut = _hard_cut(text, fits_at)
    return text[:cut].rstrip(), text[cut:].lstrip()


def _compose(chunk: str, label: str, link: str | None) -> str:
    post = f"{chunk} ({label})"
    return f"{post}\n\n{link}" if link else post


def _chunks(statements: Sequence[str], link: str, *, width: int) -> list[str]:
    """The statements cut into chunks that fit a post numbered with ``width`` digits."""
    widest = f"{'9' * width}/{'9' * width}"
    chunks: list[str] = []
    for statement in statements:
        rest = statement
        while rest:
            with_link = link if not chunks else None

            def fits(chunk: str, with_link: str | None = with_link) -> bool:
                return weighted_length(_compose(chunk, widest, with_link)) <= MAX_CHARS

            chunk, rest = _head(rest, fits)
            chunks.append(chunk)
    return chunks


def thread_parts(texts: Sequence[str], link: str) -> list[str]:
    """Split statements (one per language, in order) into posts of at most
    :data:`MAX_CHARS` as X counts them (see :func:`weighted_length`).

    When everything fits one post, that post is the statements and the link, each in
    its own paragraph. Otherwise each statement starts a new post and is cut at the end
    of a sentence, else of a word, else (a word longer than a post) anywhere; posts are
    numbered ``(1/3)``, and the first one ends with the link. Empty statements are
    skipped. Raises ValueError when there is no text at all.
    """
    statements = [text for text in (_normalize(t).strip() for t in texts) if text]
    if not statements:
        raise ValueError("there is no text to post")
    single = "\n\n".join([*statements, link])
    if weighted_length(single) <= MAX_CHARS:
        return [single]
    width = 1
    chunks = _chunks(statements, link, width=width)
    while len(str(len(chunks))) > width:  # "(10/12)" is wider than the "(9/9)" reserved
        width += 1
        chunks = _chunks(statements, link, width=width)
    total = len(chunks)
    return [
        _compose(chunk, f"{number}/{total}", link if number == 1 else None)
        for number, chunk in enumerate(chunks, start=1)
    ]


def statement_texts(entry: IncidentUpdateRow, languages: Sequence[str]) -> list[str]:
    """The texts of a timeline entry in ``languages`` order, without empty ones and
    without one equal to a text already listed."""
    texts: list[str] = []
    for lang in languages:
        text = _normalize(entry.message_en if lang == "en" else entry.message_id).strip()
        if text and text not in texts:
            texts.append(text)
    return texts


# -- the tweepy adapter -------------------------------------------------------------


class TweepyPoster:
    """The tweepy adapter: the one place that talks to X (API v2, OAuth 1.0a user context)."""

    def __init__(self, credentials: XPostSettings, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        import tweepy

        self.timeout = timeout
        self._client = tweepy.Client(
            consumer_key=credentials.api_key.reveal(),
            consumer_secret=credentials.api_secret.reveal(),
            access_token=credentials.access_token.reveal(),
            access_token_secret=credentials.access_token_secret.reveal(),
            # A rate limit is reported (with when to try again), never slept through.
            wait_on_rate_limit=False,
        )
        # tweepy gives requests no timeout: one hung connection would hang the command.
        session = self._client.session
        session.request = functools.partial(session.request, timeout=timeout)

    def create(self, text: str, reply_to: str | None) -> str:
        """Post ``text`` (as a reply to ``reply_to``); its X id. Raises XPostError."""
        import tweepy

        try:
            response = self._client.create_tweet(text=text, in_reply_to_tweet_id=reply_to)
        except (tweepy.TweepyException, requests.RequestException) as exc:
            raise _x_error(exc, timeout=self.timeout) from exc
        data = response.data if isinstance(response.data, dict) else {}
        if not data.get("id"):
            raise XPostError("X answered without the id of the post")
        return str(data["id"])


def _x_error(exc: Exception, *, timeout: float = DEFAULT_TIMEOUT) -> XPostError:
    """The XPostError for an exception of tweepy or requests; never holds a secret."""
    import tweepy

    if isinstance(exc, tweepy.TooManyRequests):
        return XPostError("rate limited by X (429)", 429, retry_at=_rate_limit_reset(exc))
    if isinstance(exc, tweepy.HTTPException):
        return _http_error(exc.response.status_code, "; ".join(map(str, exc.api_messages)))
    if isinstance(exc, requests.Timeout):
        return XPostError(f"X did not answer within {timeout:g}s")
    if isinstance(exc, requests.ConnectionError):
        return XPostError(f"could not reach X ({type(exc).__name__})")
    if isinstance(exc, requests.RequestException):
        return XPostError(f"the request to X failed ({type(exc).__name__})")
    return XPostError(f"tweepy failed ({type(exc).__name__})")


def _http_error(status: int, detail: str) -> XPostError:
    detail = " ".join(detail.split())[:200]
    if status == 401:
        return XPostError("X refused the credentials (401)", status)
    if status == 403 and "duplicate" in detail.lower():
        return XPostError("X rejected the post as duplicate content (403)", status)
    if status >= 500:
        return XPostError(f"X had a server error ({status}); try again later", status)
    verb = "refused" if status == 403 else "rejected"
    return XPostError(f"X {verb} the post ({status})" + (f": {detail}" if detail else ""), status)


def _rate_limit_reset(exc: Any) -> datetime | None:
    """When the limit that stopped us ends: the 15-minute window (``x-rate-limit-reset``)
    or, when one is used up, the 24-hour limit of the user or of the app."""
    headers = exc.response.headers
    resets = [exc.reset_time] if exc.reset_time is not None else []
    for limit in ("x-user-limit-24hour", "x-app-limit-24hour"):
        if (
            headers.get(f"{limit}-remaining") == "0"
            and str(headers.get(f"{limit}-reset")).isdigit()
        ):
            resets.append(int(headers[f"{limit}-reset"]))
    return datetime.fromtimestamp(max(resets), UTC) if resets else None


# -- posting and resuming ------------------------------------------------------------


def _credentials(settings: Settings) -> XPostSettings:
    if settings.incidents.x is None:
        raise XPostError("posting to X is not configured: add [incidents.x] to the config")
    if not settings.site.base_url:
        raise XPostError(
            "[site] base_url is not set: a post to X needs the incident page's address"
        )
    return settings.incidents.x


def _retry_hint(retry_at: datetime, *, now: datetime, zone: ZoneInfo) -> str:
    """``try again after 14:05 WIB`` (with the date when it is not today)."""
    if retry_at.second or retry_at.microsecond:  # 14:04:30 would read as "after 14:04"
        retry_at = retry_at.replace(second=0, microsecond=0) + timedelta(minutes=1)
    shown = format_time(retry_at, zone, "en")
    if retry_at.astimezone(zone).date() == now.astimezone(zone).date():
        shown = shown.split(", ", 1)[1]
    return f"try again after {shown}"


def _describe(exc: XPostError, settings: Settings, *, now: datetime, resumed: bool) -> str:
    message = exc.message
    if exc.retry_at is not None:
        message += "; " + _retry_hint(exc.retry_at, now=now, zone=settings.site.zone)
    if resumed and exc.status == 403 and "duplicate" in message:
        message += "; the part may already be on X from the earlier attempt"
    return message


def _save_ids(store: Store, row_id: int, ids: Sequence[str]) -> None:
    with store.tx() as tx:
        row = tx.x_post(row_id)
        assert row is not None
        row.post_ids = json.dumps(list(ids))


def _finish(
    store: Store, row_id: int, ids: Sequence[str], *, error: str | None, now: datetime
) -> XPostResult:
    """Record the end of an attempt: posted when ``error`` is None, else failed."""
    with store.tx() as tx:
        row = tx.x_post(row_id)
        assert row is not None
        row.post_ids = json.dumps(list(ids))
        row.status = "failed" if error else "posted"
        row.error = error
        if error is None:
            row.posted_at = now
    result = XPostResult.from_row(row)
    if error:
        log.warning(
            "x post failed post_id=%s posted=%s/%s error=%s",
            row_id,
            len(ids),
            len(result.parts),
            error,
        )
    else:
        log.info("x post posted post_id=%s posts=%s url=%s", row_id, len(ids), result.url)
    return result


def _post_remaining(
    store: Store,
    settings: Settings,
    row: XPostRow,
    poster: XPoster,
    *,
    now: datetime,
    resumed: bool,
) -> XPostResult:
    """Post the parts of ``row`` not posted yet, each replying to the one before,
    committing every new id at once."""
    assert row.id is not None
    parts: list[str] = json.loads(row.parts)
    ids: list[str] = json.loads(row.post_ids)
    for number in range(len(ids), len(parts)):
        try:
            ids.append(poster.create(parts[number], ids[-1] if ids else None))
        except XPostError as exc:
            error = _describe(exc, settings, now=now, resumed=resumed)
            return _finish(store, row.id, ids, error=error, now=now)
        except (Exception, KeyboardInterrupt) as exc:
            # Recorded as failed so `post-x` can resume it; the post may have been made.
            _finish(store, row.id, ids, error=f"interrupted ({type(exc).__name__})", now=now)
            raise
        _save_ids(store, row.id, ids)
        log.info("x post sent post_id=%s part=%s/%s", row.id, number + 1, len(parts))
    return _finish(store, row.id, ids, error=None, now=now)


def _create_row(
    store: Store, settings: Settings, languages: Sequence[str], update_id: int, *, now: datetime
) -> XPostRow:
    with store.tx() as tx:
        entry = tx.session.get(IncidentUpdateRow, update_id)
        if entry is None:
            raise XPostError(f"no incident update #{update_id}")
        for earlier in tx.x_posts(incident_id=entry.incident_id):
            if earlier.update_id == update_id:
                raise XPostError(
                    f"update #{update_id} already has X post #{earlier.id} ({earlier.status}); "
                    "resume that one instead"
                )
        try:
            parts = thread_parts(
                statement_texts(entry, languages), incident_url(settings, entry.incident_id)
            )
        except ValueError as exc:
            raise XPostError(f"update #{update_id} has nothing to post: {exc}") from None
        return tx.add_x_post(
            XPostRow(
                incident_id=entry.incident_id,
                update_id=update_id,
                parts=json.dumps(parts, ensure_ascii=False),
                status="pending",
                attempts=1,
                created_at=now,
            )
        )


def post_update(
    store: Store,
    settings: Settings,
    update_id: int,
    *,
    now: datetime,
    poster: XPoster | None = None,
) -> XPostResult:
    """Post the statement of timeline entry ``update_id`` to X as a thread.

    The texts are taken in ``[incidents.x] languages`` order, skipping a language whose
    text is empty or equal to one already taken; the incident page's link is in the first
    post. The ``x_post`` row (its parts fixed) is committed in its own transaction before
    anything is posted, then each new post id is committed at once, so a failure or a
    crash in the middle can be resumed with :func:`resume_post`. A failure of X is
    returned (status ``failed``, with ``error``), not raised.

    Raises XPostError when ``[incidents.x]`` or ``[site] base_url`` is not configured,
    the update does not exist, has no text, or already has an ``x_post`` row.
    """
    credentials = _credentials(settings)
    poster = poster or TweepyPoster(credentials)
    row = _create_row(store, settings, credentials.languages, update_id, now=now)
    parts = len(json.loads(row.parts))
    log.info("x post created post_id=%s update_id=%s parts=%s", row.id, update_id, parts)
    return _post_remaining(store, settings, row, poster, now=now, resumed=False)


def _claim(store: Store, post_id: int, *, force: bool) -> XPostRow:
    """Take the row for one more attempt: an update that succeeds for one process only."""
    with store.tx() as tx:
        row = tx.x_post(post_id)
        if row is None:
            raise XPostError(f"no X post #{post_id}")
        if row.status == "posted":
            return row
        if row.status == "pending" and not force:
            raise XPostError(
                f"X post #{post_id} is still pending: it is being posted now, or the process "
                "posting it stopped; if no other pantau is posting it, resume it with force"
            )
        claimed = tx.session.execute(
            update(XPostRow)
            .where(
                col(XPostRow.id) == post_id,
                col(XPostRow.status) == row.status,
                col(XPostRow.attempts) == row.attempts,
            )
            .values(status="pending", error=None, attempts=XPostRow.attempts + 1)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            raise XPostError(f"X post #{post_id} is being resumed by another process")
        tx.session.refresh(row)
        return row


def resume_post(
    store: Store,
    settings: Settings,
    post_id: int,
    *,
    now: datetime,
    poster: XPoster | None = None,
    force: bool = False,
) -> XPostResult:
    """Continue the thread of ``x_post`` row ``post_id`` from the first part not yet
    posted, replying to the last posted one; the parts are those fixed at creation.

    A ``failed`` row is resumed; a ``posted`` one is returned as it is, without posting;
    a ``pending`` one (being posted now, or left so by a crash) only with ``force``.
    Raises XPostError when ``[incidents.x]`` is not configured, the row does not exist,
    is pending without ``force``, or another process claimed it first.
    """
    credentials = _credentials(settings)
    row = _claim(store, post_id, force=force)
    if row.status == "posted":
        return XPostResult.from_row(row)
    log.info("x post resumed post_id=%s attempt=%s", post_id, row.attempts)
    poster = poster or TweepyPoster(credentials)
    return _post_remaining(store, settings, row, poster, now=now, resumed=True)
