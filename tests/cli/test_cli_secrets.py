"""Secrets never escape (issue 8, point 5).

Every ``pantau`` command runs as a subprocess with ``-vv`` (debug logging) and known secret
values in its environment, referenced from the config only as ``${ENV}``: check headers,
a login flow's form credentials, the Apprise notify URL, the ``[incidents.x]`` keys, the
``[social]`` bearer token, the ``[site.s3]`` keys and, in a second config, a PostgreSQL
password. Then every place a secret could end up is scanned for every secret: stdout and
stderr of each call, every file under the test's folder (the SQLite store with its -wal
and -shm, the published site, report files), the objects uploaded to the bucket, the page
``pantau serve`` serves, the bodies of the alerts a local receiver got, and what a host
the probe was redirected to received. 0 hits are allowed.

A secret must still reach the places it is for (the probed site's request headers and
form, the receiver's URL path, X's request headers, the bucket: the upload works with no
AWS credentials but the config's): those are asserted too, so the test cannot pass by
never using a secret.

No request leaves 127.0.0.1: the target, the login site, the alert receiver and the S3
bucket (moto's server) are local; X is stood in for in-process by ``responses``
(``--post-x`` and the ``x`` social source), and the subprocess runs read the social
signal from a ``file`` source.

The scenario runs once for the module (fixture ``story``); each place scanned is its own
test, so a leak fails (or, known, xfails) alone.
"""

from __future__ import annotations

import html
import json
import logging
import secrets
import signal
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote_plus

import boto3
import httpx
import pytest
import requests
import responses
from cli_support import CALL_TIMEOUT, ConfigWriter, Outcome, Pantau, parallel, stop_process
from moto.server import ThreadedMotoServer
from typer.testing import CliRunner

from monitor.cli import app
from monitor.demo.receiver import AlertReceiver


def _secret(purpose: str) -> str:
    """A value easy to scan for: ``S3cr3t-<purpose>-<random hex>`` (letters, digits and
    dashes only, so every encoding of a longer value that contains it still contains it)."""
    return f"S3cr3t-{purpose}-{secrets.token_hex(8)}"


#: The scanned part of each secret, by the environment variable that holds it.
SECRETS: dict[str, str] = {
    "PANTAU_CHECK_TOKEN": _secret("check-bearer"),
    "PANTAU_CHECK_API_KEY": _secret("check-apikey"),
    "PANTAU_PROBE_EMAIL": _secret("flow-email"),
    "PANTAU_PROBE_PASSWORD": _secret("flow-password"),
    "PANTAU_HOOK_TOKEN": _secret("apprise-hook"),
    "X_API_KEY": _secret("x-api-key"),
    "X_API_SECRET": _secret("x-api-secret"),
    "X_ACCESS_TOKEN": _secret("x-access-token"),
    "X_ACCESS_TOKEN_SECRET": _secret("x-access-token-secret"),
    "X_BEARER_TOKEN": _secret("x-bearer"),
    "PANTAU_S3_KEY_ID": _secret("s3-key-id"),
    "PANTAU_S3_SECRET": _secret("s3-secret-key"),
    "PANTAU_DB_PASSWORD": _secret("db-password"),
}
#: The values set in the environment: the email and password carry characters a form
#: encodes (``@ / + & = %`` and a space), so an encoded copy is caught by the scan too.
ENVIRONMENT: dict[str, str] = {
    **SECRETS,
    "PANTAU_PROBE_EMAIL": SECRETS["PANTAU_PROBE_EMAIL"] + "@probe.example.id",
    "PANTAU_PROBE_PASSWORD": SECRETS["PANTAU_PROBE_PASSWORD"] + " /+&=%",
}
X_VARIABLES = ("X_API_KEY", "X_API_SECRET", "X_ACCESS_TOKEN", "X_ACCESS_TOKEN_SECRET")
BASE_URL = "https://status.prakerja.example"
BUCKET = "pantau-secrets"
CSRF = "csrf-4d2c-not-a-secret"


def hits(data: str | bytes) -> list[str]:
    """The variables whose secret appears in ``data``."""
    raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
    return sorted(name for name, value in SECRETS.items() if value.encode() in raw)


