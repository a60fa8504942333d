"""Hostile targets: each ends in a classified result, in time, with the monitor's memory bounded.

Every case is a real server on 127.0.0.1 (``conftest.py``) that attacks the prober:
trickles, bombs, endless bodies, floods of headers, lying charsets, redirects to other
schemes, resets, stalled TLS handshakes, silence. Each test asserts the class, that the
result came within the check's ``timeout`` (plus a margin for a loaded CI machine), and a
memory bound: the peak of traced allocations during the probe (zlib's buffers
included) and, where a body is involved, the bytes the check took from httpx.

``tests/checks/test_http.py`` and ``tests/monitor/test_hostile_targets.py`` already cover
the plain cases (a silent server, a 50 MB body, a 50 MB gzip bomb, a fast trickle, a
reset after a ``Content-Length`` head, garbage, a redirect loop); this module adds the rest.
"""

from __future__ import annotations

import asyncio
import gc
import gzip
import socket
import ssl
import threading
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from tls_support import TestPki

from checks.base import ErrorClass, ProbeContext, ProbeResult
from checks.flow import FlowCheck, FlowCheckSettings
from checks.http import (
    MAX_CODINGS,
    MAX_RESPONSE_HEADERS,
    CappedBody,
    HttpCheck,
    HttpCheckSettings,
)
from checks.tls import TlsCheck, TlsCheckSettings
from monitor.clock import SystemClock
from monitor.config import parse_settings
from monitor.runtime import make_client

if TYPE_CHECKING:
    from conftest import MemoryPeak, RawServer

Serve = Callable[..., "RawServer"]
Handler = Callable[[socket.socket, "RawServer"], None]
KIB = 1024
MIB = 1024 * KIB
#: What a loaded 2-core CI machine may add to a check's own timeout.
MARGIN = 1.5
#: httpcore reads the network 64 KiB at a time: what the check may take past its cap.
READ_SIZE = 64 * KIB
#: The timeout of the checks that must wait it out.
WAIT = 0.5
#: The timeout of the checks that end sooner (a cap, a refusal): far from the results, so
#: that a loaded machine cannot turn them into timeouts.
ENDS_SOONER = 3.0


# --- probing, timed and counted ------------------------------------------------------------


class Tally:
    """Bytes of response body httpx handed to the check (after de-chunking, before decoding)."""

    def __init__(self) -> None:
        self.taken = 0


class CountedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, tally: Tally) -> None:
        self._inner = inner
        self._tally = tally

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            self._tally.taken += len(chunk)
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class CountingTransport(httpx.AsyncBaseTransport):
    """httpx's own transport, counting the body bytes each response hands over."""

    def __init__(self, tally: Tally, *, verify: ssl.SSLContext) -> None:
        self._inner = httpx.AsyncHTTPTransport(verify=verify)
        self._tally = tally

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = CountedStream(response.stream, self._tally)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


@pytest.fixture
def tally() -> Tally:
    return Tally()


@pytest.fixture
async def counted(client_tls: ssl.SSLContext, tally: Tally) -> AsyncIterator[ProbeContext]:
    """A probe context whose client counts body bytes into ``tally``."""
    transport = CountingTransport(tally, verify=client_tls)
    async with httpx.AsyncClient(transport=transport, follow_redirects=False) as client:
        yield ProbeContext(client=client, clock=SystemClock())


async def timed(
    check: HttpCheck | FlowCheck | TlsCheck, ctx: ProbeContext
) -> tuple[ProbeResult, float]:
    start = time.monotonic()
    result = await check.run(ctx)
    return result, time.monotonic() - start


def http_check(url: str, **fields: Any) -> HttpCheck:
    data = {"id": "hostile", "component": "login", "url": url, "timeout": ENDS_SOONER, **fields}
    return HttpCheck(HttpCheckSettings.model_validate(data, context={"env": {}}))


def flow_check(url: str, *, timeout: float = ENDS_SOONER, **step: Any) -> FlowCheck:
    steps = [{"name": "home", "url": url, **step}]
    data = {"id": "hostile-flow", "component": "login", "kind": "flow", "steps": steps}
    settings = FlowCheckSettings.model_validate({**data, "timeout": timeout}, context={"env": {}})
    return FlowCheck(settings)


def within(elapsed: float, timeout: float) -> bool:
    return elapsed < timeout + MARGIN


# --- handlers of the hostile servers ---------------------------------------------------------


def response_head(status: str = "200 OK", headers: dict[str, str] | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def stopped(server: RawServer, pause: float) -> bool:
    return server.stopping.wait(pause)


def trickles_head(conn: socket.socket, server: RawServer) -> None:
    """Slowloris on the response head: one byte a second, never finished in time."""
    server.read_request(conn)
    for byte in response_head(headers={"Content-Length": "2"}) + b"ok":
        server.send(conn, bytes([byte]))
        if stopped(server, 1.0):
            return


def trickles_body_every(pause: float) -> Handler:
    """Slowloris on the body: a prompt head, then one byte every ``pause`` seconds."""

    def handler(conn: socket.socket, server: RawServer) -> None:
        server.read_request(conn)
        server.send_head(conn, headers={"Content-Length": "1000"})
        while not stopped(server, pause):
            server.send(conn, b"x")

    return handler


trickles_body = trickles_body_every(1.0)


def sends(head: bytes, *, then: Callable[[], Iterator[bytes]] | None = None) -> Handler:
    """A handler sending ``head`` and then, until the client hangs up, what ``then`` yields."""

    def handler(conn: socket.socket, server: RawServer) -> None:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * KIB)
        server.read_request(conn)
        server.send(conn, head)
        for piece in then() if then else ():
            if server.stopping.is_set():
                return
            server.send(conn, piece)

    return handler


def forever(piece: bytes) -> Callable[[], Iterator[bytes]]:
    def pieces() -> Iterator[bytes]:
        while True:
            yield piece

    return pieces


def once(*pieces: bytes) -> Callable[[], Iterator[bytes]]:
    return lambda: iter(pieces)


def page(body: bytes, content_type: str = "text/html; charset=utf-8") -> Handler:
    def handler(conn: socket.socket, server: RawServer) -> None:
        server.read_request(conn)
        server.respond(conn, body=body, headers={"Content-Type": content_type})

    return handler


def chunked_head(**headers: str) -> bytes:
    return response_head(headers={"Transfer-Encoding": "chunked", **headers})


def chunks(pieces: Callable[[], Iterator[bytes]]) -> Callable[[], Iterator[bytes]]:
    """``pieces`` framed as HTTP/1.1 chunks (never the last, empty one)."""

    def framed() -> Iterator[bytes]:
        for piece in pieces():
            yield b"%x\r\n%s\r\n" % (len(piece), piece)

    return framed


# --- 1. slowloris: the whole probe has a deadline ----------------------------------------------


@pytest.mark.parametrize(
    ("handler", "phase"),
    [
        pytest.param(trickles_head, "read: waiting for the response", id="head"),
        pytest.param(trickles_body, "read: body still arriving", id="body"),
    ],
)
async def test_a_slowloris_times_out_at_the_whole_probe_deadline(
    serve: Serve, counted: ProbeContext, memory_peak: MemoryPeak, handler: Handler, phase: str
) -> None:
    # One byte a second, within httpx's per-read timeout of 1.2 s: only the deadline ends it.
    server = serve(handler)

    with memory_peak:
        result, elapsed = await timed(http_check(server.url(), timeout="1200ms"), counted)

    assert (result.ok, result.error) == (False, ErrorClass.TIMEOUT)
    assert result.detail == f"timed out (the whole probe; {phase})"
    assert elapsed > 1.1 and within(elapsed, 1.2)
    assert memory_peak.peak < 1 * MIB


async def test_a_slowloris_in_a_flow_step_times_out_naming_the_step(
    serve: Serve, ctx: ProbeContext, memory_peak: MemoryPeak
) -> None:
    # A byte every 0.3 s resets the step's per-read timeout (what is left of 0.5 s).
    server = serve(trickles_body_every(0.3))

    with memory_peak:
        result, elapsed = await timed(flow_check(server.url(), timeout=WAIT), ctx)

    assert (result.ok, result.error, result.step) == (False, ErrorClass.TIMEOUT, "home")
    assert result.detail.endswith("; read: body still arriving)")
    assert elapsed > WAIT - 0.05 and within(elapsed, WAIT)
    assert memory_peak.peak < 1 * MIB


# --- 2. decompression bombs: the cap counts decoded bytes ------------------------------------


@pytest.fixture(scope="module")
def ten_gb_bomb() -> bytes:
    """``gzip, gzip``: 10 GiB of zeros, gzipped (~10 MiB), gzipped again (~25 KiB).

    Built from one full-flush segment repeated (each 1 MiB of zeros codes to the same
    bytes once the history is reset), so it takes milliseconds; it has no trailer, which
    no reader that stops at its cap ever reaches.
    """
    coder = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(MIB)
    first = coder.compress(zeros) + coder.flush(zlib.Z_FULL_FLUSH)
    segment = coder.compress(zeros) + coder.flush(zlib.Z_FULL_FLUSH)
    inner = first + segment * (10 * 1024 - 1)
    assert zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(inner, 3 * MIB) == bytes(3 * MIB)
    return gzip.compress(inner, 9)


def bomb_handler(bomb: bytes, coding: str = "gzip, gzip") -> Handler:
    head = response_head(headers={"Content-Encoding": coding, "Content-Length": str(len(bomb))})
    return sends(head, then=once(bomb))


async def test_a_ten_gigabyte_gzip_bomb_is_too_large_after_a_few_kilobytes(
    serve: Serve, counted: ProbeContext, tally: Tally, memory_peak: MemoryPeak, ten_gb_bomb: bytes
) -> None:
    assert len(ten_gb_bomb) < 50 * KIB
    server = serve(bomb_handler(ten_gb_bomb))

    with memory_peak:
        result, elapsed = await timed(http_check(server.url(), max_body_bytes="256kb"), counted)

    assert (result.ok, result.error, result.status_code) == (False, ErrorClass.TOO_LARGE, 200)
    assert result.detail == "body larger than 256000 bytes (decoded)"
    assert within(elapsed, ENDS_SOONER)
    assert tally.taken <= len(ten_gb_bomb)  # at most the whole 25 KiB, never more
    assert memory_peak.peak < 2 * MIB  # the 256 KB kept, zlib's windows, one read


async def test_a_gzip_bomb_in_a_flow_step_is_too_large(
    serve: Serve, ctx: ProbeContext, memory_peak: MemoryPeak, ten_gb_bomb: bytes
) -> None:
    server = serve(bomb_handler(ten_gb_bomb))

    with memory_peak:
        result, elapsed = await timed(flow_check(server.url(), max_body_bytes="256kb"), ctx)

    assert (result.ok, result.error, result.step) == (False, ErrorClass.TOO_LARGE, "home")
    assert within(elapsed, ENDS_SOONER)
    assert memory_peak.peak < 2 * MIB


async def test_thousands_of_stacked_codings_are_refused_before_any_decoder_is_made(
    serve: Serve, counted: ProbeContext, memory_peak: MemoryPeak
) -> None:
    # One header line of 10,000 codings would otherwise cost 10,000 zlib decoders (~70 MB).
    body = gzip.compress(b"ok")
    codings = ", ".join(["gzip"] * 10_000)
    head = response_head(headers={"Content-Encoding": codings, "Content-Length": str(len(body))})
    server = serve(sends(head + body))

    with memory_peak:
        result, elapsed = await timed(http_check(server.url()), counted)

    assert (result.ok, result.error, result.status_code) == (False, ErrorClass.PROTOCOL, 200)
    assert result.detail == f"10000 content codings stacked, more than {MAX_CODINGS}"
    assert within(elapsed, ENDS_SOONER)
    assert memory_peak.peak < 6 * MIB  # h11 parsing the 50 KB line peaks at ~3.5 MB


def endless_gzip_header() -> Iterator[bytes]:
    """A gzip member whose file name never ends: it decodes to nothing, forever."""
    yield b"\x1f\x8b\x08\x08\x00\x00\x00\x00\x00\xff"  # FNAME flag set
    yield from forever(b"a" * READ_SIZE)()


async def test_a_coded_body_that_decodes_to_nothing_is_cut_off_as_sent(
    serve: Serve, counted: ProbeContext, tally: Tally, memory_peak: MemoryPeak
) -> None:
    server = serve(
        sends(chunked_head(**{"Content-Encoding": "gzip"}), then=chunks(endless_gzip_header))
    )

    with memory_peak:
        result, elapsed = await timed(http_check(server.url(), max_body_bytes="256kb"), counted)

    assert (result.ok, result.error) == (False, ErrorClass.TOO_LARGE)
    assert "as sent" in result.detail
    assert within(elapsed, ENDS_SOONER)
    assert tally.taken <= 256_000 + 256_000 // 64 + 2 * KIB + READ_SIZE
    assert memory_peak.peak < 1 * MIB


# --- 3. endless chunked bodies -----------------------------------------------------------------


async def test_an_endless_chunked_body_is_too_large_reading_at_most_one_read_past_the_cap(
    serve: Serve, counted: ProbeContext, tally: Tally, memory_peak: MemoryPeak
) -> None:
    server = serve(sends(chunked_head(), then=chunks(forever(b"x" * READ_SIZE))))

    with memory_peak:
        result, elapsed = await timed(http_check(server.url(), max_body_bytes="1mib"), counted)

    assert (result.ok, result.error, result.status_code) == (False, ErrorClass.TOO_LARGE, 200)
    assert within(elapsed, ENDS_SOONER)
    assert tally.taken <= MIB + READ_SIZE
    assert memory_peak.peak < 3 * MIB  # the 1 MiB kept, its final copy, one read


async def test_an_endless_body_of_one_byte_chunks_ends_classified_and_small(
    serve: Serve, counted: ProbeContext, tally: Tally, memory_peak: MemoryPeak
) -> None:
    # h11 and httpx spend ~35 us on each chunk (~140 us traced): at the default 1 MiB cap
    # this body would end as a timeout; at 2 KB it is too large, and weighs what it kept.
    server = serve(sends(chunked_head(), then=chunks(forever(b"x"))))

    with memory_peak:
        result, elapsed = await timed(http_check(server.url(), max_body_bytes=2048), counted)

    assert (result.ok, result.error) == (False, ErrorClass.TOO_LARGE), result.detail
    assert within(elapsed, ENDS_SOONER)
    assert tally.taken <= 2048 + 1
    assert memory_peak.peak < 1 * MIB


