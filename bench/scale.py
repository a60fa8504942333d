"""Scale: results written per second into PostgreSQL with N probe workers, and the
coordinator's evaluation time for 1,000 checks.

Run from the project root::

    .venv/bin/python bench/scale.py [--quick] [--workers 1,2,4] [--only writes evaluation]

In one run, on a private, durable PostgreSQL server (fsync on, as in production) started
from the binaries of ``tests/pg_fixtures.py``, it measures:

1. **Writes**: for each N, N real ``pantau run --role probe --region rK`` processes, each
   probing many ``http`` checks of one loopback target (nginx when installed, else a small
   asyncio server in its own process) at a 1 s interval, more than they can do, so the
   writers are saturated. Results written per second over a steady window (``count(*)``
   at its start and end) against the load offered (checks x workers / interval). The
   reference, in the same run: N plain processes inserting rows of the same shape into the
   same table with SQLAlchemy Core in transactions of the size Pantau's group commit made
   (the database's ceiling on this machine).
2. **Evaluation**: a store with 1,000 ``http`` checks over 50 components, 3 regions'
   check states and 10 minutes of their results at a 30 s interval; the default
   ``consecutive`` rule plus an ``error_rate`` and a ``latency`` rule per component.
   ``Engine.detect()`` + ``Engine.evaluate_alerts()`` (what the leading coordinator does
   every ``[alerts] evaluation_interval``), median and p95, against that interval, on
   PostgreSQL and on SQLite. The reference: one plain SQL query reading the same window of
   results, the floor any evaluation pays.

The last line printed is one JSON object. The script never installs anything and always
exits 0 (benchmarks never fail CI); see bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, create_engine, insert, text
from sqlalchemy.engine import Engine as SQLEngine
from sqlalchemy.pool import NullPool

from checks.base import ErrorClass, ProbeResult
from monitor.clock import ManualClock
from monitor.config import Settings, parse_settings
from monitor.detect import step_check_state
from monitor.runtime import Engine, ProbeClients
from monitor.store import CheckStateRow, ProbeResultRow, Store, UTCDateTime

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))  # the sibling script, also when imported from elsewhere
from probe_throughput import (  # noqa: E402
    NullNotifier,
    percentile,
    proc_cpu_seconds,
    rounded,
    start_target,
    stop_process,
    verdict,
)

#: The large deployment of docs/deployment.md ("Sizing"): 1,000 checks at 30 s, 3 regions.
LARGE_DEPLOYMENT_RESULTS_PER_S = 1000 * 3 / 30
#: This bench's reading of "an evaluation must take well under the interval"
#: (docs/deployment.md); DESIGN.md sets no budget for it.
EVALUATION_SHARE = 0.5
#: Group commit writes at most this many results per transaction (monitor.runtime.MAX_BATCH).
MAX_BATCH = 200
STOP_TIMEOUT_S = 20.0  # a worker's clean stop: in-flight probes finish and are committed
EVAL_NOW = datetime(2026, 9, 17, 7, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Plan:
    """Sizes of one bench run."""

    workers: tuple[int, ...]
    checks_per_worker: int  # http checks of each probe worker, all at probe_interval_s
    probe_interval_s: int
    concurrency: int  # [probe] concurrency of each worker
    jitter: str  # [probe] jitter
    ready_timeout_s: float  # every worker must have written within this long of its start
    warmup_s: float  # after every worker wrote, before the window
    window_s: float  # the measured window (one per N and side)
    eval_checks: int
    eval_components: int
    eval_regions: int
    eval_minutes: int
    eval_interval_s: int  # of the seeded checks
    eval_runs: int  # timed evaluations per backend (after one first, untimed)


FULL = Plan(
    workers=(1, 2, 4),
    checks_per_worker=300,
    probe_interval_s=1,
    concurrency=300,
    jitter="100ms",
    ready_timeout_s=20.0,
    warmup_s=3.0,
    window_s=8.0,
    eval_checks=1000,
    eval_components=50,
    eval_regions=3,
    eval_minutes=10,
    eval_interval_s=30,
    eval_runs=7,
)
# A smoke run: one N, a short window, a small evaluation store.
QUICK = Plan(
    workers=(2,),
    checks_per_worker=150,
    probe_interval_s=1,
    concurrency=150,
    jitter="100ms",
    ready_timeout_s=20.0,
    warmup_s=2.0,
    window_s=3.0,
    eval_checks=200,
    eval_components=10,
    eval_regions=3,
    eval_minutes=10,
    eval_interval_s=30,
    eval_runs=3,
)


# -- PostgreSQL ---------------------------------------------------------------------
class Unavailable(Exception):
    """PostgreSQL cannot be started here (the reason is the message)."""


@contextlib.contextmanager
def postgres() -> Iterator[Any]:
    """``tests/pg_fixtures.private_server(durable=True)``; its pytest skip becomes
    :class:`Unavailable`."""
    try:
        import pytest

        from tests.pg_fixtures import private_server
    except ImportError as exc:
        raise Unavailable(f"cannot import tests/pg_fixtures.py ({exc})") from None
    outcomes = (pytest.skip.Exception, pytest.fail.Exception)
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(private_server(durable=True))
        except outcomes as exc:
            raise Unavailable(str(exc)) from None
        except RuntimeError as exc:  # initdb or pg_ctl failed
            raise Unavailable(str(exc).strip().splitlines()[0]) from None
        yield server


def admin(url: str) -> SQLEngine:
    """An autocommit engine: every statement is its own transaction, nothing pooled."""
    return create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)


def scalar(engine: SQLEngine, sql: str, **params: Any) -> Any:
    with engine.connect() as connection:
        return connection.execute(text(sql), params).scalar()


def reset_results(engine: SQLEngine) -> None:
    """Empty what the workers write, and checkpoint, so every measurement starts alike."""
    with engine.connect() as connection:
        connection.execute(
            text("TRUNCATE probe_result, check_state, node, component_state RESTART IDENTITY")
        )
        connection.execute(text("CHECKPOINT"))


# -- part 1: writes -------------------------------------------------------------------
def worker_config(tmp: Path, url: str, target: str, plan: Plan) -> Path:
    """One config for every probe worker (each is told its region with --region)."""
    lines = [
        "[storage]",
        f'url = "{url}"',
        "",
        "[probe]",
        f"concurrency = {plan.concurrency}",
        f'jitter = "{plan.jitter}"',
        "",
        "[[components]]",
        'id = "target"',
        'name = "Loopback target"',
    ]
    for i in range(plan.checks_per_worker):
        lines += [
            "",
            "[[checks]]",
            f'id = "c{i:04d}"',
            'component = "target"',
            'kind = "http"',
            f'url = "{target}"',
            f'interval = "{plan.probe_interval_s}s"',
            'timeout = "5s"',
        ]
    path = tmp / "probe.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def pantau_command() -> list[str]:
    script = Path(sys.executable).with_name("pantau")
    return [str(script)] if script.exists() else [sys.executable, "-m", "monitor"]


def cpu_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [float(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return sum(fields) - idle, sum(fields)


@dataclass
class Window:
    """What was committed in one measured window."""

    rows: int
    seconds: float
    per_second: list[float]  # the rate of each ~1 s slice
    rows_per_tx: float | None  # rows per inserting transaction (distinct xmin)
    machine_busy: float  # share of all CPUs busy
    workers_cpu_s: float  # CPU seconds of the N worker processes

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def measure_window(
    engine: SQLEngine, seconds: float, pids: list[int], alive: Callable[[], bool]
) -> Window:
    """Poll ``count(*)`` about every second for ``seconds`` (bounded), from now."""

    def cpu_of_workers() -> float:
        total = 0.0
        for pid in pids:
            with contextlib.suppress(OSError, IndexError, ValueError):
                total += proc_cpu_seconds(pid)
        return total

    busy0, all0 = cpu_busy()
    cpu0 = cpu_of_workers()
    started_at = datetime.now(UTC)
    t0 = time.perf_counter()
    first = last = int(scalar(engine, "SELECT count(*) FROM probe_result"))
    tick = t0
    slices: list[float] = []
    end = t0 + seconds
    while time.perf_counter() < end and alive():
        time.sleep(max(0.0, min(1.0, end - time.perf_counter())))
        count = int(scalar(engine, "SELECT count(*) FROM probe_result"))
        now = time.perf_counter()
        slices.append((count - last) / (now - tick))
        last, tick = count, now
    elapsed = tick - t0
    cpu1 = cpu_of_workers()
    busy1, all1 = cpu_busy()
    with engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT count(*), count(DISTINCT xmin::text) FROM probe_result "
                "WHERE started_at >= :a AND started_at < :b"
            ),
            {"a": started_at, "b": started_at + timedelta(seconds=elapsed)},
        ).one()
    rows_per_tx = row[0] / row[1] if row[1] else None
    return Window(
        rows=last - first,
        seconds=elapsed,
        per_second=slices,
        rows_per_tx=rows_per_tx,
        machine_busy=(busy1 - busy0) / (all1 - all0) if all1 > all0 else math.nan,
        workers_cpu_s=cpu1 - cpu0,
    )


def stop_all(procs: list[subprocess.Popen[bytes]], *, signal_first: bool = True) -> list[int]:
    """SIGTERM every process (a clean stop), wait (bounded), kill what is left."""
    if signal_first:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    codes = []
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        codes.append(proc.returncode)
    return codes


def problems_in(log: Path, limit: int = 3) -> tuple[int, list[str]]:
    """Count of warning/error/traceback lines in a worker's stderr, and the first few."""
    lines = [
        line
        for line in log.read_text(errors="replace").splitlines()
        if " WARNING " in line or " ERROR " in line or " CRITICAL " in line or "Traceback" in line
    ]
    return len(lines), [line[:200] for line in lines[:limit]]


