"""A local alert receiver: an HTTP endpoint on 127.0.0.1 that records Apprise ``json://`` posts."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True, slots=True)
class ReceivedAlert:
    """One message as the receiver got it."""

    path: str
    title: str
    body: str
    payload: dict[str, Any]


class AlertReceiver:
    """Collects posted JSON messages. ``fail_next`` makes it answer 500 that many times."""

    def __init__(self, *, fail_next: int = 0) -> None:
        self.messages: list[ReceivedAlert] = []
        self.fail_next = fail_next
        self.refused = 0
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def apprise_url(self) -> str:
        return f"json://127.0.0.1:{self.port}/alerts"

    def start(self) -> AlertReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait_for(self, count: int, timeout: float) -> bool:
        """Block until ``count`` messages arrived or ``timeout`` seconds passed."""
        with self._arrived:
            return self._arrived.wait_for(lambda: len(self.messages) >= count, timeout=timeout)

    def _record(self, path: str, raw: bytes) -> bool:
        with self._arrived:
            if self.fail_next > 0:
                self.fail_next -= 1
                self.refused += 1
                return False
            try:
                payload = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                payload = {"raw": raw.decode("utf-8", "replace")}
            self.messages.append(
                ReceivedAlert(
                    path, str(payload.get("title", "")), str(payload.get("message", "")), payload
                )
            )
            self._arrived.notify_all()
            return True

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                accepted = receiver._record(self.path, self.rfile.read(length))
                self.send_response(200 if accepted else 500)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler
