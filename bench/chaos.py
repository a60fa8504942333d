"""Chaos: ``pantau run`` killed with SIGKILL at random moments while its target fails and
recovers on a schedule; then the store, the incidents, the alerts and the site are checked.

Run from the project root::

    .venv/bin/python bench/chaos.py [--seed N] [--kills 20] [--duration 60] [--for 12]

One run, all on 127.0.0.1, in a temporary folder:

* a target (a ``ThreadingHTTPServer`` in this process) whose ``/login`` answers 503 during
  the scheduled outages (by this process's clock) and 200 otherwise;
* a real alert receiver (:class:`monitor.demo.receiver.AlertReceiver`), the config's only
  ``[alerts] notify`` target (Apprise ``json://``);
* ``pantau -c chaos.toml -vv run`` (role ``all``, a SQLite file, the site published every
  second), killed with SIGKILL at seeded random moments and started again after a short
  random pause, until the schedule is over and at least ``--kills`` kills were made; after
  every kill, before the restart, the published site is checked; then a last run that
  stops by itself (``--for``).

Then the invariants (DESIGN.md, "Rules for bad input and faults"): every result a process
logged as committed (``result committed ...``, monitor/runtime.py) is in ``probe_result``;
``PRAGMA integrity_check`` says ``ok``; each outage opened exactly one incident, opened and
resolved once; each alert message (one FIRING, one RESOLVED per incident) reached the
receiver exactly once, apart from the documented window (a delivery a kill left ``sending``
is sent again, so it arrives twice if the receiver already had it, and is not sent again when
a later message of its group superseded it: counted apart, as ``NOTE`` lines); the site was
a complete tree after every kill. A violated invariant prints ``FAIL``; the script always
exits 0 (benchmarks never fail CI). The last line printed is one JSON object.
``tests/chaos/test_chaos.py`` runs :func:`run_chaos` with a fixed seed and asserts them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere, or imported by a test
    sys.path.insert(0, str(ROOT))

from monitor.alerts import RECLAIM_MARGIN  # noqa: E402
from monitor.demo.receiver import AlertReceiver  # noqa: E402
from monitor.runtime import HEARTBEAT, MISSED_BEATS  # noqa: E402

#: What a process logs once it leads: its scheduler starts right after (monitor/leader.py).
READY_MARKER = "this coordinator now leads"
#: One line per result, logged at debug after its transaction committed (monitor/runtime.py).
COMMITTED = re.compile(
    r"result committed check=(?P<check>\S+) region=(?P<region>\S+) "
    r"started_at=(?P<started_at>\S+) attempt=(?P<attempt>\d+)\s*$"
)
#: A delivery left ``sending`` by a killed process and sent again (monitor/alerts.py).
RESENT = re.compile(r"alert delivery left sending by a stopped process, resent id=(\d+)")
#: The files every published tree has (monitor/publish.py, feeds.py, badges.py), besides
#: ``incidents/<id>.html`` in each language for every incident of ``api/v2/incidents.json``.
SITE_FILES = (
    "index.html",
    "history.html",
    "en/index.html",
    "en/history.html",
    "history.atom",
    "history.rss",
    "style.css",
    "api/v2/summary.json",
    "api/v2/status.json",
    "api/v2/components.json",
    "api/v2/incidents.json",
    "api/v2/incidents/unresolved.json",
    "api/v2/scheduled-maintenances.json",
    "badge/status.svg",
    "badge/status.json",
    "badge/login.svg",
    "badge/login.json",
)
CHECK_ID = "login"
REGION = "chaos"
ALERT_TIMEOUT_S = 2.0  # [alerts] timeout: a killed sender's delivery is taken back soon


@dataclass(frozen=True)
class Plan:
    """The sizes of one chaos run. Times are seconds from the first start."""

    seed: int
    kills: int = 20  # at least this many SIGKILLs (the run goes on past the schedule)
    duration: float = 60.0  # the outage schedule
    outages: int = 3
    outage_s: float = 8.0
    lead_s: float = 4.0  # healthy time before the first outage's slot
    final_for: float = 12.0  # the last run's --for (longer when a delivery awaits a resend)
    pause: tuple[float, float] = (0.1, 0.6)  # before each restart
    early_share: float = 0.35  # kills during start-up (imports, schema, election)...$
    early_at: tuple[float, float] = (0.02, 1.0)  # ... this share of a start's usual length
    uptime: tuple[float, float] = (0.2, 2.0)  # other kills: this long after it leads...
    guarded_uptime: float = 2.5  # ... but at least this long when it may see an outage
    settle_s: float = 3.5  # after an outage starts or ends: no kill of a process alive then
    start_timeout: float = 45.0  # a process must lead within this long of its start
    overrun: float = 90.0  # the kill phase ends at duration + overrun whatever the count

    def settle_windows(self) -> list[tuple[float, float]]:
        """The first ``settle_s`` of each outage and of each recovery: a process alive in
        one is not killed before it ends, so the failures (or passes) are counted and the
        alert rules evaluated on them at least once (see :func:`kill_at`)."""
        return sorted(
            (moment, moment + self.settle_s)
            for window in self.outage_windows()
            for moment in window
        )

    def outage_windows(self) -> list[tuple[float, float]]:
        """The outages, one centred in each equal slot of ``[lead_s, duration]``."""
        slot = (self.duration - self.lead_s) / self.outages
        windows = []
        for i in range(self.outages):
            middle = self.lead_s + slot * (i + 0.5)
            windows.append((middle - self.outage_s / 2, middle + self.outage_s / 2))
        return windows


# -- the loopback target ---------------------------------------------------------------
class Target:
    """``GET /login``: 503 inside an outage window, 200 otherwise; counts what it answered."""

    def __init__(self, windows: list[tuple[float, float]]) -> None:
        self.windows = windows
        self.t0 = time.monotonic()
        self.hits = 0
        self.failed = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/login"

    def start(self, t0: float) -> None:
        self.t0 = t0
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def down(self) -> bool:
        now = time.monotonic() - self.t0
        return any(start <= now < end for start, end in self.windows)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/login":
                    self.send_error(404)
                    return
                down = target.down()
                with target._lock:
                    target.hits += 1
                    target.failed += down
                body = b"503 Service Unavailable\n" if down else b"<h1>Masuk</h1>\n"
                self.send_response(503 if down else 200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


class Receiver(AlertReceiver):
    """The demo's receiver, noting when each message arrived; a body cut short by a
    sender killed mid-request is refused (a real endpoint would not take it either)."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[tuple[datetime, str]] = []
        self.truncated = 0
        self._times = threading.Lock()

    def _record(self, path: str, raw: bytes) -> bool:
        try:
            title = str(json.loads(raw.decode("utf-8")).get("title", ""))
        except (UnicodeDecodeError, ValueError, AttributeError):
            with self._times:
                self.truncated += 1
            return False
        accepted = super()._record(path, raw)
        if accepted:
            with self._times:
                self.arrivals.append((datetime.now(UTC), title))
        return accepted


