"""Automatic and human incidents: one timeline, grouped components, evidence on automatic entries."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from engine_support import ResultFactory

from monitor.clock import ManualClock
from monitor.config import Settings
from monitor.detect import record_result
from monitor.incidents import (
    IncidentAutomation,
    IncidentError,
    open_incident,
    statement_variables,
    update_incident,
)
from monitor.statements import Statement, StatementLibrary
from monitor.store import Store


def _run(
    store: Store,
    settings: Settings,
    clock: ManualClock,
    result: ResultFactory,
    check: str,
    oks: list[bool],
) -> list[str]:
    automation = IncidentAutomation(settings, StatementLibrary())
    events = []
    for ok in oks:
        with store.tx() as tx:
            change = record_result(tx, settings, result(check, ok=ok))
            event = automation.handle(tx, change, now=clock.now()) if change else None
        if event:
            events.append(event.event)
        clock.advance(1)
    return events


def test_going_down_opens_an_incident_with_a_bilingual_statement(
    store: Store, settings: Settings, clock: ManualClock, result: ResultFactory
) -> None:
    assert _run(store, settings, clock, result, "otp-page", [False, False]) == ["opened"]
    with store.read() as tx:
        (incident,) = tx.incidents()
        assert incident.id is not None
        updates = tx.updates(incident.id)
        components = tx.incident_components(incident.id)
    assert incident.status == "investigating"
    assert incident.automatic
    assert incident.title_id == "Gangguan pada OTP"
    assert incident.title_en == "OTP disruption"
    assert components == {"otp": "major_outage"}
    assert [u.event for u in updates] == ["opened"]
    assert "Kami sedang menyelidiki gangguan pada OTP" in updates[0].message_id
    assert "WIB" in updates[0].message_id
    assert "We are investigating a disruption of OTP" in updates[0].message_en
    details = json.loads(updates[0].details or "{}")  # evidence, for engineers and reports
    assert details["error_classes"] == {"http_status": 2}
    assert details["failing_checks"] == {"otp-page": 2}
    assert details["error_rate"] == 1.0


def test_recovery_resolves_with_one_timeline_entry(
    store: Store, settings: Settings, clock: ManualClock, result: ResultFactory
) -> None:
    events = _run(store, settings, clock, result, "otp-page", [False, False, True, True])
    assert events == ["opened", "resolved"]
    with store.read() as tx:
        (incident,) = tx.incidents()
        assert incident.id is not None
        updates = tx.updates(incident.id)
    assert incident.status == "resolved"
    assert incident.resolved_at == updates[-1].at
    assert [u.event for u in updates] == ["opened", "resolved"]
    assert "kembali normal" in updates[-1].message_id


def test_a_wave_breaking_several_components_makes_one_incident(
    store: Store, settings: Settings, clock: ManualClock, result: ResultFactory
) -> None:
    assert _run(store, settings, clock, result, "otp-page", [False, False]) == ["opened"]
    assert _run(store, settings, clock, result, "signup-page", [False, False]) == ["joined"]
    with store.read() as tx:
        (incident,) = tx.incidents()
        assert incident.id is not None
        assert tx.incident_components(incident.id) == {
            "otp": "major_outage",
            "signup": "major_outage",
        }
    assert incident.title_id == "Gangguan pada Pendaftaran dan OTP"
    # One component recovering does not resolve the incident; the last one does.
    assert _run(store, settings, clock, result, "otp-page", [True, True]) == ["recovered"]
    assert _run(store, settings, clock, result, "signup-page", [True, True]) == ["resolved"]


def test_a_human_incident_is_not_resolved_by_the_robot(
    store: Store, settings: Settings, clock: ManualClock, result: ResultFactory
) -> None:
    with store.tx() as tx:
        incident = open_incident(
            tx,
            settings,
            now=clock.now(),
            components={"login": "partial_outage"},
            statement=Statement(id="Masuk lambat.", en="Login is slow."),
            title=Statement(id="Masuk lambat", en="Slow login"),
            author="comms",
        )
    events = _run(store, settings, clock, result, "login-page", [False, False, True, True])
    assert events == ["changed", "recovered"]  # login was named by the comms team already
    with store.read() as tx:
        row = tx.incident(incident.id or 0)
        assert row is not None
        assert row.status == "investigating"
        assert len(tx.incidents()) == 1


def test_update_resolve_and_reopen_keep_one_timeline(
    store: Store, settings: Settings, clock: ManualClock
) -> None:
    with store.tx() as tx:
        incident = open_incident(
            tx,
            settings,
            now=clock.now(),
            components={"login": "major_outage"},
            statement=Statement(id="a", en="a-en"),
            title=Statement(id="t", en="t-en"),
            author="comms",
        )
    incident_id = incident.id or 0
    for status in ("identified", "monitoring", "resolved", "investigating"):
        clock.advance(60)
        with store.tx() as tx:
            update_incident(
                tx,
                settings,
                incident_id,
                now=clock.now(),
                status=status,
                statement=Statement(id=status, en=status),
                author="comms",
            )
    with store.read() as tx:
        updates = tx.updates(incident_id)
        row = tx.incident(incident_id)
    assert [u.status for u in updates] == [
        "investigating",
        "identified",
        "monitoring",
        "resolved",
        "investigating",
    ]
    assert [u.event for u in updates] == ["opened", "update", "update", "resolved", "reopened"]
    assert all(u.author == "comms" for u in updates)
    assert row is not None
    assert row.status == "investigating"
    assert row.resolved_at is None


@pytest.mark.parametrize(
    ("status", "components", "message"),
    [("fixed", None, "unknown status"), (None, {"nope": "major_outage"}, "unknown component")],
)
def test_bad_updates_are_refused(
    store: Store,
    settings: Settings,
    clock: ManualClock,
    status: str | None,
    components: dict[str, str] | None,
    message: str,
) -> None:
    with store.tx() as tx:
        incident = open_incident(
            tx,
            settings,
            now=clock.now(),
            components={"login": "major_outage"},
            statement=Statement(id="a", en="a"),
            title=Statement(id="t", en="t"),
            author="comms",
        )
    with pytest.raises(IncidentError, match=message), store.tx() as tx:
        update_incident(
            tx,
            settings,
            incident.id or 0,
            now=clock.now(),
            status=status,
            statement=Statement(id="x", en="x"),
            author="comms",
            components=components,
        )


def test_statement_templates_render_in_both_languages(settings: Settings) -> None:
    library = StatementLibrary()
    shipped = {
        "investigating",
        "identified",
        "monitoring",
        "resolved",
        "traffic-surge",
        "wave-opening",
        "maintenance",
    }
    assert shipped <= set(library.names())
    started = datetime(2026, 9, 17, 7, 5, tzinfo=UTC)
    for rate in (None, 0.45):
        variables = statement_variables(
            settings,
            ["login", "signup"],
            started_at=started,
            now=started + timedelta(minutes=65),
            error_rate=rate,
        )
        for name in shipped:
            statement = library.render(name, variables)
            assert "{{" not in statement.id + statement.en
            assert "Masuk dan Pendaftaran" in statement.id or name == "title"
            assert "Login and Signup" in statement.en
    surge = library.render("traffic-surge", variables)
    assert "sejak 17 Sep 2026, 14.05 WIB" in surge.id
    assert "Sekitar 45% percobaan akses saat ini gagal." in surge.id
    assert "About 45% of attempts are currently failing." in surge.en
    resolved = library.render("resolved", variables)
    assert "gangguan berlangsung 1 jam 5 menit" in resolved.id
