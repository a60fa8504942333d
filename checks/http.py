"""Plain HTTP checks (``kind = "http"``).

Transport and expectations are two steps: :func:`fetch` gets a response (or a
classified transport failure) and :func:`assess` applies the expectations to
it. Exceptions of httpx are mapped to our error classes in :func:`classify_exception`
and nowhere else.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar, Literal

import httpx
from pydantic import Field

from checks.base import CheckSettings, ErrorClass, ProbeContext, ProbeResult
from monitor.fields import ByteSize, Duration, SecretText, StatusRanges, StatusSpec, StrList

DEFAULT_MAX_BODY = 1024 * 1024
USER_AGENT = "Pantau/0.1 (+status monitor)"


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
    #: A response slower than this fails with ``too_slow``.
    max_latency: Duration | None = None
    #: Bytes of (decompressed) body read at most; beyond fails with ``too_large``.
    max_body_bytes: ByteSize = DEFAULT_MAX_BODY
    #: Follow redirects (up to ``max_redirects``; beyond fails with ``redirect_loop``).
    follow_redirects: bool = True
    max_redirects: int = Field(default=10, ge=0, le=50)


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
        try:
            return self.body.decode(self.encoding, errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")


class ProbeFailure(Exception):
    """A classified failure raised inside a probe and turned into a result at its edge."""

    def __init__(self, error: ErrorClass, detail: str, *, status_code: int | None = None) -> None:
        super().__init__(detail)
        self.error = error
        self.detail = detail
        self.status_code = status_code


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def classify_exception(exc: BaseException) -> tuple[ErrorClass, str]:
    """Map an exception from a probe's transport to an error class and a short detail.

    The single place where httpx's exceptions become Pantau's error classes.
    """
    chain = _causes(exc)
    text = " ".join(str(e) for e in chain)
    if isinstance(exc, httpx.TimeoutException | TimeoutError | asyncio.TimeoutError):
        phase = {
            httpx.ConnectTimeout: "connecting",
            httpx.ReadTimeout: "waiting for the response",
            httpx.WriteTimeout: "sending the request",
            httpx.PoolTimeout: "waiting for a free connection",
        }.get(type(exc), "")
        return ErrorClass.TIMEOUT, f"timed out {phase}".strip()
    if isinstance(exc, httpx.TooManyRedirects):
        return ErrorClass.REDIRECT_LOOP, "too many redirects"
    if any(isinstance(e, ssl.SSLError | ssl.CertificateError) for e in chain) or (
        "CERTIFICATE_VERIFY_FAILED" in text or "SSL" in text
    ):
        return ErrorClass.TLS, f"TLS handshake failed: {_short(chain)}"
    if any(isinstance(e, socket.gaierror) for e in chain) or "Name or service not known" in text:
        return ErrorClass.DNS, f"name resolution failed: {_short(chain)}"
    if isinstance(exc, httpx.ConnectError):
        return ErrorClass.CONNECT, f"connection failed: {_short(chain)}"
    if isinstance(exc, httpx.ReadError | httpx.WriteError | httpx.CloseError):
        return ErrorClass.CONNECT, f"connection lost: {_short(chain)}"
    if isinstance(exc, httpx.UnsupportedProtocol):
        return ErrorClass.PROTOCOL, f"unsupported protocol: {_short(chain)}"
    if isinstance(exc, httpx.DecodingError):
        return ErrorClass.PROTOCOL, f"undecodable body: {_short(chain)}"
    if isinstance(exc, httpx.ProtocolError | httpx.InvalidURL):
        return ErrorClass.PROTOCOL, f"protocol error: {_short(chain)}"
    if isinstance(exc, OSError):
        return ErrorClass.CONNECT, f"connection failed: {_short(chain)}"
    return ErrorClass.PROTOCOL, f"unexpected {type(exc).__name__}: {_short(chain)}"


def _short(chain: list[BaseException]) -> str:
    for exc in reversed(chain):
        message = str(exc).strip()
        if message:
            return message[:200]
    return type(chain[0]).__name__


async def fetch(
    client: httpx.AsyncClient,
    request: httpx.Request,
    *,
    follow_redirects: bool,
    max_redirects: int,
    max_body_bytes: int,
    monotonic: Callable[[], float],
) -> Fetched:
    """Send ``request`` and read at most ``max_body_bytes`` of decompressed body.

    Raises ProbeFailure (``too_large``) past the cap and httpx's exceptions for
    transport faults; the caller bounds the whole call with its timeout.
    """
    start = monotonic()
    # Redirects are followed by hand so that the cap on hops is per probe.
    hops = 0
    while True:
        response = await client.send(request, stream=True, follow_redirects=False)
        try:
            if follow_redirects and response.is_redirect and response.next_request is not None:
                hops += 1
                if hops > max_redirects:
                    raise httpx.TooManyRedirects("too many redirects", request=request)
                request = response.next_request
                continue
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


async def _read_capped(response: httpx.Response, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise ProbeFailure(
                ErrorClass.TOO_LARGE,
                f"body larger than {limit} bytes (after decompression)",
                status_code=response.status_code,
            )
        chunks.append(chunk)
    return b"".join(chunks)


def assess(settings: HttpCheckSettings, fetched: Fetched) -> tuple[ErrorClass, str] | None:
    """Apply the expectations to a response. Return the first failure, or None."""
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
    if settings.max_latency is not None and fetched.latency_ms > _ms(settings.max_latency):
        return (
            ErrorClass.TOO_SLOW,
            f"took {fetched.latency_ms:.0f} ms, limit {_ms(settings.max_latency):.0f} ms",
        )
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
        headers = {name: value.reveal() for name, value in self._settings.headers.items()}
        timeout = self._settings.timeout.total_seconds()
        return client.build_request(
            self._settings.method, self._settings.url, headers=headers, timeout=timeout
        )

    async def run(self, ctx: ProbeContext) -> ProbeResult:
        s = self._settings
        started_at = ctx.clock.now()
        start = ctx.clock.monotonic()
        fetched: Fetched | None = None
        try:
            async with asyncio.timeout(s.timeout.total_seconds()):
                fetched = await fetch(
                    ctx.client,
                    self.build_request(ctx.client),
                    follow_redirects=s.follow_redirects,
                    max_redirects=s.max_redirects,
                    max_body_bytes=s.max_body_bytes,
                    monotonic=ctx.clock.monotonic,
                )
            failure = assess(s, fetched)
            status_code = fetched.status_code
        except ProbeFailure as exc:
            failure, status_code = (exc.error, exc.detail), exc.status_code
        except Exception as exc:
            failure, status_code = classify_exception(exc), None
        latency = fetched.latency_ms if fetched else (ctx.clock.monotonic() - start) * 1000.0
        return ProbeResult(
            check_id=s.id,
            component_id=s.component,
            started_at=started_at,
            ok=failure is None,
            latency_ms=latency,
            error=failure[0] if failure else None,
            detail=failure[1] if failure else f"status {status_code}",
            status_code=status_code,
            region=ctx.region,
        )
