"""Probe engine budget: CPU per probe against blackbox_exporter, and schedule start jitter.

Run from the project root::

    .venv/bin/python bench/probe_throughput.py [--quick]

In one run, against one loopback target (Debian's nginx when installed, else a small
asyncio server in its own process), it measures:

1. Pantau's engine with storage: ``Engine.probe_once`` (HTTP check, SQLite write,
   detection) under bounded concurrency -> probes/s and CPU ms per probe of this process.
2. A bare httpx loop: the same GETs on one shared ``httpx.AsyncClient`` -> the floor.
3. Prometheus blackbox_exporter (when installed) driven over ``/probe`` -> CPU ms per
   probe of the exporter's process (from ``/proc/<pid>/stat``).
4. Start jitter of 1,000 checks at a 30 s interval under the runtime's own scheduler
   (``monitor.runtime._Runner``), with the jobs probing the target for real.

Throughput figures are the median of three runs. The last line printed is one JSON
object. The script never installs anything and always exits 0 (benchmarks never fail
CI); see bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import math
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from apscheduler.events import (
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobSubmissionEvent,
)

from checks import ProbeResult
from monitor.clock import SystemClock
from monitor.config import Settings, parse_settings
from monitor.detect import step_check_state
from monitor.runtime import Engine, EngineListener, ProbeOutcome, _Runner, probe_clients
from monitor.store import Store

NGINX = Path("/usr/sbin/nginx")
BLACKBOX = Path("/usr/bin/prometheus-blackbox-exporter")
CPU_BUDGET_RATIO = 2.0  # DESIGN.md, Budgets: CPU per probe within 2x of blackbox_exporter
JITTER_BUDGET_MS = 1000.0  # DESIGN.md, Budgets: start jitter p99 under 1 s
PAGE = (
    b"<!doctype html><html lang=en><head><meta charset=utf-8><title>ok</title></head>"
    b"<body><h1>Registration</h1><p>All systems normal.</p></body></html>\n"
)
STARTUP_TIMEOUT_S = 10.0
REQUIRED_FIGURES = (
    "pantau_probes_per_s",
    "pantau_cpu_ms_per_probe",
    "httpx_probes_per_s",
    "httpx_cpu_ms_per_probe",
    "blackbox_probes_per_s",
    "blackbox_cpu_ms_per_probe",
    "cpu_per_probe_vs_blackbox",
    "jitter_p50_ms",
    "jitter_p99_ms",
    "jitter_max_ms",
)
BUILTIN_LIFETIME_S = 900.0  # the fallback server exits by itself even if orphaned


@dataclass(frozen=True)
class Plan:
    """Sizes of one bench run."""

    probes: int  # probes per throughput run
    warmup: int  # probes before the measured runs of each prober
    runs: int  # measured runs per prober; the median is quoted
    checks: int  # checks in the throughput config (probed round-robin)
    concurrency: int  # probes in flight at once (Pantau's default [probe] concurrency)
    run_deadline_s: float  # a run stops after this long even if probes remain
    jitter_checks: int
    jitter_interval_s: int
    jitter_window_s: float


FULL = Plan(
    probes=1500,
    warmup=150,
    runs=3,
    checks=100,
    concurrency=50,
    run_deadline_s=25.0,
    jitter_checks=1000,
    jitter_interval_s=30,
    jitter_window_s=35.0,
)
# A smoke run: fewer probes; 20 checks/s over a 10 s interval in the jitter phase.
QUICK = Plan(
    probes=300,
    warmup=50,
    runs=3,
    checks=50,
    concurrency=50,
    run_deadline_s=15.0,
    jitter_checks=200,
    jitter_interval_s=10,
    jitter_window_s=12.0,
)


# -- the loopback target ------------------------------------------------------------
@dataclass
class Target:
    kind: str  # "nginx" or "builtin"
    url: str
    version: str
    proc: subprocess.Popen[bytes]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    """Return once ``port`` accepts connections; raise if ``proc`` exits or time runs out."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} at start")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} in {STARTUP_TIMEOUT_S:.0f} s")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def _nginx_conf(tmp: Path, port: int) -> str:
    built = subprocess.run(
        [str(NGINX), "-V"], capture_output=True, text=True, check=False, timeout=10
    )
    temp_paths = "\n".join(
        f"    {module}_temp_path {tmp / module};"
        for module in ("proxy", "fastcgi", "uwsgi", "scgi")
        if f"--without-http_{module}_module" not in built.stderr
    )
    return f"""\
daemon off;
master_process off;
worker_processes 1;
pid {tmp / "nginx.pid"};
error_log {tmp / "nginx-error.log"} warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    default_type text/html;
    keepalive_requests 100000;
    client_body_temp_path {tmp / "client_body"};
{temp_paths}
    server {{
        listen 127.0.0.1:{port};
        root {tmp / "www"};
        location / {{ index index.html; }}
    }}
}}
"""


def start_nginx(tmp: Path) -> Target:
    port = free_port()
    (tmp / "www").mkdir()
    (tmp / "www" / "index.html").write_bytes(PAGE)
    conf = tmp / "nginx.conf"
    conf.write_text(_nginx_conf(tmp, port))
    version = subprocess.run(
        [str(NGINX), "-v"], capture_output=True, text=True, check=False, timeout=10
    )
    with (tmp / "nginx-stderr.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(NGINX), "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "nginx-error.log")],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
    try:
        wait_for_port(port, proc, "nginx")
    except RuntimeError:
        stop_process(proc)
        raise
    name = version.stderr.strip().removeprefix("nginx version: ") or "nginx"
    return Target("nginx", f"http://127.0.0.1:{port}/", name, proc)


def start_builtin(tmp: Path) -> Target:
    port = free_port()
    with (tmp / "builtin-stderr.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--serve-builtin", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        wait_for_port(port, proc, "the built-in server")
    except RuntimeError:
        stop_process(proc)
        raise
    version = f"asyncio server, Python {sys.version.split()[0]}"
    return Target("builtin", f"http://127.0.0.1:{port}/", version, proc)


def start_target(tmp: Path) -> Target:
    if NGINX.exists():
        try:
            return start_nginx(tmp)
        except (OSError, RuntimeError) as exc:
            print(f"nginx: could not start ({exc}); using the built-in server instead")
    return start_builtin(tmp)


async def _serve_builtin(port: int) -> None:
    """A keep-alive HTTP/1.1 server answering every GET with PAGE (the fallback target)."""
    response = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
        b"Content-Length: %d\r\n\r\n" % len(PAGE)
    ) + PAGE

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(response)
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    async with server:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.serve_forever(), timeout=BUILTIN_LIFETIME_S)


# -- measuring ---------------------------------------------------------------------
@dataclass(frozen=True)
class Measurement:
    """One timed run: how many probes, how many failed, wall and CPU seconds."""

    probes: int
    failures: int
    wall_s: float
    cpu_s: float
    complete: bool

    @property
    def per_s(self) -> float:
        return self.probes / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def cpu_ms(self) -> float:
        return self.cpu_s * 1000.0 / self.probes if self.probes else math.nan


async def drive(
    count: int, concurrency: int, deadline_s: float, probe: Callable[[int], Awaitable[bool]]
) -> tuple[int, int, bool]:
    """Call ``probe(i)`` for i in range(count), ``concurrency`` at a time, for at most
    ``deadline_s`` seconds. Returns (probes done, probes that failed, all done in time)."""
    next_index = 0
    done = failures = 0
    stop_at = time.monotonic() + deadline_s

    async def worker() -> None:
        nonlocal next_index, done, failures
        while next_index < count and time.monotonic() < stop_at:
            index = next_index
            next_index += 1
            try:
                ok = await probe(index)
            except Exception:
                ok = False
            done += 1
            failures += 0 if ok else 1

    workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
    # A probe cannot hang past its own timeout, but bound the whole run once more.
    _finished, pending = await asyncio.wait(workers, timeout=deadline_s + 15)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return done, failures, done == count and not pending


async def measure(
    plan: Plan,
    probe: Callable[[int], Awaitable[bool]],
    cpu_seconds: Callable[[], float] = time.process_time,
) -> list[Measurement]:
    """A warm-up, then ``plan.runs`` timed runs of ``plan.probes`` probes each."""
    await drive(plan.warmup, plan.concurrency, plan.run_deadline_s, probe)
    runs = []
    for _ in range(plan.runs):
        gc.collect()
        wall, cpu = time.perf_counter(), cpu_seconds()
        done, failed, complete = await drive(
            plan.probes, plan.concurrency, plan.run_deadline_s, probe
        )
        cpu, wall = cpu_seconds() - cpu, time.perf_counter() - wall
        runs.append(Measurement(done, failed, wall, cpu, complete))
    return runs


class NullNotifier:
    """Sends nothing: no check fails against a healthy target, so no alert is due."""

    def send(self, target: object, *, title: str, body: str) -> None:
        return None


def bench_settings(
    tmp: Path, url: str, *, checks: int, interval_s: int, concurrency: int, name: str
) -> Settings:
    return parse_settings(
        {
            "storage": {"url": f"sqlite:///{tmp / (name + '.db')}"},
            "probe": {"concurrency": concurrency},
            "components": [{"id": "target", "name": "Loopback target"}],
            "checks": [
                {
                    "id": f"c{i:04d}",
                    "component": "target",
                    "kind": "http",
                    "url": url,
                    "interval": f"{interval_s}s",
                    "timeout": "10s",
                }
                for i in range(checks)
            ],
        },
        env={},
        base_dir=tmp,
        source="bench",
    )


@contextlib.asynccontextmanager
async def pantau_engine(
    settings: Settings, *, listener: EngineListener | None = None
) -> AsyncIterator[Engine]:
    store = Store(settings.database_url())
    try:
        # The clients exactly as `pantau run` opens them (sharded pools, one SSL context).
        async with probe_clients(settings) as clients:
            yield Engine(
                settings,
                store,
                clock=SystemClock(),
                client=clients,
                notifier=NullNotifier(),
                listener=listener,
            )
    finally:
        store.close()


async def measure_pantau(plan: Plan, url: str, tmp: Path) -> list[Measurement]:
    settings = bench_settings(
        tmp,
        url,
        checks=plan.checks,
        interval_s=30,
        concurrency=plan.concurrency,
        name="throughput",
    )
    async with pantau_engine(settings) as engine:
        check_ids = list(engine.checks)

        async def probe(index: int) -> bool:
            outcome = await engine.probe_once(check_ids[index % len(check_ids)])
            return outcome.result.ok

        return await measure(plan, probe)


async def measure_httpx(plan: Plan, url: str) -> list[Measurement]:
    limits = httpx.Limits(max_connections=plan.concurrency * 2, max_keepalive_connections=20)
    async with httpx.AsyncClient(limits=limits, trust_env=False, timeout=10.0) as client:

        async def probe(_index: int) -> bool:
            response = await client.get(url)
            return response.status_code == 200 and len(response.content) == len(PAGE)

        return await measure(plan, probe)