def write_config(folder: Path, target_url: str, alerts_url: str) -> Path:
    """Checks every second, down after 2 failures, up after 2 passes, no re-probes."""
    config = folder / "chaos.toml"
    config.write_text(
        f"""\
[site]
title = "Chaos"
base_url = "http://127.0.0.1/"
output_dir = "{folder / "site"}"
publish_interval = "1s"

[storage]
url = "sqlite:///{folder / "pantau.db"}"

[probe]
region = "{REGION}"
jitter = "100ms"

[detection]
failures_to_down = 2
passes_to_recover = 2

[alerts]
notify = ["{alerts_url}"]
timeout = "{ALERT_TIMEOUT_S:g}s"
evaluation_interval = "1s"
group_wait = "1s"

[[components]]
id = "login"
name = {{ id = "Masuk", en = "Login" }}

[[checks]]
id = "{CHECK_ID}"
component = "login"
kind = "http"
url = "{target_url}"
interval = "1s"
timeout = "2s"
retries = 0
"""
    )
    return config


def kill_at(planned: float, ready: float, settle: list[tuple[float, float]]) -> float:
    """The kill moment of a process that leads from ``ready``: ``planned``, or the end of a
    settle window it is alive in, whichever is later."""
    for start, end in settle:
        if ready < end and planned > start:
            planned = max(planned, end)
    return planned


# -- the processes ----------------------------------------------------------------------
@dataclass
class RunRecord:
    """One ``pantau run`` process."""

    index: int
    log: Path
    started: float  # seconds from t0
    ready: float | None = None  # when it logged READY_MARKER
    ended: float | None = None
    killed: bool = False
    early: bool = False  # killed during start-up on purpose
    exit_code: int | None = None
    last_line: str = ""


def pantau_command() -> list[str]:
    script = Path(sys.executable).with_name("pantau")
    return [str(script)] if script.exists() else [sys.executable, "-m", "monitor"]