def test_a_body_kept_from_tiny_chunks_weighs_its_size() -> None:
    # As a list of 1-byte chunks, 50 KB of body would weigh ~2 MB.
    body = CappedBody("", limit=50_000)
    tracemalloc.start()
    try:
        for _ in range(50_000):
            body.feed(b"x")
        kept = body.finish()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert kept == b"x" * 50_000
    assert peak < 3 * 50_000 + 64 * KIB


def endless_trailers() -> Iterator[bytes]:
    yield b"2\r\nok\r\n0\r\n"  # the last chunk: trailer fields follow, forever
    yield from forever(b"X-Trailer: " + b"t" * 1000 + b"\r\n")()


def endless_chunk_size_line() -> Iterator[bytes]:
    yield b"2\r\nok\r\n1;"  # a chunk extension that never ends
    yield from forever(b"e" * KIB)()


@pytest.mark.parametrize("framing", [endless_trailers, endless_chunk_size_line])
async def test_an_endless_chunk_frame_is_protocol(
    serve: Serve,
    counted: ProbeContext,
    memory_peak: MemoryPeak,
    framing: Callable[[], Iterator[bytes]],
) -> None:
    # h11 refuses a frame (or a trailer section) past 100 KiB.
    server = serve(sends(chunked_head(), then=framing))

    with memory_peak:
        result, elapsed = await timed(http_check(server.url()), counted)

    assert (result.ok, result.error) == (False, ErrorClass.PROTOCOL), result.detail
    assert within(elapsed, ENDS_SOONER)
    assert memory_peak.peak < 2 * MIB


# --- 4. floods of response headers --------------------------------------------------------------


def flood_of_headers(count: int, width: int) -> bytes:
    fields = b"".join(b"%s: v\r\n" % (b"%d" % i).rjust(width, b"a") for i in range(count))
    return b"HTTP/1.1 200 OK\r\n" + fields + b"Content-Length: 2\r\nConnection: close\r\n\r\nok"


@pytest.mark.parametrize(
    ("head", "detail"),
    [
        # 10,000 fields in 79 KB: within h11's 100 KiB head, refused by our count.
        pytest.param(
            flood_of_headers(10_000, 1),
            f"response has 10002 header fields, more than {MAX_RESPONSE_HEADERS}",
            id="10000-short-fields",
        ),
        pytest.param(flood_of_headers(10_000, 20), "protocol error: ", id="10000-long-fields"),
        pytest.param(
            response_head(headers={"X-Huge": "h" * MIB}), "protocol error: ", id="one-1MB-field"
        ),
    ],
)
async def test_a_flood_of_response_headers_is_protocol(
    serve: Serve, counted: ProbeContext, memory_peak: MemoryPeak, head: bytes, detail: str
) -> None:
    server = serve(sends(head))

    with memory_peak:
        result, elapsed = await timed(http_check(server.url()), counted)

    assert (result.ok, result.error) == (False, ErrorClass.PROTOCOL)
    assert result.detail.startswith(detail)
    assert within(elapsed, ENDS_SOONER)
    assert memory_peak.peak < 6 * MIB  # h11 parsing a head near 100 KiB peaks at ~3.5 MB


async def test_a_flood_of_set_cookie_headers_fails_a_flow_step(
    serve: Serve, memory_peak: MemoryPeak
) -> None:
    cookies = b"".join(b"Set-Cookie: c%d=v\r\n" % i for i in range(2000))
    head = b"HTTP/1.1 200 OK\r\n" + cookies + b"Content-Length: 2\r\nConnection: close\r\n\r\nok"
    server = serve(sends(head))

    async with make_client(parse_settings({})) as client:  # the runtime's: it keeps no cookie
        ctx = ProbeContext(client=client, clock=SystemClock())
        with memory_peak:
            result, elapsed = await timed(flow_check(server.url()), ctx)

    assert (result.ok, result.error, result.step) == (False, ErrorClass.PROTOCOL, "home")
    assert within(elapsed, ENDS_SOONER)
    assert memory_peak.peak < 6 * MIB


# --- 5. bodies that are no clean text ----------------------------------------------------------


LATIN1_E = "é".encode("latin-1")

