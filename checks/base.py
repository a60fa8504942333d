"""The check seam: what every probe kind returns and the protocol it implements."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field

from monitor.fields import Duration, Text

if TYPE_CHECKING:
    import httpx

    from monitor.clock import Clock

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class ErrorClass(enum.StrEnum):
    """Why a probe failed. DESIGN.md fixes this list; scripts match on the values."""

    TIMEOUT = "timeout"
    CONNECT = "connect"
    DNS = "dns"
    TLS = "tls"
    HTTP_STATUS = "http_status"
    ASSERTION = "assertion"
    TOO_SLOW = "too_slow"
    TOO_LARGE = "too_large"
    REDIRECT_LOOP = "redirect_loop"
    PROTOCOL = "protocol"


@dataclass(frozen=True, slots=True)
class StepResult:
    """One step of a multi-step check (a flow): its own outcome and latency."""

    name: str
    ok: bool
    latency_ms: float | None
    status_code: int | None = None
    error: ErrorClass | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 1),
            "status_code": self.status_code,
            "error": self.error.value if self.error else None,
        }


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """The outcome of one run of one check.

    ``ok`` is false when the target failed. A result can be ``ok`` and ``degraded``
    (slow, a waiting-room page, a certificate near expiry): then ``error`` names why
    (``too_slow``, ``assertion``, ``tls``) and the component shows
    ``degraded_performance``, not an outage. ``detail`` says it in words, never with
    secrets in it. ``step`` names the failing step of a flow; ``steps`` holds every
    step's own outcome and latency.
    """

    check_id: str
    component_id: str
    started_at: datetime
    ok: bool
    latency_ms: float | None
    error: ErrorClass | None = None
    detail: str = ""
    status_code: int | None = None
    step: str | None = None
    region: str = "default"
    attempt: int = 1
    degraded: bool = False
    steps: tuple[StepResult, ...] = ()

    @property
    def state(self) -> str:
        """``up``, ``degraded`` or ``down``."""
        if not self.ok:
            return "down"
        return "degraded" if self.degraded else "up"

    def as_json(self) -> dict[str, Any]:
        """Return the stable JSON shape printed by ``pantau check --json``."""
        return {
            "check": self.check_id,
            "component": self.component_id,
            "ok": self.ok,
            "state": self.state,
            "error": self.error.value if self.error else None,
            "detail": self.detail,
            "status_code": self.status_code,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 1),
            "step": self.step,
            "steps": [step.as_json() for step in self.steps],
            "attempt": self.attempt,
            "region": self.region,
            "started_at": self.started_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class ProbeContext:
    """What a check may use to talk to the world: injected, never global."""

    client: httpx.AsyncClient
    clock: Clock
    region: str = "default"
    #: A client that keeps no connections alive, for checks with ``fresh_connection``.
    fresh_client: httpx.AsyncClient | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class CheckSettings(BaseModel):
    """Fields every check kind has. Each kind extends this with its own."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Stable identifier, used on the CLI, in the store and in URLs.
    id: str = Field(pattern=ID_PATTERN)
    #: The ``[[components]]`` id this check reports on.
    component: str
    #: The probe kind; selects the check class from the registry.
    kind: str
    #: Optional display name; defaults to the id.
    name: Text | None = None
    #: How often the check runs.
    interval: Duration = timedelta(seconds=30)
    #: The whole probe, from connect to the last byte, must finish within this.
    timeout: Duration = timedelta(seconds=10)
    #: Quick re-probes after a failure, so one dropped packet does not count and a real
    #: failure is confirmed within seconds instead of a whole interval. Every attempt is stored.
    retries: int = Field(default=1, ge=0, le=10)
    #: Pause before each re-probe.
    retry_delay: Duration = timedelta(seconds=2)
    #: Interval during a ``surge`` event of its component (default: a third of ``interval``).
    surge_interval: Duration | None = None


class Check(Protocol):
    """One configured probe. ``run`` never raises: failures are results."""

    config_model: ClassVar[type[CheckSettings]]

    @property
    def settings(self) -> CheckSettings: ...

    async def run(self, ctx: ProbeContext) -> ProbeResult:
        """Probe once and return a classified result."""
        ...
