"""The offline end-to-end demo (``pantau demo``).

A simulated registration site on 127.0.0.1 buckles when a wave opens; the real
engine probes it over HTTP, opens an incident, alerts a local receiver through
Apprise, the comms team posts a template statement, the public's complaints spike
(a JSONL stream read by the ``file`` source) and are tied to the incident, the site
recovers, the incident resolves and the page is published. No network, no config, no
shortcuts: the same Engine, store, alerts and publisher as ``pantau run``.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console

from monitor.alerts import AlertReport
from monitor.clock import SystemClock
from monitor.config import Settings, parse_settings
from monitor.demo.complaints import seed_history, stream_posts
from monitor.demo.receiver import AlertReceiver
from monitor.demo.site import SimulatedSite
from monitor.incidents import statement_variables, update_incident
from monitor.runtime import EngineListener, ProbeOutcome, probe_clients, service_engine
from monitor.social.listen import ListenReport
from monitor.statements import StatementLibrary
from monitor.store import Store

#: Seconds after start when the simulated wave opens and when the site recovers.
WAVE_OPENS = 5.0
RECOVERS = 17.0
#: The demo gives up after this long, whatever happened.
DEADLINE = 100.0


#: The demo's complaint buckets: seconds, so the story fits in a minute (minutes in production).
SOCIAL_BUCKET = timedelta(seconds=10)


def demo_config(
    *,
    site_url: str,
    alert_url: str,
    db_url: str,
    out_dir: Path,
    complaints: Path | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The demo's own configuration: the Prakerja components, probed every two seconds,
    every second while the planned wave-opening surge lasts; a slow home page is degraded."""
    now = now or datetime.now(UTC)
    components = [
        {"id": "home", "name": {"id": "Beranda", "en": "Home"}},
        {"id": "login", "name": {"id": "Masuk", "en": "Login"}},
        {"id": "signup", "name": {"id": "Pendaftaran", "en": "Signup"}},
        {"id": "otp", "name": {"id": "OTP", "en": "OTP"}},
    ]
    checks = [
        {
            "id": "home-page",
            "component": "home",
            "url": f"{site_url}/",
            "body_contains": "Beranda",
            "max_latency": "200ms",
        },
        {
            "id": "login-page",
            "component": "login",
            "url": f"{site_url}/login",
            "body_contains": "Masuk",
        },
        {"id": "signup-page", "component": "signup", "url": f"{site_url}/signup"},
        {"id": "otp-page", "component": "otp", "url": f"{site_url}/otp"},
    ]
    for check in checks:
        check.update(
            kind="http", interval="2s", surge_interval="1s", timeout="1500ms", retry_delay="500ms"
        )
    surge = {
        "id": "wave-opening",
        "kind": "surge",
        "name": {"id": "Pembukaan gelombang pendaftaran", "en": "Registration wave opens"},
        "message": {"id": "Antrean mungkin terjadi.", "en": "Expect queues."},
        "start": now + timedelta(seconds=WAVE_OPENS - 2),
        "end": now + timedelta(seconds=RECOVERS + 30),
    }
    social: dict[str, Any] = {}
    if complaints is not None:
        social = {
            "sources": ["file"],
            "file": str(complaints),
            "poll_interval": "1s",
            "bucket": f"{SOCIAL_BUCKET.total_seconds():g}s",
            "public_volume": True,
        }
    return {
        "social": social,
        "site": {
            "title": {"id": "Status Prakerja (demo)", "en": "Prakerja Status (demo)"},
            "output_dir": str(out_dir),
            "publish_interval": "5s",
        },
        "storage": {"url": db_url},
        "probe": {"region": "demo", "jitter": "200ms"},
        "detection": {"failures_to_down": 2, "passes_to_recover": 2},
        "alerts": {
            "notify": [alert_url],
            "backoff": "1s",
            "timeout": "5s",
            "evaluation_interval": "1s",
            "group_wait": "3s",
        },
        "components": components,
        "checks": checks,
        "events": [surge],
    }


@dataclass
class Timeline:
    """What happened, in order, with seconds since the start."""

    started: float = field(default_factory=time.monotonic)
    lines: list[tuple[float, str]] = field(default_factory=list)

    def add(self, text: str) -> None:
        self.lines.append((time.monotonic() - self.started, text))


