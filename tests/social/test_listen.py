"""The public signal in the service: a growing export read by the file source, spikes
found against a seeded baseline, labelled against what the probes see, on a manual clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.clock import ManualClock
from monitor.config import Settings, parse_settings
from monitor.demo.complaints import seed_history
from monitor.incidents import open_incident
from monitor.publish import load_snapshot
from monitor.social.listen import SocialListener
from monitor.social.sources import PollResult
from monitor.statements import Statement
from monitor.store import Store

START = datetime(2026, 9, 17, 7, 0, tzinfo=UTC)
BUCKET = timedelta(minutes=1)
COMPONENTS = [
    {"id": "login", "name": {"id": "Masuk", "en": "Login"}},
    {"id": "otp", "name": "OTP"},
]


def _settings(tmp_path: Path, **social: Any) -> Settings:
    data = {
        "components": COMPONENTS,
        "social": {
            "sources": ["file"],
            "file": "posts.jsonl",
            "bucket": "1m",
            **social,
        },
    }
    return parse_settings(data, base_dir=tmp_path, env={})


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def store(store_url: str) -> Store:
    """On SQLite and on PostgreSQL, with eight hours of calm history."""
    store = Store(store_url)
    seed_history(store, now=START, bucket=BUCKET, hours=8)
    yield store  # type: ignore[misc]
    store.close()


def _write(path: Path, at: datetime, texts: list[str]) -> None:
    with path.open("a", encoding="utf-8") as out:
        for i, text in enumerate(texts):
            post = {
                "id": f"{at.timestamp():.0f}-{i}",
                "text": text,
                "created_at": (at + timedelta(seconds=i)).isoformat(),
                "author": "warga0001",
            }
            out.write(json.dumps(post) + "\n")


def _minutes(listener: SocialListener, clock: ManualClock, path: Path, posts: list[str], n: int):  # type: ignore[no-untyped-def]
    spikes = []
    for _ in range(n):
        _write(path, clock.now(), posts)
        clock.advance(60)
        spikes += listener.poll_once().spikes
    return spikes


CALM = ["kapan gelombang prakerja berikutnya dibuka"]
ANGRY = ["prakerja ga bisa login dari tadi, error terus"] * 20 + [
    "kode otp prakerja ga masuk2 udh 10 menit"
] * 10


def test_a_complaint_spike_while_probes_are_green_is_a_blind_spot(
    tmp_path: Path, store: Store, clock: ManualClock
) -> None:
    settings = _settings(tmp_path)
    listener = SocialListener(settings, store, clock=clock)
    path = tmp_path / "posts.jsonl"
    assert _minutes(listener, clock, path, CALM, 5) == []
    spikes = _minutes(listener, clock, path, ANGRY, 3)
    assert len(spikes) == 1  # one object per onset, not per bucket
    (spike,) = spikes
    assert spike.label == "blind_spot"
    assert spike.value == 30
    assert spike.expected < 3
    assert spike.topics.split(",")[:2] == ["login", "down"]
    with store.read() as tx:
        (source,) = tx.social_sources()
        assert source.status == "ok"
        assert len(tx.posts(complaints_only=True)) == 90


def test_a_spike_during_an_outage_is_confirmed_and_noted_on_the_incident(
    tmp_path: Path, store: Store, clock: ManualClock
) -> None:
    settings = _settings(tmp_path)
    listener = SocialListener(settings, store, clock=clock)
    path = tmp_path / "posts.jsonl"
    _minutes(listener, clock, path, CALM, 5)
    with store.tx() as tx:
        tx.set_component_status("login", "major_outage", at=clock.now(), cause="probes")
        open_incident(
            tx,
            settings,
            now=clock.now(),
            components={"login": "major_outage"},
            statement=Statement(id="Masuk gagal.", en="Login fails."),
            title=Statement(id="Gangguan Masuk", en="Login disruption"),
            automatic=True,
        )
    (spike,) = _minutes(listener, clock, path, ANGRY, 2)
    assert spike.label == "confirmed"
    assert spike.incident_id == 1
    with store.read() as tx:
        updates = tx.updates(1)
    note = updates[-1]
    assert note.event == "complaints"
    assert note.message_id.startswith("Keluhan publik meningkat: 30 dalam 1 menit")
    assert "warga0001" not in note.message_id + note.message_en + (note.details or "")
    assert "login dari tadi" not in note.message_id + note.message_en + (note.details or "")
    # The public page shows the note only with public_volume (aggregates, never posts).
    hidden = load_snapshot(store, settings, now=clock.now())
    assert [u.event for u in hidden.incidents[0].updates] == ["opened"]
    shown = load_snapshot(store, _settings(tmp_path, public_volume=True), now=clock.now())
    assert [u.event for u in shown.incidents[0].updates] == ["opened", "complaints"]
    volume = shown.incidents[0].public_volume
    assert volume is not None and set(volume) == {
        "label",
        "during_ratio",
        "complaints_per_minute",
        "lag_minutes",
    }
    assert volume["label"] == "confirmed"


@pytest.mark.parametrize(("recovered_after", "label"), [(30, "confirmed"), (-90, "blind_spot")])
def test_complaints_trailing_a_short_outage_are_confirmed(
    tmp_path: Path, store: Store, clock: ManualClock, recovered_after: int, label: str
) -> None:
    """The login page failed briefly and was up again before the spike's bucket closed:
    the complaints trail that outage (confirmed). One that ended more than a bucket
    before is no explanation (a blind spot)."""
    settings = _settings(tmp_path)
    listener = SocialListener(settings, store, clock=clock)
    path = tmp_path / "posts.jsonl"
    _minutes(listener, clock, path, CALM, 5)
    bucket_start = clock.now()
    with store.tx() as tx:
        down = bucket_start + timedelta(seconds=min(recovered_after, 0) - 20)
        tx.set_component_status("login", "major_outage", at=down, cause="probes")
        up = bucket_start + timedelta(seconds=recovered_after)
        tx.set_component_status("login", "operational", at=up, cause="recovered")
    (spike,) = _minutes(listener, clock, path, ANGRY, 2)
    assert spike.at == bucket_start
    assert spike.label == label


def test_a_restarted_listener_does_not_record_a_spike_twice(
    tmp_path: Path, store: Store, clock: ManualClock
) -> None:
    settings = _settings(tmp_path)
    path = tmp_path / "posts.jsonl"
    first = SocialListener(settings, store, clock=clock)
    _minutes(first, clock, path, CALM, 3)
    assert len(_minutes(first, clock, path, ANGRY, 2)) == 1
    again = SocialListener(settings, store, clock=clock)
    _minutes(again, clock, path, CALM, 2)
    with store.read() as tx:
        assert len(tx.spikes()) == 1


class _DownSource:
    name = "x"

    def __init__(self) -> None:
        self.calls = 0

    def poll(self, *, now: datetime, cursor: str | None) -> tuple[PollResult, str | None]:
        self.calls += 1
        return (
            PollResult(
                source="x",
                counts={},
                counts_final=True,
                posts=[],
                error="X refused the bearer token (401)",
                status="unavailable",
                retry_after=now + timedelta(minutes=5),
            ),
            cursor,
        )


def test_an_unavailable_source_is_recorded_and_backed_off_never_raised(
    tmp_path: Path, store: Store, clock: ManualClock
) -> None:
    settings = _settings(tmp_path)
    source = _DownSource()
    listener = SocialListener(settings, store, clock=clock, sources=[source])  # type: ignore[list-item]
    first = listener.poll_once()
    assert first.polled == ["x"]
    clock.advance(60)
    second = listener.poll_once()
    assert second.skipped == ["x"] and source.calls == 1
    with store.read() as tx:
        (row,) = tx.social_sources()
    assert row.status == "unavailable"
    assert row.last_error == "X refused the bearer token (401)"
    assert row.failures == 1