def leak_report(found: dict[str, list[str]]) -> str:
    return "\n".join(f"{where}: {', '.join(names)}" for where, names in found.items() if names)


# --- servers on 127.0.0.1 ------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Answer = tuple[int, dict[str, str], bytes]


class Site:
    """A loopback HTTP server answering each request with ``answer(seen)``, recording all."""

    def __init__(self, answer: Callable[[Seen], Answer]) -> None:
        self.answer = answer
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def requests(self) -> list[Seen]:
        with self._lock:
            return list(self.seen)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = Seen(self.command, self.path, dict(self.headers.items()), body)
                with site._lock:
                    site.seen.append(seen)
                status, headers, payload = site.answer(seen)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_HEAD = _serve

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


HTML = {"Content-Type": "text/html; charset=utf-8"}


def login_site_answer(seen: Seen) -> Answer:
    """A login form, and a careless site that echoes the posted form (raw and decoded) in
    its 401 page: a failure detail must still never quote the credentials."""
    if seen.method == "GET":
        form = f'<form method="post"><input type="hidden" name="_token" value="{CSRF}"></form>'
        return 200, HTML, f"<html><body><h1>Masuk</h1>{form}</body></html>".encode()
    posted = {k: v[0] for k, v in parse_qs(seen.body.decode()).items()}
    echo = html.escape(seen.body.decode()) + "<br>" + html.escape(repr(posted))
    return 401, HTML, f"<h1>Email atau kata sandi salah</h1><pre>{echo}</pre>".encode()


# --- the config -----------------------------------------------------------------------------


def checks_config(target: Site, elsewhere: Site, login: Site) -> list[dict[str, object]]:
    secret_headers = {
        "Authorization": "Bearer ${PANTAU_CHECK_TOKEN}",
        "X-Api-Key": "${PANTAU_CHECK_API_KEY}",
    }
    fast = {"interval": "300ms", "timeout": "2s", "retries": 0}
    return [
        # Login answers 503: it fails, an incident opens, the alert goes out.
        {"id": "login-page", "component": "login", "url": target.url("/masuk"), **fast,
         "headers": secret_headers},
        # Home redirects to another origin, which must not be handed the secret headers.
        {"id": "home-page", "component": "home", "url": target.url("/pindah"), **fast,
         "headers": secret_headers},
        {"id": "login-flow", "component": "login", "kind": "flow", **fast, "steps": [
            {"name": "login-page", "url": login.url("/masuk"),
             "extract": {"csrf": {"css": "input[name=_token]", "attr": "value"}}},
            {"name": "submit-login", "method": "POST", "url": login.url("/masuk"),
             "form": {"_token": "{{ csrf }}", "email": "${PANTAU_PROBE_EMAIL}",
                      "password": "${PANTAU_PROBE_PASSWORD}"},
             "expect_status": "200-299", "body_not_contains": ["Email atau kata sandi salah"]},
        ]},
    ]  # fmt: skip


X_TABLE = (
    "[incidents.x]",
    {name.lower().removeprefix("x_"): f"${{{name}}}" for name in X_VARIABLES},
)


def write_config(
    writer: ConfigWriter,
    checks: list[dict[str, object]],
    *,
    receiver: AlertReceiver,
    s3_endpoint: str,
    stream: Path,
    storage: dict[str, object] | None = None,
) -> Path:
    s3 = {
        "bucket": BUCKET,
        "prefix": "status",
        "endpoint_url": s3_endpoint,
        "region": "us-east-1",
        "access_key_id": "${PANTAU_S3_KEY_ID}",
        "secret_access_key": "${PANTAU_S3_SECRET}",
    }
    social = {
        # The x source is configured (its token must be loaded and kept quiet) but only
        # the file source is polled: no subprocess talks to X.
        "sources": ["file"],
        "file": str(stream),
        "bearer_token": "${X_BEARER_TOKEN}",
        "poll_interval": "1s",
        "bucket": "1m",
    }
    return writer.write(
        checks,
        # Published on every change and at the end; not every second (each is an upload).
        site={"base_url": BASE_URL, "publish_interval": "30s"},
        storage=storage,
        alerts={
            "notify": [f"json://127.0.0.1:{receiver.port}/hook/${{PANTAU_HOOK_TOKEN}}"],
            "backoff": "300ms",
            "group_wait": "200ms",
            "evaluation_interval": "200ms",
        },
        detection={"failures_to_down": 1, "passes_to_recover": 1},
        tables=[("[site.s3]", s3), ("[social]", social), X_TABLE],
    )


# --- the story: every command, once -------------------------------------------------------


@dataclass
class CleanPantau(Pantau):
    """The ``pantau`` command with no AWS settings of the machine (no key, profile or
    metadata service): the bucket can only be reached with the config's credentials."""

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = super().environment(extra)
        for name in [n for n in env if n.startswith("AWS_")]:
            del env[name]
        env.update(
            AWS_EC2_METADATA_DISABLED="true",
            AWS_CONFIG_FILE=str(self.cwd / "no-aws-config"),
            AWS_SHARED_CREDENTIALS_FILE=str(self.cwd / "no-aws-credentials"),
        )
        return env


Call = tuple[str, Sequence[str | Path]]  # (label, arguments after "pantau -c CONFIG -vv")

#: The calls, phase by phase: each phase's calls run side by side (``serve`` is started,
#: fetched and stopped). Incident 1 is opened by ``run`` (login fails), 2 by hand.
PHASES: tuple[tuple[Call, ...], ...] = (
    (
        ("validate", ["validate"]),
        ("check --json", ["check", "--json"]),
        ("incident templates", ["incident", "templates"]),
        ("complaints classify", ["complaints", "classify"]),
        ("complaints detect", ["complaints", "detect", "--csv", "series.csv"]),
        ("db upgrade", ["db", "upgrade"]),
    ),
    (
        # 3 s: the alert is refused once, then resent, even on a loaded machine.
        ("run --for 3", ["run", "--for", "3"]),
        ("db current", ["db", "current"]),
        ("complaints import", ["complaints", "import", "export.jsonl"]),
    ),
    (
        ("status", ["status"]),
        ("status --json", ["status", "--json"]),
        ("incident list --json", ["incident", "list", "--json"]),
        ("incident show 1", ["incident", "show", "1"]),
        ("incident show 1 --json", ["incident", "show", "1", "--json"]),
        ("incident report 1", ["incident", "report", "1"]),
        ("complaints samples --json",
         ["complaints", "samples", "--since", "1000h", "--all", "--json"]),
        ("silence add", ["silence", "add", "--component", "home", "--for", "1h",
                         "--reason", "deploy", "--author", "rina"]),
        ("incident open", ["incident", "open", "--component", "home=partial_outage",
                           "--title", "Beranda lambat", "-m", "Beranda lambat.",
                           "--message-en", "Home is slow.", "--author", "rina"]),
    ),
    (
        ("incident update 2", ["incident", "update", "2", "--status", "identified",
                               "--template", "traffic-surge"]),
        ("silence list --all --json", ["silence", "list", "--all", "--json"]),
        ("silence remove 1", ["silence", "remove", "1"]),
        ("serve", ["serve", "--port", "0"]),  # fetches / and stops it
    ),
    (
        ("incident resolve 2", ["incident", "resolve", "2"]),
        ("publish", ["publish"]),
        ("incident report 1 --format html --lang en --out",
         ["incident", "report", "1", "--format", "html", "--lang", "en", "--out", "report-1.html"]),
    ),
)  # fmt: skip
#: Expected exit codes (0 when not named): the failing login makes ``check`` exit 1.
EXIT_CODES = {"check --json": 1}
STDIN = {
    "complaints classify": "prakerja ga bisa login dari tadi\nmood lagi down banget\n",
}

#: Commands that open the store, against a PostgreSQL nobody listens for: exit 2, the URL
#: shown masked (tests/cli/test_cli_db.py covers ``db current``, ``db upgrade`` and
#: ``status`` the same way).
PG_CALLS: tuple[Call, ...] = (
    ("pg: validate", ["validate"]),
    ("pg: run --for 2", ["run", "--for", "2"]),
    ("pg: publish", ["publish"]),
    ("pg: incident open", ["incident", "open", "--component", "home", "-m", "Beranda lambat."]),
)
PG_EXIT_CODES = {"pg: validate": 0}

