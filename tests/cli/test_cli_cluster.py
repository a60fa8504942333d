"""Pantau outgrowing one machine, on a real PostgreSQL: probe workers in two regions and
two coordinators as separate ``pantau run`` processes on one database.

The leader is killed with SIGKILL mid-incident: the standby takes over within two
evaluation intervals, and the engineers get exactly one alert and one recovery, with
the incident's timeline whole. A region that falls silent leaves the quorum after its
grace. PostgreSQL is restarted under load: every process recovers and no committed
result is lost. Real time, bounded waits (separate processes cannot share a clock).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cli_support import ConfigWriter, Pantau, StubServer, stop_process
from pg_fixtures import private_server
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from monitor.demo.receiver import AlertReceiver

pytestmark = pytest.mark.postgres

#: The coordinators' evaluation interval in these tests (seconds).
EVALUATION = 1.0


@pytest.fixture
def receiver() -> Iterator[AlertReceiver]:
    receiver = AlertReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    """``pantau run`` processes a test starts; any still running are killed at the end."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        stop_process(proc)


def _wait(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    value = predicate()
    assert value, f"timed out after {timeout:g} s waiting for {what}"
    return value


class Db:
    """Reads the shared database directly, as an operator with psql would."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = create_engine(url, poolclass=NullPool)

    def rows(self, sql: str, **params: Any) -> list[Any]:
        try:
            with self.engine.connect() as conn:
                return list(conn.execute(text(sql), params))
        except Exception:
            return []  # the server may be restarting

    def nodes(self) -> dict[int, Any]:
        """Live node rows by pid."""
        return {
            row.pid: row
            for row in self.rows(
                "SELECT * FROM node WHERE stopped_at IS NULL ORDER BY heartbeat_at"
            )
        }

    def leader_pid(self) -> int | None:
        leaders = [pid for pid, row in self.nodes().items() if row.leader]
        return leaders[-1] if leaders else None

    def close(self) -> None:
        self.engine.dispose()


def _config(
    config: ConfigWriter, url: str, target: StubServer, receiver: AlertReceiver, checks: int = 1
) -> Path:
    checks_ = [
        {
            "id": "login-page" if i == 0 else f"login-extra-{i}",
            "component": "login",
            "url": target.url("/login"),
            "interval": "1s",
            "timeout": "2s",
            "retries": 0,
        }
        for i in range(checks)
    ]
    return config.write(
        checks_,
        storage={"url": url, "pool_size": 2, "max_overflow": 2, "connect_timeout": "2s"},
        alerts={
            "notify": [receiver.apprise_url],
            "evaluation_interval": f"{EVALUATION:g}s",
            "group_wait": "300ms",
            "backoff": "300ms",
            "repeat_interval": "1h",
        },
        detection={"failures_to_down": 2, "passes_to_recover": 2},
    )


def _start(
    pantau: Pantau, processes: list[subprocess.Popen[str]], path: Path, *args: str
) -> subprocess.Popen[str]:
    proc = pantau.popen("-c", path, "-v", "run", *args)
    processes.append(proc)
    return proc


def _terminate(proc: subprocess.Popen[str]) -> tuple[int, str]:
    """SIGTERM: a clean stop; the exit code and what it logged."""
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    return proc.returncode, stderr


def _status(pantau: Pantau, path: Path) -> dict[str, Any]:
    outcome = pantau.run("-c", path, "status", "--json")
    assert outcome.code == 0, str(outcome)
    return json.loads(outcome.stdout)  # type: ignore[no-any-return]


def test_failover_mid_incident_sends_one_alert_and_one_recovery_and_keeps_the_timeline(
    pantau: Pantau,
    config: ConfigWriter,
    stub_server: Callable[..., StubServer],
    receiver: AlertReceiver,
    processes: list[subprocess.Popen[str]],
    pg_store_url: str,
) -> None:
    target = stub_server(status=200)
    path = _config(config, pg_store_url, target, receiver)
    upgraded = pantau.run("-c", path, "db", "upgrade")
    assert upgraded.code == 0, str(upgraded)
    db = Db(pg_store_url)
    try:
        jakarta = _start(pantau, processes, path, "--role", "probe", "--region", "jakarta")
        surabaya = _start(pantau, processes, path, "--role", "probe", "--region", "surabaya")
        first = _start(pantau, processes, path, "--role", "coordinator")
        _wait(lambda: db.leader_pid() == first.pid, 30, "the first coordinator to lead")
        second = _start(pantau, processes, path, "--role", "coordinator")
        _wait(lambda: second.pid in db.nodes(), 30, "the standby's heartbeat")
        status = _wait(
            lambda: (
                (s := _status(pantau, path))
                and {r["region"] for r in s["regions"] if r["in_quorum"]} == {"jakarta", "surabaya"}
                and s
            ),
            20,
            "both regions reporting",
        )
        roles = sorted((n["role"], n["region"]) for n in status["nodes"] if n["alive"])
        assert roles[:2] == [("coordinator", "default")] * 2
        assert roles[2:] == [("probe", "jakarta"), ("probe", "surabaya")]
        assert status["leader"].split(":")[1] == str(first.pid)

        # The wave opens: login fails in both regions; one incident, one alert.
        target.status = 503
        assert receiver.wait_for(1, 30), "no alert for the outage"
        # (Killed in the instant between the receiver taking the message and the outcome
        # being recorded, the message would be sent again: the one window of at-least-once.)
        _wait(
            lambda: db.rows("SELECT id FROM alert_delivery WHERE status = 'sent'"),
            10,
            "the delivery to be recorded",
        )
        # Kill the leader mid-incident: the standby takes over within two evaluations.
        os.kill(first.pid, signal.SIGKILL)
        killed_at = datetime.now(UTC)
        first.communicate(timeout=10)
        _wait(lambda: db.leader_pid() == second.pid, 15, "the standby to take over")
        (row,) = [r for r in db.rows("SELECT * FROM node WHERE leader") if r.pid == second.pid]
        takeover = (row.heartbeat_at - killed_at).total_seconds()
        assert takeover <= 2 * EVALUATION, f"took over {takeover:.2f} s after the kill"

        # Login recovers: the new leader resolves the incident and says so once.
        target.status = 200
        assert receiver.wait_for(2, 30), "no recovery message"
        time.sleep(3 * EVALUATION)  # time for a duplicate to show up, if there were one
        titles = [m.title for m in receiver.messages]
        assert titles == [
            "[Pantau] FIRING: Login (incident #1)",
            "[Pantau] RESOLVED: Login (incident #1)",
        ]

        # A region that falls silent leaves the quorum after its grace (two intervals):
        # with Surabaya gone, Jakarta alone decides, and a new outage is seen.
        assert _terminate(surabaya)[0] == 0
        _wait(
            lambda: (
                [r["region"] for r in _status(pantau, path)["regions"] if r["silent"]]
                == ["surabaya"]
            ),
            20,
            "Surabaya to show as silent",
        )
        target.status = 503
        assert receiver.wait_for(3, 30), "the silent region kept the outage from counting"
        target.status = 200
        assert receiver.wait_for(4, 30), "no recovery of the second outage"

        for proc in (jakarta, second):
            code, stderr = _terminate(proc)
            assert code == 0, stderr[-3000:]
    finally:
        db.close()

    titles = [m.title for m in receiver.messages]
    assert titles == [
        "[Pantau] FIRING: Login (incident #1)",
        "[Pantau] RESOLVED: Login (incident #1)",
        "[Pantau] FIRING: Login (incident #2)",
        "[Pantau] RESOLVED: Login (incident #2)",
    ]
    shown = pantau.run("-c", path, "incident", "show", "1", "--json")
    assert shown.code == 0, str(shown)
    incident = json.loads(shown.stdout)
    events = [u["event"] for u in incident["updates"]]
    assert events[0] == "opened" and events[-1] == "resolved", events
    assert events.count("opened") == 1 and events.count("resolved") == 1, events
    assert incident["status"] == "resolved"
    assert set(incident["updates"][0]["details"]["regions_failing"]) == {"jakarta", "surabaya"}
    listed = pantau.run("-c", path, "incident", "list", "--json").lines()  # JSON lines
    assert [json.loads(line)["id"] for line in listed] == [2, 1]
    db = Db(pg_store_url)
    try:
        deliveries = db.rows("SELECT group_id, seq, target_index, status FROM alert_delivery")
        assert sorted(d.status for d in deliveries) == ["sent"] * 4
        regions = {r.region for r in db.rows("SELECT DISTINCT region FROM probe_result")}
        assert regions == {"jakarta", "surabaya"}
    finally:
        db.close()


def test_every_process_recovers_when_postgresql_restarts_under_load_and_no_commit_is_lost(
    pantau: Pantau,
    config: ConfigWriter,
    stub_server: Callable[..., StubServer],
    receiver: AlertReceiver,
    processes: list[subprocess.Popen[str]],
) -> None:
    target = stub_server(status=200)
    with private_server(durable=True) as server:
        url = server.url("pantau")
        path = _config(config, url, target, receiver, checks=20)
        assert pantau.run("-c", path, "db", "upgrade").code == 0
        db = Db(url)
        try:
            workers = [
                _start(pantau, processes, path, "--role", "probe", "--region", region)
                for region in ("jakarta", "medan")
            ]
            coordinator = _start(pantau, processes, path, "--role", "coordinator")
            _wait(lambda: db.leader_pid() == coordinator.pid, 30, "the coordinator to lead")
            _wait(
                lambda: len(db.rows("SELECT DISTINCT region FROM probe_result")) == 2,
                30,
                "results from both regions",
            )
            time.sleep(2)  # under load: 40 results a second
            committed = {r.id for r in db.rows("SELECT id FROM probe_result")}
            assert len(committed) > 40

            server.stop("fast")  # every connection is cut while results are being written
            down = datetime.now(UTC)
            time.sleep(2)
            server.start()
            back = datetime.now(UTC)

            # Every process writes again: results from both regions after the restart,
            # heartbeats, and the coordinator leads again on a new lock connection.
            _wait(
                lambda: (
                    {
                        r.region
                        for r in db.rows(
                            "SELECT DISTINCT region FROM probe_result WHERE started_at > :t", t=back
                        )
                    }
                    == {"jakarta", "medan"}
                ),
                30,
                "both regions to write again",
            )
            _wait(
                lambda: (
                    (n := db.nodes())
                    and all(
                        n[p.pid].heartbeat_at > back for p in [*workers, coordinator] if p.pid in n
                    )
                    and len(n) == 3
                ),
                30,
                "every process's heartbeat after the restart",
            )
            _wait(lambda: db.leader_pid() == coordinator.pid, 30, "leadership regained")
            for proc in [*workers, coordinator]:
                assert proc.poll() is None, "a process died with the database"
            # Nothing that was committed before the restart is lost, and what was probed
            # while the server was down waited in memory and was written once it returned.
            after = {r.id for r in db.rows("SELECT id FROM probe_result")}
            assert committed <= after
            meanwhile = db.rows(
                "SELECT DISTINCT region FROM probe_result WHERE started_at > :a AND started_at < :b",
                a=down,
                b=back,
            )
            assert {r.region for r in meanwhile} == {"jakarta", "medan"}
            for proc in [*workers, coordinator]:
                code, stderr = _terminate(proc)
                assert code == 0, stderr[-3000:]
                assert "Traceback" not in stderr, stderr[stderr.find("Traceback") - 300 :][:1500]
            assert receiver.messages == []  # the restart is no outage of the target
        finally:
            db.close()
