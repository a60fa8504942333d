"""Fixtures of the publishing tests: settings, a real SQLite store, a fixed clock, a scenario."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.config import Settings, parse_settings
from monitor.store import IncidentRow, IncidentUpdateRow, Store

#: 14.05 WIB on the Thursday wave 9 opens.
NOW = datetime(2026, 9, 17, 7, 5, tzinfo=UTC)

SITE_CONFIG: dict[str, Any] = {
    "site": {
        "title": {"id": "Status Kartu Prakerja", "en": "Kartu Prakerja Status"},
        "base_url": "https://status.prakerja.example/",
    },
    "components": [
        {"id": "home", "name": {"id": "Beranda", "en": "Home"}},
        {
            "id": "login",
            "name": {"id": "Masuk", "en": "Login"},
            "description": {"id": "Masuk ke akun", "en": "Signing in to an account"},
        },
        {"id": "signup", "name": {"id": "Pendaftaran", "en": "Signup"}},
        {"id": "otp", "name": "OTP"},
    ],
}


def _make_settings(
    base_dir: Path, *, components: list[dict[str, Any]] | None = None, **site: Any
) -> Settings:
    data = {
        "site": {**SITE_CONFIG["site"], **site},
        "components": SITE_CONFIG["components"] if components is None else components,
    }
    return parse_settings(data, base_dir=base_dir)


MakeSettings = Callable[..., Settings]
AddIncident = Callable[..., int]


@pytest.fixture
def now() -> datetime:
    return NOW


@pytest.fixture
def make_settings(tmp_path: Path) -> MakeSettings:
    """Settings of the test site with ``[site]`` keys or ``components`` replaced."""

    def make(**changes: Any) -> Settings:
        return _make_settings(tmp_path, **changes)

    return make


@pytest.fixture
def settings(make_settings: MakeSettings) -> Settings:
    return make_settings()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path}/p.db")
    yield store
    store.close()


def _add_incident(
    store: Store,
    *,
    title: tuple[str, str],
    status: str,
    started_at: datetime,
    components: dict[str, str],
    updates: list[tuple[datetime, str, str, str]],
    impact: str = "major",
) -> int:
    """Add an incident with its updates ``(at, status, message_id, message_en)``; return its id."""
    last = updates[-1][0] if updates else started_at
    with store.tx() as tx:
        row = IncidentRow(
            title_id=title[0],
            title_en=title[1],
            status=status,
            impact=impact,
            started_at=started_at,
            updated_at=last,
            resolved_at=last if status == "resolved" else None,
        )
        incident = tx.add_incident(row, components)
        assert incident.id is not None
        for at, update_status, message_id, message_en in updates:
            tx.add_update(
                IncidentUpdateRow(
                    incident_id=incident.id,
                    at=at,
                    status=update_status,
                    message_id=message_id,
                    message_en=message_en,
                )
            )
        return incident.id


@pytest.fixture
def add_incident() -> AddIncident:
    """``add_incident(store, title=(id, en), status=..., started_at=..., components=..., updates=...)``."""
    return _add_incident


@pytest.fixture
def wave_store(store: Store, now: datetime) -> Store:
    """Wave 9 opens: login is down, signup slow, OTP had an incident three days ago.

    Incident 1 (resolved, 20 days old) is past the page's window; incident 2 (OTP,
    resolved three days ago) is recent; incident 3 (login, investigating then
    identified, the latest statement only in Indonesian) is active.
    """
    with store.tx() as tx:
        tx.set_component_status("home", "operational", at=now - timedelta(hours=2), cause="probe")
        tx.set_component_status("login", "major_outage", at=now - timedelta(minutes=45), cause="p")
        tx.set_component_status(
            "signup", "degraded_performance", at=now - timedelta(minutes=35), cause="probe"
        )
    old = now - timedelta(days=20)
    _add_incident(
        store,
        title=("Pemeliharaan basis data", "Database maintenance"),
        status="resolved",
        started_at=old,
        components={"home": "under_maintenance"},
        updates=[(old, "resolved", "Selesai.", "Done.")],
        impact="none",
    )
    otp = now - timedelta(days=3, hours=5)
    _add_incident(
        store,
        title=("Kode OTP terlambat", "OTP codes delayed"),
        status="resolved",
        started_at=otp,
        components={"otp": "partial_outage"},
        impact="minor",
        updates=[
            (
                otp,
                "investigating",
                "Kami menyelidiki keterlambatan OTP.",
                "We are looking into it.",
            ),
            (otp + timedelta(minutes=20), "monitoring", "Perbaikan diterapkan.", "A fix is live."),
            (otp + timedelta(minutes=50), "resolved", "OTP kembali normal.", "OTP is back."),
        ],
    )
    wave = now - timedelta(minutes=40)
    _add_incident(
        store,
        title=("Gagal masuk saat gelombang 9 dibuka", "Login failing as wave 9 opens"),
        status="identified",
        started_at=wave,
        components={"login": "major_outage", "signup": "degraded_performance"},
        updates=[
            (
                wave,
                "investigating",
                "Banyak pendaftar gagal masuk. Kami sedang menyelidiki.",
                "Many applicants cannot log in. We are investigating.",
            ),
            (
                wave + timedelta(minutes=25),
                "identified",
                "Lalu lintas sangat tinggi.\nKami menambah kapasitas.",
                "",
            ),
        ],
    )
    return store
