"""A small registration site on 127.0.0.1 for flow checks, shaped like Prakerja's.

- ``GET /login`` starts a session (cookie ``sid``) and renders a form whose hidden
  ``csrf`` field belongs to that session.
- ``POST /login`` needs the session cookie, the matching ``csrf`` and the right email and
  password; then it sets ``auth`` on a 302 to ``/dashboard``. A bad session or token is a
  400 and wrong credentials a 401, both echoing the posted form (as careless sites do).
- ``GET /dashboard`` needs both cookies and says "Selamat datang"; else 302 to ``/login``.
- ``GET /signup`` starts a session and puts its token in ``<meta name="csrf-token">``;
  ``GET /api/availability?phone=...`` needs that session and token (``X-CSRF-Token``)
  and answers JSON without creating anything.
- ``GET /api/token`` answers a token in ``X-Probe-Token``; ``GET /api/me`` needs it as
  ``Authorization: Bearer ...``.
- ``GET /otp`` is the page asking for the code (it sends nothing); ``GET /slow`` answers
  after ``slow_seconds`` (or when the site stops).

Every request is recorded (method, path, Cookie header, body) for the tests to inspect.
"""

from __future__ import annotations

import html
import json
import secrets
import threading
from dataclasses import dataclass
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

EMAIL = "probe@example.id"


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    cookie: str | None
    body: bytes


class FlowSite:
    """The site, served by a thread; :meth:`close` stops it and joins the thread."""

    def __init__(self, *, password: str, slow_seconds: float = 5.0) -> None:
        self.password = password
        self.slow_seconds = slow_seconds
        self.requests: list[SeenRequest] = []
        self.sessions: dict[str, str] = {}  # sid -> csrf token
        self.logins: set[str] = set()  # auth cookie values
        self.api_tokens: set[str] = set()
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def record(self, seen: SeenRequest) -> None:
        with self._lock:
            self.requests.append(seen)

    def seen(self, path: str) -> list[SeenRequest]:
        with self._lock:
            return [r for r in self.requests if urlsplit(r.path).path == path]

    def new_session(self) -> tuple[str, str]:
        sid, csrf = secrets.token_hex(16), secrets.token_urlsafe(24)
        with self._lock:
            self.sessions[sid] = csrf
        return sid, csrf

    def close(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _handler_for(site: FlowSite) -> type[BaseHTTPRequestHandler]:
    class Handler(_SiteHandler):
        pass

    Handler.site = site
    return Handler


class _SiteHandler(BaseHTTPRequestHandler):
    site: FlowSite
    server_version = "FlowSite/1"

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass

    # --- plumbing ----------------------------------------------------------------------

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _cookies(self) -> dict[str, str]:
        jar: SimpleCookie = SimpleCookie(self.headers.get("Cookie") or "")
        return {name: morsel.value for name, morsel in jar.items()}

    def _send(
        self,
        status: int,
        body: str | bytes = b"",
        *,
        content_type: str = "text/html; charset=utf-8",
        headers: dict[str, str] | None = None,
        cookies: dict[str, str] | None = None,
    ) -> None:
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        for name, value in (cookies or {}).items():
            self.send_header("Set-Cookie", f"{name}={value}; Path=/; HttpOnly; SameSite=Lax")
        self.end_headers()
        self.wfile.write(data)

    def _route(self, method: str) -> None:
        body = self._body() if method == "POST" else b""
        self.site.record(SeenRequest(method, self.path, self.headers.get("Cookie"), body))
        path = urlsplit(self.path).path
        route = getattr(self, f"_{method.lower()}_{path.strip('/').replace('/', '_')}", None)
        if route is None:
            self._send(404, "<h1>Halaman tidak ditemukan</h1>")
        else:
            route(body) if method == "POST" else route()

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    # --- login -------------------------------------------------------------------------

    def _get_login(self) -> None:
        sid, csrf = self.site.new_session()
        page = (
            "<html><head><title>Masuk - Prakerja</title></head><body>"
            '<form method="post" action="/login">'
            f'<input type="hidden" name="csrf" value="{html.escape(csrf)}">'
            '<input name="email"><input name="password" type="password">'
            "<button>Masuk</button></form></body></html>"
        )
        self._send(200, page, cookies={"sid": sid})

    def _post_login(self, body: bytes) -> None:
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8")).items()}
        echo = f"<pre>{html.escape(body.decode('utf-8', 'replace'))}</pre>"
        sid = self._cookies().get("sid", "")
        if sid not in self.site.sessions or form.get("csrf") != self.site.sessions[sid]:
            self._send(400, f"<h1>Sesi tidak valid</h1><p>Data yang dikirim:</p>{echo}")
            return
        if form.get("email") != EMAIL or form.get("password") != self.site.password:
            self._send(401, f"<h1>Email atau kata sandi salah</h1>{echo}")
            return
        token = secrets.token_hex(16)
        self.site.logins.add(token)
        self._send(302, headers={"Location": "/dashboard"}, cookies={"auth": token})

    def _get_dashboard(self) -> None:
        cookies = self._cookies()
        if cookies.get("sid") in self.site.sessions and cookies.get("auth") in self.site.logins:
            self._send(200, "<h1>Selamat datang, Peserta Uji</h1>")
        else:
            self._send(302, headers={"Location": "/login"})

    # --- signup: a form, then an availability check that creates nothing ----------------

    def _get_signup(self) -> None:
        sid, csrf = self.site.new_session()
        page = (
            f'<html><head><meta name="csrf-token" content="{html.escape(csrf)}"></head>'
            "<body><h1>Daftar Akun</h1><form><input name=phone></form></body></html>"
        )
        self._send(200, page, cookies={"sid": sid})

    def _get_api_availability(self) -> None:
        sid = self._cookies().get("sid", "")
        if self.headers.get("X-CSRF-Token") != self.site.sessions.get(sid, object()):
            self._send(403, json.dumps({"error": "forbidden"}), content_type="application/json")
            return
        phone = parse_qs(urlsplit(self.path).query).get("phone", [""])[0]
        answer = {"data": {"phone": phone, "available": not phone.endswith("0")}, "checks": []}
        answer["checks"] = [{"field": "phone", "ok": phone.startswith("08")}]
        self._send(200, json.dumps(answer), content_type="application/json")

    # --- a token in a header -------------------------------------------------------------

    def _get_api_token(self) -> None:
        token = secrets.token_urlsafe(18)
        self.site.api_tokens.add(token)
        self._send(200, "{}", content_type="application/json", headers={"X-Probe-Token": token})

    def _get_api_me(self) -> None:
        auth = self.headers.get("Authorization", "")
        if auth.removeprefix("Bearer ") not in self.site.api_tokens:
            self._send(401, json.dumps({"error": "unauthorized"}), content_type="application/json")
            return
        self._send(
            200, json.dumps({"user": {"name": "Peserta Uji"}}), content_type="application/json"
        )

    # --- OTP page and a slow page ---------------------------------------------------------

    def _get_otp(self) -> None:
        self._send(200, "<h1>Masukkan kode OTP</h1><form><input name=code></form>")

    def _get_slow(self) -> None:
        self.site.stopping.wait(self.site.slow_seconds)
        self._send(200, "<p>akhirnya</p>")
