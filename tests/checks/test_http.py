"""The plain HTTP check: every fault becomes a classified result, never an exception.

Precise transport faults are injected with pytest-httpx; the faults a user would meet
(silent servers, resets, garbage, loops, huge and compressed bodies, trickles, TLS) come
from real servers on 127.0.0.1 (see ``conftest.py``).
"""

from __future__ import annotations

import gzip
import json
import socket
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from pydantic import ValidationError
from pytest_httpx import HTTPXMock, IteratorStream

from checks.base import ErrorClass, ProbeContext, ProbeResult
from checks.http import HttpCheck, HttpCheckSettings, classify_exception

if TYPE_CHECKING:
    from conftest import MemoryPeak, RawServer

MOCK_URL = "http://127.0.0.1:9/probe"  # never contacted: pytest-httpx answers in its place
TOKEN = "s3cr3t-token-4b1d"
MIB = 1024 * 1024

Serve = Callable[..., "RawServer"]


def http_settings(url: str = MOCK_URL, **fields: Any) -> HttpCheckSettings:
    env = fields.pop("env", {})
    data = {"id": "login-page", "component": "login", "url": url, **fields}
    return HttpCheckSettings.model_validate(data, context={"env": env})


async def probe(ctx: ProbeContext, url: str = MOCK_URL, **fields: Any) -> ProbeResult:
    return await HttpCheck(http_settings(url, **fields)).run(ctx)


async def timed_probe(ctx: ProbeContext, url: str, **fields: Any) -> tuple[ProbeResult, float]:
    start = time.monotonic()
    result = await probe(ctx, url, **fields)
    return result, time.monotonic() - start


def caused_by(exc: BaseException, cause: BaseException) -> BaseException:
    exc.__cause__ = cause
    return exc


# --- transport faults, injected ------------------------------------------------------------

TRANSPORT_FAULTS = [
    pytest.param(
        lambda: httpx.ConnectError("[Errno 111] Connection refused"),
        ErrorClass.CONNECT,
        id="connect-refused",
    ),
    pytest.param(
        lambda: caused_by(
            httpx.ConnectError("could not connect"),
            socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
        ),
        ErrorClass.DNS,
        id="dns-gaierror-cause",
    ),
    pytest.param(
        lambda: httpx.ConnectError("[Errno -2] Name or service not known"),
        ErrorClass.DNS,
        id="dns-text-name-unknown",
    ),
    pytest.param(
        lambda: httpx.ConnectError("[Errno -3] Temporary failure in name resolution"),
        ErrorClass.DNS,
        id="dns-text-temporary-failure",
    ),
    pytest.param(
        lambda: httpx.ConnectTimeout("timed out"), ErrorClass.TIMEOUT, id="connect-timeout"
    ),
    pytest.param(lambda: httpx.ReadTimeout("timed out"), ErrorClass.TIMEOUT, id="read-timeout"),
    pytest.param(lambda: httpx.WriteTimeout("timed out"), ErrorClass.TIMEOUT, id="write-timeout"),
    pytest.param(lambda: httpx.PoolTimeout("timed out"), ErrorClass.TIMEOUT, id="pool-timeout"),
    pytest.param(
        lambda: caused_by(
            httpx.ConnectError("handshake failed"),
            ssl.SSLCertVerificationError(1, "certificate verify failed: self-signed certificate"),
        ),
        ErrorClass.TLS,
        id="tls-cert-verification-cause",
    ),
    pytest.param(
        lambda: httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"),
        ErrorClass.TLS,
        id="tls-text",
    ),
    pytest.param(
        lambda: httpx.RemoteProtocolError("Server disconnected without sending a response."),
        ErrorClass.PROTOCOL,
        id="remote-protocol-error",
    ),
    pytest.param(
        lambda: httpx.RemoteProtocolError("illegal status line: bytearray(b'[SSL: nope]')"),
        ErrorClass.PROTOCOL,
        id="protocol-error-quoting-ssl-is-not-tls",
    ),
    pytest.param(
        lambda: httpx.UnsupportedProtocol("Request URL has an unsupported protocol 'ftp://'."),
        ErrorClass.PROTOCOL,
        id="unsupported-protocol",
    ),
    pytest.param(
        lambda: httpx.ReadError("[Errno 104] Connection reset by peer"),
        ErrorClass.CONNECT,
        id="read-error",
    ),
    pytest.param(
        lambda: httpx.WriteError("[Errno 32] Broken pipe"), ErrorClass.CONNECT, id="write-error"
    ),
    pytest.param(lambda: httpx.ProxyError("proxy refused"), ErrorClass.CONNECT, id="proxy-error"),
    pytest.param(
        lambda: httpx.TooManyRedirects("Exceeded maximum allowed redirects."),
        ErrorClass.REDIRECT_LOOP,
        id="too-many-redirects",
    ),
    pytest.param(lambda: RuntimeError("boom"), ErrorClass.PROTOCOL, id="unexpected-runtime-error"),
    pytest.param(lambda: KeyError("surprise"), ErrorClass.PROTOCOL, id="unexpected-key-error"),
]


