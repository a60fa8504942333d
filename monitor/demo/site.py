"""A simulated registration site on 127.0.0.1 that buckles when a wave opens.

It serves home, login, signup and OTP pages. Between ``wave_opens`` and
``recovers`` seconds after start, login and OTP answer 503 with a "server busy"
page, signup hangs past the probes' timeout, and the home page slows down but
still answers, as in the real incident.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_PAGE = """<!doctype html><html lang="id"><head><meta charset="utf-8"><title>{title}</title></head>
<body><h1>{title}</h1><p>{body}</p></body></html>"""

_HEALTHY = {
    "/": ("Beranda Prakerja", "Selamat datang. Gelombang pendaftaran berikutnya segera dibuka."),
    "/login": (
        "Masuk",
        '<form method="post"><input name="email"><input name="password" type="password"></form>',
    ),
    "/signup": (
        "Daftar Akun",
        '<form method="post"><input name="email"><input name="phone"></form>',
    ),
    "/otp": ("Verifikasi OTP", '<form method="post"><input name="otp"></form>'),
}


class SimulatedSite:
    """A registration site whose health follows a timeline. Thread-safe; stop() when done."""

    def __init__(
        self,
        *,
        wave_opens: float,
        recovers: float,
        hang_seconds: float = 3.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.wave_opens = wave_opens
        self.recovers = recovers
        self.hang_seconds = hang_seconds
        self._monotonic = monotonic
        self._started = monotonic()
        self._stopping = threading.Event()
        self.requests = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def elapsed(self) -> float:
        return self._monotonic() - self._started

    def surging(self) -> bool:
        return self.wave_opens <= self.elapsed() < self.recovers

    def start(self) -> SimulatedSite:
        self._started = self._monotonic()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.requests += 1
                path = self.path.split("?")[0]
                if path not in _HEALTHY:
                    self._send(404, "Tidak ditemukan", "Halaman tidak ada.")
                    return
                if site.surging():
                    self._surge(path)
                    return
                self._send(200, *_HEALTHY[path])

            def _surge(self, path: str) -> None:
                if path == "/":
                    site._stopping.wait(0.3)  # slow but up
                    self._send(200, *_HEALTHY[path])
                elif path == "/signup":
                    site._stopping.wait(site.hang_seconds)  # the probe times out first
                    self._send(504, "Gateway Timeout", "upstream timed out")
                else:
                    self._send(
                        503, "Server sedang sibuk", "Server sedang sibuk, silakan coba lagi nanti."
                    )

            def _send(self, code: int, title: str, body: str) -> None:
                payload = _PAGE.format(title=title, body=body).encode()
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the probe gave up waiting, as a user would

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler
