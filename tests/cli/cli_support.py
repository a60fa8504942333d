"""Helpers of the end-to-end CLI tests: the real ``pantau`` console script run as a
subprocess, config files written as TOML, and a stub HTTP server on 127.0.0.1.

Every ``pantau`` call starts a fresh interpreter (over a second of CPU), so
:func:`parallel` runs independent calls side by side.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TypeVar

#: The console script installed beside the interpreter running the tests.
PANTAU = Path(sys.executable).with_name("pantau")
REPO = Path(__file__).resolve().parents[2]
#: Upper bound of one ``pantau`` call that is not meant to run long.
CALL_TIMEOUT = 60.0

T = TypeVar("T")


def parallel(*calls: Callable[[], T]) -> list[T]:
    """Run independent calls concurrently; their results in the order given."""
    with ThreadPoolExecutor(max_workers=max(os.cpu_count() or 2, 2)) as pool:
        futures = [pool.submit(call) for call in calls]
        return [future.result() for future in futures]


@dataclass(frozen=True)
class Outcome:
    """What one ``pantau`` call did."""

    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    def lines(self) -> list[str]:
        return [line for line in self.stdout.splitlines() if line.strip()]

    def __str__(self) -> str:
        return (
            f"pantau {' '.join(self.args)} -> exit {self.code}\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )


@dataclass
class Pantau:
    """Runs the real console script from ``cwd`` with a clean environment."""

    cwd: Path
    env: dict[str, str] = field(default_factory=dict)

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PANTAU_")}
        # Wide, plain output: no colours, no table cells wrapped or cut.
        env.update(COLUMNS="250", NO_COLOR="1", TERM="dumb")
        env.update(self.env)
        env.update(extra or {})
        return env

    def run(
        self,
        *args: str | Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = CALL_TIMEOUT,
        stdin: str | None = None,
    ) -> Outcome:
        proc = subprocess.run(
            [str(PANTAU), *map(str, args)],
            input=stdin,
            capture_output=True,
            text=True,
            encoding="utf-8",
            env=self.environment(env),
            cwd=cwd or self.cwd,
            timeout=timeout,
            check=False,
        )
        return Outcome(tuple(map(str, args)), proc.returncode, proc.stdout, proc.stderr)

    def run_all(self, *calls: Sequence[str | Path]) -> list[Outcome]:
        """Run independent calls concurrently; outcomes in the order given."""
        return parallel(*(lambda call=call: self.run(*call) for call in calls))

    def popen(self, *args: str | Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(PANTAU), *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            env=self.environment(env),
            cwd=self.cwd,
        )


def stop_process(proc: subprocess.Popen[str]) -> None:
    """Kill a process a test started, if it is still running, and reap it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)


# --- config files ---------------------------------------------------------------------


def toml_value(value: object) -> str:
    """A TOML literal for the few value types the tests write."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f'"{k}" = {toml_value(v)}' for k, v in value.items()) + " }"
    raise TypeError(f"no TOML for {value!r}")


def toml_table(header: str, values: dict[str, object]) -> str:
    return "\n".join([header, *(f"{key} = {toml_value(v)}" for key, v in values.items())]) + "\n"


COMPONENTS: tuple[dict[str, object], ...] = (
    {"id": "home", "name": {"id": "Beranda", "en": "Home"}},
    {"id": "login", "name": {"id": "Masuk", "en": "Login"}},
)


@dataclass
class ConfigWriter:
    """Writes configs whose SQLite store and published site live in ``root``."""

    root: Path

    @property
    def db(self) -> Path:
        return self.root / "pantau.db"

    @property
    def site(self) -> Path:
        return self.root / "site"

    def write(
        self,
        checks: Sequence[dict[str, object]] = (),
        *,
        name: str = "config.toml",
        components: Sequence[dict[str, object]] = COMPONENTS,
        alerts: dict[str, object] | None = None,
        detection: dict[str, object] | None = None,
        site: dict[str, object] | None = None,
        tables: Sequence[tuple[str, dict[str, object]]] = (),
        storage: dict[str, object] | None = None,
    ) -> Path:
        """Write the config file and return its path. Checks are ``kind = "http"``;
        ``tables`` adds ``(header, values)`` pairs such as ``("[metrics]", {...})``."""
        site_values = {"output_dir": str(self.site), "publish_interval": "1s", **(site or {})}
        parts = [
            toml_table("[site]", site_values),
            toml_table("[storage]", storage or {"url": f"sqlite:///{self.db}"}),
            toml_table("[probe]", {"jitter": "100ms"}),
            toml_table("[detection]", detection or {"failures_to_down": 2, "passes_to_recover": 2}),
            toml_table("[alerts]", alerts or {"notify": []}),
            *(toml_table("[[components]]", c) for c in components),
            *(toml_table("[[checks]]", {"kind": "http", **c}) for c in checks),
            *(toml_table(header, values) for header, values in tables),
        ]
        path = self.root / name
        path.write_text("\n".join(parts), encoding="utf-8")
        return path


# --- a stub server ------------------------------------------------------------------------


class StubServer:
    """Answers every GET on 127.0.0.1 with ``status`` (or, with ``redirect_loop``, a 302
    back to the same path) and records each request's path and headers."""

    def __init__(self, *, status: int = 200, redirect_loop: bool = False) -> None:
        self.status = status
        self.redirect_loop = redirect_loop
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with stub._lock:
                    stub.requests.append((self.path, dict(self.headers.items())))
                body = b"" if stub.redirect_loop else b"stub page\n"
                self.send_response(302 if stub.redirect_loop else stub.status)
                if stub.redirect_loop:
                    self.send_header("Location", self.path)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler
