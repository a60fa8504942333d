"""Fixtures of the check tests: a shared client and real misbehaving servers on 127.0.0.1.

Each server is a plain threaded socket server bound to port 0, so a handler can block,
trickle or reset a connection without touching the event loop of the check under test.
Servers are stopped (and their threads joined) when the test ends.
"""

from __future__ import annotations

import socket
import ssl
import struct
import subprocess
import threading
import tracemalloc
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from checks.base import ProbeContext
from monitor.clock import SystemClock

Handler = Callable[[socket.socket, "RawServer"], None]


class RawServer:
    """Accepts connections on 127.0.0.1 and hands each socket to ``handler`` in a thread."""

    def __init__(self, handler: Handler, *, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.stopping = threading.Event()
        self.requests: list[bytes] = []
        self.bytes_sent = 0
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.02)
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._acceptor.start()

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def url(self, path: str = "/") -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    # --- building blocks for handlers (each runs in the connection's thread) -------------

    def read_request(self, conn: socket.socket) -> bytes | None:
        """Read one request head (up to the blank line); None when the client hung up."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head = data.split(b"\r\n\r\n", 1)[0]
        with self._lock:
            self.requests.append(head)
        return head

    def send(self, conn: socket.socket, data: bytes) -> None:
        conn.sendall(data)
        with self._lock:
            self.bytes_sent += len(data)

    def send_head(
        self, conn: socket.socket, *, status: str = "200 OK", headers: dict[str, str] | None = None
    ) -> None:
        """Send only a response head; the handler writes (or withholds) the body."""
        self.send(conn, response_head(status, headers))

    def respond(
        self,
        conn: socket.socket,
        *,
        status: str = "200 OK",
        body: bytes = b"ok",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Send a complete response and announce that the connection closes."""
        head = {"Content-Length": str(len(body)), "Connection": "close", **(headers or {})}
        self.send(conn, response_head(status, head) + body)

    @staticmethod
    def reset(conn: socket.socket) -> None:
        """Close with a TCP RST instead of a FIN."""
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    # --- lifecycle ---------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(5)
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            self.handler(conn, self)
        except OSError:
            pass  # the client hung up, reset or refused our certificate: all expected here
        finally:
            conn.close()

    def close(self) -> None:
        self.stopping.set()
        self._acceptor.join(timeout=5)
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=5)


def response_head(status: str = "200 OK", headers: dict[str, str] | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def serve() -> Iterator[Callable[..., RawServer]]:
    """Start a :class:`RawServer` for a handler; every server is stopped after the test."""
    servers: list[RawServer] = []

    def start(handler: Handler, *, tls: ssl.SSLContext | None = None) -> RawServer:
        server = RawServer(handler, tls=tls)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound once, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def client_tls() -> ssl.SSLContext:
    """Verifying TLS context, built once: building one costs ~0.1 s per client."""
    return ssl.create_default_context()


@pytest.fixture
async def client(client_tls: ssl.SSLContext) -> AsyncIterator[httpx.AsyncClient]:
    """One shared client, shaped like the runtime's: no env proxies, no auto-redirects."""
    async with httpx.AsyncClient(
        verify=client_tls, trust_env=False, follow_redirects=False
    ) as shared:
        yield shared


@pytest.fixture
def ctx(client: httpx.AsyncClient) -> ProbeContext:
    return ProbeContext(client=client, clock=SystemClock())


@dataclass
class MemoryPeak:
    """Peak of traced Python allocations while the ``with`` block ran."""

    peak: int = 0

    def __enter__(self) -> MemoryPeak:
        self._was_tracing = tracemalloc.is_tracing()
        if not self._was_tracing:
            tracemalloc.start()
        tracemalloc.reset_peak()
        self._base = tracemalloc.get_traced_memory()[0]
        return self

    def __exit__(self, *exc: object) -> None:
        self.peak = tracemalloc.get_traced_memory()[1] - self._base
        if not self._was_tracing:
            tracemalloc.stop()


@pytest.fixture
def memory_peak() -> MemoryPeak:
    return MemoryPeak()


@pytest.fixture(scope="session")
def self_signed_tls(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    """A server-side TLS context with a throwaway self-signed certificate for 127.0.0.1."""
    directory: Path = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context
