"""Alert delivery through Apprise to a real local receiver: once, with retries, never blocking."""

from __future__ import annotations

from pathlib import Path

from engine_support import Replay, make_config

from monitor.alerts import AppriseNotifier, DeliveryError, backoff_delay, deliver_pending
from monitor.clock import ManualClock
from monitor.config import Settings, parse_settings
from monitor.demo.receiver import AlertReceiver
from monitor.fields import Secret
from monitor.store import Store


def _settings(*targets: str, env: dict[str, str] | None = None) -> Settings:
    return parse_settings(make_config(notify=list(targets)), env=env or {})


def _open(store: Store, settings: Settings, clock: ManualClock) -> int:
    """Login fails until its alert fires and its group's first message is due; the group id."""
    replay = Replay(store, settings, clock)
    for _ in range(2):
        replay.round(failing={"login-page", "login-api"})
        clock.advance(1)
    replay.evaluate()
    clock.advance(settings.alerts.group_wait.total_seconds())
    report = replay.evaluate()
    assert report.messages, "the group's first message is due"
    return report.messages[0][0]


class RecordingNotifier:
    """A fake implementing the Notifier protocol; fails the first ``failures`` sends."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.sent: list[str] = []

    def send(self, target: Secret, *, title: str, body: str) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise DeliveryError("receiver said 500")
        self.sent.append(title)


def test_a_firing_alert_is_delivered_once_to_a_real_receiver_with_its_evidence(
    store: Store, clock: ManualClock, receiver: AlertReceiver
) -> None:
    settings = _settings(receiver.apprise_url)
    _open(store, settings, clock)
    notifier = AppriseNotifier(timeout=5)
    first = deliver_pending(store, settings, notifier, now=clock.now())
    second = deliver_pending(store, settings, notifier, now=clock.advance(60))
    assert len(first.sent) == 1
    assert second.sent == []
    assert receiver.wait_for(1, timeout=5)
    (message,) = receiver.messages
    assert message.title == "[Pantau] FIRING: Login (incident #1)"
    body = message.body
    assert "Incident #1 [investigating]" in body
    assert "incidents/1.html" in body
    assert "failing checks: login-api=2, login-page=2" in body
    assert "error classes: http_status=4" in body
    assert "regions failing: default (of 1 reporting)" in body
    assert "latency p50 120 ms, p95 120 ms" in body
    assert "first failure: " in body and "WIB" in body


def test_a_second_store_process_cannot_send_a_claimed_delivery_again(
    tmp_path: Path, clock: ManualClock
) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    settings = _settings("json://127.0.0.1:9/x")
    first, second = Store(url), Store(url)
    try:
        _open(first, settings, clock)
        notifier = RecordingNotifier()
        deliver_pending(first, settings, notifier, now=clock.now())
        deliver_pending(second, settings, notifier, now=clock.now())
        assert len(notifier.sent) == 1
    finally:
        first.close()
        second.close()


def test_a_failing_target_is_retried_with_backoff_then_marked_failed(
    store: Store, clock: ManualClock
) -> None:
    settings = _settings("json://127.0.0.1:9/x")
    _open(store, settings, clock)
    notifier = RecordingNotifier(failures=10)
    report = deliver_pending(store, settings, notifier, now=clock.now())
    assert len(report.retrying) == 1
    # Not due before its backoff (2 s after the first failure) has passed.
    assert deliver_pending(store, settings, notifier, now=clock.advance(1.9)).retrying == []
    assert len(deliver_pending(store, settings, notifier, now=clock.advance(0.1)).retrying) == 1
    # Third attempt (max_attempts = 3) fails for good after a 4 s backoff.
    report = deliver_pending(store, settings, notifier, now=clock.advance(4))
    assert len(report.failed) == 1
    with store.read() as tx:
        (row,) = tx.deliveries()
    assert (row.status, row.attempts) == ("failed", 3)
    assert row.last_error == "receiver said 500"


def test_a_refusing_receiver_recovers_on_retry(store: Store, clock: ManualClock) -> None:
    receiver = AlertReceiver(fail_next=1).start()
    try:
        settings = _settings(receiver.apprise_url)
        _open(store, settings, clock)
        notifier = AppriseNotifier(timeout=5)
        assert len(deliver_pending(store, settings, notifier, now=clock.now()).retrying) == 1
        assert len(deliver_pending(store, settings, notifier, now=clock.advance(2)).sent) == 1
        assert receiver.refused == 1
        assert len(receiver.messages) == 1
    finally:
        receiver.stop()


def test_an_unreachable_target_is_a_classified_failure_not_an_exception(
    store: Store, clock: ManualClock
) -> None:
    settings = _settings("json://127.0.0.1:9/nobody-listens")
    _open(store, settings, clock)
    report = deliver_pending(store, settings, AppriseNotifier(timeout=1), now=clock.now())
    assert len(report.retrying) == 1


def test_backoff_doubles_and_is_capped() -> None:
    rule = _settings().alerts
    assert [backoff_delay(rule, n).total_seconds() for n in (1, 2, 3, 4, 5, 6)] == [
        2,
        4,
        8,
        16,
        30,
        30,
    ]


def test_secret_alert_urls_never_reach_the_store(
    store: Store, clock: ManualClock, receiver: AlertReceiver
) -> None:
    url = receiver.apprise_url + "/${HOOK_TOKEN}"
    settings = _settings(url, env={"HOOK_TOKEN": "tok-4242-secret"})
    _open(store, settings, clock)
    deliver_pending(store, settings, AppriseNotifier(timeout=5), now=clock.now())
    assert receiver.wait_for(1, timeout=5)
    assert receiver.messages[0].path.endswith("/tok-4242-secret")
    with store.read() as tx:
        (row,) = tx.deliveries()
    assert row.status == "sent"
    assert "tok-4242-secret" not in row.target_label
    assert "${HOOK_TOKEN}" in row.target_label
