"""The public signal inside ``pantau run``: poll the sources, find complaint spikes,
and tie them to what the probes see.

Each poll stores what the sources gave (posts classified, counts per minute) and the
sources' health. Complete buckets are then fed, in order, to one streaming
:class:`~monitor.social.spikes.SpikeDetector`, warmed from the stored history when the
process starts. A spike onset is stored once with its topics and a label: ``confirmed``
when a component is failing (a note joins the open incidents' timelines), ``blind_spot``
when every probe is green (the ``complaints`` alert rule then tells engineers).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from monitor.clock import Clock, floor_time
from monitor.config import Settings
from monitor.correlate import baseline, is_blind_spot
from monitor.social.sources import MINUTE, Source, build_sources, record_poll
from monitor.social.spikes import Spike, SpikeDetector
from monitor.store import ComplaintSpikeRow, IncidentUpdateRow, Store, StoreTx

log = logging.getLogger(__name__)

#: The timeline event of a complaint spike (shown publicly only with ``public_volume``).
COMPLAINTS_EVENT = "complaints"


@dataclass(slots=True)
class ListenReport:
    """What one :meth:`SocialListener.poll_once` did."""

    polled: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    posts_added: int = 0
    spikes: list[ComplaintSpikeRow] = field(default_factory=list)


class SocialListener:
    """Polls the configured sources and detects spikes; one per process."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        clock: Clock,
        sources: list[Source] | None = None,
    ) -> None:
        self.settings, self.store, self.clock = settings, store, clock
        self.sources = build_sources(settings) if sources is None else sources
        self.bucket = settings.social.bucket
        self._detector: SpikeDetector | None = None
        #: The start of the next bucket to feed.
        self._next: datetime | None = None

    def poll_once(self) -> ListenReport:
        """Poll every source that is not backing off, then detect (blocking)."""
        report = ListenReport()
        now = self.clock.now()
        for source in self.sources:
            with self.store.tx() as tx:
                state = tx.social_source(source.name)
                cursor, retry_after = state.cursor, state.retry_after
            if retry_after is not None and retry_after > now:
                report.skipped.append(source.name)
                continue
            result, new_cursor = source.poll(now=now, cursor=cursor)
            with self.store.tx() as tx:
                ingested = record_poll(
                    tx, result, new_cursor, now=now, resolution=min(self.bucket, MINUTE)
                )
            report.polled.append(source.name)
            report.posts_added += ingested.posts_added
            if result.error:
                log.warning("social source %s: %s (%s)", source.name, result.error, result.status)
        report.spikes = self.detect(now)
        return report

    def detect(self, now: datetime) -> list[ComplaintSpikeRow]:
        """Feed every complete bucket not fed yet; store and correlate spike onsets."""
        end = floor_time(now, self.bucket)  # buckets starting before this are complete
        if self._detector is None or self._next is None:
            with self.store.read() as tx:
                self._detector = baseline(tx, until=end - self.bucket, bucket=self.bucket)
            self._next = end - self.bucket
        found = []
        while self._next < end:
            start = self._next
            self._next = start + self.bucket
            with self.store.tx() as tx:
                total = sum(tx.counts(since=start, until=start + self.bucket).values())
                spike = self._detector.update(start, float(total))
                if spike is not None:
                    row = self._record(tx, spike, now=now)
                    if row is not None:
                        found.append(row)
        return found

    def _record(self, tx: StoreTx, spike: Spike, *, now: datetime) -> ComplaintSpikeRow | None:
        start = spike.timestamp
        if tx.spikes(since=start, until=start + self.bucket):
            return None  # recorded before a restart
        posts = tx.posts(since=start, until=start + self.bucket, complaints_only=True)
        topics = Counter(t for p in posts for t in p.topics.split(",") if t)
        # Did the probes see a failure during the bucket or the one before it? Complaints
        # trail failures, and an outage that ended as the bucket began still explains them.
        blind = is_blind_spot(
            tx, self.settings, since=start - self.bucket, at=min(start + self.bucket, now)
        )
        row = tx.add_spike(
            ComplaintSpikeRow(
                at=start,
                value=spike.value,
                expected=spike.expected,
                score=spike.score,
                bucket_seconds=int(self.bucket.total_seconds()),
                topics=",".join(t for t, _ in topics.most_common()),
                label="blind_spot" if blind else "confirmed",
            )
        )
        log.info(
            "complaint spike at=%s value=%s expected=%.1f label=%s",
            start.isoformat(),
            spike.value,
            spike.expected,
            row.label,
        )
        self._note_on_incidents(tx, row, now=now)
        return row

    def _note_on_incidents(self, tx: StoreTx, spike: ComplaintSpikeRow, *, now: datetime) -> None:
        """A timeline entry on every unresolved incident: aggregates only, no post text."""
        minutes = max(spike.bucket_seconds // 60, 1)
        span_id = (
            f"{minutes} menit" if spike.bucket_seconds >= 60 else f"{spike.bucket_seconds} detik"
        )
        span_en = f"{minutes} min" if spike.bucket_seconds >= 60 else f"{spike.bucket_seconds} s"
        details = json.dumps(
            {
                "complaints": spike.value,
                "expected": round(spike.expected, 1),
                "bucket_seconds": spike.bucket_seconds,
                "topics": spike.topics.split(",") if spike.topics else [],
                "label": spike.label,
            }
        )
        for incident in tx.incidents(unresolved=True):
            assert incident.id is not None
            spike.incident_id = spike.incident_id or incident.id
            tx.add_update(
                IncidentUpdateRow(
                    incident_id=incident.id,
                    at=now,
                    status=incident.status,
                    author="pantau",
                    message_id=(
                        f"Keluhan publik meningkat: {spike.value:.0f} dalam {span_id}, "
                        f"biasanya sekitar {spike.expected:.0f}."
                    ),
                    message_en=(
                        f"Public complaints are rising: {spike.value:.0f} in {span_en}, "
                        f"against about {spike.expected:.0f} normally."
                    ),
                    automatic=True,
                    event=COMPLAINTS_EVENT,
                    details=details,
                )
            )