def run_pantau_workers(
    n: int, plan: Plan, config: Path, engine: SQLEngine, tmp: Path
) -> dict[str, Any]:
    """N ``pantau run --role probe`` processes; their write rate over the window."""
    reset_results(engine)
    bound = plan.ready_timeout_s + plan.warmup_s + plan.window_s + 10
    logs = [tmp / f"pantau-{n}-r{k}.log" for k in range(1, n + 1)]
    procs = []
    for k, log in enumerate(logs, 1):
        command = [*pantau_command(), "-c", str(config), "run", "--role", "probe"]
        command += ["--region", f"r{k}", "--for", f"{bound:g}"]
        with log.open("wb") as out:
            procs.append(
                subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
            )
    figures: dict[str, Any] = {"workers": n}
    try:
        started = time.monotonic()
        regions = 0
        while time.monotonic() - started < plan.ready_timeout_s:
            if any(p.poll() is not None for p in procs):
                break
            regions = int(scalar(engine, "SELECT count(DISTINCT region) FROM check_state"))
            if regions >= n:
                break
            time.sleep(0.2)
        exited = [k for k, p in enumerate(procs, 1) if p.poll() is not None]
        if exited or regions < n:
            why = (
                f"worker(s) r{', r'.join(map(str, exited))} exited at start"
                if exited
                else f"only {regions} of {n} regions wrote within {plan.ready_timeout_s:.0f} s"
            )
            raise RuntimeError(why)
        figures["ready_s"] = time.monotonic() - started
        time.sleep(plan.warmup_s)
        window = measure_window(
            engine,
            plan.window_s,
            [p.pid for p in procs],
            lambda: all(p.poll() is None for p in procs),
        )
        still = all(p.poll() is None for p in procs)
    finally:
        codes = stop_all(procs)
    figures.update(window_figures(window))
    figures["complete"] = still
    figures["exit_codes"] = codes
    with engine.connect() as connection:
        states = dict(
            connection.execute(
                text("SELECT region, count(*) FROM check_state GROUP BY region")
            ).all()
        )
        figures["rows_by_region"] = dict(
            connection.execute(
                text("SELECT region, count(*) FROM probe_result GROUP BY region ORDER BY region")
            ).all()
        )
        figures["component_states"] = connection.execute(
            text("SELECT count(*) FROM component_state")
        ).scalar()
        figures["transitions"] = connection.execute(
            text("SELECT count(*) FROM component_transition")
        ).scalar()
        figures["probe_nodes"] = connection.execute(
            text("SELECT count(*) FROM node WHERE role = 'probe'")
        ).scalar()
    figures["check_states_by_region"] = states
    problems = [problems_in(log) for log in logs]
    figures["log_problems"] = sum(count for count, _ in problems)
    figures["log_first"] = next((first for _, first in problems if first), [])
    return figures


