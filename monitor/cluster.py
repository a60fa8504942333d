"""The monitor's own health across processes: which regions report, which processes run,
who leads. Read by ``pantau status``; pure functions over rows of the store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.config import Settings
from monitor.detect import region_grace
from monitor.runtime import HEARTBEAT, MISSED_BEATS
from monitor.store import CheckStateRow, NodeRow


@dataclass(frozen=True, slots=True)
class RegionHealth:
    """One region's reporting: silent once every check it probes is past its grace."""

    region: str
    checks: int
    last_result_at: datetime | None
    silent: bool

    def as_dict(self) -> dict[str, object]:
        return {
            "region": self.region,
            "checks": self.checks,
            "last_result_at": self.last_result_at.isoformat() if self.last_result_at else None,
            "silent": self.silent,
            "in_quorum": not self.silent,
        }


def region_health(
    states: list[CheckStateRow], settings: Settings, *, now: datetime
) -> list[RegionHealth]:
    """Every region that ever reported a configured check, by name.

    A region is silent (and out of every quorum) when none of its checks reported within
    the check's grace (``[detection] region_grace``, default two intervals)."""
    intervals = {check.id: check.interval for check in settings.checks}
    by_region: dict[str, list[CheckStateRow]] = {}
    for state in states:
        if state.check_id in intervals:
            by_region.setdefault(state.region, []).append(state)
    health = []
    for region, rows in sorted(by_region.items()):
        reported = [r.last_result_at for r in rows if r.last_result_at is not None]
        fresh = any(
            r.last_result_at is not None
            and now - r.last_result_at <= region_grace(settings.detection, intervals[r.check_id])
            for r in rows
        )
        health.append(
            RegionHealth(
                region=region,
                checks=len(rows),
                last_result_at=max(reported, default=None),
                silent=not fresh,
            )
        )
    return health


@dataclass(frozen=True, slots=True)
class NodeHealth:
    node: NodeRow
    alive: bool

    @property
    def leading(self) -> bool:
        return self.alive and self.node.leader

    def as_dict(self) -> dict[str, object]:
        node = self.node
        return {
            "id": node.id,
            "role": node.role,
            "region": node.region,
            "host": node.host,
            "pid": node.pid,
            "started_at": node.started_at.isoformat(),
            "heartbeat_at": node.heartbeat_at.isoformat(),
            "stopped_at": node.stopped_at.isoformat() if node.stopped_at else None,
            "alive": self.alive,
            "leader": self.leading,
            "store": {
                "buffered": node.buffered,
                "dropped": node.dropped,
                "errors": node.store_errors,
                "last_error": node.last_store_error,
                "last_error_at": (
                    node.last_store_error_at.isoformat() if node.last_store_error_at else None
                ),
            },
        }

    def store_text(self) -> str:
        """How this process last reported the store: ``ok``, or what is waiting and lost."""
        node = self.node
        if not node.store_errors:
            return "ok"
        parts = []
        if node.buffered:
            parts.append(f"{node.buffered} results waiting in memory")
        if node.dropped:
            parts.append(f"{node.dropped} dropped")
        when = node.last_store_error_at.isoformat() if node.last_store_error_at else "?"
        parts.append(f"{node.store_errors} failed writes, last at {when}: {node.last_store_error}")
        return "; ".join(parts)


def node_health(
    nodes: list[NodeRow], *, now: datetime, beat: timedelta = HEARTBEAT
) -> list[NodeHealth]:
    """Processes that beat within ``MISSED_BEATS`` heartbeats and did not stop are alive."""
    limit = beat * MISSED_BEATS
    return [
        NodeHealth(node, alive=node.stopped_at is None and now - node.heartbeat_at <= limit)
        for node in nodes
    ]


def leader_of(health: list[NodeHealth]) -> NodeHealth | None:
    """The live process that last reported leading (the newest beat when two claim it
    for a moment around a failover)."""
    leaders = [h for h in health if h.leading]
    return max(leaders, key=lambda h: h.node.heartbeat_at, default=None)