BODIES = [
    # (body, content type, body_contains, expected error)
    pytest.param(
        b"\xff\xfe\xc3(<h1>Masuk</h1>\x80\xed\xa0\x80\x00", "text/html; charset=utf-8", "Masuk",
        None, id="invalid-utf8-around-the-needle",
    ),
    pytest.param(
        "Masuk — ".encode() + b"Daftar caf" + LATIN1_E, "text/html; charset=utf-8", "Masuk —",
        None, id="mixed-utf8-and-latin1-utf8-needle",
    ),
    pytest.param(
        "Masuk — ".encode() + b"Daftar caf" + LATIN1_E, "text/html; charset=utf-8", "café",
        ErrorClass.ASSERTION, id="mixed-utf8-and-latin1-latin1-needle",
    ),
    pytest.param(
        "gelombang — 9".encode("cp1252"), "text/html; charset=utf-8", "gelombang",
        None, id="charset-lies-ascii-needle-still-matches",
    ),
    pytest.param(
        "gelombang — 9".encode("cp1252"), "text/html; charset=utf-8", "—",
        ErrorClass.ASSERTION, id="charset-lies-utf8-for-cp1252",
    ),
    pytest.param(
        "Masuk — 9".encode(), "text/html; charset=iso-8859-1", "Masuk —",
        ErrorClass.ASSERTION, id="charset-lies-latin1-for-utf8",
    ),
    pytest.param(
        b"<h1>Masuk</h1>", "text/html; charset=utf-16", "Masuk",
        ErrorClass.ASSERTION, id="charset-lies-utf16-for-ascii",
    ),
    *(
        pytest.param(
            "<h1>Masuk — ok</h1>".encode(), f"text/html; charset={charset}", "Masuk — ok",
            None, id=f"no-charset-{charset}",
        )
        for charset in (
            "idna", "punycode", "undefined", "unicode_escape", "raw_unicode_escape",
            "rot13", "hex", "base64", "zlib", "no-such-charset", "", '"',
        )
    ),
]  # fmt: skip


@pytest.mark.parametrize(("body", "content_type", "needle", "error"), BODIES)
async def test_a_body_that_is_no_clean_text_is_matched_without_crashing(
    serve: Serve,
    counted: ProbeContext,
    memory_peak: MemoryPeak,
    body: bytes,
    content_type: str,
    needle: str,
    error: ErrorClass | None,
) -> None:
    server = serve(page(body, content_type))
    check = http_check(server.url(), body_contains=needle, body_not_contains="Gangguan")

    with memory_peak:
        result, elapsed = await timed(check, counted)

    assert (result.error, result.ok) == (error, error is None), result.detail
    assert result.status_code == 200
    assert within(elapsed, ENDS_SOONER)
    assert memory_peak.peak < 1 * MIB


async def test_a_quadratic_charset_does_not_stall_the_probe(
    serve: Serve, counted: ProbeContext, memory_peak: MemoryPeak
) -> None:
    # Python's punycode codec takes seconds for 100 KB: it is no charset of a body.
    server = serve(page(b"Masuk-" + b"a" * 200 * KIB, "text/html; charset=punycode"))

    with memory_peak:
        result, elapsed = await timed(http_check(server.url(), body_contains="Masuk-aaa"), counted)

    assert (result.ok, result.error) == (True, None)
    assert within(elapsed, ENDS_SOONER)
    assert memory_peak.peak < 2 * MIB  # the 200 KB body, as bytes and as text


async def test_json_nested_past_the_recursion_limit_is_no_json_to_extract_from(
    serve: Serve, ctx: ProbeContext, memory_peak: MemoryPeak
) -> None:
    server = serve(page(b"[" * 200_000, "application/json"))
    check = flow_check(server.url(), extract={"token": {"json": "$.token"}})

    with memory_peak:
        result, elapsed = await timed(check, ctx)

    assert (result.ok, result.error, result.step) == (False, ErrorClass.ASSERTION, "home")
    assert result.detail.endswith("the body is not JSON")
    assert within(elapsed, ENDS_SOONER)
    assert memory_peak.peak < 2 * MIB


async def parses_finished() -> None:
    """Wait for the parse threads a timed-out flow left running: a later test toggling
    tracemalloc while lexbor allocates outside the GIL would crash the interpreter."""
    for thread in threading.enumerate():
        if thread.name == "pantau-parse-html":
            await asyncio.to_thread(thread.join, 30)


async def test_html_that_takes_minutes_to_parse_times_out_without_stalling_the_loop(
    serve: Serve, ctx: ProbeContext
) -> None:
    # lexbor takes ~1 s for 10,000 <option> in a <select>, 7 s for 20,000, minutes for a
    # 1 MB page of them (nested <div> or <b id=...> likewise): off the event loop, the flow
    # times out at its deadline and the loop keeps serving every other probe meanwhile.
    server = serve(page(b"<select>" + b"<option>x" * 10_000))
    extract = {"csrf": {"css": "input", "attr": "value"}}
    check = flow_check(server.url(), timeout=0.2, extract=extract)
    ticks = 0

    async def heartbeat() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.05)
            ticks += 1

    beating = asyncio.create_task(heartbeat())
    try:
        result, elapsed = await timed(check, ctx)
        again, again_elapsed = await timed(check, ctx)
    finally:
        beating.cancel()
        await parses_finished()

    assert (result.ok, result.error, result.step) == (False, ErrorClass.TIMEOUT, "home")
    assert result.detail.endswith("; parsing the HTML)")
    assert within(elapsed, 0.2)
    assert ticks > (elapsed + again_elapsed) / 0.05 / 3  # the loop was never held for long
    # The next run does not pile a second endless parse on the first.
    assert (again.ok, again.error) == (False, ErrorClass.TIMEOUT)
    assert again.detail.endswith("a page of an earlier run is still being parsed")