@pytest.mark.parametrize(("make_exc", "expected"), TRANSPORT_FAULTS)
async def test_transport_fault_becomes_classified_result(
    httpx_mock: HTTPXMock,
    ctx: ProbeContext,
    make_exc: Callable[[], BaseException],
    expected: ErrorClass,
) -> None:
    httpx_mock.add_exception(make_exc())

    result = await probe(ctx)

    assert (result.ok, result.error) == (False, expected)
    assert result.detail
    assert result.status_code is None
    assert result.latency_ms is not None


class BreaksMidBody(httpx.AsyncByteStream):
    """A body that delivers a first chunk and then loses the connection."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b"<html>half a page"
        raise httpx.ReadError("[Errno 104] Connection reset by peer")


async def test_read_error_mid_body_is_connect(httpx_mock: HTTPXMock, ctx: ProbeContext) -> None:
    httpx_mock.add_callback(lambda request: httpx.Response(200, stream=BreaksMidBody()))

    result = await probe(ctx)

    assert (result.ok, result.error) == (False, ErrorClass.CONNECT)
    assert "connection lost" in result.detail


async def test_exception_whose_str_raises_still_becomes_a_result(
    httpx_mock: HTTPXMock, ctx: ProbeContext
) -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise ValueError("no")

    httpx_mock.add_exception(Unprintable())

    result = await probe(ctx)

    assert (result.ok, result.error) == (False, ErrorClass.PROTOCOL)
    assert "Unprintable" in result.detail


def test_classify_exception_ignores_a_suppressed_tls_context() -> None:
    def refused_after_a_handled_tls_hiccup() -> None:
        try:
            raise ssl.SSLError("an earlier, handled TLS hiccup")
        except ssl.SSLError:
            raise httpx.ConnectError("[Errno 111] Connection refused") from None

    with pytest.raises(httpx.ConnectError) as caught:
        refused_after_a_handled_tls_hiccup()

    assert classify_exception(caught.value)[0] is ErrorClass.CONNECT


# --- expectations over a response, injected -----------------------------------------------


async def test_server_error_fails_with_http_status(
    httpx_mock: HTTPXMock, ctx: ProbeContext
) -> None:
    httpx_mock.add_response(status_code=500, text="Internal Server Error")

    result = await probe(ctx)

    assert (result.ok, result.error, result.status_code) == (False, ErrorClass.HTTP_STATUS, 500)
    assert "500" in result.detail


@pytest.mark.parametrize(
    ("expect_status", "status", "ok"),
    [
        pytest.param([200, 204], 204, True, id="list-accepts-member"),
        pytest.param([200, 204], 201, False, id="list-refuses-other"),
        pytest.param("200-299", 299, True, id="range-upper-bound"),
        pytest.param("200-299", 302, False, id="range-refuses-redirect"),
        pytest.param("500-503", 503, True, id="range-of-errors-on-purpose"),
        pytest.param("200,301-302", 301, True, id="mixed-spec"),
        pytest.param(200, 200, True, id="single-code"),
        pytest.param(None, 399, True, id="default-accepts-399"),
        pytest.param(None, 404, False, id="default-refuses-404"),
    ],
)
async def test_expect_status_is_honoured(
    httpx_mock: HTTPXMock, ctx: ProbeContext, expect_status: Any, status: int, ok: bool
) -> None:
    httpx_mock.add_response(status_code=status, text="body")
    fields = {} if expect_status is None else {"expect_status": expect_status}

    result = await probe(ctx, **fields)

    assert result.ok is ok
    assert result.status_code == status
    assert result.error is (None if ok else ErrorClass.HTTP_STATUS)


@pytest.mark.parametrize(
    ("fields", "ok", "needle"),
    [
        pytest.param({"body_contains": "Masuk"}, True, None, id="contains-present"),
        pytest.param(
            {"body_contains": ["Masuk", "Daftar"]}, False, "Daftar", id="contains-missing"
        ),
        pytest.param({"body_not_contains": "Gangguan"}, False, "Gangguan", id="not-contains-found"),
        pytest.param({"body_not_contains": ["Error 502"]}, True, None, id="not-contains-absent"),
    ],
)
async def test_body_expectations_fail_with_assertion(
    httpx_mock: HTTPXMock, ctx: ProbeContext, fields: dict[str, Any], ok: bool, needle: str | None
) -> None:
    httpx_mock.add_response(html="<h1>Masuk</h1><p>Gangguan sementara</p>")

    result = await probe(ctx, **fields)

    assert result.ok is ok
    assert result.error is (None if ok else ErrorClass.ASSERTION)
    assert needle is None or needle in result.detail


async def test_body_is_decoded_with_the_declared_charset(
    httpx_mock: HTTPXMock, ctx: ProbeContext
) -> None:
    httpx_mock.add_response(
        content="Pendaftaran dibuka — gelombang 9".encode("cp1252"),
        headers={"content-type": "text/html; charset=windows-1252"},
    )

    result = await probe(ctx, body_contains="dibuka — gelombang")

    assert result.ok, result.detail


@pytest.mark.parametrize(
    ("size", "error"),
    [
        pytest.param(1000, None, id="exactly-the-cap"),
        pytest.param(1001, ErrorClass.TOO_LARGE, id="one-byte-over"),
    ],
)
async def test_body_over_max_body_bytes_is_too_large(
    httpx_mock: HTTPXMock, ctx: ProbeContext, size: int, error: ErrorClass | None
) -> None:
    httpx_mock.add_response(content=b"x" * size)

    result = await probe(ctx, max_body_bytes="1kb")

    assert result.error is error
    assert result.status_code == 200


async def test_compressed_body_is_capped_after_decompression(
    httpx_mock: HTTPXMock, ctx: ProbeContext
) -> None:
    httpx_mock.add_response(
        stream=IteratorStream([gzip.compress(b"a" * 5000)]), headers={"content-encoding": "gzip"}
    )

    result = await probe(ctx, max_body_bytes="4kb")

    assert result.error is ErrorClass.TOO_LARGE


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        pytest.param("gzip", gzip.compress, id="gzip"),
        pytest.param("deflate", zlib.compress, id="deflate-zlib"),
        pytest.param(
            "deflate",
            lambda data: zlib.compress(data, wbits=-zlib.MAX_WBITS),
            id="deflate-raw",
        ),
        pytest.param("gzip, gzip", lambda data: gzip.compress(gzip.compress(data)), id="stacked"),
        pytest.param("identity", lambda data: data, id="identity"),
        pytest.param("x-gzip", gzip.compress, id="x-gzip-alias"),
        pytest.param(
            "gzip", lambda data: gzip.compress(data) + b"trailing junk", id="gzip-trailing-bytes"
        ),
        pytest.param("br", lambda data: data, id="unknown-coding-passed-through"),
    ],
)
async def test_compressed_body_is_matched_after_decoding(
    httpx_mock: HTTPXMock,
    ctx: ProbeContext,
    encoding: str,
    encode: Callable[[bytes], bytes],
) -> None:
    body = b"<p>Login berhasil</p>"
    raw = encode(body)
    # A stream, not content=: httpx.Response would decode content= once before we read it.
    httpx_mock.add_response(stream=IteratorStream([raw]), headers={"content-encoding": encoding})

    result = await probe(ctx, body_contains="Login berhasil")

    assert result.ok, result.detail


@pytest.mark.parametrize(
    ("headers", "offered"),
    [
        pytest.param({}, "gzip, deflate", id="only-codings-we-can-cap"),
        pytest.param({"accept-encoding": "identity"}, "identity", id="config-overrides"),
    ],
)
async def test_accept_encoding_offers_what_the_cap_can_decode(
    httpx_mock: HTTPXMock, ctx: ProbeContext, headers: dict[str, str], offered: str
) -> None:
    httpx_mock.add_response(text="ok")

    await probe(ctx, headers=headers)

    request = httpx_mock.get_request()
    assert request is not None
    assert request.headers.get_list("accept-encoding") == [offered]


async def test_corrupt_compressed_body_is_protocol(
    httpx_mock: HTTPXMock, ctx: ProbeContext
) -> None:
    httpx_mock.add_response(
        stream=IteratorStream([b"definitely not gzip"]), headers={"content-encoding": "gzip"}
    )

    result = await probe(ctx)

    assert (result.ok, result.error) == (False, ErrorClass.PROTOCOL)


async def test_latency_within_max_latency_is_ok(httpx_mock: HTTPXMock, ctx: ProbeContext) -> None:
    httpx_mock.add_response(text="fine")

    result = await probe(ctx, max_latency="5s")

    assert result.ok
    assert result.detail == "status 200"


async def test_redirect_is_followed_to_the_final_response(
    httpx_mock: HTTPXMock, ctx: ProbeContext
) -> None:
    httpx_mock.add_response(url=MOCK_URL, status_code=302, headers={"location": "/masuk"})
    httpx_mock.add_response(url="http://127.0.0.1:9/masuk", status_code=503)

    result = await probe(ctx)

    assert (result.error, result.status_code) == (ErrorClass.HTTP_STATUS, 503)


async def test_redirect_is_not_followed_when_disabled(
    httpx_mock: HTTPXMock, ctx: ProbeContext
) -> None:
    httpx_mock.add_response(status_code=302, headers={"location": "/masuk"})

    result = await probe(ctx, follow_redirects=False, expect_status=302)

    assert (result.ok, result.status_code) == (True, 302)


@pytest.mark.httpx_mock(can_send_already_matched_responses=True)
@pytest.mark.parametrize("max_redirects", [0, 3])
async def test_redirects_beyond_max_redirects_are_a_loop(
    httpx_mock: HTTPXMock, ctx: ProbeContext, max_redirects: int
) -> None:
    httpx_mock.add_response(status_code=301, headers={"location": MOCK_URL})

    result = await probe(ctx, max_redirects=max_redirects)

    assert (result.ok, result.error) == (False, ErrorClass.REDIRECT_LOOP)
    assert len(httpx_mock.get_requests()) == max_redirects + 1


# --- real servers on 127.0.0.1 ---------------------------------------------------------------


def healthy(conn: socket.socket, server: RawServer) -> None:
    if server.read_request(conn) is not None:
        server.respond(conn, body=b"<h1>Masuk</h1>")


def silent(conn: socket.socket, server: RawServer) -> None:
    server.read_request(conn)
    server.stopping.wait(10)


def resets_mid_body(conn: socket.socket, server: RawServer) -> None:
    server.read_request(conn)
    server.send_head(conn, headers={"Content-Length": "100000"})
    server.send(conn, b"x" * 1000)
    time.sleep(0.1)  # let the client read the head before the reset lands
    server.reset(conn)


def trickles(conn: socket.socket, server: RawServer) -> None:
    server.read_request(conn)
    server.send_head(conn, headers={"Content-Length": "1000"})
    while not server.stopping.wait(0.05):
        server.send(conn, b"x")


def slow(conn: socket.socket, server: RawServer) -> None:
    server.read_request(conn)
    time.sleep(0.2)
    server.respond(conn)


def redirect_loop(conn: socket.socket, server: RawServer) -> None:
    server.read_request(conn)
    server.respond(conn, status="302 Found", body=b"", headers={"Location": "/again"})


def garbage(payload: bytes) -> Callable[[socket.socket, RawServer], None]:
    def handler(conn: socket.socket, server: RawServer) -> None:
        server.read_request(conn)
        server.send(conn, payload)

    return handler


def streams(total: int, *, headers: dict[str, str] | None = None, body: bytes = b"") -> Any:
    """A handler sending ``body`` (or zeros up to ``total`` bytes) in 64 KiB writes."""
    block = bytes(64 * 1024)

    def handler(conn: socket.socket, server: RawServer) -> None:
        server.read_request(conn)
        server.send_head(conn, headers={"Content-Length": str(total), **(headers or {})})
        if body:
            server.send(conn, body)
            return
        left = total
        while left > 0 and not server.stopping.is_set():
            piece = memoryview(block)[: min(left, len(block))]
            server.send(conn, piece)
            left -= len(piece)

    return handler


async def test_healthy_server_is_ok(serve: Serve, ctx: ProbeContext) -> None:
    server = serve(healthy)

    result = await probe(ctx, server.url(), body_contains="Masuk", max_latency="2s")

    assert (result.ok, result.error, result.status_code) == (True, None, 200)
    assert result.latency_ms is not None
    assert result.latency_ms > 0


async def test_silent_server_times_out_within_the_check_timeout(
    serve: Serve, ctx: ProbeContext
) -> None:
    server = serve(silent)

    result, elapsed = await timed_probe(ctx, server.url(), timeout="300ms")

    assert (result.ok, result.error) == (False, ErrorClass.TIMEOUT)
    assert 0.25 < elapsed < 2.0


async def test_body_trickling_slower_than_the_timeout_times_out(
    serve: Serve, ctx: ProbeContext
) -> None:
    # Each byte arrives well within the per-read timeout; only the whole-probe deadline fires.
    server = serve(trickles)

    result, elapsed = await timed_probe(ctx, server.url(), timeout="300ms")

    assert (result.ok, result.error) == (False, ErrorClass.TIMEOUT)
    assert elapsed < 2.0


async def test_connection_reset_mid_body_is_connect(serve: Serve, ctx: ProbeContext) -> None:
    server = serve(resets_mid_body)

    result = await probe(ctx, server.url(), timeout="2s")

    assert (result.ok, result.error) == (False, ErrorClass.CONNECT)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"SSH-2.0-OpenSSH_9.6\r\n", id="ssh-banner"),
        pytest.param(b"\x00\x01\x02\xff garbage [SSL: x]\r\n\r\n", id="binary-quoting-ssl"),
        pytest.param(b"HTTP/1.1 2OO OK\r\n\r\n", id="bad-status-code"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\n", id="bad-length"),
        pytest.param(b"", id="closes-without-answer"),
    ],
)
async def test_garbage_instead_of_http_is_protocol(
    serve: Serve, ctx: ProbeContext, payload: bytes
) -> None:
    server = serve(garbage(payload))

    result = await probe(ctx, server.url(), timeout="2s")

    assert (result.ok, result.error) == (False, ErrorClass.PROTOCOL)


async def test_redirect_loop_is_redirect_loop(serve: Serve, ctx: ProbeContext) -> None:
    server = serve(redirect_loop)

    result = await probe(ctx, server.url(), max_redirects=3, timeout="2s")

    assert (result.ok, result.error) == (False, ErrorClass.REDIRECT_LOOP)
    assert len(server.requests) == 4


async def test_nothing_listening_is_connect(closed_port: int, ctx: ProbeContext) -> None:
    result = await probe(ctx, f"http://127.0.0.1:{closed_port}/", timeout="2s")

    assert (result.ok, result.error) == (False, ErrorClass.CONNECT)


async def test_server_slower_than_max_latency_is_degraded_too_slow(
    serve: Serve, ctx: ProbeContext
) -> None:
    server = serve(slow)

    result = await probe(ctx, server.url(), max_latency="50ms", timeout="2s")

    # Degraded is not down: the page answered, slowly.
    assert (result.ok, result.degraded, result.error) == (True, True, ErrorClass.TOO_SLOW)
    assert result.state == "degraded"
    assert result.status_code == 200
    assert result.detail.startswith("slow: took")
    assert result.latency_ms is not None
    assert result.latency_ms >= 150


async def test_a_waiting_room_page_is_degraded(serve: Serve, ctx: ProbeContext) -> None:
    server = serve(healthy)

    result = await probe(ctx, server.url(), degraded_if_body_contains=["antrean", "Masuk"])

    assert (result.ok, result.degraded, result.error) == (True, True, ErrorClass.ASSERTION)
    assert "waiting room" in result.detail


async def test_a_failure_is_never_reported_as_merely_degraded(
    serve: Serve, ctx: ProbeContext
) -> None:
    server = serve(slow)

    result = await probe(ctx, server.url(), max_latency="50ms", expect_status=500, timeout="2s")

    assert (result.ok, result.degraded, result.error) == (False, False, ErrorClass.HTTP_STATUS)


async def test_fresh_connection_uses_the_fresh_client(serve: Serve, ctx: ProbeContext) -> None:
    from dataclasses import replace

    server = serve(healthy)
    used: list[str] = []

    async def record(request: httpx.Request) -> None:
        used.append("fresh")

    async with httpx.AsyncClient(event_hooks={"request": [record]}) as fresh:
        fresh_ctx = replace(ctx, fresh_client=fresh)
        await probe(fresh_ctx, server.url(), fresh_connection=True)
        await probe(fresh_ctx, server.url())
    assert used == ["fresh"]


async def test_self_signed_certificate_is_tls(
    serve: Serve, ctx: ProbeContext, self_signed_tls: ssl.SSLContext
) -> None:
    server = serve(healthy, tls=self_signed_tls)

    result = await probe(ctx, server.url(), timeout="2s")

    assert (result.ok, result.error) == (False, ErrorClass.TLS)


async def test_huge_streamed_body_stops_reading_at_the_cap(
    serve: Serve, ctx: ProbeContext, memory_peak: MemoryPeak
) -> None:
    server = serve(streams(50_000_000))

    with memory_peak:
        result, elapsed = await timed_probe(ctx, server.url(), timeout="5s")
    server.close()

    assert (result.ok, result.error, result.status_code) == (False, ErrorClass.TOO_LARGE, 200)
    assert elapsed < 2.0
    assert memory_peak.peak < 8 * MIB
    assert server.bytes_sent < 25_000_000  # what the socket buffers took, not the 50 MB


@pytest.fixture(scope="module")
def fifty_mb_of_zeros_gzipped() -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(MIB)
    return b"".join(compressor.compress(block) for _ in range(50)) + compressor.flush()


@pytest.mark.parametrize(
    ("encoding", "wrap"),
    [
        pytest.param("gzip", lambda bomb: bomb, id="gzip"),
        pytest.param("gzip, gzip", gzip.compress, id="stacked-gzip"),
    ],
)
async def test_gzip_bomb_is_too_large_without_inflating_it(
    serve: Serve,
    ctx: ProbeContext,
    memory_peak: MemoryPeak,
    fifty_mb_of_zeros_gzipped: bytes,
    encoding: str,
    wrap: Callable[[bytes], bytes],
) -> None:
    body = wrap(fifty_mb_of_zeros_gzipped)
    assert len(body) < 100_000
    server = serve(streams(len(body), body=body, headers={"Content-Encoding": encoding}))

    with memory_peak:
        result, elapsed = await timed_probe(ctx, server.url(), timeout="5s")

    assert (result.ok, result.error) == (False, ErrorClass.TOO_LARGE)
    assert elapsed < 2.0
    assert memory_peak.peak < 8 * MIB


# --- secrets ---------------------------------------------------------------------------------


def failing_with_500(conn: socket.socket, server: RawServer) -> None:
    if server.read_request(conn) is not None:
        server.respond(conn, status="500 Internal Server Error", body=b"boom")


@pytest.mark.parametrize("handler", [healthy, failing_with_500])
async def test_secret_header_is_sent_but_never_shown(
    serve: Serve, ctx: ProbeContext, handler: Callable[[socket.socket, RawServer], None]
) -> None:
    server = serve(handler)
    settings = http_settings(
        server.url(),
        headers={"Authorization": "Bearer ${PANTAU_TEST_TOKEN}"},
        env={"PANTAU_TEST_TOKEN": TOKEN},
    )

    result = await HttpCheck(settings).run(ctx)

    assert f"Authorization: Bearer {TOKEN}".lower().encode() in server.requests[0].lower()
    shown = [
        result.detail,
        repr(result),
        json.dumps(result.as_json()),
        repr(settings),
        str(settings),
        settings.model_dump_json(),
    ]
    assert not any(TOKEN in text for text in shown)
    assert "${PANTAU_TEST_TOKEN}" in repr(settings)


def test_a_secret_that_would_break_the_request_is_refused_at_load_without_quoting_it() -> None:
    # h11 would refuse a header value with a newline at probe time and quote it whole.
    with pytest.raises(ValidationError) as info:
        http_settings(
            "http://127.0.0.1:9/",
            headers={"X-Api-Key": "${PANTAU_TEST_TOKEN}"},
            env={"PANTAU_TEST_TOKEN": f"{TOKEN}\nX-Injected: 1"},
        )
    assert "printable ASCII on one line" in str(info.value)
    assert TOKEN not in str(info.value)


def redirects_to(target: str) -> Callable[[socket.socket, RawServer], None]:
    def handler(conn: socket.socket, server: RawServer) -> None:
        head = server.read_request(conn)
        if head is not None and head.startswith(b"GET /start "):
            server.respond(conn, status="302 Found", body=b"", headers={"Location": target})
        elif head is not None:
            server.respond(conn)

    return handler


@pytest.mark.parametrize("cross_origin", [False, True])
async def test_secret_headers_do_not_follow_a_redirect_to_another_origin(
    serve: Serve, ctx: ProbeContext, cross_origin: bool
) -> None:
    elsewhere = serve(healthy)
    target = elsewhere.url("/landing") if cross_origin else "/landing"
    origin = serve(redirects_to(target))
    settings = http_settings(
        origin.url("/start"),
        headers={"X-Api-Key": "${PANTAU_TEST_TOKEN}", "X-Probe": "pantau"},
        env={"PANTAU_TEST_TOKEN": TOKEN},
        timeout="2s",
    )

    result = await HttpCheck(settings).run(ctx)

    assert result.ok, result.detail
    landing = (elsewhere if cross_origin else origin).requests[-1]
    assert landing.startswith(b"GET /landing ")
    assert (TOKEN.encode() in landing) is not cross_origin
    assert b"x-probe: pantau" in landing.lower()


# --- the JSON shape --------------------------------------------------------------------------


async def test_as_json_has_the_stable_keys(httpx_mock: HTTPXMock, ctx: ProbeContext) -> None:
    httpx_mock.add_response(status_code=502, text="Bad Gateway")

    result = await probe(ctx)
    shape = result.as_json()

    stable = {"check", "component", "ok", "error", "detail", "status_code", "latency_ms", "step"}
    assert stable <= shape.keys()
    assert shape["check"] == "login-page"
    assert shape["component"] == "login"
    assert shape["ok"] is False
    assert shape["error"] == "http_status"
    assert shape["status_code"] == 502
    assert isinstance(shape["latency_ms"], float)
    assert shape["step"] is None
    json.dumps(shape)


@pytest.mark.parametrize(
    ("make", "phase"),
    [
        (lambda: httpx.ConnectTimeout("timed out"), "(connect: "),
        (lambda: httpx.ReadTimeout("timed out"), "(read: "),
        (lambda: httpx.WriteTimeout("timed out"), "(write: "),
        (lambda: httpx.PoolTimeout("timed out"), "(pool: "),
    ],
)
async def test_a_timeout_names_its_phase(
    httpx_mock: HTTPXMock, ctx: ProbeContext, make: Callable[[], Exception], phase: str
) -> None:
    httpx_mock.add_exception(make())

    result = await probe(ctx)

    assert result.error == ErrorClass.TIMEOUT
    assert phase in result.detail


async def test_a_silent_server_times_out_in_the_read_phase(serve: Serve, ctx: ProbeContext) -> None:
    server = serve(silent)

    result = await probe(ctx, server.url(), timeout="300ms")

    assert result.error == ErrorClass.TIMEOUT
    assert "(read: waiting for the response)" in result.detail