def window_figures(window: Window) -> dict[str, Any]:
    return {
        "rows": window.rows,
        "window_s": window.seconds,
        "per_s": window.rate,
        "slice_median_per_s": statistics.median(window.per_second) if window.per_second else None,
        "slice_min_per_s": min(window.per_second, default=None),
        "slice_max_per_s": max(window.per_second, default=None),
        "rows_per_tx": window.rows_per_tx,
        "machine_cpu_busy": window.machine_busy,
        "workers_cpu_s": window.workers_cpu_s,
        "workers_cpu_ms_per_row": window.workers_cpu_s * 1000 / window.rows
        if window.rows
        else None,
    }


def run_reference_inserters(
    n: int, plan: Plan, url: str, batch: int, checks: int, engine: SQLEngine, tmp: Path
) -> dict[str, Any]:
    """N plain processes inserting ``batch`` rows per transaction as fast as they can."""
    reset_results(engine)
    start_at = time.time() + 3.0  # after their imports, together
    seconds = plan.warmup_s + plan.window_s + 2
    logs = [tmp / f"reference-{n}-r{k}.log" for k in range(1, n + 1)]
    procs = []
    for k, log in enumerate(logs, 1):
        job = {
            "url": url,
            "region": f"r{k}",
            "batch": batch,
            "checks": checks,
            "start_at": start_at,
            "seconds": seconds,
            "max_rows": 20_000_000,
        }
        with log.open("wb") as out:
            procs.append(
                subprocess.Popen(
                    [sys.executable, __file__, "--insert-worker", json.dumps(job)],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=out,
                )
            )
    figures: dict[str, Any] = {"workers": n, "batch": batch}
    try:
        time.sleep(max(0.0, start_at + plan.warmup_s - time.time()))
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("an inserting process exited before the window")
        window = measure_window(
            engine,
            plan.window_s,
            [p.pid for p in procs],
            lambda: all(p.poll() is None for p in procs),
        )
    finally:
        codes = stop_all(procs, signal_first=False)  # they stop by themselves
    figures.update(window_figures(window))
    figures["exit_codes"] = codes
    return figures