# --- 6. redirects -------------------------------------------------------------------------------


def redirects(location: str) -> Handler:
    def handler(conn: socket.socket, server: RawServer) -> None:
        server.read_request(conn)
        server.respond(conn, status="302 Found", body=b"", headers={"Location": location})

    return handler


@pytest.mark.parametrize(
    ("location", "detail"),
    [
        ("ftp://127.0.0.1/pub/file", "redirect to a 'ftp' URL, not followed"),
        ("file:///etc/passwd", "redirect to a 'file' URL, not followed"),
        ("gopher://127.0.0.1:70/_GET%20/", "redirect to a 'gopher' URL, not followed"),
        ("ws://127.0.0.1/socket", "redirect to a 'ws' URL, not followed"),
        # httpx cannot even build these as URLs of a request (no host, no "/" path).
        ("javascript:alert(document.cookie)", "protocol error: "),
        ("data:text/html,<h1>Masuk</h1>", "protocol error: "),
    ],
)
@pytest.mark.parametrize("kind", ["http", "flow"])
async def test_a_redirect_to_another_scheme_is_protocol_and_not_followed(
    serve: Serve,
    counted: ProbeContext,
    memory_peak: MemoryPeak,
    location: str,
    detail: str,
    kind: str,
) -> None:
    server = serve(redirects(location))
    check = http_check(server.url()) if kind == "http" else flow_check(server.url())

    with memory_peak:
        result, elapsed = await timed(check, counted)

    assert (result.ok, result.error) == (False, ErrorClass.PROTOCOL)
    assert detail in result.detail
    assert len(server.requests) == 1
    assert within(elapsed, ENDS_SOONER)
    assert memory_peak.peak < 1 * MIB


def bounces(ring: list[RawServer]) -> Handler:
    """Sends the client on to the next server of ``ring``, round and round."""

    def handler(conn: socket.socket, server: RawServer) -> None:
        server.read_request(conn)
        following = ring[(ring.index(server) + 1) % len(ring)]
        headers = {"Location": following.url("/again")}
        server.respond(conn, status="302 Found", body=b"x" * 10 * KIB, headers=headers)

    return handler


async def test_a_redirect_loop_across_hosts_is_redirect_loop(
    serve: Serve, counted: ProbeContext, memory_peak: MemoryPeak
) -> None:
    ring: list[RawServer] = []
    ring.extend([serve(bounces(ring)), serve(bounces(ring))])

    with memory_peak:
        result, elapsed = await timed(http_check(ring[0].url(), max_redirects=20), counted)

    assert (result.ok, result.error) == (False, ErrorClass.REDIRECT_LOOP)
    assert sum(len(server.requests) for server in ring) == 21
    assert within(elapsed, ENDS_SOONER)
    assert memory_peak.peak < 2 * MIB


@pytest.fixture(scope="module")
def loopback_pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ssl.SSLContext]:
    """A CA file and a server context with a certificate for 127.0.0.1 issued by it."""
    pki = TestPki(tmp_path_factory.mktemp("pki"))
    now = datetime.now(UTC)
    issued = pki.leaf(
        "127.0.0.1", not_before=now - timedelta(hours=1), not_after=now + timedelta(days=1)
    )
    return pki.ca_file, issued.server_context()


async def test_an_https_to_http_downgrade_is_followed_without_the_secret_headers(
    serve: Serve, loopback_pki: tuple[Path, ssl.SSLContext]
) -> None:
    # Browsers follow a downgrade, so the probe sees what users see; but the plain-text
    # hop leaves the origin, so no secret header travels on it.
    ca_file, server_tls = loopback_pki
    plain = serve(page(b"<h1>Masuk</h1>"))
    secure = serve(redirects(plain.url("/landing")), tls=server_tls)
    settings = HttpCheckSettings.model_validate(
        {
            "id": "downgrade",
            "component": "login",
            "url": secure.url("/start"),
            "timeout": "2s",
            "headers": {"X-Api-Key": "${PANTAU_TEST_TOKEN}"},
        },
        context={"env": {"PANTAU_TEST_TOKEN": "s3cr3t-downgrade"}},
    )
    verify = ssl.create_default_context(cafile=ca_file)
    async with httpx.AsyncClient(verify=verify, follow_redirects=False) as client:
        result = await HttpCheck(settings).run(ProbeContext(client=client, clock=SystemClock()))

    assert (result.ok, result.status_code) == (True, 200), result.detail
    assert b"s3cr3t-downgrade" in secure.requests[0]
    assert plain.requests[0].startswith(b"GET /landing ")
    assert b"s3cr3t-downgrade" not in plain.requests[0]


# --- 7. resets mid-response ----------------------------------------------------------------------


def resets_after(*pieces: bytes) -> Handler:
    def handler(conn: socket.socket, server: RawServer) -> None:
        server.read_request(conn)
        for piece in pieces:
            server.send(conn, piece)
        time.sleep(0.1)  # let the client read what came before the reset
        server.reset(conn)

    return handler


HALF_A_GZIP = gzip.compress(bytes(range(256)) * 400)[:5000]


@pytest.mark.parametrize(
    ("handler", "error"),
    [
        pytest.param(
            resets_after(b"HTTP/1.1 200 OK\r\nContent-Le"), ErrorClass.CONNECT, id="mid-head"
        ),
        pytest.param(
            resets_after(chunked_head(), b"400\r\n" + b"x" * 100),
            ErrorClass.CONNECT,
            id="mid-chunk",
        ),
        pytest.param(
            resets_after(chunked_head(), b"2\r\nok\r\n"), ErrorClass.CONNECT, id="between-chunks"
        ),
        pytest.param(
            resets_after(
                response_head(headers={"Content-Encoding": "gzip", "Content-Length": "80000"}),
                HALF_A_GZIP,
            ),
            ErrorClass.CONNECT,
            id="mid-gzip",
        ),
        pytest.param(
            sends(response_head(headers={"Content-Length": "100000"}) + b"partial"),
            ErrorClass.CONNECT,
            id="fin-mid-body",
        ),
    ],
)
async def test_a_connection_cut_mid_response_is_classified(
    serve: Serve,
    counted: ProbeContext,
    memory_peak: MemoryPeak,
    handler: Handler,
    error: ErrorClass,
) -> None:
    server = serve(handler)

    with memory_peak:
        result, elapsed = await timed(http_check(server.url()), counted)

    assert (result.ok, result.error) == (False, error), result.detail
    assert within(elapsed, ENDS_SOONER)
    assert memory_peak.peak < 1 * MIB


# --- 8. TLS handshakes that stall -----------------------------------------------------------------


def tls_stalls(conn: socket.socket, server: RawServer) -> None:
    """Takes the ClientHello and never answers it."""
    conn.recv(4096)
    server.stopping.wait()


def tls_trickles(conn: socket.socket, server: RawServer) -> None:
    """Answers the ClientHello with a handshake record that arrives a byte a second."""
    conn.recv(4096)
    for byte in b"\x16\x03\x03\x00\x7a\x02\x00\x00\x76\x03\x03":
        server.send(conn, bytes([byte]))
        if stopped(server, 1.0):
            return


@pytest.mark.parametrize("handler", [tls_stalls, tls_trickles])
async def test_an_https_probe_of_a_stalled_handshake_times_out_naming_it(
    serve: Serve, counted: ProbeContext, memory_peak: MemoryPeak, handler: Handler
) -> None:
    server = serve(handler)

    with memory_peak:
        check = http_check(f"https://127.0.0.1:{server.port}/", timeout=WAIT)
        result, elapsed = await timed(check, counted)

    assert (result.ok, result.error) == (False, ErrorClass.TIMEOUT)
    # httpx's connect timeout, or (when TCP took a while) the probe's deadline just after.
    assert result.detail.endswith("TLS handshake: not completed)")
    assert elapsed > WAIT - 0.05 and within(elapsed, WAIT)
    assert memory_peak.peak < 2 * MIB  # OpenSSL's first handshake of a client included


async def test_a_deadline_reached_in_a_tls_handshake_waits_for_it_and_leaks_nothing(
    serve: Serve, client_tls: ssl.SSLContext
) -> None:
    # httpcore leaks the connection when cancelled inside its TLS handshake, so the
    # probe's deadline waits for httpx's connect timeout there. Here the handshake starts
    # late (the only pooled connection is busy for 0.3 s), so the deadline falls inside it.
    def answers_late(conn: socket.socket, server: RawServer) -> None:
        server.read_request(conn)
        time.sleep(0.3)
        server.respond(conn)

    busy, stalled = serve(answers_late), serve(tls_stalls)
    limits = httpx.Limits(max_connections=1)
    async with httpx.AsyncClient(verify=client_tls, limits=limits) as client:
        ctx = ProbeContext(client=client, clock=SystemClock())
        first = asyncio.create_task(http_check(busy.url()).run(ctx))
        await asyncio.sleep(0.05)
        check = http_check(f"https://127.0.0.1:{stalled.port}/", timeout=WAIT)
        result, elapsed = await timed(check, ctx)
        assert (await first).ok
    gc.collect()  # a leaked transport would warn here, and warnings are errors

    assert (result.ok, result.error) == (False, ErrorClass.TIMEOUT)
    assert result.detail == "timed out (TLS handshake: not completed)"
    assert within(elapsed, 0.3 + WAIT)


