"""Alerts, silences and metrics from the real ``pantau`` command, with real servers on
127.0.0.1: a process killed mid-incident and restarted sends nothing twice."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from cli_support import ConfigWriter, Pantau, StubServer, stop_process
from prometheus_client.parser import text_string_to_metric_families

from monitor.demo.receiver import AlertReceiver
from monitor.store import Store


@pytest.fixture
def receiver() -> AlertReceiver:
    receiver = AlertReceiver().start()
    yield receiver  # type: ignore[misc]
    receiver.stop()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _login_check(target: StubServer) -> dict[str, object]:
    return {
        "id": "login-page",
        "component": "login",
        "url": target.url("/masuk"),
        "interval": "300ms",
        "timeout": "1s",
        "retries": 0,
    }


def _delivered(config: ConfigWriter) -> bool:
    """True once every delivery in the store has its outcome recorded."""
    store = Store(f"sqlite:///{config.db}", create=False)
    try:
        with store.read() as tx:
            rows = tx.deliveries()
        return bool(rows) and all(row.status == "sent" for row in rows)
    finally:
        store.close()


def _wait(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_a_process_killed_mid_incident_sends_nothing_twice_and_loses_no_timeline(
    pantau: Pantau,
    config: ConfigWriter,
    stub_server: Callable[..., StubServer],
    receiver: AlertReceiver,
) -> None:
    target = stub_server(status=503)
    path = config.write(
        [_login_check(target)],
        alerts={
            "notify": [receiver.apprise_url],
            "group_wait": "500ms",
            "evaluation_interval": "200ms",
            "repeat_interval": "1h",
            "backoff": "200ms",
        },
    )
    first = pantau.popen("-c", path, "run")
    try:
        assert _wait(lambda: len(receiver.messages) >= 1, 20), "no firing alert"
        # Killed after the outcome is recorded (a kill between sending and recording leaves
        # the delivery "sending"; the next leader sends it again once the send's timeout
        # has passed: tests/monitor/test_roles.py).
        assert _wait(lambda: _delivered(config), 10), "the delivery was never recorded"
    finally:
        stop_process(first)  # kill -9, mid-incident
    # Restarted while login still fails: the alert is firing already, nothing is resent.
    again = pantau.run("-c", path, "run", "--for", "3")
    assert again.code == 0, str(again)
    time.sleep(0.3)
    assert [m.title for m in receiver.messages] == ["[Pantau] FIRING: Login (incident #1)"]
    # Login recovers: one recovery message, and the incident resolves.
    target.status = 200
    last = pantau.run("-c", path, "run", "--for", "4")
    assert last.code == 0, str(last)
    assert _wait(lambda: len(receiver.messages) >= 2, 5)
    time.sleep(0.3)
    assert [m.title for m in receiver.messages] == [
        "[Pantau] FIRING: Login (incident #1)",
        "[Pantau] RESOLVED: Login (incident #1)",
    ]
    shown = pantau.run("-c", path, "incident", "show", "1", "--json")
    incident = json.loads(shown.stdout)
    events = [u["event"] for u in incident["updates"]]
    assert events[0] == "opened" and events[-1] == "resolved"
    assert events.count("opened") == 1 and events.count("resolved") == 1
    assert incident["status"] == "resolved"
    opened = incident["updates"][0]["details"]
    assert set(opened["error_classes"]) == {"http_status"}
    assert opened["regions_failing"] == ["default"]
    text = pantau.run("-c", path, "incident", "show", "1")
    assert "evidence: " in text.stdout and "[http_status=" in text.stdout
    status = pantau.run("-c", path, "status")
    assert "alerts: 0 firing, 0 pending" in status.stdout
    assert "0 failed or unconfirmed" in status.stdout


def test_silences_hold_alerts_back_and_show_in_status(
    pantau: Pantau,
    config: ConfigWriter,
    stub_server: Callable[..., StubServer],
    receiver: AlertReceiver,
) -> None:
    target = stub_server(status=503)
    path = config.write(
        [_login_check(target)],
        alerts={
            "notify": [receiver.apprise_url],
            "group_wait": "200ms",
            "evaluation_interval": "200ms",
        },
    )
    refused = pantau.run_all(
        ["-c", path, "silence", "add", "--component", "nope", "--for", "1h", "--reason", "x"],
        ["-c", path, "silence", "add", "--component", "login", "--for", "soon", "--reason", "x"],
        ["-c", path, "silence", "add", "--component", "login", "--for", "1h"],
        ["-c", path, "silence", "add", "--component", "login", "--for", "30d", "--reason", "x"],
    )
    assert [o.code for o in refused] == [2, 2, 2, 2], "\n".join(map(str, refused))
    assert "unknown component 'nope'" in refused[0].stderr
    assert "invalid duration 'soon'" in refused[1].stderr
    added = pantau.run(
        "-c", path, "silence", "add", "--component", "login", "--for", "2h",
        "--reason", "deploy <login> v2", "--author", "rina",
    )  # fmt: skip
    assert added.code == 0, str(added)
    assert added.stdout.startswith("silence #1: alerts for login held back until ")
    run = pantau.run("-c", path, "run", "--for", "3")
    assert run.code == 0, str(run)
    assert receiver.messages == []
    listed, as_json, status = pantau.run_all(
        ["-c", path, "silence", "list"],
        ["-c", path, "silence", "list", "--json"],
        ["-c", path, "status"],
    )
    assert "deploy <login> v2" in listed.stdout and "rina" in listed.stdout
    (row,) = [json.loads(line) for line in as_json.lines()]
    assert row["component"] == "login" and row["state"] == "active"
    assert "silences: 1" in status.stdout
    assert "#1 login until" in status.stdout
    assert "alerts: 1 firing" in status.stdout
    assert "held back by silence #1: deploy <login> v2" in status.stdout
    removed = pantau.run("-c", path, "silence", "remove", "1")
    assert removed.code == 0 and "removed" in removed.stdout
    assert pantau.run("-c", path, "silence", "remove", "1").code == 2
    everything = pantau.run("-c", path, "silence", "list", "--all", "--json")
    assert json.loads(everything.stdout)["state"] == "removed"
    # Unsilenced while login still fails: the held-back alert is told now, once.
    run = pantau.run("-c", path, "run", "--for", "2")
    assert run.code == 0, str(run)
    assert _wait(lambda: len(receiver.messages) == 1, 5)
    assert receiver.messages[0].title == "[Pantau] FIRING: Login (incident #1)"


def test_run_serves_prometheus_metrics(
    pantau: Pantau, config: ConfigWriter, stub_server: Callable[..., StubServer]
) -> None:
    target = stub_server(status=503)
    port = _free_port()
    path = config.write(
        [_login_check(target)],
        alerts={"notify": [], "evaluation_interval": "200ms", "group_wait": "200ms"},
        tables=[("[metrics]", {"listen": f"127.0.0.1:{port}"})],
    )
    proc = pantau.popen("-c", path, "run", "--for", "8")
    families: dict[str, list[object]] = {}
    try:

        def scraped() -> bool:
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).text
            except httpx.HTTPError:
                return False
            families.clear()
            for family in text_string_to_metric_families(text):
                families[family.name] = list(family.samples)
            return any(
                s.labels.get("status") == "major_outage" and s.value == 1  # type: ignore[attr-defined]
                for s in families.get("pantau_component_status", [])
            )

        assert _wait(scraped, 15), f"metrics never showed the outage: {sorted(families)}"
    finally:
        stop_process(proc)
    for name in (
        "pantau_probe_duration_seconds",
        "pantau_probe_results",
        "pantau_component_status",
        "pantau_open_incidents",
        "pantau_alerts",
        "pantau_alert_deliveries",
    ):
        assert name in families, name
    results = families["pantau_probe_results"]
    assert any(
        s.labels["check"] == "login-page"  # type: ignore[attr-defined]
        and s.labels["error_class"] == "http_status"  # type: ignore[attr-defined]
        and s.value >= 2  # type: ignore[attr-defined]
        for s in results
    )
    (incidents,) = families["pantau_open_incidents"]
    assert incidents.value == 1  # type: ignore[attr-defined]


def test_templates_list_the_shipped_set_and_the_teams_own(
    pantau: Pantau, config: ConfigWriter, tmp_path: Path
) -> None:
    own = tmp_path / "statements"
    own.mkdir()
    (own / "otp-delay.id.txt").write_text("Kode OTP untuk {{ components }} terlambat.")
    (own / "otp-delay.en.txt").write_text("OTP codes for {{ components }} are late.")
    path = config.write(tables=[("[incidents]", {"templates_dir": "statements"})])
    listed = pantau.run("-c", path, "incident", "templates")
    names = listed.lines()
    for name in (
        "identified",
        "investigating",
        "maintenance",
        "monitoring",
        "otp-delay",
        "resolved",
        "traffic-surge",
        "wave-opening",
    ):
        assert name in names
    opened = pantau.run(
        "-c", path, "incident", "open", "--component", "login", "--template", "otp-delay"
    )
    assert opened.code == 0, str(opened)
    shown = json.loads(pantau.run("-c", path, "incident", "show", "1", "--json").stdout)
    assert shown["updates"][0]["message"] == "Kode OTP untuk Masuk terlambat."
    assert shown["updates"][0]["message_en"] == "OTP codes for Login are late."