def insert_worker(job: dict[str, Any]) -> int:
    """The reference: rows shaped like an ``http`` check's result, ``batch`` per
    transaction, inserted with SQLAlchemy Core until ``seconds`` or ``max_rows``."""
    engine = create_engine(job["url"], pool_size=1, max_overflow=0)
    table = ProbeResultRow.__table__  # type: ignore[attr-defined]
    statement = insert(table)
    region, batch, checks = job["region"], int(job["batch"]), int(job["checks"])
    with engine.connect() as connection:  # connect before the start
        connection.execute(text("SELECT 1"))
        connection.commit()
        time.sleep(max(0.0, job["start_at"] - time.time()))
        deadline = time.monotonic() + float(job["seconds"])
        written = index = 0
        while time.monotonic() < deadline and written < job["max_rows"]:
            now = datetime.now(UTC)
            rows = []
            for _ in range(batch):
                rows.append(
                    {
                        "check_id": f"c{index % checks:04d}",
                        "component_id": "target",
                        "region": region,
                        "started_at": now,
                        "ok": True,
                        "error": None,
                        "detail": "status 200",
                        "status_code": 200,
                        "latency_ms": 1.2 + (index % 7) * 0.1,
                        "step": None,
                        "attempt": 1,
                        "degraded": False,
                        "steps": None,
                    }
                )
                index += 1
            connection.execute(statement, rows)
            connection.commit()
            written += batch
    engine.dispose()
    print(json.dumps({"region": region, "rows": written}))
    return 0


def writes_part(
    plan: Plan, server: Any, tmp: Path, figures: dict[str, Any]
) -> list[dict[str, Any]]:
    url = server.url("pantau")
    Store(url).close()  # the schema, before the workers start (as `pantau db upgrade` would)
    engine = admin(url)
    target = start_target(tmp)
    results: list[dict[str, Any]] = []
    figures["target"] = target.kind
    try:
        print(f"target: {target.kind} ({target.version}) at {target.url}, in its own process")
        config = worker_config(tmp, url, target.url, plan)
        for n in plan.workers:
            offered = plan.checks_per_worker * n / plan.probe_interval_s
            print(
                f"\n-- {n} probe worker(s): {plan.checks_per_worker} http checks each every "
                f"{plan.probe_interval_s} s (offered {offered:.0f} results/s), concurrency "
                f"{plan.concurrency}, jitter {plan.jitter}"
            )
            entry: dict[str, Any] = {"workers": n, "offered_per_s": offered}
            results.append(entry)
            try:
                pantau = run_pantau_workers(n, plan, config, engine, tmp)
            except Exception as exc:
                print(f"FAIL: pantau with {n} worker(s) could not be measured: {exc}")
                entry["error"] = str(exc)
                for log in sorted(tmp.glob(f"pantau-{n}-r*.log")):
                    tail = log.read_text(errors="replace").strip().splitlines()[-5:]
                    for line in tail:
                        print(f"  {log.name}: {line[:200]}")
                continue
            entry["pantau"] = pantau
            print_pantau(pantau, plan)
            batch = pantau.get("rows_per_tx") or 50.0
            batch = max(1, min(MAX_BATCH, round(batch)))
            try:
                reference = run_reference_inserters(
                    n, plan, url, batch, plan.checks_per_worker, engine, tmp
                )
            except Exception as exc:
                print(f"reference with {n} process(es): could not be measured ({exc})")
                entry["reference_error"] = str(exc)
                continue
            entry["reference"] = reference
            print(
                f"  reference, {n} plain inserting process(es), {batch} rows per transaction: "
                f"{reference['per_s']:.0f} rows/s over {reference['window_s']:.1f} s "
                f"(1 s slices: median {fmt(reference['slice_median_per_s'])}), machine CPU "
                f"{reference['machine_cpu_busy']:.0%} busy"
            )
            ratio = pantau["per_s"] / reference["per_s"] if reference["per_s"] else None
            entry["ratio"] = ratio
            print(f"  pantau / reference: {fmt(ratio, '.2f')}")
    finally:
        stop_process(target.proc)
        engine.dispose()
    return results