# -- blackbox_exporter -------------------------------------------------------------
BLACKBOX_CONFIG = """\
modules:
  http_2xx:
    prober: http
    timeout: 10s
    http:
      preferred_ip_protocol: ip4
      valid_status_codes: []
"""


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` (all its threads), in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    # After "pid (comm)": field 3 is index 0, so utime (14) and stime (15) are 11 and 12.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def blackbox_exporter(tmp: Path) -> Iterator[tuple[str, int, str]]:
    """Start the exporter; yield (its base URL, its pid, its version)."""
    port = free_port()
    config = tmp / "blackbox.yml"
    config.write_text(BLACKBOX_CONFIG)
    version = subprocess.run(
        [str(BLACKBOX), "--version"], capture_output=True, text=True, check=False, timeout=10
    )
    match = re.search(r"version (\S+)", version.stdout + version.stderr)
    with (tmp / "blackbox-stderr.log").open("wb") as log:
        proc = subprocess.Popen(
            [
                str(BLACKBOX),
                f"--config.file={config}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        wait_for_port(port, proc, "blackbox_exporter")
        yield f"http://127.0.0.1:{port}", proc.pid, match.group(1) if match else "?"
    finally:
        stop_process(proc)


async def measure_blackbox(plan: Plan, url: str, tmp: Path) -> tuple[list[Measurement], str]:
    with blackbox_exporter(tmp) as (base, pid, version):
        probe_url = str(httpx.URL(f"{base}/probe", params={"target": url, "module": "http_2xx"}))
        limits = httpx.Limits(max_connections=plan.concurrency * 2, max_keepalive_connections=100)
        async with httpx.AsyncClient(limits=limits, trust_env=False, timeout=15.0) as client:

            async def probe(_index: int) -> bool:
                response = await client.get(probe_url)
                return response.status_code == 200 and b"\nprobe_success 1\n" in response.content

            runs = await measure(plan, probe, cpu_seconds=lambda: proc_cpu_seconds(pid))
    return runs, version


# -- start jitter ------------------------------------------------------------------
@dataclass
class JitterLog:
    """Lateness samples of one scheduler window, in seconds."""

    job_late: list[float] = field(default_factory=list)
    probe_late: list[float] = field(default_factory=list)
    submitted: dict[str, float] = field(default_factory=dict)  # check id -> fire time
    running: dict[str, float] = field(default_factory=dict)  # check id -> fire time
    missed: int = 0
    skipped: int = 0
    probe_failures: int = 0

    def on_event(self, event: JobSubmissionEvent) -> None:
        if not event.job_id.startswith("probe:"):
            return
        check_id = event.job_id.removeprefix("probe:")
        if event.code == EVENT_JOB_SUBMITTED:
            # With coalesce=True this holds one time: the latest missed one.
            self.submitted[check_id] = min(t.timestamp() for t in event.scheduled_run_times)
        elif event.code == EVENT_JOB_MISSED:
            self.missed += 1
        else:
            self.skipped += 1

    def on_outcome(self, outcome: ProbeOutcome) -> None:
        result = outcome.result
        self.probe_failures += 0 if result.ok else 1
        fire = self.running.pop(result.check_id, None)
        if fire is not None:
            self.probe_late.append(result.started_at.timestamp() - fire)


class LogTally(logging.Handler):
    """Counts log records (warnings and worse) instead of printing each one."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: dict[str, int] = {}
        self.first: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        key = f"{record.name} {record.levelname}"
        self.counts[key] = self.counts.get(key, 0) + 1
        if key not in self.first:
            text = record.getMessage().splitlines()[0][:160]
            # Store errors hide their cause in the message; it says why (locked, full...).
            causes = [a.__cause__ for a in record.args or () if isinstance(a, BaseException)]
            if causes and causes[0] is not None:
                text += f" (cause: {str(causes[0]).splitlines()[0][:120]})"
            self.first[key] = text

    def reset(self) -> None:
        self.counts.clear()
        self.first.clear()


LOG_TALLY = LogTally()


def seed_steady_state(engine: Engine) -> None:
    """Store one passing result per check, as after the service's first round.

    Without it the window measures a cold start, where every first result changes its
    check's state and re-evaluates the component (see --jitter-start cold).
    """
    now = engine.clock.now()
    region = engine.settings.probe.region
    with engine.store.tx() as tx:
        for check_id, check in engine.checks.items():
            component = check.settings.component
            result = ProbeResult(
                check_id=check_id,
                component_id=component,
                started_at=now,
                ok=True,
                latency_ms=1.0,
                detail="status 200",
                status_code=200,
                region=region,
            )
            tx.add_result(result)
            step_check_state(
                tx.check_state(check_id, component, region), result, engine.settings.detection
            )
        for component_settings in engine.settings.components:
            tx.set_component_status(component_settings.id, "operational", at=now, cause="seed")


async def measure_jitter(
    plan: Plan, url: str, tmp: Path, *, load: str, start: str
) -> tuple[JitterLog, float, int]:
    """Run the runtime's own scheduler for one window.

    ``_Runner._schedule`` adds the jobs exactly as ``pantau run`` does; only its probe job
    is wrapped to note when it starts against the time apscheduler submitted it for.
    Returns the log, the jitter setting in seconds and the count of results not stored.
    """
    settings = bench_settings(
        tmp,
        url,
        checks=plan.jitter_checks,
        interval_s=plan.jitter_interval_s,
        concurrency=plan.concurrency,
        name="jitter",
    )
    log = JitterLog()
    async with pantau_engine(settings, listener=EngineListener(on_outcome=log.on_outcome)) as eng:
        if start == "warm":
            await asyncio.to_thread(seed_steady_state, eng)
        runner = _Runner(eng, asyncio.Event())
        probe_job = runner._probe_job

        async def timed_probe_job(check_id: str) -> None:
            started = time.time()
            fire = log.submitted.pop(check_id, None)
            if fire is not None:
                log.job_late.append(started - fire)
                log.running[check_id] = fire
            if load == "probe":
                await probe_job(check_id)
            else:
                json.dumps({"check": check_id, "at": started, "pad": list(range(50))})

        runner._probe_job = timed_probe_job  # type: ignore[method-assign]
        runner.scheduler.add_listener(
            log.on_event, EVENT_JOB_SUBMITTED | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES
        )
        await runner.serve(plan.jitter_window_s)
        store_errors = eng.counters.store_errors
    return log, settings.probe.jitter.total_seconds(), store_errors


# -- reporting ---------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(math.ceil(q / 100.0 * len(ordered)), 1)
    return ordered[rank - 1]


def median_of(runs: list[Measurement]) -> tuple[float, float]:
    """Median probes/s and median CPU ms per probe."""
    return statistics.median(r.per_s for r in runs), statistics.median(r.cpu_ms for r in runs)


def print_runs(label: str, runs: list[Measurement], cpu_of: str) -> tuple[float, float]:
    for number, run in enumerate(runs, 1):
        note = "" if run.complete else " (stopped at the deadline)"
        print(
            f"  {label} run {number}: {run.probes} probes in {run.wall_s:.2f} s, "
            f"{run.per_s:.0f} probes/s, {run.cpu_s:.2f} s CPU of {cpu_of}, "
            f"{run.cpu_ms:.3f} CPU ms/probe, {run.failures} failed{note}"
        )
    per_s, cpu_ms = median_of(runs)
    print(f"{label} (median of {len(runs)}): {per_s:.0f} probes/s, {cpu_ms:.3f} CPU ms per probe")
    return per_s, cpu_ms


def verdict(ok: bool | None) -> str:
    return "SKIP" if ok is None else ("PASS" if ok else "FAIL")


def rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None or math.isnan(value) else round(value, digits)


async def run_bench(plan: Plan, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    target = start_target(tmp)
    figures: dict[str, Any] = dict.fromkeys(REQUIRED_FIGURES)
    figures.update(target=target.kind, runs=plan.runs, probes_per_run=plan.probes)
    try:
        print(f"target: {target.kind} ({target.version}) at {target.url}, in its own process")
        print(
            f"plan: {plan.probes} probes per run, {plan.runs} runs, concurrency "
            f"{plan.concurrency}, {plan.checks} checks, {os.cpu_count()} CPUs"
        )
        sections: dict[str, Callable[[], Awaitable[None]]] = {
            "pantau": lambda: pantau_figures(plan, target.url, tmp, figures),
            "httpx": lambda: httpx_figures(plan, target.url, figures),
            "blackbox": lambda: blackbox_figures(plan, target.url, tmp, figures),
            "jitter": lambda: jitter_figures(
                plan, target.url, tmp, figures, load=args.jitter_load, start=args.jitter_start
            ),
        }
        for name, section in sections.items():
            if name not in args.only:
                continue
            try:
                await section()
            except Exception as exc:  # one broken part must not hide the others' figures
                print(f"{name}: could not be measured ({type(exc).__name__}: {exc})")
                traceback.print_exc()
    finally:
        stop_process(target.proc)
    return figures


async def pantau_figures(plan: Plan, url: str, tmp: Path, figures: dict[str, Any]) -> None:
    runs = await measure_pantau(plan, url, tmp)
    figures["pantau_probes_per_s"], figures["pantau_cpu_ms_per_probe"] = print_runs(
        "pantau engine+storage", runs, "this process"
    )
    figures["pantau_failures"] = sum(r.failures for r in runs)


async def httpx_figures(plan: Plan, url: str, figures: dict[str, Any]) -> None:
    runs = await measure_httpx(plan, url)
    figures["httpx_probes_per_s"], figures["httpx_cpu_ms_per_probe"] = print_runs(
        "bare httpx loop", runs, "this process"
    )


async def blackbox_figures(plan: Plan, url: str, tmp: Path, figures: dict[str, Any]) -> None:
    figures["blackbox_probes_per_s"] = figures["blackbox_cpu_ms_per_probe"] = None
    if not BLACKBOX.exists():
        print(
            f"blackbox_exporter: not installed ({BLACKBOX} missing); install it with "
            "`apt-get install prometheus-blackbox-exporter`; its figures are null"
        )
        return
    try:
        runs, version = await measure_blackbox(plan, url, tmp)
    except (OSError, RuntimeError) as exc:
        print(f"blackbox_exporter: could not be measured ({exc}); its figures are null")
        return
    label = f"blackbox_exporter {version}"
    per_s, cpu_ms = print_runs(label, runs, "the exporter")
    print(
        "  (the exporter's CPU includes serving its own /probe request and rendering the"
        " metrics; it opens a new connection per probe, Pantau reuses pooled ones)"
    )
    figures["blackbox_probes_per_s"], figures["blackbox_cpu_ms_per_probe"] = per_s, cpu_ms
    figures["blackbox_failures"] = sum(r.failures for r in runs)
    figures["blackbox_version"] = version


async def jitter_figures(
    plan: Plan, url: str, tmp: Path, figures: dict[str, Any], *, load: str, start: str
) -> None:
    print(
        f"jitter: {plan.jitter_checks} checks every {plan.jitter_interval_s} s under the "
        f"runtime's scheduler for {plan.jitter_window_s:.0f} s ({start} start, jobs {load} "
        "the target) ..."
    )
    LOG_TALLY.reset()
    log, jitter_s, store_errors = await measure_jitter(plan, url, tmp, load=load, start=start)
    job_ms = [v * 1000.0 for v in log.job_late]
    probe_ms = [v * 1000.0 for v in log.probe_late]
    for label, key, samples in (
        ("job start", "jitter", job_ms),
        ("probe start", "probe_start_lateness", probe_ms),
    ):
        if not samples:
            print(f"  {label} lateness: no samples")
            figures.update({f"{key}_p50_ms": None, f"{key}_p99_ms": None, f"{key}_max_ms": None})
            continue
        p50, p99, worst = (percentile(samples, 50), percentile(samples, 99), max(samples))
        print(
            f"  {label} lateness vs the scheduled (jittered) fire time, {len(samples)} "
            f"starts: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {worst:.1f} ms"
        )
        figures.update({f"{key}_p50_ms": p50, f"{key}_p99_ms": p99, f"{key}_max_ms": worst})
    unrecorded = len(job_ms) - len(probe_ms)
    print(
        f"  schedule jitter setting {jitter_s:g} s; missed runs {log.missed}, skipped "
        f"(instance still running) {log.skipped}, jobs without a recorded probe "
        f"{unrecorded}, failed probes {log.probe_failures}, results not stored {store_errors}"
    )
    for key, count in sorted(LOG_TALLY.counts.items()):
        print(f"  log: {count} x {key}, first: {LOG_TALLY.first[key]}")
    figures.update(
        jitter_start=start,
        jitter_store_errors=store_errors,
        jitter_unrecorded_probes=unrecorded,
        jitter_checks=plan.jitter_checks,
        jitter_interval_s=plan.jitter_interval_s,
        jitter_samples=len(job_ms),
        jitter_missed=log.missed,
        jitter_skipped=log.skipped,
    )


def print_verdicts(figures: dict[str, Any]) -> None:
    pantau, blackbox = (
        figures.get("pantau_cpu_ms_per_probe"),
        figures.get("blackbox_cpu_ms_per_probe"),
    )
    ratio = pantau / blackbox if pantau and blackbox else None
    figures["cpu_per_probe_vs_blackbox"] = ratio
    if ratio is None:
        print("CPU per probe vs blackbox_exporter: n/a (a figure is missing)")
    else:
        print(
            f"CPU per probe vs blackbox_exporter: {ratio:.2f}x ({pantau:.3f} / {blackbox:.3f} ms)"
        )
    cpu_ok = None if ratio is None else ratio <= CPU_BUDGET_RATIO
    print(f"{verdict(cpu_ok)}: CPU per probe at most {CPU_BUDGET_RATIO:g}x blackbox_exporter's")
    for key, what in (
        ("jitter_p99_ms", "job start, when apscheduler's job begins"),
        ("probe_start_lateness_p99_ms", "probe start, after the concurrency semaphore"),
    ):
        p99 = figures.get(key)
        ok = None if p99 is None else p99 < JITTER_BUDGET_MS
        print(f"{verdict(ok)}: start jitter p99 under {JITTER_BUDGET_MS:.0f} ms ({what})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer probes, shorter window")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=["pantau", "httpx", "blackbox", "jitter"],
        default=["pantau", "httpx", "blackbox", "jitter"],
        help="measure only these parts (for profiling)",
    )
    parser.add_argument(
        "--jitter-load",
        choices=["probe", "tiny"],
        default="probe",
        help="what each scheduled job does after noting its start (default: a real probe)",
    )
    parser.add_argument(
        "--jitter-start",
        choices=["warm", "cold"],
        default="warm",
        help="warm: every check already has a passing result (steady state, default); "
        "cold: an empty store, as on the service's first minute",
    )
    parser.add_argument("--serve-builtin", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_builtin:
        asyncio.run(_serve_builtin(args.serve_builtin))
        return 0
    plan = QUICK if args.quick else FULL
    # Warnings (skipped runs, results not stored, cancelled jobs) are counted and summed up.
    logging.getLogger().addHandler(LOG_TALLY)
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="pantau-bench-"))
    try:
        figures = asyncio.run(run_bench(plan, args, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print_verdicts(figures)
    if args.quick:
        print("(--quick: reduced sizes, a smoke run; the budgets' verdicts need the full run)")
    figures["mode"] = "quick" if args.quick else "full"
    figures["elapsed_s"] = time.monotonic() - started
    print(f"elapsed: {figures['elapsed_s']:.1f} s")
    print(json.dumps({k: rounded(v) if isinstance(v, float) else v for k, v in figures.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