LABELS = [label for phase in PHASES for label, _ in phase]
PG_LABELS = [label for label, _ in PG_CALLS]

POSTS = [
    {"id": "p1", "text": "prakerja ga bisa login dari tadi, eror mulu",
     "created_at": "2026-09-17T07:01:02Z", "author": "warga4242"},
    {"id": "p2", "text": "alhamdulillah lolos gelombang 9 prakerja",
     "created_at": "2026-09-17T07:01:30+07:00"},
]  # fmt: skip


@dataclass
class Story:
    root: Path
    config: ConfigWriter
    outcomes: dict[str, Outcome]
    served_page: bytes
    target: Site
    elsewhere: Site
    login: Site
    receiver: AlertReceiver
    bucket_objects: dict[str, bytes]
    pg_url: str
    store_watch: StoreWatch
    files: list[Path] = field(default_factory=list)


class StoreWatch:
    """Reads every ``pantau.db*`` file (the database, its -wal and -shm) every 250 ms while
    the commands run, and keeps what it found: a secret written to the WAL and later
    overwritten would be gone from the files by the end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.found: dict[str, set[str]] = {}
        self.samples: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.25):
            for file in self.root.glob("pantau.db*"):
                try:
                    data = file.read_bytes()
                except FileNotFoundError:  # a -wal or -shm removed meanwhile
                    continue
                self.samples[file.name] = self.samples.get(file.name, 0) + 1
                self.found.setdefault(file.name, set()).update(hits(data))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _serve_and_fetch(pantau: Pantau, path: Path) -> tuple[Outcome, bytes]:
    """``pantau serve --port 0``: wait for its address, fetch /, stop it with SIGINT."""
    args = ("-c", path, "-vv", "serve", "--port", "0")
    proc = pantau.popen(*args)
    watchdog = threading.Timer(CALL_TIMEOUT, proc.kill)  # never wait on a silent server
    watchdog.start()
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # "serving DIR on http://127.0.0.1:PORT/ (Ctrl-C ...)"
        url = first.split(" on ", 1)[1].split(" ", 1)[0] if " on " in first else ""
        assert url.startswith("http://127.0.0.1:"), first
        page = httpx.get(url, timeout=5).content
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=10)
    except BaseException:
        stop_process(proc)
        raise
    finally:
        watchdog.cancel()
    return Outcome(tuple(map(str, args)), proc.returncode, first + stdout, stderr), page


def _run_phase(
    pantau: Pantau, path: Path, calls: Sequence[Call], served: list[bytes]
) -> dict[str, Outcome]:
    def serve() -> Outcome:
        outcome, page = _serve_and_fetch(pantau, path)
        served.append(page)
        return outcome

    def call(label: str, args: Sequence[str | Path]) -> Callable[[], Outcome]:
        if label == "serve":
            return serve
        return lambda: pantau.run("-c", path, "-vv", *args, stdin=STDIN.get(label))

    results = parallel(*(call(label, args) for label, args in calls))
    return {label: outcome for (label, _), outcome in zip(calls, results, strict=True)}


def _write_inputs(root: Path) -> Path:
    (root / "export.jsonl").write_text("".join(json.dumps(p) + "\n" for p in POSTS))
    start = datetime(2026, 9, 17, tzinfo=UTC)
    rows = [f"{(start + timedelta(minutes=5 * i)).isoformat()},{3 + i % 4}" for i in range(300)]
    rows[250] = rows[250].rsplit(",", 1)[0] + ",400"
    (root / "series.csv").write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    stream = root / "stream.jsonl"
    now = datetime.now(UTC).replace(microsecond=0)
    stream.write_text(
        json.dumps(
            {"id": "s1", "text": "prakerja gagal login terus", "created_at": now.isoformat()}
        )
        + "\n"
    )
    return stream


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    root = tmp_path_factory.mktemp("secrets")
    moto_port = _free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
    moto.start()
    endpoint = f"http://127.0.0.1:{moto_port}"
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.create_bucket(Bucket=BUCKET)
    elsewhere = Site(lambda seen: (200, HTML, b"<h1>Beranda</h1>"))

    def target_answer(seen: Seen) -> Answer:
        if seen.path == "/pindah":
            return 302, {"Location": elsewhere.url("/mendarat")}, b""
        return 503, HTML, b"<h1>Server sedang sibuk</h1>"

    target = Site(target_answer)
    login = Site(login_site_answer)
    receiver = AlertReceiver(fail_next=1).start()  # one refusal: the retry path logs too
    try:
        stream = _write_inputs(root)
        config = ConfigWriter(root)
        checks = checks_config(target, elsewhere, login)
        path = write_config(config, checks, receiver=receiver, s3_endpoint=endpoint, stream=stream)
        pantau = CleanPantau(cwd=root, env=dict(ENVIRONMENT))
        outcomes: dict[str, Outcome] = {}
        served: list[bytes] = []
        watch = StoreWatch(root)
        try:
            for phase in PHASES:
                outcomes.update(_run_phase(pantau, path, phase, served))
        finally:
            watch.stop()

        # The same config on a PostgreSQL nobody listens for, password from the environment.
        pg_root = root / "pg"
        pg_root.mkdir()
        pg_url = (
            f"postgresql+psycopg://pantau:${{PANTAU_DB_PASSWORD}}@127.0.0.1:{_free_port()}/pantau"
        )
        pg_path = write_config(
            ConfigWriter(pg_root),
            checks,
            receiver=receiver,
            s3_endpoint=endpoint,
            stream=stream,
            storage={"url": pg_url, "connect_timeout": "2s"},
        )
        pg_pantau = CleanPantau(cwd=pg_root, env=dict(ENVIRONMENT))
        outcomes.update(_run_phase(pg_pantau, pg_path, PG_CALLS, served))

        listed = s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
        objects = {
            o["Key"]: s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listed
        }
        yield Story(
            root=root,
            config=config,
            outcomes=outcomes,
            served_page=b"".join(served),
            target=target,
            elsewhere=elsewhere,
            login=login,
            receiver=receiver,
            bucket_objects=objects,
            pg_url=pg_url,
            store_watch=watch,
            files=sorted(p for p in root.rglob("*") if p.is_file()),
        )
    finally:
        receiver.stop()
        for site in (target, elsewhere, login):
            site.stop()
        moto.stop()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- every command ran as meant -------------------------------------------------------------


def test_every_command_ran_with_the_secrets_loaded(story: Story) -> None:
    wrong = [
        str(o)
        for label, o in story.outcomes.items()
        if o.code != {**EXIT_CODES, **PG_EXIT_CODES}.get(label, 2 if label in PG_LABELS else 0)
    ]
    assert not wrong, "\n\n".join(wrong)
    out = story.outcomes
    assert "login-flow: flow every 0.3s -> login" in out["validate"].stdout
    by_check = {json.loads(line)["check"]: json.loads(line) for line in out["check --json"].lines()}
    assert by_check["login-page"]["status_code"] == 503
    assert by_check["home-page"]["ok"] is True
    assert by_check["login-flow"]["step"] == "submit-login"
    assert by_check["login-flow"]["status_code"] == 401
    assert "uploaded to s3://" in out["publish"].stdout
    assert "file: ok" in out["status"].stdout
    assert json.loads(out["incident show 1 --json"].stdout)["automatic"] is True
    assert out["serve"].stdout.startswith("serving ")
    assert b"<html" in story.served_page.lower()


def test_the_secrets_reached_the_places_they_are_for(story: Story) -> None:
    """Proof that the test is live: each secret was handed to its own recipient."""
    token, api_key = SECRETS["PANTAU_CHECK_TOKEN"], SECRETS["PANTAU_CHECK_API_KEY"]
    probes = [s for s in story.target.requests() if s.path == "/masuk"]
    assert probes
    for seen in story.target.requests():
        assert seen.headers.get("Authorization") == f"Bearer {token}"
        assert seen.headers.get("X-Api-Key") == api_key
    posted = [s.body for s in story.login.requests() if s.method == "POST"]
    assert posted, "the flow never submitted its form"
    expected = {
        "email": ENVIRONMENT["PANTAU_PROBE_EMAIL"],
        "password": ENVIRONMENT["PANTAU_PROBE_PASSWORD"],
        "_token": CSRF,
    }
    for body in posted:
        assert {k: v[0] for k, v in parse_qs(body.decode()).items()} == expected
        assert quote_plus(ENVIRONMENT["PANTAU_PROBE_PASSWORD"]).encode() in body
    assert story.receiver.refused == 1
    assert story.receiver.messages, "no alert arrived"
    for message in story.receiver.messages:
        assert message.path == f"/hook/{SECRETS['PANTAU_HOOK_TOKEN']}"
    # The bucket is reachable only with the config's key (no AWS_* in the environment).
    assert "status/index.html" in story.bucket_objects


# --- no secret anywhere else --------------------------------------------------------------


@pytest.mark.parametrize("label", LABELS + PG_LABELS)
def test_no_secret_in_the_output_of(story: Story, label: str) -> None:
    outcome = story.outcomes[label]
    found = {"stdout": hits(outcome.stdout), "stderr": hits(outcome.stderr)}
    assert not leak_report(found), f"{leak_report(found)}\n{outcome}"


def test_unreachable_postgres_fails_cleanly_and_masked(story: Story) -> None:
    for label in PG_LABELS:
        outcome = story.outcomes[label]
        assert "Traceback" not in outcome.stderr, str(outcome)
        if label != "pg: validate":
            assert f"storage error ({story.pg_url})" in outcome.stderr, str(outcome)
    assert f"storage: {story.pg_url}" in story.outcomes["pg: validate"].stdout


def test_no_secret_in_the_store(story: Story) -> None:
    stored = [f for f in story.files if f.name.startswith("pantau.db")]
    assert story.config.db in stored
    found = {str(f): hits(f.read_bytes()) for f in stored}
    # ... and while the commands ran (the WAL was read at least once, so it was watched).
    assert story.store_watch.samples.get("pantau.db-wal"), story.store_watch.samples
    found |= {
        f"{name} (while running)": sorted(names) for name, names in story.store_watch.found.items()
    }
    assert not leak_report(found), leak_report(found)


def test_no_secret_on_the_published_site(story: Story) -> None:
    published = [f for f in story.files if story.config.site in f.parents]
    assert story.config.site / "index.html" in published
    assert story.config.site / "incidents" / "2.html" in published
    found = {str(f): hits(f.read_bytes()) for f in published}
    found["pantau serve /"] = hits(story.served_page)
    found |= {f"s3://{BUCKET}/{key}": hits(data) for key, data in story.bucket_objects.items()}
    assert not leak_report(found), leak_report(found)


def test_no_secret_in_any_other_file(story: Story) -> None:
    """Report files, the inputs, the config (which holds only ``${ENV}`` references)."""
    assert story.root / "report-1.html" in story.files
    found = {str(f): hits(f.read_bytes()) for f in story.files}
    assert not leak_report(found), leak_report(found)


def test_no_secret_in_the_alert_messages(story: Story) -> None:
    found = {
        f"alert {i} ({m.title})": hits(json.dumps(m.payload))
        for i, m in enumerate(story.receiver.messages)
    }
    assert not leak_report(found), leak_report(found)


def test_a_host_the_probe_is_redirected_to_gets_no_secret(story: Story) -> None:
    landed = story.elsewhere.requests()
    assert landed, "the redirect was never followed"
    found = {f"{s.method} {s.path}": hits(json.dumps(s.headers) + s.body.decode()) for s in landed}
    assert not leak_report(found), leak_report(found)


# --- X, in-process: --post-x and the x social source ---------------------------------------

TWEETS = "https://api.twitter.com/2/tweets"


@pytest.fixture
def x_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)


def _created(post_id: str) -> dict[str, object]:
    return {"data": {"id": post_id, "text": "..."}}


def test_post_x_keeps_the_x_keys_to_the_signature(
    x_env: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    writer = ConfigWriter(tmp_path)
    path = writer.write(site={"base_url": BASE_URL}, tables=[X_TABLE])
    cli = CliRunner()

    def invoke(*args: str) -> Any:
        return cli.invoke(app, ["-c", str(path), "-vv", *args])

    with responses.RequestsMock() as mock:
        mock.add(responses.POST, TWEETS, json=_created("1850000000000000001"), status=201)
        opened = invoke("incident", "open", "--component", "login", "-m", "Masuk gagal.",
                        "--post-x")  # fmt: skip
        sent = [call.request for call in mock.calls]
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, TWEETS, json={"title": "Unauthorized", "status": 401}, status=401)
        refused = invoke("incident", "update", "1", "-m", "Masih gagal.", "--post-x")
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, TWEETS, json=_created("1850000000000000002"), status=201)
        retried = invoke("incident", "post-x", "2")
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, TWEETS, body=requests.ConnectionError("X is down"))
        failed = invoke("incident", "resolve", "1", "--post-x")
    shown = invoke("incident", "show", "1", "--json")
    report = invoke(
        "incident", "report", "1", "--format", "html", "--out", str(tmp_path / "x-report.html")
    )
    published = invoke("publish")

    results = {"open": opened, "update": refused, "post-x": retried, "resolve": failed}
    results |= {"show": shown, "report": report, "publish": published}
    assert [r.exit_code for r in results.values()] == [0, 1, 0, 1, 0, 0, 0], [
        r.output for r in results.values()
    ]
    # Live: the request was signed with the keys (the key and token travel in the
    # OAuth header; the two secrets only sign it).
    (request,) = sent
    authorization = str(request.headers["Authorization"])
    assert authorization.startswith("OAuth ")
    assert SECRETS["X_API_KEY"] in authorization and SECRETS["X_ACCESS_TOKEN"] in authorization

    found = {f"{name} stdout": hits(r.stdout) for name, r in results.items()}
    found |= {f"{name} stderr": hits(r.stderr) for name, r in results.items()}
    found["log records"] = hits(caplog.text)
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert writer.db in files and writer.site / "index.html" in files
    found |= {str(f): hits(f.read_bytes()) for f in files}
    assert not leak_report(found), leak_report(found)


def test_the_x_source_keeps_the_bearer_token_to_the_request(
    x_env: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``pantau -vv run`` polling the ``x`` source (tweepy logs request headers at debug):
    X counts the complaints, refuses the search, and the token shows nowhere."""
    caplog.set_level(logging.DEBUG)
    writer = ConfigWriter(tmp_path)
    social = {"sources": ["x"], "bearer_token": "${X_BEARER_TOKEN}", "poll_interval": "1s"}
    path = writer.write(tables=[("[social]", social)])
    cli = CliRunner()
    minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=2)
    counts = {
        "data": [{"start": minute.isoformat(), "end": (minute + timedelta(minutes=1)).isoformat(),
                  "tweet_count": 7}],
        "meta": {"total_tweet_count": 7},
    }  # fmt: skip
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(responses.GET, f"{TWEETS}/counts/recent", json=counts)
        mock.add(responses.GET, f"{TWEETS}/search/recent", status=401,
                 json={"title": "Unauthorized", "status": 401})  # fmt: skip
        ran = cli.invoke(app, ["-c", str(path), "-vv", "run", "--for", "2"])
        sent = [call.request for call in mock.calls]
    status = cli.invoke(app, ["-c", str(path), "-vv", "status"])
    assert ran.exit_code == 0, ran.output
    assert status.exit_code == 0, status.output
    assert "  x: " in status.stdout
    assert sent, "X was never polled"
    for request in sent:  # live: the token went to X, and only there
        assert request.headers["Authorization"] == f"Bearer {SECRETS['X_BEARER_TOKEN']}"
    # tweepy did log the request headers at debug: masked.
    assert "'Authorization': 'Bearer ***'" in caplog.text

    found = {
        "run stdout": hits(ran.stdout),
        "run stderr": hits(ran.stderr),
        "status stdout": hits(status.stdout),
        "status stderr": hits(status.stderr),
        "log records": hits(caplog.text),
    }
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert writer.db in files
    found |= {str(f): hits(f.read_bytes()) for f in files}
    assert not leak_report(found), leak_report(found)
