"""The engine end to end on real loopback servers: a target fails, recovers, and exactly two
alerts reach a real receiver through Apprise."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from engine_support import make_config

from checks.base import ProbeResult
from monitor.alerts import AppriseNotifier
from monitor.clock import ManualClock, SystemClock
from monitor.config import Settings, parse_settings
from monitor.demo.receiver import AlertReceiver
from monitor.demo.site import SimulatedSite
from monitor.publish import publish_site
from monitor.runtime import Engine, ProbeOutcome, make_client, probe_clients
from monitor.store import Store


@pytest.fixture
def site(clock: ManualClock) -> Iterator[SimulatedSite]:
    # The site's timeline follows the test's clock: the wave opens at +10 s, recovers at +30 s.
    site = SimulatedSite(
        wave_opens=10, recovers=30, hang_seconds=0.2, monotonic=clock.monotonic
    ).start()
    yield site
    site.stop()


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(settings) as client:
        yield client


def _engine(
    settings: Settings, store: Store, clock: ManualClock, client: httpx.AsyncClient, out: Path
) -> Engine:
    return Engine(
        settings,
        store,
        clock=clock,
        client=client,
        notifier=AppriseNotifier(timeout=5),
        publisher=lambda s, c, now: publish_site(s, c, now=now, out_dir=out),
    )


async def test_failing_then_recovering_target_opens_and_resolves_one_incident(
    site: SimulatedSite,
    receiver: AlertReceiver,
    store: Store,
    clock: ManualClock,
    client: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    settings = parse_settings(make_config(notify=[receiver.apprise_url], base_url=site.base_url))
    engine = _engine(settings, store, clock, client, tmp_path / "site")
    events: list[str] = []
    for _ in range(40):  # 40 s of probing the login page, once a second
        outcome = await engine.probe_once("login-page")
        if outcome.incident:
            events.append(f"{clock.monotonic() - 1000:.0f}s {outcome.incident.event}")
        report = await asyncio.to_thread(engine.evaluate_alerts)
        events.extend(f"{clock.monotonic() - 1000:.0f}s {kind}" for _, kind in report.messages)
        await asyncio.to_thread(engine.deliver_pending)
        clock.advance(1)
    # Fails from +10 s: down at the second failure (+11 s), alert after group_wait (10 s);
    # passes from +30 s: up at +31 s, with its one recovery message.
    assert events == ["11s opened", "21s firing", "31s resolved", "31s resolved"]
    assert receiver.wait_for(2, timeout=5)
    await asyncio.sleep(0.2)
    titles = [m.title for m in receiver.messages]
    assert titles == [
        "[Pantau] FIRING: Login (incident #1)",
        "[Pantau] RESOLVED: Login (incident #1)",
    ]
    assert all(m.payload.get("type") for m in receiver.messages)  # Apprise's json:// shape
    with store.read() as tx:
        assert [d.status for d in tx.deliveries()] == ["sent", "sent"]
        assert tx.count_results() == 40


async def test_run_stops_cleanly_after_its_duration_and_publishes(
    receiver: AlertReceiver, store: Store, tmp_path: Path
) -> None:
    site = SimulatedSite(wave_opens=0, recovers=3600).start()  # failing throughout
    try:
        config = make_config(notify=[receiver.apprise_url], base_url=site.base_url)
        config["alerts"].update(group_wait="1s", evaluation_interval="0.5s")
        settings = parse_settings(config)
        out = tmp_path / "site"
        async with make_client(settings) as client:
            engine = Engine(
                settings,
                store,
                clock=SystemClock(),
                client=client,
                notifier=AppriseNotifier(timeout=5),
                publisher=lambda s, c, now: publish_site(s, c, now=now, out_dir=out),
            )
            await engine.run(duration=3.5)
    finally:
        site.stop()
    assert engine.counters.probes >= 10
    assert engine.counters.publishes >= 1
    summary = json.loads((out / "api/v2/summary.json").read_text())
    statuses = {c["id"]: c["status"] for c in summary["components"]}
    assert statuses["login"] == "major_outage"
    with store.read() as tx:
        (incident,) = tx.incidents()
        assert incident.status == "investigating"
        # In-flight results were committed before the engine returned.
        assert tx.count_results() == engine.counters.probes
    assert receiver.wait_for(1, timeout=5)
    assert len(receiver.messages) == 1


async def test_a_dead_alert_channel_never_stops_probing(store: Store, tmp_path: Path) -> None:
    site = SimulatedSite(wave_opens=0, recovers=3600).start()
    try:
        config = make_config(notify=["json://127.0.0.1:9/dead"], base_url=site.base_url)
        config["alerts"].update(group_wait="0.5s", evaluation_interval="0.5s")
        settings = parse_settings(config)
        async with make_client(settings) as client:
            engine = Engine(
                settings,
                store,
                clock=SystemClock(),
                client=client,
                notifier=AppriseNotifier(timeout=1),
            )
            await engine.run(duration=2.5)
    finally:
        site.stop()
    assert engine.counters.probes >= 8
    with store.read() as tx:
        (delivery,) = tx.deliveries()
    assert delivery.status == "pending"
    assert delivery.attempts >= 1
    assert isinstance(delivery.next_attempt_at, datetime)


async def test_probes_share_one_client_but_never_cookies(settings: Settings) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    seen: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Cookie"))
            self.send_response(200)
            self.send_header("Set-Cookie", "session=abc; Path=/")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        async with make_client(settings) as client:
            for _ in range(2):
                await client.get(f"http://127.0.0.1:{server.server_address[1]}/")
    finally:
        server.shutdown()
        server.server_close()
    assert seen == [None, None]


class ScriptedSite:
    """Answers each request with the next status of a script (then 200 forever)."""

    def __init__(self, statuses: list[int]) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from threading import Thread

        script = list(statuses)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                code = script.pop(0) if script else 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _retrying_engine(
    statuses: list[int], store: Store, clock: ManualClock, client: httpx.AsyncClient
) -> tuple[Engine, ScriptedSite]:
    site = ScriptedSite(statuses)
    config = make_config(base_url=site.url)
    for check in config["checks"]:
        check.update(retries=2, retry_delay="3s")
    settings = parse_settings(config)

    async def step_clock(seconds: float) -> None:
        clock.advance(seconds)

    engine = Engine(
        settings, store, clock=clock, client=client, notifier=AppriseNotifier(), sleep=step_clock
    )
    return engine, site


async def test_one_dropped_response_is_retried_and_does_not_count(
    store: Store, clock: ManualClock, client: httpx.AsyncClient
) -> None:
    engine, site = _retrying_engine([503], store, clock, client)
    try:
        outcome = await engine.probe_once("otp-page")
    finally:
        site.stop()
    assert outcome.result.ok
    assert outcome.result.attempt == 2
    assert outcome.change is None
    with store.read() as tx:
        attempts = [(r.attempt, r.ok) for r in tx.results(newest_first=False)]
    assert attempts == [(1, False), (2, True)]  # every attempt is stored


async def test_a_real_failure_is_confirmed_by_quick_reprobes_not_a_whole_interval(
    store: Store, clock: ManualClock, client: httpx.AsyncClient
) -> None:
    start = clock.now()
    engine, site = _retrying_engine([503, 503, 503], store, clock, client)
    try:
        outcome = await engine.probe_once("otp-page")
    finally:
        site.stop()
    assert outcome.incident is not None
    assert outcome.incident.event == "opened"
    assert outcome.check_status == "down"
    assert (clock.now() - start).total_seconds() == 3  # one retry_delay, then confirmed down
    with store.read() as tx:
        assert [r.attempt for r in tx.results(newest_first=False)] == [
            1,
            2,
        ]  # no third attempt once down


async def test_results_are_written_in_batches_under_load(
    store: Store, clock: ManualClock, client: httpx.AsyncClient
) -> None:
    site = ScriptedSite([])
    try:
        config = make_config(base_url=site.url)
        config["checks"] = [
            {
                "id": f"page-{i}",
                "component": "home",
                "kind": "http",
                "url": f"{site.url}/{i}",
                "retries": 0,
            }
            for i in range(60)
        ]
        settings = parse_settings(config)

        batches: list[int] = []

        class CountingEngine(Engine):
            def _commit(self, results: list[ProbeResult]) -> list[ProbeOutcome]:
                batches.append(len(results))
                return super()._commit(results)

        engine = CountingEngine(
            settings, store, clock=clock, client=client, notifier=AppriseNotifier()
        )
        outcomes = await asyncio.gather(*(engine.probe_once(f"page-{i}") for i in range(60)))
    finally:
        site.stop()
    assert all(o.result.ok for o in outcomes)
    assert sum(batches) == 60
    assert len(batches) < 60  # group commit: results that arrive together go together
    with store.read() as tx:
        assert tx.count_results() == 60


async def test_two_regions_writing_to_one_store_must_agree(
    tmp_path: Path, clock: ManualClock, client: httpx.AsyncClient
) -> None:
    """Jakarta's network path is broken, Medan's is not: no outage until both see it."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    broken, healthy = ScriptedSite([503] * 100), ScriptedSite([])
    stores = [Store(url), Store(url)]
    try:

        def engine(region: str, site: ScriptedSite, store: Store) -> Engine:
            config = make_config(base_url=site.url, probe={"region": region})
            return Engine(
                parse_settings(config),
                store,
                clock=clock,
                client=client,
                notifier=AppriseNotifier(),
            )

        jakarta = engine("jakarta", broken, stores[0])
        medan = engine("medan", healthy, stores[1])
        for _ in range(3):
            await medan.probe_once("otp-page")
            await jakarta.probe_once("otp-page")
            clock.advance(1)
        with stores[0].read() as tx:
            assert tx.component_states()["otp"].status == "operational"
            regions = {r.region for r in tx.results()}
        assert regions == {"jakarta", "medan"}
        medan_broken = engine("medan", broken, stores[1])
        changes = []
        for _ in range(2):
            changes.append((await medan_broken.probe_once("otp-page")).change)
            await jakarta.probe_once("otp-page")
            clock.advance(1)
        assert changes[0] is None
        assert changes[1] is not None
        assert changes[1].to_status == "major_outage"
    finally:
        broken.stop()
        healthy.stop()
        for store in stores:
            store.close()


async def test_probe_clients_shard_the_pool_and_keep_each_check_on_one_shard() -> None:
    settings = parse_settings(make_config(probe={"concurrency": 50}))
    async with probe_clients(settings) as clients:
        assert len(clients.shards) == 10  # 100 connections in pools of 10
        assert clients.fresh is None  # no check asked for fresh connections
        assert clients.for_check("login-page") is clients.for_check("login-page")
        used = {id(clients.for_check(f"check-{i}")) for i in range(200)}
        assert len(used) == 10
    assert all(shard.is_closed for shard in clients.shards)


async def test_a_fresh_connection_check_gets_the_fresh_client() -> None:
    config = make_config()
    config["checks"][0]["fresh_connection"] = True
    async with probe_clients(parse_settings(config)) as clients:
        assert clients.fresh is not None
        assert clients.fresh not in clients.shards