async def test_a_tls_check_of_a_trickled_handshake_times_out(
    serve: Serve, ctx: ProbeContext, memory_peak: MemoryPeak
) -> None:
    server = serve(tls_trickles)
    check = TlsCheck(
        TlsCheckSettings.model_validate(
            {"id": "cert", "component": "login", "host": "127.0.0.1", "port": server.port,
             "timeout": WAIT}
        )
    )  # fmt: skip

    with memory_peak:
        result, elapsed = await timed(check, ctx)

    assert (result.ok, result.error) == (False, ErrorClass.TIMEOUT)
    assert "before the TLS handshake completed" in result.detail
    assert elapsed > WAIT - 0.05 and within(elapsed, WAIT)
    assert memory_peak.peak < 2 * MIB


async def test_a_tls_server_that_ignores_the_close_does_not_stretch_the_probe(
    serve: Serve, ctx: ProbeContext, loopback_pki: tuple[Path, ssl.SSLContext]
) -> None:
    # The handshake completes; the server then never answers our close_notify.
    ca_file, server_tls = loopback_pki
    server = serve(lambda conn, srv: srv.stopping.wait(), tls=server_tls)
    check = TlsCheck(
        TlsCheckSettings.model_validate(
            {"id": "cert", "component": "login", "host": "127.0.0.1", "port": server.port,
             "timeout": "300ms", "ca_file": str(ca_file), "warn_days": 0}
        )
    )  # fmt: skip

    result, elapsed = await timed(check, ctx)

    assert (result.ok, result.error) == (True, None), result.detail
    assert elapsed < 0.3 + 0.2  # the polite close waits no longer than the probe's deadline


# --- 9. servers that accept and never answer ------------------------------------------------
# A silent http server (test_http.py), a silent TLS server (test_tls.py) and a stalled
# handshake over https (above) are covered; here: a flow, and a listener that never accepts.


@pytest.fixture
def never_accepts() -> Iterator[int]:
    """A port whose listener never calls accept(): the kernel completes TCP, nobody answers."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=16)
    yield int(listener.getsockname()[1])
    listener.close()


@pytest.mark.parametrize(
    ("make", "detail"),
    [
        pytest.param(
            lambda port: http_check(f"http://127.0.0.1:{port}/", timeout=WAIT),
            "read: waiting for the response)",
            id="http",
        ),
        pytest.param(
            lambda port: flow_check(f"http://127.0.0.1:{port}/", timeout=WAIT),
            "home: timed out",
            id="flow",
        ),
    ],
)
async def test_a_server_that_never_answers_times_out_within_the_timeout(
    never_accepts: int,
    counted: ProbeContext,
    memory_peak: MemoryPeak,
    make: Callable[[int], HttpCheck | FlowCheck],
    detail: str,
) -> None:
    with memory_peak:
        result, elapsed = await timed(make(never_accepts), counted)

    assert (result.ok, result.error) == (False, ErrorClass.TIMEOUT)
    assert detail in result.detail  # httpx's timeout of the phase, or the deadline just after
    assert elapsed > WAIT - 0.05 and within(elapsed, WAIT)
    assert memory_peak.peak < 2 * MIB  # OpenSSL's first handshake of a client included


# --- all at once -------------------------------------------------------------------------------------


async def test_hostile_targets_probed_together_all_end_within_their_timeouts(
    serve: Serve, counted: ProbeContext, memory_peak: MemoryPeak, ten_gb_bomb: bytes
) -> None:
    # One event loop probing every attacker at once, as ``pantau run`` would.
    handlers: dict[str, Handler] = {
        "slowloris": trickles_body,
        "bomb": bomb_handler(ten_gb_bomb),
        "endless": sends(chunked_head(), then=chunks(forever(b"x" * 1000))),
        "headers": sends(flood_of_headers(10_000, 1)),
        "scheme": redirects("file:///etc/passwd"),
        "tls-stall": tls_stalls,
    }
    expected = {
        "slowloris": ErrorClass.TIMEOUT,
        "bomb": ErrorClass.TOO_LARGE,
        "endless": ErrorClass.TOO_LARGE,
        "headers": ErrorClass.PROTOCOL,
        "scheme": ErrorClass.PROTOCOL,
        "tls-stall": ErrorClass.TIMEOUT,
    }
    urls = {name: serve(handler).url() for name, handler in handlers.items()}
    urls["tls-stall"] = urls["tls-stall"].replace("http://", "https://")
    waits = {"slowloris", "tls-stall"}
    checks = {
        name: http_check(
            url, max_body_bytes="256kb", timeout=WAIT if name in waits else ENDS_SOONER
        )
        for name, url in urls.items()
    }

    with memory_peak:
        start = time.monotonic()
        results = await asyncio.gather(*(check.run(counted) for check in checks.values()))
        elapsed = time.monotonic() - start

    assert {name: r.error for name, r in zip(checks, results, strict=True)} == expected
    assert within(elapsed, WAIT)
    assert memory_peak.peak < 6 * MIB