def run_demo(*, out_dir: Path, console: Console) -> int:
    """Run the demo; return the exit code (0 when the whole story happened)."""
    with tempfile.TemporaryDirectory(prefix="pantau-demo-") as tmp:
        return asyncio.run(_demo(out_dir.resolve(), Path(tmp), console))


async def _demo(out_dir: Path, tmp: Path, console: Console) -> int:
    timeline = Timeline()
    site = SimulatedSite(wave_opens=WAVE_OPENS, recovers=RECOVERS).start()
    receiver = AlertReceiver().start()
    cfg = parse_settings(
        demo_config(
            site_url=site.base_url,
            alert_url=receiver.apprise_url,
            db_url=f"sqlite:///{tmp / 'demo.db'}",
            out_dir=out_dir,
            complaints=tmp / "complaints.jsonl",
        )
    )
    console.print(
        f"Simulated registration site: {site.base_url} (wave opens after {WAVE_OPENS:g}s)"
    )
    console.print(f"Alert receiver: http://127.0.0.1:{receiver.port}/alerts")
    store = Store(cfg.database_url())
    seed_history(store, now=datetime.now(UTC), bucket=SOCIAL_BUCKET)
    try:
        ok = await _drive(cfg, store, site, receiver, timeline, console)
        _print_correlation(cfg, store, console)
    finally:
        site.stop()
        receiver.stop()
        store.close()
    _print_summary(console, timeline, receiver, out_dir, ok)
    return 0 if ok else 1


async def _drive(
    cfg: Settings,
    store: Store,
    site: SimulatedSite,
    receiver: AlertReceiver,
    timeline: Timeline,
    console: Console,
) -> bool:

    stop = asyncio.Event()
    story = _Story(cfg, store, site, receiver, timeline, console, stop)
    async with probe_clients(cfg) as clients:
        engine = service_engine(
            cfg,
            store,
            clients=clients,
            listener=EngineListener(
                on_outcome=story.on_outcome, on_alerts=story.on_alerts, on_social=story.on_social
            ),
        )
        watcher = asyncio.create_task(story.watch())
        assert cfg.social.file is not None
        public = asyncio.create_task(stream_posts(cfg.social.file, story.upset, stop))
        await engine.run(duration=DEADLINE, stop=stop)
        watcher.cancel()
        public.cancel()
    return story.complete


