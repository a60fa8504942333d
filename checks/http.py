"""Plain HTTP checks (``kind = "http"``).

Transport and expectations are two steps: :func:`fetch` gets a response (or a
classified transport failure) and :func:`assess` applies the expectations to
it. Exceptions of httpx are mapped to our error classes in :func:`classify_exception`
and nowhere else.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import re
import socket
import ssl
import zlib
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar, Literal, Protocol

import httpx
from pydantic import Field, field_validator

from checks.base import CheckSettings, ErrorClass, ProbeContext, ProbeResult
from monitor.fields import ByteSize, Duration, Secret, SecretText, StatusRanges, StatusSpec, StrList

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 field names
#: Seconds by which a probe's overall deadline trails httpx's per-phase timeouts.
DEADLINE_SLACK = 0.05
DEFAULT_MAX_BODY = 1024 * 1024
USER_AGENT = "Pantau/0.1 (+status monitor)"
#: What we offer: the codings :class:`CappedBody` can decode within its cap. (httpx would
#: also offer br/zstd once those packages are installed, which we could not cap.)
ACCEPT_ENCODING = "gzip, deflate"
_WBITS = {"gzip": zlib.MAX_WBITS | 16, "x-gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS}
#: Content codings stacked on one body at most (curl's limit since CVE-2023-23916): each
#: costs a decoder, and one header line can list thousands of them.
MAX_CODINGS = 5
#: Response header fields at most. h11 caps a response head at 100 KiB, which still holds
#: ~16,000 tiny fields (each kept, and each Set-Cookie parsed); no real site sends 1,000.
MAX_RESPONSE_HEADERS = 1000
#: Schemes a redirect may lead to; any other (ftp:, file:, javascript:, data:) is refused.
REDIRECT_SCHEMES = frozenset({"http", "https"})
#: Codecs Python knows that are no charsets of a body: they always raise, reject
#: ``errors="replace"``, warn, or (punycode) take quadratic time: 100 KB in seconds.
_NOT_CHARSETS = frozenset({"idna", "punycode", "undefined", "unicode-escape", "raw-unicode-escape"})
#: httpcore's ``trace`` events that start a phase of a request, and the phase they start.
_PHASE_EVENTS = {
    "connection.connect_tcp.started": "connect",
    "connection.start_tls.started": "tls",
    "http11.send_request_headers.started": "write",
    "http2.send_request_headers.started": "write",
    "http11.receive_response_headers.started": "head",
    "http2.receive_response_headers.started": "head",
    "http11.receive_response_body.started": "body",
    "http2.receive_response_body.started": "body",
}
_PHASE_DETAILS = {
    "connect": "connect: no connection",
    "tls": "TLS handshake: not completed",
    "write": "write: sending the request",
    "head": "read: waiting for the response",
    "body": "read: body still arriving",
    "parse": "parsing the HTML",  # set by a flow's extraction, not by httpcore
}
_DEFAULT_PORTS = {"http": 80, "https": 443}
_DNS_TEXTS = (
    "name or service not known",
    "nodename nor servname",
    "temporary failure in name resolution",
    "no address associated with hostname",
    "getaddrinfo failed",
)
_TLS_TEXTS = ("[ssl", "certificate_verify_failed", "certificate verify failed")


class HttpCheckSettings(CheckSettings):
    """``[[checks]]`` of kind ``http``."""

    kind: Literal["http"] = "http"
    #: The page or endpoint to fetch (http or https).
    url: str = Field(pattern=r"^https?://\S+$")
    #: HTTP method.
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    #: Request headers; values may reference ``${ENV}`` secrets and are never shown.
    headers: dict[str, SecretText] = Field(default_factory=dict)
    #: Accepted status codes, for example ``"200-399"`` or ``[200, 204]``.
    expect_status: StatusSpec = StatusRanges(ranges=((200, 399),))
    #: Texts that must all appear in the body.
    body_contains: StrList = ()
    #: Texts none of which may appear in the body (for example an error banner).
    body_not_contains: StrList = ()
    #: A response slower than this is *degraded* (``too_slow``), not down.
    max_latency: Duration | None = None
    #: Texts of a waiting-room or queue page: the site answers, but users wait (degraded).
    degraded_if_body_contains: StrList = ()
    #: Open a new connection for every probe, to measure connect and TLS time too.
    fresh_connection: bool = False
    #: Bytes of (decompressed) body read at most; beyond fails with ``too_large``.
    max_body_bytes: ByteSize = DEFAULT_MAX_BODY
    #: Follow redirects (up to ``max_redirects``; beyond fails with ``redirect_loop``), to
    #: http(s) URLs only: one to ``ftp:``, ``file:`` or ``javascript:`` fails with ``protocol``.
    follow_redirects: bool = True
    max_redirects: int = Field(default=10, ge=0, le=50)

    @field_validator("headers")
    @classmethod
    def _sendable_headers(cls, value: dict[str, Secret]) -> dict[str, Secret]:
        """Refuse at load time what would fail (and be echoed) at probe time."""
        for name, header in value.items():
            check_header(name, header.reveal())
        return value


def check_header(name: str, value: str) -> None:
    """Raise ValueError (never quoting ``value``) unless the header can be sent as is."""
    if not _TOKEN.match(name):
        raise ValueError(f"invalid header name {name!r}")
    if any(ch in value for ch in "\r\n\x00") or not value.isascii():
        raise ValueError(f"header {name!r}: value must be printable ASCII on one line")


@dataclass(frozen=True, slots=True)
class Fetched:
    """A response read within the caps."""

    status_code: int
    headers: httpx.Headers
    body: bytes
    latency_ms: float
    encoding: str

    @property
    def text(self) -> str:
        """The body decoded as :func:`decode_body` does."""
        return decode_body(self.body, self.encoding)


def decode_body(body: bytes, charset: str) -> str:
    """``body`` decoded with ``charset``, undecodable bytes as U+FFFD. Never raises.

    A charset that is unknown, no charset at all (see ``_NOT_CHARSETS``) or that fails
    anyway falls back to UTF-8: a lying header must not turn a result into a raise.
    """
    # LookupError, a codec that rejects "replace" or raises anyway, a warning as an error.
    with contextlib.suppress(Exception):
        name = codecs.lookup(charset).name
        if name not in _NOT_CHARSETS:
            return body.decode(name, errors="replace")
    return body.decode("utf-8", errors="replace")


class Progress:
    """How far a request got, told by httpcore's ``trace`` extension (one per request).

    ``phase`` is ``connect``, ``tls``, ``write``, ``head`` or ``body`` (the last started;
    a flow sets ``parse`` while it parses a page), or None before any. It names the phase
    a timeout hit, which httpx's exception types cannot (a stalled TLS handshake raises
    the ConnectTimeout of a silent TCP connect).

    ``deadline``, the probe's own ``asyncio.timeout``, is held off during a TLS handshake:
    httpcore leaks the connection when cancelled there (its ``start_tls`` closes the
    stream on an Exception only, and cancellation is none), so httpx's connect timeout
    bounds the handshake instead, and the deadline comes back after it (at once, if it
    has passed meanwhile).
    """

    __slots__ = ("_deadline", "_when", "phase")

    def __init__(self, deadline: asyncio.Timeout | None = None) -> None:
        self.phase: str | None = None
        self._deadline = deadline
        self._when = deadline.when() if deadline is not None else None

    async def __call__(self, event: str, info: Mapping[str, Any]) -> None:
        phase = _PHASE_EVENTS.get(event)
        if phase is None:
            return
        self.phase = phase
        if self._deadline is not None and not self._deadline.expired():
            self._deadline.reschedule(None if phase == "tls" else self._when)


class ProbeFailure(Exception):
    """A classified failure raised inside a probe and turned into a result at its edge."""

    def __init__(self, error: ErrorClass, detail: str, *, status_code: int | None = None) -> None:
        super().__init__(detail)
        self.error = error
        self.detail = detail
        self.status_code = status_code


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and what it was raised from, as a traceback would show them."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 10:
        chain.append(current)
        # An implicit context that was suppressed (``raise ... from None``) is unrelated.
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return chain


def classify_exception(
    exc: BaseException, *, secrets: Collection[str] = (), phase: str | None = None
) -> tuple[ErrorClass, str]:
    """Map an exception from a probe's transport to an error class and a short detail.

    The single place where httpx's exceptions become Pantau's error classes. Anything
    unforeseen is ``protocol``. Every value in ``secrets`` is masked in the detail (some
    errors quote a request header). ``phase`` (of a :class:`Progress`) names where a
    timeout hit. Never raises.
    """
    chain = _causes(exc)
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return ErrorClass.TIMEOUT, _timeout_detail(exc, phase)
    if isinstance(exc, httpx.TooManyRedirects):
        return ErrorClass.REDIRECT_LOOP, "too many redirects"
    # Before the text probes below: a garbage status line may quote anything, even "[SSL".
    if isinstance(exc, httpx.UnsupportedProtocol):
        return ErrorClass.PROTOCOL, f"unsupported protocol: {_short(chain, secrets)}"
    if isinstance(exc, httpx.DecodingError):
        return ErrorClass.PROTOCOL, f"undecodable body: {_short(chain, secrets)}"
    if isinstance(exc, httpx.RemoteProtocolError) and "peer closed connection" in _text(exc):
        # A body cut short is a connection dropped mid-response, not a malformed one.
        return ErrorClass.CONNECT, f"connection lost mid-body: {_short(chain, secrets)}"
    if isinstance(exc, httpx.ProtocolError | httpx.InvalidURL):
        return ErrorClass.PROTOCOL, f"protocol error: {_short(chain, secrets)}"
    if isinstance(exc, httpx.TransportError | OSError):
        return _classify_network(exc, chain, secrets)
    return ErrorClass.PROTOCOL, f"unexpected {type(exc).__name__}: {_short(chain, secrets)}"


def describe_phase(phase: str | None) -> str | None:
    """Words for a :class:`Progress` phase (``read: body still arriving``), or None."""
    return _PHASE_DETAILS.get(phase or "")


def _timeout_detail(exc: BaseException, phase: str | None) -> str:
    phases: dict[type[BaseException], str] = {
        httpx.ConnectTimeout: "connect: no connection",
        httpx.ReadTimeout: "read: waiting for the response",
        httpx.WriteTimeout: "write: sending the request",
        httpx.PoolTimeout: "pool: waiting for a free connection",
    }
    traced = describe_phase(phase)
    if isinstance(exc, httpx.PoolTimeout) or (
        isinstance(exc, httpx.TimeoutException) and not traced
    ):
        # A pool timeout comes before this request's first phase (a traced one is stale).
        return f"timed out ({phases.get(type(exc), 'no answer in time')})"
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({traced})"
    # Our own deadline over the whole probe: a trickle resets httpx's per-read timeout.
    return f"timed out (the whole probe; {traced or 'body still arriving'})"


def _classify_network(
    exc: BaseException, chain: list[BaseException], secrets: Collection[str]
) -> tuple[ErrorClass, str]:
    # The cause is the reliable signal; the text covers errors rebuilt without one.
    text = " ".join(_text(e) for e in chain).lower()
    if any(isinstance(e, ssl.SSLError | ssl.CertificateError) for e in chain) or any(
        marker in text for marker in _TLS_TEXTS
    ):
        return ErrorClass.TLS, f"TLS handshake failed: {_short(chain, secrets)}"
    if any(isinstance(e, socket.gaierror) for e in chain) or any(
        marker in text for marker in _DNS_TEXTS
    ):
        return ErrorClass.DNS, f"name resolution failed: {_short(chain, secrets)}"
    if isinstance(exc, httpx.ReadError | httpx.WriteError | httpx.CloseError):
        return ErrorClass.CONNECT, f"connection lost: {_short(chain, secrets)}"
    return ErrorClass.CONNECT, f"connection failed: {_short(chain, secrets)}"


def _text(exc: BaseException) -> str:
    try:
        return str(exc).strip()
    except Exception:  # a broken __str__ must not turn a result into a raise
        return ""


def _short(chain: list[BaseException], secrets: Collection[str] = ()) -> str:
    for exc in reversed(chain):
        if message := _text(exc):
            # Mask before cutting, so that no prefix of a secret survives the cut.
            return mask_secrets(message, secrets)[:200]
    return type(chain[0]).__name__


def mask_secrets(text: str, secrets: Collection[str]) -> str:
    """``text`` with every value in ``secrets`` (as is, or as a str or bytes repr) as ``***``."""
    for secret in secrets:
        for form in _spellings(secret):
            text = text.replace(form, "***")
    return text


def _spellings(secret: str) -> list[str]:
    """The ways an error message may quote ``secret``: as is, or as a str or bytes repr."""
    forms = {secret, repr(secret)[1:-1], repr(secret.encode("utf-8", "backslashreplace"))[2:-1]}
    return sorted((form for form in forms if form), key=len, reverse=True)


async def fetch(
    client: httpx.AsyncClient,
    request: httpx.Request,
    *,
    follow_redirects: bool,
    max_redirects: int,
    max_body_bytes: int,
    monotonic: Callable[[], float],
    secret_headers: Collection[str] = (),
    cookies: httpx.Cookies | None = None,
    progress: Progress | None = None,
) -> Fetched:
    """Send ``request`` and read at most ``max_body_bytes`` of decompressed body.

    Redirects are followed by hand (the cap on hops is per probe), to http and https
    URLs only; ``secret_headers`` are dropped once a redirect leaves the origin of
    ``request`` (an https to http downgrade leaves it too). With a ``cookies`` jar,
    every response, redirects included, stores its ``Set-Cookie`` in the jar, and every
    redirect hop sends the jar's cookies for its URL (the first request keeps a ``Cookie``
    header the caller set, and gets the jar's otherwise): the caller owns the jar, the
    shared client keeps none. ``progress`` follows the phases of each request. Raises
    ProbeFailure (``too_large``; ``protocol`` for a corrupt or too deeply stacked coding,
    more than :data:`MAX_RESPONSE_HEADERS` header fields, or a redirect to another
    scheme), httpx.TooManyRedirects, and httpx's exceptions for transport faults; the
    caller bounds the whole call with its timeout.
    """
    start = monotonic()
    origin = _origin(request.url)
    for hop in range(max_redirects + 1):
        if cookies is not None:
            _attach_cookies(request, cookies, replace=hop > 0)
        if progress is not None:
            request.extensions["trace"] = progress
        response = await client.send(request, stream=True, follow_redirects=False)
        try:
            _check_head(response)
            if cookies is not None:
                cookies.extract_cookies(response)
            next_request = response.next_request if follow_redirects else None
            if next_request is not None:
                _check_redirect(next_request, response)
            else:
                body = await _read_capped(response, max_body_bytes)
                return Fetched(
                    status_code=response.status_code,
                    headers=response.headers,
                    body=body,
                    latency_ms=(monotonic() - start) * 1000.0,
                    encoding=response.charset_encoding or "utf-8",
                )
        finally:
            await response.aclose()
        request = _next_hop(next_request, origin=origin, secret_headers=secret_headers)
    raise httpx.TooManyRedirects(f"more than {max_redirects} redirects", request=request)


def _check_head(response: httpx.Response) -> None:
    if (count := len(response.headers)) > MAX_RESPONSE_HEADERS:
        raise ProbeFailure(
            ErrorClass.PROTOCOL,
            f"response has {count} header fields, more than {MAX_RESPONSE_HEADERS}",
            status_code=response.status_code,
        )


def _check_redirect(request: httpx.Request, response: httpx.Response) -> None:
    # httpx builds a redirect to any scheme; only its transport would refuse to send it.
    if (scheme := request.url.scheme) not in REDIRECT_SCHEMES:
        raise ProbeFailure(
            ErrorClass.PROTOCOL,
            f"redirect to a {scheme[:20]!r} URL, not followed (only http and https are)",
            status_code=response.status_code,
        )


def _attach_cookies(request: httpx.Request, cookies: httpx.Cookies, *, replace: bool) -> None:
    # A redirect hop built by httpx carries the client's cookies, never the caller's jar.
    if replace:
        request.headers.pop("Cookie", None)
    if "Cookie" not in request.headers:
        cookies.set_cookie_header(request)


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port or _DEFAULT_PORTS.get(url.scheme)


def _next_hop(
    request: httpx.Request, *, origin: tuple[str, str, int | None], secret_headers: Iterable[str]
) -> httpx.Request:
    # httpx drops only Authorization when a redirect changes origin; an API key in any
    # other header must not be handed to a host we were merely redirected to either.
    if _origin(request.url) != origin:
        for name in secret_headers:
            request.headers.pop(name, None)
    return request


async def _read_capped(response: httpx.Response, limit: int) -> bytes:
    try:
        body = CappedBody(response.headers.get("content-encoding", ""), limit=limit)
        async for chunk in response.aiter_raw():
            body.feed(chunk)
        return body.finish()
    except ProbeFailure as exc:
        raise ProbeFailure(exc.error, exc.detail, status_code=response.status_code) from None


class CappedBody:
    """A response body, decoded as it arrives, that never grows past ``limit`` bytes.

    httpx inflates each network read in full (a 64 KiB read of a gzip bomb becomes
    ~64 MiB, and stacked codings multiply), so the codings are undone here with zlib's
    ``max_length``: no stage ever produces more than ``limit + 1`` bytes. Codings other
    than gzip and deflate are passed through unchanged, as httpx does. The bytes kept
    cost what they weigh (an endless body of 1-byte chunks would cost ~40 bytes a byte
    as a list of chunks). Raises ProbeFailure: ``protocol`` for more than
    :data:`MAX_CODINGS` codings (from the constructor) or a corrupt one; ``too_large``
    past the cap, or past ``wire_limit`` bytes received (a coded stream that decodes to
    nothing, such as an endless gzip header, would otherwise run until the timeout).
    """

    def __init__(self, content_encoding: str, *, limit: int) -> None:
        # Counted before splitting: 10,000 codings split would cost megabytes already.
        if (listed := content_encoding.count(",") + 1) > MAX_CODINGS:
            raise ProbeFailure(
                ErrorClass.PROTOCOL, f"{listed} content codings stacked, more than {MAX_CODINGS}"
            )
        codings = [coding.strip().lower() for coding in content_encoding.split(",")]
        # Codings are listed in the order they were applied: undo them in reverse.
        self._stages = [_Inflater(coding) for coding in reversed(codings) if coding in _WBITS]
        self._limit = limit
        # Deflate adds at most ~0.03% (and a few bytes a block) to what it codes: an honest
        # body within the cap never comes near this many bytes on the wire.
        self.wire_limit = limit + limit // 64 + 1024 * (1 + len(self._stages))
        self._received = 0
        self._body = bytearray()

    def feed(self, data: bytes) -> None:
        self._received += len(data)
        if self._stages and self._received > self.wire_limit:
            raise ProbeFailure(
                ErrorClass.TOO_LARGE,
                f"body larger than {self.wire_limit} bytes as sent (decoding to little)",
            )
        for stage in self._stages:
            data = stage.inflate(data, self._limit)
        self._keep(data)

    def finish(self) -> bytes:
        """Flush the decoders and return the whole body."""
        tail = b""
        for stage in self._stages:
            tail = stage.inflate(tail, self._limit) + stage.flush(self._limit)
        self._keep(tail)
        return bytes(self._body)

    def _keep(self, data: bytes) -> None:
        if len(self._body) + len(data) > self._limit:
            raise _too_large(self._limit)
        self._body += data


class _Inflater:
    """Undoes one zlib-based content coding, refusing to produce more than a limit."""

    def __init__(self, coding: str) -> None:
        self._coding = coding
        self._engine = zlib.decompressobj(_WBITS[coding])
        self._fresh = True
        self._produced = 0

    def inflate(self, data: bytes, limit: int) -> bytes:
        # Bytes after the end of the stream are dropped (zlib would hoard them).
        if not data or self._engine.eof:
            return b""
        try:
            # Fewer than max_length bytes out means every byte in was consumed.
            out = self._decompress(data, limit - self._produced + 1)
        except zlib.error as exc:
            raise self._corrupt(exc) from exc
        return self._count(out, limit)

    def flush(self, limit: int) -> bytes:
        try:
            return self._count(self._engine.flush(), limit)
        except zlib.error as exc:
            raise self._corrupt(exc) from exc

    def _decompress(self, data: bytes, max_length: int) -> bytes:
        fresh, self._fresh = self._fresh, False
        try:
            return self._engine.decompress(data, max_length)
        except zlib.error:
            if not (fresh and self._coding == "deflate"):
                raise
            # Raw deflate without the zlib wrapper is common; httpx and browsers accept it.
            self._engine = zlib.decompressobj(-zlib.MAX_WBITS)
            return self._engine.decompress(data, max_length)

    def _count(self, out: bytes, limit: int) -> bytes:
        self._produced += len(out)
        if self._produced > limit:
            raise _too_large(limit)
        return out

    def _corrupt(self, exc: zlib.error) -> ProbeFailure:
        return ProbeFailure(ErrorClass.PROTOCOL, f"undecodable {self._coding} body: {exc}")


def _too_large(limit: int) -> ProbeFailure:
    return ProbeFailure(ErrorClass.TOO_LARGE, f"body larger than {limit} bytes (decoded)")


class Expectations(Protocol):
    """What :func:`assess` checks: the expectation fields of an http check or a flow step."""

    @property
    def expect_status(self) -> StatusRanges: ...
    @property
    def body_contains(self) -> tuple[str, ...]: ...
    @property
    def body_not_contains(self) -> tuple[str, ...]: ...
    @property
    def max_latency(self) -> timedelta | None: ...
    @property
    def degraded_if_body_contains(self) -> tuple[str, ...]: ...


def assess(settings: Expectations, fetched: Fetched) -> tuple[ErrorClass, str] | None:
    """Apply the expectations to a response. Return the first failure, or None.

    Slowness and waiting rooms are not failures: see :func:`degradation`.
    """
    if not settings.expect_status.accepts(fetched.status_code):
        return (
            ErrorClass.HTTP_STATUS,
            f"status {fetched.status_code}, expected {settings.expect_status}",
        )
    if settings.body_contains or settings.body_not_contains:
        text = fetched.text
        for needle in settings.body_contains:
            if needle not in text:
                return ErrorClass.ASSERTION, f"body does not contain {needle!r}"
        for needle in settings.body_not_contains:
            if needle in text:
                return ErrorClass.ASSERTION, f"body contains {needle!r}"
    return None


def degradation(settings: Expectations, fetched: Fetched) -> tuple[ErrorClass, str] | None:
    """Why a passing response is degraded (slow, a waiting-room page), or None."""
    if settings.max_latency is not None and fetched.latency_ms > _ms(settings.max_latency):
        return (
            ErrorClass.TOO_SLOW,
            f"slow: took {fetched.latency_ms:.0f} ms, limit {_ms(settings.max_latency):.0f} ms",
        )
    if settings.degraded_if_body_contains:
        text = fetched.text
        for needle in settings.degraded_if_body_contains:
            if needle in text:
                return ErrorClass.ASSERTION, f"waiting room: body contains {needle!r}"
    return None


def _ms(value: timedelta) -> float:
    return value.total_seconds() * 1000.0


class HttpCheck:
    """Fetch one URL and check the response."""

    config_model: ClassVar[type[CheckSettings]] = HttpCheckSettings

    def __init__(self, settings: HttpCheckSettings) -> None:
        self._settings = settings

    @property
    def settings(self) -> HttpCheckSettings:
        return self._settings

    def build_request(self, client: httpx.AsyncClient) -> httpx.Request:
        """The request of one probe, with the secret header values revealed."""
        # Only what CappedBody can decode is offered, unless the config says otherwise.
        headers = httpx.Headers({"Accept-Encoding": ACCEPT_ENCODING})
        for name, value in self._settings.headers.items():
            headers[name] = value.reveal()  # case-insensitive: replaces, never duplicates
        timeout = self._settings.timeout.total_seconds()
        return client.build_request(
            self._settings.method, self._settings.url, headers=headers, timeout=timeout
        )

    async def run(self, ctx: ProbeContext) -> ProbeResult:
        """Probe once and return a classified result. Never raises (only cancellation).

        A response that passes but is slow or a waiting-room page is ``ok`` and ``degraded``.
        """
        started_at = ctx.clock.now()
        start = ctx.clock.monotonic()
        outcome = await self._attempt(ctx)
        latency_ms = outcome.latency_ms
        if latency_ms is None:
            latency_ms = (ctx.clock.monotonic() - start) * 1000.0
        reason = outcome.failure or outcome.degraded
        return ProbeResult(
            check_id=self._settings.id,
            component_id=self._settings.component,
            started_at=started_at,
            ok=outcome.failure is None,
            latency_ms=latency_ms,
            error=reason[0] if reason else None,
            detail=reason[1] if reason else f"status {outcome.status_code}",
            status_code=outcome.status_code,
            region=ctx.region,
            degraded=outcome.failure is None and outcome.degraded is not None,
        )

    async def _attempt(self, ctx: ProbeContext) -> _Attempt:
        """Fetch, then judge the response: a failure, or a pass that may be degraded."""
        s = self._settings
        secret = {name: value.reveal() for name, value in s.headers.items() if value.has_secret}
        client = ctx.fresh_client if s.fresh_connection and ctx.fresh_client else ctx.client
        progress = Progress()
        try:
            # httpx's own timeouts fire first; this deadline, a little later, bounds a
            # response that trickles in (each byte resets httpx's per-read timeout).
            async with asyncio.timeout(s.timeout.total_seconds() + DEADLINE_SLACK) as deadline:
                progress = Progress(deadline)
                fetched = await fetch(
                    client,
                    self.build_request(client),
                    follow_redirects=s.follow_redirects,
                    max_redirects=s.max_redirects,
                    max_body_bytes=s.max_body_bytes,
                    monotonic=ctx.clock.monotonic,
                    secret_headers=secret.keys(),
                    progress=progress,
                )
        except ProbeFailure as exc:
            return _Attempt((exc.error, exc.detail), None, exc.status_code, None)
        except Exception as exc:
            classified = classify_exception(exc, secrets=secret.values(), phase=progress.phase)
            return _Attempt(classified, None, None, None)
        failure: tuple[ErrorClass, str] | None
        try:
            failure = assess(s, fetched)
            degraded = None if failure else degradation(s, fetched)
        except Exception as exc:  # a bug of ours must still become a result
            failure, degraded = classify_exception(exc, secrets=secret.values()), None
        return _Attempt(failure, degraded, fetched.status_code, fetched.latency_ms)


@dataclass(frozen=True, slots=True)
class _Attempt:
    failure: tuple[ErrorClass, str] | None
    degraded: tuple[ErrorClass, str] | None
    status_code: int | None
    latency_ms: float | None