def print_pantau(pantau: dict[str, Any], plan: Plan) -> None:
    n = pantau["workers"]
    offered = plan.checks_per_worker * n / plan.probe_interval_s
    note = "" if pantau["complete"] else " (a worker stopped during the window)"
    print(
        f"  pantau: {pantau['per_s']:.0f} results/s written over {pantau['window_s']:.1f} s "
        f"({pantau['per_s'] / offered:.0%} of offered; 1 s slices: median "
        f"{fmt(pantau['slice_median_per_s'])}, min {fmt(pantau['slice_min_per_s'])}, max "
        f"{fmt(pantau['slice_max_per_s'])}){note}"
    )
    print(
        f"  pantau: {fmt(pantau['rows_per_tx'], '.1f')} results per transaction, workers' CPU "
        f"{fmt(pantau['workers_cpu_ms_per_row'], '.2f')} ms per result, machine CPU "
        f"{pantau['machine_cpu_busy']:.0%} busy; all {n} wrote within {pantau['ready_s']:.1f} s"
    )
    states = ", ".join(f"{r}={c}" for r, c in sorted(pantau["check_states_by_region"].items()))
    print(
        f"  role probe: check states by region {states}; component states "
        f"{pantau['component_states']}, transitions {pantau['transitions']} (coordinator's, "
        f"expected 0); probe nodes {pantau['probe_nodes']}; exit codes {pantau['exit_codes']}; "
        f"warning/error log lines {pantau['log_problems']}"
    )
    for line in pantau["log_first"]:
        print(f"    log: {line}")


def fmt(value: float | None, spec: str = ".0f") -> str:
    return "n/a" if value is None or math.isnan(value) else format(value, spec)


# -- part 2: evaluation ---------------------------------------------------------------
def eval_settings(plan: Plan, url: str, tmp: Path) -> Settings:
    components = [f"comp{c:02d}" for c in range(plan.eval_components)]
    per = plan.eval_checks // plan.eval_components
    rules: list[dict[str, Any]] = [{"id": "check-failing", "kind": "consecutive"}]
    for component in components:
        rules.append(
            {
                "id": f"{component}-errors",
                "kind": "error_rate",
                "component": component,
                "above": "20%",
                "window": "2m",
                "for": "1m",
            }
        )
        rules.append(
            {
                "id": f"{component}-slow",
                "kind": "latency",
                "component": component,
                "above": "8s",
                "window": f"{plan.eval_minutes}m",
                "for": "2m",
            }
        )
    return parse_settings(
        {
            "storage": {"url": url},
            "site": {"output_dir": str(tmp / "site")},
            "components": [{"id": c, "name": f"Component {c}"} for c in components],
            "checks": [
                {
                    "id": f"chk{c * per + i:04d}",
                    "component": component,
                    "kind": "http",
                    "url": f"http://127.0.0.1:9/{component}/{i}",
                    "interval": f"{plan.eval_interval_s}s",
                    "timeout": "10s",
                }
                for c, component in enumerate(components)
                for i in range(per)
            ],
            "alerts": {"rules": rules},
        },
        env={},
        base_dir=tmp,
        source="bench",
    )