def child_env() -> dict[str, str]:
    """No proxy may take any request away from 127.0.0.1 (Apprise honours *_proxy)."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env.pop("PANTAU_CONFIG", None)
    return env


class Processes:
    """Starts ``pantau run`` processes (each in its own session) and kills them by id."""

    def __init__(self, config: Path, folder: Path, t0: float) -> None:
        self.config, self.folder, self.t0 = config, folder, t0
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, index: int, extra: list[str]) -> tuple[subprocess.Popen[bytes], RunRecord]:
        log = self.folder / f"run-{index:03d}.log"
        command = [*pantau_command(), "-c", str(self.config), "-vv", "run", *extra]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                cwd=self.folder,
                env=child_env(),
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc, RunRecord(index, log, time.monotonic() - self.t0)

    @staticmethod
    def kill(proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the process (and its session, by its id); reap it."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def kill_all(self) -> None:
        for proc in self.procs:
            self.kill(proc)


def wait_ready(
    proc: subprocess.Popen[bytes], log: Path, until: float, offset: int = 0
) -> tuple[bool, int]:
    """Poll ``log`` for READY_MARKER until the monotonic time ``until``; (seen, offset)."""
    while time.monotonic() < until:
        with log.open("rb") as handle:
            handle.seek(offset)
            chunk = handle.read()
        cut = chunk.rfind(b"\n") + 1
        if READY_MARKER.encode() in chunk[:cut]:
            return True, offset + cut
        offset += cut
        if proc.poll() is not None:
            return False, offset
        time.sleep(0.05)
    return False, offset


def sleep_alive(proc: subprocess.Popen[bytes], until: float) -> bool:
    """Sleep until ``until`` (monotonic); False if the process exited meanwhile."""
    while time.monotonic() < until:
        if proc.poll() is not None:
            return False
        time.sleep(min(0.05, max(0.0, until - time.monotonic())))
    return proc.poll() is None


def last_line(log: Path) -> str:
    with contextlib.suppress(OSError):
        lines = log.read_bytes().decode("utf-8", "replace").rstrip("\n").splitlines()
        return lines[-1][:240] if lines else ""
    return ""


# -- the site ---------------------------------------------------------------------------
@dataclass
class SiteCheck:
    """One look at the published tree."""

    at: float
    published: bool  # False before the first publish (the folder does not exist yet)
    problems: list[str] = field(default_factory=list)


def check_site(site: Path) -> tuple[bool, list[str]]:
    """(published, problems) of the tree at ``site``: every file there, JSON parses, feeds
    and badges parse as XML, pages end, every listed incident has its pages."""
    if not site.exists() and not site.is_symlink():
        return False, []
    problems = []
    if site.is_symlink() or not site.is_dir():
        return True, [f"{site.name} is not a plain folder"]
    if site.name.startswith("."):
        problems.append(f"{site.name} looks like a staging folder")
    for name in SITE_FILES:
        if not (site / name).is_file():
            problems.append(f"missing {name}")
    for path in sorted(site.rglob("*.json")):
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            problems.append(f"{path.relative_to(site)} is not JSON ({exc})")
    for pattern in ("*.atom", "*.rss", "badge/*.svg"):
        for path in sorted(site.glob(pattern)):
            try:
                ET.parse(path)
            except (OSError, ET.ParseError) as exc:
                problems.append(f"{path.relative_to(site)} is not XML ({exc})")
    for path in sorted(site.rglob("*.html")):
        with contextlib.suppress(OSError):
            if "</html>" not in path.read_text(encoding="utf-8", errors="replace"):
                problems.append(f"{path.relative_to(site)} is cut short")
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        listed = json.loads((site / "api/v2/incidents.json").read_text(encoding="utf-8"))
        for incident in listed["incidents"]:
            for page in (f"incidents/{incident['id']}.html", f"en/incidents/{incident['id']}.html"):
                if not (site / page).is_file():
                    problems.append(f"missing {page} (listed in api/v2/incidents.json)")
    return True, problems


def staging_left(site: Path) -> list[str]:
    """Folders publish_site renders into or swaps out (``.site.new-*``, ``.site.old-*``)."""
    return sorted(p.name for p in site.parent.glob(f".{site.name}.*-*") if p.is_dir())


# -- the store ---------------------------------------------------------------------------
def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


ResultKey = tuple[str, str, datetime, int]


def committed_results(logs: list[Path]) -> list[ResultKey]:
    keys = []
    for log in logs:
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
            match = COMMITTED.search(line)
            if match:
                keys.append(
                    (
                        match["check"],
                        match["region"],
                        parse_time(match["started_at"]),
                        int(match["attempt"]),
                    )
                )
    return keys


@contextlib.contextmanager
def database(path: Path) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(path, timeout=30)
    try:
        yield connection
    finally:
        connection.close()


def stored_results(path: Path) -> set[ResultKey]:
    with database(path) as db:
        rows = db.execute("SELECT check_id, region, started_at, attempt FROM probe_result")
        return {(c, r, parse_time(s), int(a)) for c, r, s, a in rows}


def awaiting_resend(path: Path) -> int:
    """Deliveries left ``sending`` by a killed process that a later leader will send again:
    those with no later message of their group (a superseded one is marked failed)."""
    if not path.exists():
        return 0
    query = """
        SELECT count(*) FROM alert_delivery AS d WHERE d.status = 'sending' AND NOT EXISTS (
            SELECT 1 FROM alert_delivery AS l WHERE l.group_id = d.group_id
            AND l.target_index = d.target_index AND l.seq > d.seq)
    """
    with database(path) as db, contextlib.suppress(sqlite3.Error):
        return int(db.execute(query).fetchone()[0])
    return 0


# -- one chaos run ------------------------------------------------------------------------
@dataclass
class Report:
    """Figures of one run; ``failures`` lists the violated invariants."""

    seed: int
    kills: int = 0
    kills_asked: int = 0
    kills_during_start: int = 0  # before the process logged that it leads
    runs: int = 0
    kill_phase_s: float = 0.0
    startup_s_median: float | None = None  # start to leading, per process
    startup_s_max: float | None = None
    results_logged: int = 0
    results_written: int = 0
    results_lost: int = 0
    lost_examples: list[str] = field(default_factory=list)
    target_requests: int = 0
    probes_not_stored: int = 0  # in flight at a kill: probed, never committed
    outages: list[list[float]] = field(default_factory=list)
    incidents_expected: int = 0
    incidents: int = 0
    incidents_opened: int = 0
    incidents_resolved: int = 0
    incidents_per_outage: list[int] = field(default_factory=list)
    incidents_unmatched: list[int] = field(default_factory=list)
    alert_messages_expected: int = 0
    alert_messages_received: int = 0
    alert_duplicates: int = 0
    alert_duplicates_documented: int = 0  # resent after a kill mid-send (the documented window)
    alert_missing: int = 0
    alert_missing_superseded: int = 0  # left sending by a kill, then superseded (documented)
    alert_missing_titles: list[str] = field(default_factory=list)
    alert_missing_superseded_titles: list[str] = field(default_factory=list)
    alert_unexpected: list[str] = field(default_factory=list)
    alert_diagnosis: list[str] = field(default_factory=list)
    alert_posts_cut_short: int = 0  # bodies cut by a kill mid-request, refused by the receiver
    deliveries_resent: int = 0
    deliveries_superseded: int = 0
    claim_to_accept_ms_median: float | None = None
    claim_to_accept_ms_max: float | None = None
    integrity_check: str = ""
    site_checks_passed: int = 0
    site_checks_failed: int = 0
    site_checks_unpublished: int = 0
    site_problems: list[str] = field(default_factory=list)
    staging_dirs_left: int = 0
    final_for_s: float = 0.0
    final_exit_code: int | None = None
    unexpected_exits: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    failures: list[str] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        return asdict(self)


def run_chaos(
    plan: Plan, *, folder: Path | None = None, say: Callable[[str], None] = print
) -> Report:
    """One chaos run (bounded in time); its figures. Every process started is killed
    before this returns; ``folder`` (default: a temporary one, removed) keeps the logs,
    the store, the site and ``runs.json``."""
    with contextlib.ExitStack() as stack:
        if folder is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pantau-chaos-")))
        folder.mkdir(parents=True, exist_ok=True)
        report = _run(plan, folder, say, stack)
    return report


def _run(
    plan: Plan, folder: Path, say: Callable[[str], None], stack: contextlib.ExitStack
) -> Report:
    report = Report(seed=plan.seed, kills_asked=plan.kills)
    rng = random.Random(plan.seed)
    windows, settle = plan.outage_windows(), plan.settle_windows()
    report.outages = [[round(s, 2), round(e, 2)] for s, e in windows]
    target = Target(windows)
    receiver = Receiver().start()
    stack.callback(receiver.stop)
    config = write_config(folder, target.url, receiver.apprise_url)
    site, db_path = folder / "site", folder / "pantau.db"
    t0 = time.monotonic()
    t0_wall = datetime.now(UTC)
    target.start(t0)
    stack.callback(target.stop)
    procs = Processes(config, folder, t0)
    stack.callback(procs.kill_all)  # the last step on the way out, whatever happened
    runs: list[RunRecord] = []
    site_checks: list[SiteCheck] = []
    startups: list[float] = []

    def elapsed() -> float:
        return time.monotonic() - t0

    def usual_startup() -> float:
        return statistics.median(startups) if startups else 3.0

    def may_see_outage(spawn_at: float) -> bool:
        """Whether a run started now may be alive near an outage (from 1 s before it to
        4 s after it). Such a run is not killed during start-up and lives at least
        ``guarded_uptime`` after it leads (two probes, two evaluations); with the settle
        windows (:func:`kill_at`), each outage is detected and its recovery seen before the
        next one, however the kills fall."""
        reach = spawn_at + usual_startup() + plan.uptime[1]
        return any(spawn_at <= e + 4.0 and reach >= s - 1.0 for s, e in windows)

    say(
        "outages (s from the first start; the target's /login answers 503): "
        + ", ".join(f"{s:.1f}-{e:.1f}" for s, e in windows)
    )
    hard_end = plan.duration + plan.overrun
    while True:
        now = elapsed()
        if (now >= plan.duration and report.kills >= plan.kills) or now >= hard_end:
            break
        # Every draw is made for every run, in this order, so a seed gives one sequence.
        pause = rng.uniform(*plan.pause)
        early_roll = rng.random()
        early_at = rng.uniform(*plan.early_at)
        uptime = rng.uniform(*plan.uptime)
        if runs:
            time.sleep(pause)
        guarded = may_see_outage(elapsed())
        early = early_roll < plan.early_share and not guarded
        if guarded:
            uptime = plan.guarded_uptime + uptime / 2
        proc, record = procs.start(len(runs) + 1, [])
        runs.append(record)
        started = time.monotonic()
        if early:
            record.early = True
            alive = sleep_alive(proc, started + early_at * usual_startup())
        else:
            seen, _ = wait_ready(proc, record.log, started + plan.start_timeout)
            alive = proc.poll() is None
            if seen:
                record.ready = elapsed()
                startups.append(record.ready - record.started)
                until = kill_at(record.ready + uptime, record.ready, settle)
                alive = sleep_alive(proc, t0 + until)
            elif alive:
                report.failures.append(
                    f"run {record.index} did not lead within {plan.start_timeout:.0f} s"
                )
        if alive:
            procs.kill(proc)
            record.killed = True
            report.kills += 1
            text = record.log.read_text(encoding="utf-8", errors="replace")
            if READY_MARKER not in text:
                report.kills_during_start += 1
        else:
            proc.wait(timeout=10)
        record.ended = elapsed()
        record.exit_code = proc.returncode
        record.last_line = last_line(record.log)
        published, problems = check_site(site)
        site_checks.append(SiteCheck(record.ended, published, problems))
        if problems:
            say(f"FAIL: the site after kill {report.kills}: {'; '.join(problems[:5])}")
        if not alive:
            report.unexpected_exits.append(
                f"run {record.index} exited by itself with code {proc.returncode}: "
                f"{record.last_line}"
            )
            say(f"FAIL: {report.unexpected_exits[-1]}")
            if len(report.unexpected_exits) >= 3:
                report.failures.append("pantau run keeps exiting by itself; kills stopped")
                break
    report.kill_phase_s = round(elapsed(), 1)
    report.failures.extend(report.unexpected_exits)
    say(
        f"kill phase: {report.kills} SIGKILLs ({report.kills_during_start} during start-up) "
        f"in {report.kill_phase_s:.1f} s"
    )

    # The last run stops by itself. A delivery left `sending` by a killed process is sent
    # again once that process has missed its heartbeats and the send's timeout passed.
    waiting = awaiting_resend(db_path)
    reclaim_after = max(
        HEARTBEAT * MISSED_BEATS, RECLAIM_MARGIN + timedelta(seconds=ALERT_TIMEOUT_S)
    ).total_seconds()
    final_for = max(plan.final_for, reclaim_after + 5) if waiting else plan.final_for
    report.final_for_s = final_for
    say(
        f"final run: --for {final_for:g} s ({waiting} alert deliveries left sending by a "
        f"killed process await a resend)"
    )
    proc, record = procs.start(len(runs) + 1, ["--for", f"{final_for:g}"])
    runs.append(record)
    try:
        proc.wait(timeout=final_for + plan.start_timeout + 60)
    except subprocess.TimeoutExpired:
        report.failures.append("the final run did not stop by itself; killed")
        procs.kill(proc)
    record.ended = elapsed()
    record.exit_code = report.final_exit_code = proc.returncode
    record.last_line = last_line(record.log)
    if proc.returncode != 0:
        report.failures.append(
            f"the final run exited with code {proc.returncode}: {record.last_line}"
        )
    published, problems = check_site(site)
    site_checks.append(SiteCheck(record.ended, published, problems))
    if not published:
        report.failures.append("no site was published")
    procs.kill_all()  # each has exited already; nothing is left running

    report.runs = len(runs)
    report.target_requests = target.hits
    if startups:
        report.startup_s_median = round(statistics.median(startups), 2)
        report.startup_s_max = round(max(startups), 2)
    _check_results(report, runs, db_path)
    _check_integrity(report, db_path)
    _check_incidents(report, db_path, windows, t0_wall)
    _check_alerts(report, db_path, runs, receiver)
    _check_site(report, site_checks, site)
    report.elapsed_s = round(elapsed(), 1)
    (folder / "runs.json").write_text(
        json.dumps([asdict(r) for r in runs], default=str, indent=1) + "\n"
    )
    return report


def _check_results(report: Report, runs: list[RunRecord], db_path: Path) -> None:
    logged = committed_results([r.log for r in runs])
    stored = stored_results(db_path)
    lost = sorted(set(logged) - stored)
    report.results_logged = len(logged)
    report.results_written = len(stored)
    report.results_lost = len(lost)
    report.lost_examples = [f"{c} {r} {s.isoformat()} attempt={a}" for c, r, s, a in lost[:5]]
    # Each probe is one GET (no retries, no redirects): requests the target answered whose
    # result is not stored were in flight when a process was killed.
    report.probes_not_stored = max(0, report.target_requests - len(stored))
    if lost:
        report.failures.append(
            f"{len(lost)} results logged as committed are not in the store, e.g. "
            + ", ".join(report.lost_examples[:3])
        )


def _check_integrity(report: Report, db_path: Path) -> None:
    with database(db_path) as db:
        rows = [str(row[0]) for row in db.execute("PRAGMA integrity_check")]
    report.integrity_check = "; ".join(rows)[:500]
    if rows != ["ok"]:
        report.failures.append(f"PRAGMA integrity_check: {report.integrity_check}")


def _check_incidents(
    report: Report, db_path: Path, windows: list[tuple[float, float]], t0_wall: datetime
) -> None:
    """Each outage opened one incident, opened once and resolved once after the outage."""
    with database(db_path) as db:
        incidents = db.execute(
            "SELECT id, status, started_at, resolved_at FROM incident ORDER BY id"
        ).fetchall()
        events = Counter(
            (incident_id, event)
            for incident_id, event in db.execute("SELECT incident_id, event FROM incident_update")
        )
    report.incidents_expected = len(windows)
    report.incidents = len(incidents)
    report.incidents_opened = sum(n for (_, event), n in events.items() if event == "opened")
    report.incidents_resolved = sum(n for (_, event), n in events.items() if event == "resolved")
    # An incident belongs to the outage during which it opened (its commit may land a
    # moment after the outage ended, hence the slack).
    slack = timedelta(seconds=3)
    spans = [(t0_wall + timedelta(seconds=s), t0_wall + timedelta(seconds=e)) for s, e in windows]
    per_outage: list[list[int]] = [[] for _ in windows]
    for incident_id, status, started_at, resolved_at in incidents:
        opened_at = parse_time(started_at)
        index = next((i for i, (s, e) in enumerate(spans) if s <= opened_at <= e + slack), None)
        if index is None:
            report.incidents_unmatched.append(incident_id)
            report.failures.append(
                f"incident #{incident_id} opened at {opened_at:%H:%M:%S.%f} outside every outage"
            )
            continue
        per_outage[index].append(incident_id)
        opened = events[(incident_id, "opened")]
        resolved = events[(incident_id, "resolved")]
        reopened = events[(incident_id, "reopened")]
        if (opened, resolved, reopened) != (1, 1, 0) or status != "resolved":
            report.failures.append(
                f"incident #{incident_id}: status {status}, opened {opened}x, resolved "
                f"{resolved}x, reopened {reopened}x (expected resolved, 1, 1, 0)"
            )
        elif resolved_at is None or parse_time(resolved_at) < spans[index][1]:
            report.failures.append(f"incident #{incident_id} resolved before its outage ended")
    report.incidents_per_outage = [len(ids) for ids in per_outage]
    for i, ids in enumerate(per_outage, 1):
        if len(ids) != 1:
            report.failures.append(f"outage {i} produced {len(ids)} incidents {ids} (expected 1)")


def _check_alerts(report: Report, db_path: Path, runs: list[RunRecord], receiver: Receiver) -> None:
    """One FIRING and one RESOLVED message per incident, each received exactly once.

    The documented exceptions (docs/deployment.md, "Failure modes"; monitor/alerts.py):
    a delivery a kill left ``sending`` is sent again, so it arrives twice when the kill
    fell after the receiver accepted it; and it is not sent again but marked failed when
    a later message of its group was queued meanwhile (superseded), so it never arrives
    when the kill fell before the receiver accepted it.
    """
    with database(db_path) as db:
        incident_ids = [row[0] for row in db.execute("SELECT id FROM incident ORDER BY id")]
        rows = db.execute(
            "SELECT id, group_id, seq, title, status, last_error, attempts, next_attempt_at "
            "FROM alert_delivery"
        ).fetchall()
        incident_open = {
            incident_id: parse_time(started_at)
            for incident_id, started_at in db.execute("SELECT id, started_at FROM incident")
        }
        spans = {
            group_id: (
                parse_time(created_at),
                parse_time(resolved_at) if resolved_at else None,
                incident_id,
            )
            for group_id, created_at, resolved_at, incident_id in db.execute(
                "SELECT id, created_at, resolved_at, incident_id FROM alert_group"
            )
        }
    groups = {owner for _, _, owner in spans.values()}
    titles = {row[0]: row[3] for row in rows}
    queued = {(group, seq) for _, group, seq, *_ in rows}
    superseded = {
        title
        for _, group, seq, title, status, error, _, _ in rows
        if (status == "failed" and "superseded" in (error or ""))
        or (status == "sending" and any(g == group and n > seq for g, n in queued))
    }
    report.deliveries_superseded = sum(
        1 for row in rows if row[4] == "failed" and "superseded" in (row[5] or "")
    )
    expected = []
    for incident_id in incident_ids:
        expected.append(f"[Pantau] FIRING: Login (incident #{incident_id})")
        expected.append(f"[Pantau] RESOLVED: Login (incident #{incident_id})")
    arrivals = list(receiver.arrivals)
    received = Counter(title for _, title in arrivals)
    resent: Counter[str] = Counter()
    for record in runs:
        for match in RESENT.finditer(record.log.read_text(encoding="utf-8", errors="replace")):
            resent[titles.get(int(match[1]), "?")] += 1
    report.deliveries_resent = sum(resent.values())
    report.alert_posts_cut_short = receiver.truncated
    report.alert_messages_expected = len(expected)
    report.alert_messages_received = sum(received.values())
    for title, count in sorted(received.items()):
        if count > 1:
            documented = min(count - 1, resent[title])
            report.alert_duplicates += count - 1
            report.alert_duplicates_documented += documented
            if count - 1 > documented:
                report.failures.append(f"alert received {count}x: {title!r}")
    for title in expected:
        if received[title]:
            continue
        report.alert_missing += 1
        report.alert_missing_titles.append(title)
        if title in superseded:
            report.alert_missing_superseded += 1
            report.alert_missing_superseded_titles.append(title)
        else:
            report.failures.append(f"alert never received: {title!r}")
    report.alert_unexpected = sorted(set(received) - set(expected))
    for incident_id in incident_ids:
        if incident_id in groups:
            continue
        covering = [
            g
            for g, (created, resolved, owner) in spans.items()
            if owner != incident_id
            and created <= incident_open[incident_id]
            and (resolved is None or resolved >= incident_open[incident_id])
        ]
        report.alert_diagnosis.append(
            f"incident #{incident_id} has no alert group of its own"
            + (
                f": alert group {covering[0]} (incident #{spans[covering[0]][2]}) was still "
                f"firing when it opened, as no evaluation saw the previous outage clear"
                if covering
                else ""
            )
        )
    for title in report.alert_unexpected:
        report.failures.append(f"unexpected alert received {received[title]}x: {title!r}")
    # How long a fresh process takes from claiming a delivery to the receiver having it:
    # a kill in that window leaves the delivery `sending`.
    claimed = {
        title: parse_time(claim_at)
        for _, _, _, title, status, _, attempts, claim_at in rows
        if status == "sent" and attempts == 1
    }
    first: dict[str, datetime] = {}
    for at, title in arrivals:
        first.setdefault(title, at)
    waits = [(first[t] - claimed[t]).total_seconds() * 1000 for t in first if t in claimed]
    if waits:
        report.claim_to_accept_ms_median = round(statistics.median(waits))
        report.claim_to_accept_ms_max = round(max(waits))


def _check_site(report: Report, checks: list[SiteCheck], site: Path) -> None:
    seen_published = False
    for check in checks:
        if not check.published:
            if not seen_published:
                report.site_checks_unpublished += 1
                continue
            check.problems = ["the published site disappeared"]
        seen_published = True
        if check.problems:
            report.site_checks_failed += 1
            report.site_problems.extend(f"at {check.at:.1f} s: {p}" for p in check.problems)
        else:
            report.site_checks_passed += 1
    if report.site_checks_failed:
        report.failures.append(
            f"the site was incomplete {report.site_checks_failed}x, e.g. {report.site_problems[0]}"
        )
    report.staging_dirs_left = len(staging_left(site))


# -- output -------------------------------------------------------------------------------
def print_report(report: Report, plan: Plan, say: Callable[[str], None] = print) -> None:
    r = report
    outages = ", ".join(f"{s:g}-{e:g}" for s, e in r.outages)
    say(f"seed: {r.seed}")
    say(f"outages: {len(r.outages)} of {plan.outage_s:g} s, at {outages} s from the start")
    say(
        f"kills: {r.kills} SIGKILL (at least {r.kills_asked} asked; {r.kills_during_start} "
        f"during start-up) in {r.kill_phase_s:g} s; runs: {r.runs} (the last stopped by "
        f"itself after --for {r.final_for_s:g} s, exit code {r.final_exit_code}); start to "
        f"leading: median {r.startup_s_median} s, max {r.startup_s_max} s"
    )
    say(
        f"results written: {r.results_written}; logged as committed: {r.results_logged}; "
        f"results lost: {r.results_lost}"
    )
    say(
        f"probes in flight at a kill (answered by the target, never committed; probed again "
        f"next interval): {r.probes_not_stored} of {r.target_requests}"
    )
    say(
        f"incidents: expected {r.incidents_expected}, opened {r.incidents_opened}, resolved "
        f"{r.incidents_resolved} (per outage: {r.incidents_per_outage}; outside every "
        f"outage: {len(r.incidents_unmatched)})"
    )
    say(
        f"alert messages: expected {r.alert_messages_expected}, received "
        f"{r.alert_messages_received}; duplicates: "
        f"{r.alert_duplicates - r.alert_duplicates_documented} (+"
        f"{r.alert_duplicates_documented} in the documented window); missing: "
        f"{r.alert_missing - r.alert_missing_superseded} (+{r.alert_missing_superseded} "
        f"superseded after a kill mid-send); unexpected: {len(r.alert_unexpected)}"
    )
    say(
        f"alert deliveries: sent again after a kill {r.deliveries_resent}, superseded after a "
        f"kill {r.deliveries_superseded}, posts cut short by a kill {r.alert_posts_cut_short}; "
        f"claim to receiver (first attempts): median {r.claim_to_accept_ms_median} ms, max "
        f"{r.claim_to_accept_ms_max} ms"
    )
    say(f"integrity_check: {r.integrity_check}")
    say(
        f"site checks: passed {r.site_checks_passed}, failed {r.site_checks_failed} (before "
        f"the first publish: {r.site_checks_unpublished}); staging folders left beside the "
        f"site by killed publishes: {r.staging_dirs_left}"
    )
    say(f"elapsed: {r.elapsed_s:g} s")
    for problem in r.site_problems[:10]:
        say(f"  site: {problem}")
    if r.kills < r.kills_asked:
        say(f"NOTE: only {r.kills} of {r.kills_asked} kills fitted before the deadline")
    if r.alert_duplicates_documented:
        say(
            f"NOTE: {r.alert_duplicates_documented} alert message(s) arrived twice: the sender "
            f"was killed after the receiver accepted, before it recorded the outcome"
        )
    for line in r.alert_diagnosis:
        say(f"NOTE: {line}")
    for title in r.alert_missing_superseded_titles:
        say(
            f"NOTE: never received: {title!r} (a kill left it sending before the receiver "
            f"had it; a later message of its group superseded it, so it was not resent)"
        )
    if r.staging_dirs_left:
        say(
            f"NOTE: {r.staging_dirs_left} staging folder(s) (.site.new-*) left beside the "
            f"site by killed publishes are never removed"
        )
    for failure in r.failures:
        say(f"FAIL: {failure}")
    if not r.failures:
        say(
            "PASS: no committed result lost, store intact, one incident per outage, no alert "
            "twice outside the documented window, the site complete after every kill"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0])
    parser.add_argument("--seed", type=int, default=None, help="default: random (printed)")
    parser.add_argument("--kills", type=int, default=Plan.kills, help="at least this many")
    parser.add_argument(
        "--duration", type=float, default=Plan.duration, help="the outage schedule, s"
    )
    parser.add_argument("--outages", type=int, default=Plan.outages)
    parser.add_argument("--outage", type=float, default=Plan.outage_s, help="each, s")
    parser.add_argument(
        "--for", dest="final_for", type=float, default=Plan.final_for, help="the last run, s"
    )
    parser.add_argument("--keep", type=Path, default=None, help="keep logs, store, site here")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    print(f"seed: {seed}", flush=True)
    plan = Plan(
        seed=seed,
        kills=args.kills,
        duration=args.duration,
        outages=args.outages,
        outage_s=args.outage,
        final_for=args.final_for,
    )

    def say(line: str) -> None:
        print(line, flush=True)

    figures: dict[str, Any]
    try:
        report = run_chaos(plan, folder=args.keep, say=say)
    except Exception as exc:  # a benchmark never fails CI: say what broke
        say(f"FAIL: the chaos run broke: {type(exc).__name__}: {exc}")
        figures = {"seed": seed, "error": f"{type(exc).__name__}: {exc}"}
    else:
        say("")
        print_report(report, plan, say)
        figures = report.figures()
        if args.keep is not None:
            say(f"logs, store, site and runs.json kept in {args.keep}")
    print(json.dumps(figures, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