class _Story:
    """Narrates the demo and plays the comms team; stops the engine when the story is told."""

    def __init__(
        self,
        cfg: Settings,
        store: Store,
        site: SimulatedSite,
        receiver: AlertReceiver,
        timeline: Timeline,
        console: Console,
        stop: asyncio.Event,
    ) -> None:
        self.cfg, self.store, self.site, self.receiver = cfg, store, site, receiver
        self.timeline, self.console, self.stop = timeline, console, stop
        self.incident_id: int | None = None
        self.resolved = False
        self.statement_posted = False
        self.complete = False
        self.spike_seen = False
        self._surge_seen = False
        #: Set once the probes see the site failing: the public's complaints follow.
        self.upset = asyncio.Event()

    def on_outcome(self, outcome: ProbeOutcome) -> None:
        if not self._surge_seen and self.site.surging():
            self._surge_seen = True
            self._say("The registration wave opens: traffic surges on the simulated site")
        if not outcome.result.ok and outcome.change is None and outcome.incident is None:
            return
        if outcome.change is not None:
            c = outcome.change
            why = (
                f" ({outcome.result.error}: {outcome.result.detail})"
                if outcome.result.error
                else ""
            )
            self._say(f"{c.component_id}: {c.from_status} -> {c.to_status}{why}")
            if c.to_status in ("partial_outage", "major_outage"):
                self.upset.set()
        if outcome.incident is not None:
            event = outcome.incident
            self._say(f"incident #{event.incident_id} {event.event}: {event.title}")
            if event.event == "opened":
                self.incident_id = event.incident_id
            if event.event == "resolved":
                self.resolved = True

    def on_alerts(self, report: AlertReport) -> None:
        for alert in report.fired:
            self._say(f"alert firing: {alert.rule_id} on {alert.subject}")
        for _, kind in report.messages:
            self._say(f"one grouped '{kind}' message queued for the engineers")

    def on_social(self, report: ListenReport) -> None:
        for spike in report.spikes:
            self.spike_seen = True
            seconds = spike.bucket_seconds
            where = (
                "tied to the open incident"
                if spike.label == "confirmed"
                else "while every probe is green: a blind spot"
            )
            self._say(
                f"public complaints spike: {spike.value:.0f} in {seconds}s against "
                f"{spike.expected:.1f} normal ({spike.topics or 'no topics'}), {where}"
            )

    async def watch(self) -> None:
        """Post the comms statement once an incident is open; stop when all is told."""
        while not self.stop.is_set():
            await asyncio.sleep(0.2)
            if self.incident_id is not None and not self.statement_posted:
                await asyncio.to_thread(self._post_statement, self.incident_id)
            told = self.resolved and self.spike_seen
            if told and await asyncio.to_thread(self.receiver.wait_for, 2, 0.0):
                self._say("alert receiver got the firing and the recovery messages")
                self.complete = True
                await asyncio.sleep(0.5)  # let the final publish include the last state
                self.stop.set()

    def _post_statement(self, incident_id: int) -> None:
        self.statement_posted = True
        now = SystemClock().now()
        with self.store.tx() as tx:
            incident = tx.incident(incident_id)
            assert incident is not None
            components = sorted(tx.incident_components(incident_id))
            variables = statement_variables(
                self.cfg, components, started_at=incident.started_at, now=now
            )
            statement = StatementLibrary().render("traffic-surge", variables)
            update_incident(
                tx,
                self.cfg,
                incident_id,
                now=now,
                statement=statement,
                status="identified",
                author="tim-komunikasi",
            )
        self._say(
            f"comms team posts the 'traffic-surge' statement to incident #{incident_id} (identified)"
        )

    def _say(self, text: str) -> None:
        self.timeline.add(text)
        seconds, _ = self.timeline.lines[-1]
        self.console.print(f"  [{seconds:5.1f}s] {text}", markup=False)


def _print_correlation(cfg: Settings, store: Store, console: Console) -> None:
    """How the public's complaints lined up with what the probes saw (aggregates only)."""
    from monitor.correlate import correlate_incident

    with store.read() as tx:
        incidents = tx.incidents()
        if not incidents or incidents[-1].id is None:
            return
        found = correlate_incident(tx, cfg, incidents[-1].id, now=SystemClock().now())
    if found is None:
        return
    lag = ""
    if found.lag is not None:
        seconds = found.lag.total_seconds()
        if abs(seconds) < SOCIAL_BUCKET.total_seconds():  # counts are per bucket
            lag = f", within one {SOCIAL_BUCKET.total_seconds():g}s bucket of the probes"
        else:
            lag = f", {abs(seconds):.0f}s {'after' if seconds > 0 else 'before'} the probes"
    ratio = f"{found.during.ratio:.1f}x normal" if found.during.ratio else "no baseline"
    console.print(
        f"Public reports during incident #{found.incident_id}: {found.during.complaints} "
        f"complaints ({ratio}{lag}); label: {found.label}",
        markup=False,
    )


def _print_summary(
    console: Console, timeline: Timeline, receiver: AlertReceiver, out_dir: Path, ok: bool
) -> None:
    console.print("")
    console.print("Alerts delivered to the local receiver:", markup=False)
    for message in receiver.messages:
        console.print(f"  - {message.title}", markup=False)
    console.print("")
    verdict = "Demo complete" if ok else "Demo did NOT complete the whole story"
    total = time.monotonic() - timeline.started
    console.print(f"{verdict} in {total:.0f}s.", markup=False)
    console.print(
        f"Status page: {out_dir / 'index.html'} (English: {out_dir / 'en' / 'index.html'})",
        markup=False,
    )
    console.print(f"Statuspage-style API: {out_dir / 'api' / 'v2' / 'summary.json'}", markup=False)
    console.print(f"Preview it with: pantau serve --dir {out_dir}", markup=False)