def eval_rows(
    settings: Settings, plan: Plan, now: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Results of ``eval_minutes`` (oldest first) from every region, and the check states
    they lead to. Mostly healthy; comp00's first check fails everywhere in its last three
    runs, comp01 fails 30% of its runs, comp02 answers in 9 s for the last five minutes."""
    rng = random.Random(7)
    runs = plan.eval_minutes * 60 // plan.eval_interval_s
    start = now - timedelta(minutes=plan.eval_minutes)
    regions = [f"r{k}" for k in range(1, plan.eval_regions + 1)]
    first_of = {}
    for check in settings.checks:
        first_of.setdefault(check.component, check.id)
    results: list[dict[str, Any]] = []
    states: list[dict[str, Any]] = []
    for check in settings.checks:
        phase = rng.uniform(0, plan.eval_interval_s)
        for region in regions:
            state = CheckStateRow(check_id=check.id, region=region, component_id=check.component)
            for run in range(runs):
                at = start + timedelta(seconds=run * plan.eval_interval_s + phase)
                latency = rng.lognormvariate(math.log(150), 0.4)
                ok = True
                if check.component == "comp00" and check.id == first_of["comp00"]:
                    ok = run < runs - 3
                elif check.component == "comp01":
                    ok = rng.random() >= 0.3
                elif check.component == "comp02" and at >= now - timedelta(minutes=5):
                    latency = rng.uniform(8500, 9500)
                result = ProbeResult(
                    check_id=check.id,
                    component_id=check.component,
                    started_at=at,
                    ok=ok,
                    latency_ms=latency if ok else None,
                    error=None if ok else ErrorClass.HTTP_STATUS,
                    detail="status 200" if ok else "status 503",
                    status_code=200 if ok else 503,
                    region=region,
                )
                step_check_state(state, result, settings.detection)
                results.append(
                    {
                        "check_id": check.id,
                        "component_id": check.component,
                        "region": region,
                        "started_at": at,
                        "ok": ok,
                        "error": None if ok else "http_status",
                        "detail": result.detail,
                        "status_code": result.status_code,
                        "latency_ms": result.latency_ms,
                        "step": None,
                        "attempt": 1,
                        "degraded": False,
                        "steps": None,
                    }
                )
            states.append(state.model_dump())
    results.sort(key=lambda r: r["started_at"])
    return results, states


def fill_eval_store(
    store: Store, results: list[dict[str, Any]], states: list[dict[str, Any]]
) -> None:
    results_table = ProbeResultRow.__table__  # type: ignore[attr-defined]
    states_table = CheckStateRow.__table__  # type: ignore[attr-defined]
    with store.engine.begin() as connection:
        for i in range(0, len(results), 10_000):
            connection.execute(insert(results_table), results[i : i + 10_000])
        connection.execute(insert(states_table), states)
    if store.backend == "postgresql":
        with store.engine.connect() as connection:
            connection.execute(text("ANALYZE"))
            connection.commit()


@dataclass
class EvalTimes:
    first_ms: float
    detect_ms: list[float]
    alerts_ms: list[float]
    query_ms: list[float]
    query_rows: int
    live_alerts: dict[str, int]
    incidents: int

    @property
    def total_ms(self) -> list[float]:
        return [d + a for d, a in zip(self.detect_ms, self.alerts_ms, strict=True)]


def time_evaluation(plan: Plan, settings: Settings, store: Store) -> EvalTimes:
    clock = ManualClock(EVAL_NOW)
    engine = Engine(
        settings,
        store,
        clock=clock,
        client=ProbeClients(()),  # never probes
        notifier=NullNotifier(),
        role="coordinator",
    )
    step = settings.alerts.evaluation_interval
    window = timedelta(minutes=plan.eval_minutes)
    query = text(
        "SELECT check_id, region, ok, latency_ms FROM probe_result WHERE started_at >= :since"
    ).bindparams(bindparam("since", type_=UTCDateTime))
    started = time.perf_counter()
    engine.detect()  # the first: component states, transitions, incidents
    engine.evaluate_alerts()  # the first: alerts created (pending)
    first_ms = (time.perf_counter() - started) * 1000
    detect_ms, alerts_ms, query_ms = [], [], []
    rows = 0
    for _ in range(plan.eval_runs):
        clock.advance(step)
        t0 = time.perf_counter()
        engine.detect()
        t1 = time.perf_counter()
        engine.evaluate_alerts()
        t2 = time.perf_counter()
        detect_ms.append((t1 - t0) * 1000)
        alerts_ms.append((t2 - t1) * 1000)
        # The floor, interleaved so both see the same machine.
        since = clock.now() - window
        t3 = time.perf_counter()
        with store.engine.connect() as connection:
            rows = len(connection.execute(query, {"since": since}).all())
        query_ms.append((time.perf_counter() - t3) * 1000)
    with store.read() as tx:
        live: dict[str, int] = {}
        for alert in tx.live_alerts():
            live[alert.state] = live.get(alert.state, 0) + 1
        incidents = len(tx.incidents(unresolved=True))
    return EvalTimes(first_ms, detect_ms, alerts_ms, query_ms, rows, live, incidents)


def evaluation_part(plan: Plan, server: Any | None, tmp: Path) -> dict[str, Any]:
    rows_settings = eval_settings(plan, "sqlite://", tmp)
    started = time.perf_counter()
    results, states = eval_rows(rows_settings, plan, EVAL_NOW)
    print(
        f"\n-- coordinator evaluation: {plan.eval_checks} http checks over "
        f"{plan.eval_components} components, {plan.eval_regions} regions, "
        f"{plan.eval_minutes} min of results every {plan.eval_interval_s} s = {len(results)} "
        f"results, {len(states)} check states; rules: the default consecutive + error_rate "
        f"(2 min) + latency (p95, {plan.eval_minutes} min) per component = "
        f"{len(rows_settings.alert_rules())} rules (built in "
        f"{time.perf_counter() - started:.1f} s)"
    )
    interval_ms = rows_settings.alerts.evaluation_interval.total_seconds() * 1000
    out: dict[str, Any] = {
        "checks": plan.eval_checks,
        "results": len(results),
        "rules": len(rows_settings.alert_rules()),
        "interval_ms": interval_ms,
    }
    backends: list[tuple[str, str]] = []
    if server is not None:
        admin_engine = admin(server.url())
        with admin_engine.connect() as connection:
            connection.execute(text('CREATE DATABASE "pantau_eval"'))
        admin_engine.dispose()
        backends.append(("postgresql", server.url("pantau_eval")))
    backends.append(("sqlite", f"sqlite:///{tmp / 'eval.db'}"))
    for name, url in backends:
        try:
            settings = eval_settings(plan, url, tmp)
            store = Store(url)
            try:
                t0 = time.perf_counter()
                fill_eval_store(store, results, states)
                fill_s = time.perf_counter() - t0
                times = time_evaluation(plan, settings, store)
            finally:
                store.close()
        except Exception as exc:
            print(f"FAIL: evaluation on {name} could not be measured ({type(exc).__name__}: {exc})")
            traceback.print_exc()
            out[name] = {"error": str(exc)}
            continue
        quick = plan.eval_checks < FULL.eval_checks
        out[name] = report_evaluation(name, times, fill_s, interval_ms, quick=quick)
    return out


def report_evaluation(
    name: str, times: EvalTimes, fill_s: float, interval_ms: float, *, quick: bool
) -> dict[str, Any]:
    total = times.total_ms
    median, p95 = statistics.median(total), percentile(total, 95)
    query = statistics.median(times.query_ms)
    runs = len(total)
    print(f"  {name}: filled in {fill_s:.1f} s; first evaluation {times.first_ms:.0f} ms")
    print(
        f"  {name}: detect + evaluate_alerts, {runs} runs: median {median:.0f} ms, p95 "
        f"{p95:.0f} ms (nearest rank), = {median / interval_ms:.1%} / {p95 / interval_ms:.1%} "
        f"of the {interval_ms / 1000:g} s interval; detect median "
        f"{statistics.median(times.detect_ms):.0f} ms, evaluate_alerts median "
        f"{statistics.median(times.alerts_ms):.0f} ms"
    )
    print(
        f"  {name}: reference, one plain SELECT of the window ({times.query_rows} rows): "
        f"median {query:.0f} ms; evaluation / reference = {median / query:.1f}x"
    )
    print(
        f"  {name}: live alerts after the runs {times.live_alerts or '{}'}, open incidents "
        f"{times.incidents}"
    )
    ok = None if quick else p95 <= EVALUATION_SHARE * interval_ms
    print(
        f"{verdict(ok)}: evaluation p95 on {name} within {EVALUATION_SHARE:.0%} of the "
        f"evaluation interval ({p95:.0f} of {interval_ms:.0f} ms)"
        + (" (--quick: a small store; the verdict needs the full run)" if quick else "")
    )
    return {
        "median_ms": median,
        "p95_ms": p95,
        "share_of_interval_median": median / interval_ms,
        "share_of_interval_p95": p95 / interval_ms,
        "detect_median_ms": statistics.median(times.detect_ms),
        "evaluate_alerts_median_ms": statistics.median(times.alerts_ms),
        "first_ms": times.first_ms,
        "runs": runs,
        "reference_query_median_ms": query,
        "reference_rows": times.query_rows,
        "vs_reference": median / query if query else None,
        "fill_s": fill_s,
        "live_alerts": times.live_alerts,
        "open_incidents": times.incidents,
        "verdict": verdict(ok),
    }


# -- the run ------------------------------------------------------------------------
def summary_table(writes: list[dict[str, Any]], evaluation: dict[str, Any] | None) -> None:
    if evaluation:
        print(
            "\nevaluation   median ms  p95 ms  share of interval (median)  plain SELECT ms  ratio"
        )
        for name in ("postgresql", "sqlite"):
            row = evaluation.get(name)
            if not row or "median_ms" not in row:
                continue
            print(
                f"{name:<11}  {row['median_ms']:>9.0f}  {row['p95_ms']:>6.0f}  "
                f"{row['share_of_interval_median']:>26.0%}  "
                f"{row['reference_query_median_ms']:>15.0f}  {fmt(row['vs_reference'], '.1f'):>5}"
            )
    if not writes:
        return
    print("\nworkers  offered/s  pantau results/s  reference rows/s  pantau/reference  rows/tx")
    for entry in writes:
        pantau, reference = entry.get("pantau") or {}, entry.get("reference") or {}
        print(
            f"{entry['workers']:>7}  {entry['offered_per_s']:>9.0f}  "
            f"{fmt(pantau.get('per_s')):>16}  {fmt(reference.get('per_s')):>16}  "
            f"{fmt(entry.get('ratio'), '.2f'):>16}  {fmt(pantau.get('rows_per_tx'), '.1f'):>7}"
        )
    best = max((e["pantau"]["per_s"] for e in writes if e.get("pantau")), default=None)
    if best:
        print(
            f"best pantau write rate {best:.0f} results/s = "
            f"{best / LARGE_DEPLOYMENT_RESULTS_PER_S:.1f}x the "
            f"{LARGE_DEPLOYMENT_RESULTS_PER_S:.0f} results/s of docs/deployment.md's large "
            "deployment (1,000 checks at 30 s, 3 regions)"
        )


def json_figures(value: Any) -> Any:
    if isinstance(value, float):
        return rounded(value)
    if isinstance(value, dict):
        return {str(k): json_figures(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_figures(v) for v in value]
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (under a minute)")
    parser.add_argument(
        "--workers", help="probe worker counts to measure, comma-separated (default 1,2,4)"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=["writes", "evaluation"],
        default=["writes", "evaluation"],
        help="measure only these parts",
    )
    parser.add_argument("--insert-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.insert_worker:
        return insert_worker(json.loads(args.insert_worker))
    plan = QUICK if args.quick else FULL
    if args.workers:
        try:
            counts = tuple(int(v) for v in args.workers.split(",") if v.strip())
            if not counts or min(counts) < 1 or max(counts) > 32:
                raise ValueError
        except ValueError:
            print(f"--workers: {args.workers!r} is not a list like 1,2,4 (1 to 32); using default")
        else:
            plan = Plan(**{**plan.__dict__, "workers": counts})
    started = time.monotonic()
    figures: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "nproc": os.cpu_count(),
        "writes": None,
        "evaluation": None,
    }
    load = os.getloadavg()[0]
    figures["load_average_at_start"] = load
    print(
        f"plan: workers {','.join(map(str, plan.workers))}; {plan.checks_per_worker} checks "
        f"each at {plan.probe_interval_s} s; window {plan.window_s:g} s after "
        f"{plan.warmup_s:g} s; evaluation {plan.eval_runs} runs; {os.cpu_count()} CPUs, "
        f"load average {load:.2f} at the start (other work on the machine skews every figure)"
    )
    tmp = Path(tempfile.mkdtemp(prefix="pantau-scale-"))
    try:
        try:
            with postgres() as server:
                version = scalar(admin(server.url()), "SHOW server_version")
                figures["postgresql"] = version
                print(
                    f"postgresql {version}: private server on 127.0.0.1:{server.port}, "
                    "fsync on, synchronous_commit on"
                )
                if "writes" in args.only:
                    try:
                        figures["writes"] = writes_part(plan, server, tmp, figures)
                    except Exception as exc:
                        print(f"FAIL: writes could not be measured ({type(exc).__name__}: {exc})")
                        traceback.print_exc()
                if "evaluation" in args.only:
                    figures["evaluation"] = evaluation_part(plan, server, tmp)
        except Unavailable as exc:
            print(f"SKIP: no PostgreSQL here ({exc}); the write throughput needs it")
            figures["skipped"] = str(exc)
            if "evaluation" in args.only:
                figures["evaluation"] = evaluation_part(plan, None, tmp)
    except Exception as exc:  # a benchmark never fails: say why and exit 0
        print(f"FAIL: {type(exc).__name__}: {exc}")
        traceback.print_exc()
        figures["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary_table(figures.get("writes") or [], figures.get("evaluation"))
    if args.quick:
        print(
            f"(--quick: one N, a short window, {plan.eval_checks} checks evaluated "
            f"{plan.eval_runs} times: a smoke run; quote the full run's figures)"
        )
    figures["elapsed_s"] = time.monotonic() - started
    print(f"elapsed: {figures['elapsed_s']:.1f} s")
    print(json.dumps(json_figures(figures)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
