"""The ``pantau`` command. Exit codes: 0 ok, 1 a check or condition failed, 2 usage or config error."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import logging
import os
import re
import sys
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from sqlalchemy.exc import SQLAlchemyError

from checks import ProbeContext, ProbeResult, build_check
from checks.base import ID_PATTERN
from monitor.cli_db import db_app
from monitor.clock import SystemClock
from monitor.config import ConfigError, Settings, load_settings
from monitor.incidents import (
    INCIDENT_STATUSES,
    IncidentError,
    open_incident,
    recent_error_rate,
    statement_variables,
    update_incident,
)
from monitor.rules import Evidence
from monitor.statements import Statement, StatementError, StatementLibrary
from monitor.store import IncidentRow, PoolOptions, Store, StoreError, StoreTx

app = typer.Typer(
    name="pantau",
    help="Pantau: a public status monitor and outage tracker.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
incident_app = typer.Typer(
    help="The comms workflow: open, update and resolve incidents.", no_args_is_help=True
)
app.add_typer(incident_app, name="incident")
silence_app = typer.Typer(
    help="Hold back the alerts of a component for a while (deploys, known issues).",
    no_args_is_help=True,
)
app.add_typer(silence_app, name="silence")
complaints_app = typer.Typer(
    help="The public signal: import, classify and detect spikes of complaints.",
    no_args_is_help=True,
)
app.add_typer(complaints_app, name="complaints")
app.add_typer(db_app, name="db")

# Printed text comes from people and servers (titles, statements, details): never read it
# as rich markup or :emoji: codes, so JSON lines and tables show it exactly as stored.
out = Console(highlight=False, soft_wrap=True, markup=False, emoji=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False, emoji=False)
log = logging.getLogger("monitor")


class _State:
    config_path: Path = Path("config.toml")
    settings: Settings | None = None


state = _State()


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr
    )
    # Apprise logs the URLs it is given at debug level; those may hold secrets.
    logging.getLogger("apprise").setLevel(max(level, logging.WARNING))
    # Alembic narrates every plugin it loads at info level on each start.
    logging.getLogger("alembic").setLevel(max(level, logging.WARNING))
    # urllib3 (under Apprise) logs whole request URLs, secrets in them included.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    # "skipped: maximum number of running instances" is expected when a target hangs.
    logging.getLogger("apscheduler").setLevel(logging.DEBUG if verbose >= 2 else logging.ERROR)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # OAuth signing logs the X API key and access token at debug level.
    logging.getLogger("oauthlib").setLevel(logging.WARNING)
    logging.getLogger("requests_oauthlib").setLevel(logging.WARNING)
    # botocore's debug log prints signed request headers (with the access key id).
    for name in ("botocore", "boto3", "s3transfer"):
        logging.getLogger(name).setLevel(max(level, logging.INFO))


@app.callback()
def main_options(
    config: Annotated[
        Path, typer.Option("--config", "-c", envvar="PANTAU_CONFIG", help="Config file (TOML).")
    ] = Path("config.toml"),
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="More logging (-vv: debug).")
    ] = 0,
) -> None:
    state.config_path = config
    state.settings = None  # a new invocation reads its own config (tests run several in-process)
    _setup_logging(verbose)


def settings() -> Settings:
    """The loaded config; on error print every problem and exit 2."""
    if state.settings is None:
        try:
            state.settings = load_settings(state.config_path)
        except ConfigError as exc:
            err.print(f"[bold red]config error[/] in {escape(exc.source)}:", markup=True)
            for path, message in exc.errors:
                err.print(f"  {path}: {message}", markup=False)
            raise typer.Exit(2) from None
    return state.settings


def open_store(cfg: Settings) -> Store:
    storage = cfg.storage
    pool = PoolOptions(
        size=storage.pool_size,
        max_overflow=storage.max_overflow,
        timeout=storage.pool_timeout.total_seconds(),
        connect_timeout=storage.connect_timeout.total_seconds(),
    )
    try:
        return Store(cfg.database_url(), pool=pool)
    except StoreError as exc:
        err.print(f"storage error ({cfg.storage.url.masked()}): {exc}", markup=False)
        raise typer.Exit(2) from None
    except (SQLAlchemyError, ValueError) as exc:  # a URL SQLAlchemy cannot use
        err.print(
            f"storage error ({cfg.storage.url.masked()}): [storage] url is not usable "
            f"({type(exc).__name__})",
            markup=False,
        )
        raise typer.Exit(2) from None


# -- validate -----------------------------------------------------------------
@app.command()
def validate() -> None:
    """Parse the config and print a summary, or every error with its key path (exit 2)."""
    cfg = settings()
    out.print(f"{state.config_path}: OK", markup=False)
    out.print(
        f"  site: {cfg.site.title.get(cfg.site.languages[0])!r}, zone {cfg.site.timezone}, "
        f"languages {', '.join(cfg.site.languages)}, output {cfg.site.output_dir}",
        markup=False,
    )
    out.print(f"  storage: {cfg.storage.url.masked()}", markup=False)
    out.print(f"  components ({len(cfg.components)}):", markup=False)
    for component in cfg.components:
        checks = cfg.checks_of(component.id)
        out.print(
            f"    {component.id}: {component.name.get('id')} / {component.name.get('en')} "
            f"- {len(checks)} check(s)",
            markup=False,
        )
    out.print(f"  checks ({len(cfg.checks)}):", markup=False)
    for check in cfg.checks:
        interval = check.interval.total_seconds()
        out.print(
            f"    {check.id}: {check.kind} every {interval:g}s -> {check.component}", markup=False
        )
    rule = cfg.detection
    out.print(
        f"  detection: down after {rule.failures_to_down} failures, "
        f"up after {rule.passes_to_recover} passes",
        markup=False,
    )
    out.print(f"  alerts: {len(cfg.alerts.notify)} target(s)", markup=False)
    for alert_rule in cfg.alert_rules():
        scope = alert_rule.check or alert_rule.component or "every component"
        out.print(f"    rule {alert_rule.id}: {alert_rule.kind} on {scope}", markup=False)
    if cfg.metrics.listen:
        out.print(f"  metrics: http://{cfg.metrics.listen}/metrics", markup=False)
    if cfg.events:
        out.print(f"  events: {', '.join(f'{e.id} ({e.kind})' for e in cfg.events)}")


# -- check --------------------------------------------------------------------
@app.command()
def check(
    check_ids: Annotated[
        list[str] | None, typer.Argument(help="Checks to run (default: all).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per check per line.")
    ] = False,
) -> None:
    """Run checks once now and print the results. Exit 1 when any failed."""
    cfg = settings()
    known = {c.id: c for c in cfg.checks}
    unknown = [cid for cid in check_ids or [] if cid not in known]
    if unknown:
        err.print(
            f"unknown check(s): {', '.join(unknown)}; known: {', '.join(known)}", markup=False
        )
        raise typer.Exit(2)
    selected = [known[cid] for cid in check_ids] if check_ids else list(cfg.checks)
    results = asyncio.run(_run_checks(cfg, selected))
    if as_json:
        for result in results:
            out.print(json.dumps(result.as_json(), ensure_ascii=False), markup=False)
    else:
        _print_results(results)
    raise typer.Exit(0 if all(r.ok for r in results) else 1)


async def _run_checks(cfg: Settings, selected: list[Any]) -> list[ProbeResult]:
    from monitor.runtime import probe_clients

    async with probe_clients(cfg) as clients:

        async def run_one(check: Any) -> ProbeResult:
            ctx = ProbeContext(
                client=clients.for_check(check.id),
                clock=SystemClock(),
                region=cfg.probe.region,
                fresh_client=clients.fresh,
            )
            return await build_check(check).run(ctx)

        return list(await asyncio.gather(*(run_one(c) for c in selected)))


def _print_results(results: list[ProbeResult]) -> None:
    table = Table("check", "component", "result", "status", "latency", "detail")
    for r in results:
        if not r.ok:
            verdict = Text(str(r.error), style="red")
        elif r.degraded:
            verdict = Text(f"degraded ({r.error})", style="yellow")
        else:
            verdict = Text("ok", style="green")
        latency = "" if r.latency_ms is None else f"{r.latency_ms:.0f} ms"
        table.add_row(
            r.check_id, r.component_id, verdict, str(r.status_code or ""), latency, r.detail
        )
    out.print(table)


# -- run ----------------------------------------------------------------------
class Role(StrEnum):
    all = "all"
    probe = "probe"
    coordinator = "coordinator"


@app.command()
def run(
    for_seconds: Annotated[
        float | None, typer.Option("--for", help="Stop cleanly after this many seconds.")
    ] = None,
    role: Annotated[
        Role,
        typer.Option(
            "--role",
            help="probe: probe and write results; coordinator: decide, alert and publish "
            "(one leads at a time); all: both.",
        ),
    ] = Role.all,
    region: Annotated[
        str | None,
        typer.Option("--region", help="The region this process probes from ([probe] region)."),
    ] = None,
) -> None:
    """The service: probes, detection, incidents, alerts and periodic publishing."""
    cfg = settings()
    if for_seconds is not None and for_seconds <= 0:
        err.print("--for must be a positive number of seconds", markup=False)
        raise typer.Exit(2)
    if region is not None:
        if not re.fullmatch(ID_PATTERN, region):
            err.print(
                f"--region: {region!r} is not an id (lowercase letters, digits, '-' and '_')",
                markup=False,
            )
            raise typer.Exit(2)
        cfg = cfg.model_copy(update={"probe": cfg.probe.model_copy(update={"region": region})})
    store = open_store(cfg)
    try:
        asyncio.run(_serve(cfg, store, for_seconds, role.value))
    finally:
        store.close()


async def _serve(cfg: Settings, store: Store, duration: float | None, role: str) -> None:
    from monitor.runtime import probe_clients, service_engine

    async with probe_clients(cfg) as clients:
        engine = service_engine(cfg, store, clients=clients, role=role)
        log.info(
            "pantau running role=%s checks=%s region=%s node=%s",
            role,
            len(cfg.checks),
            cfg.probe.region,
            engine.node_id,
        )
        await engine.run(duration=duration)
        log.info("pantau stopped probes=%s", engine.counters.probes)


# -- publish ------------------------------------------------------------------
@app.command()
def publish(
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default: [site] output_dir).")
    ] = None,
) -> None:
    """Render the status page from the store (and upload it to ``[site.s3]`` when set).

    Exit 1 when the upload fails: the local site is published all the same.
    """
    from monitor.publish import publish_site
    from monitor.rollup import catch_up
    from monitor.upload import UploadError, key_prefix, upload_site

    cfg = settings()
    store = open_store(cfg)
    clock = SystemClock()
    try:
        catch_up(store, cfg, now=clock.now)  # the uptime bars read rollups, never raw results
        path = publish_site(store, cfg, now=clock.now(), out_dir=out_dir, upload=False)
    finally:
        store.close()
    out.print(f"published {path / 'index.html'}", markup=False)
    if cfg.site.s3 is None:
        return
    try:
        report = upload_site(path, cfg.site.s3)
    except UploadError as exc:
        err.print(f"{exc}; the local site is published", markup=False)
        raise typer.Exit(1) from None
    out.print(
        f"uploaded to s3://{cfg.site.s3.bucket}/{key_prefix(cfg.site.s3.prefix)}: "
        f"{report.uploaded} file(s) ({report.bytes} bytes), {report.skipped} unchanged, "
        f"{report.deleted} deleted",
        markup=False,
    )


# -- status -------------------------------------------------------------------
@app.command()
def status(
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help="Components, checks, regions, processes and the leader as JSON."
        ),
    ] = False,
) -> None:
    """For engineers: components, checks, regions, processes and the leader, open incidents,
    alerts, silences and failed deliveries."""
    cfg = settings()
    store = open_store(cfg)
    if as_json:
        try:
            with store.read() as tx:
                out.print(json.dumps(_status_json(tx, cfg), ensure_ascii=False), markup=False)
        finally:
            store.close()
        return
    with store.read() as tx:
        states = tx.component_states()
        table = Table("component", "status", "since")
        for component in cfg.components:
            row = states.get(component.id)
            table.add_row(
                component.id,
                row.status if row else "operational",
                row.since.isoformat() if row else "",
            )
        out.print(table)
        checks = Table(
            "check", "region", "state", "failures", "passes", "last result", "last error"
        )
        for cs in tx.check_states():
            checks.add_row(
                cs.check_id,
                cs.region,
                cs.status,
                str(cs.consecutive_failures),
                str(cs.consecutive_passes),
                cs.last_result_at.isoformat() if cs.last_result_at else "",
                cs.last_error or "",
            )
        out.print(checks)
        now = SystemClock().now()
        _print_cluster(tx, cfg, now)
        _print_open_incidents(tx)
        _print_alerts(tx, cfg, now)
        _print_silences(tx, cfg, now)
        _print_social(tx, cfg, now)
        _print_problem_deliveries(tx)
    store.close()


def _print_cluster(tx: StoreTx, cfg: Settings, now: Any) -> None:
    """Regions reporting (a silent one has left the quorum), processes and the leader."""
    from monitor.cluster import leader_of, node_health, region_health

    regions = Table("region", "checks", "last result", "quorum")
    for region in region_health(tx.check_states(), cfg, now=now):
        regions.add_row(
            region.region,
            str(region.checks),
            region.last_result_at.isoformat() if region.last_result_at else "",
            "silent: left the quorum" if region.silent else "reporting",
        )
    out.print(regions)
    health = node_health(tx.nodes(), now=now)
    if not health:
        out.print("processes: none has reported (pantau run writes a heartbeat)", markup=False)
        return
    nodes = Table("process", "role", "region", "last heartbeat", "state", "store")
    for node in health:
        state = "leader" if node.leading else "running" if node.alive else "gone"
        if node.node.stopped_at is not None:
            state = "stopped"
        elif not node.alive:
            state = "gone (or cannot write to the store)"
        nodes.add_row(
            node.node.id,
            node.node.role,
            node.node.region,
            node.node.heartbeat_at.isoformat(),
            state,
            node.store_text(),
        )
    out.print(nodes)
    leader = leader_of(health)
    coordinators = [h for h in health if h.alive and h.node.role != "probe"]
    if leader is not None:
        out.print(f"leader: {leader.node.id}", markup=False)
    elif coordinators:
        out.print("leader: none yet (a standby takes over within two evaluations)", markup=False)
    else:
        out.print("leader: none: no coordinator is running", markup=False)


def _status_json(tx: StoreTx, cfg: Settings) -> dict[str, Any]:
    from monitor.cluster import leader_of, node_health, region_health

    now = SystemClock().now()
    states = tx.component_states()
    health = node_health(tx.nodes(), now=now)
    leader = leader_of(health)
    return {
        "generated_at": now.isoformat(),
        "components": [
            {
                "id": c.id,
                "status": states[c.id].status if c.id in states else "operational",
                "since": states[c.id].since.isoformat() if c.id in states else None,
            }
            for c in cfg.components
        ],
        "checks": [
            {
                "check": cs.check_id,
                "region": cs.region,
                "state": cs.status,
                "last_result_at": cs.last_result_at.isoformat() if cs.last_result_at else None,
                "last_error": cs.last_error,
            }
            for cs in tx.check_states()
        ],
        "regions": [r.as_dict() for r in region_health(tx.check_states(), cfg, now=now)],
        "nodes": [h.as_dict() for h in health],
        "leader": leader.node.id if leader is not None else None,
        "open_incidents": [i.id for i in tx.incidents() if i.resolved_at is None],
    }


def _print_alerts(tx: StoreTx, cfg: Settings, now: Any) -> None:
    from monitor.alerts import suppressions

    live = tx.live_alerts()
    firing = [a for a in live if a.state == "firing"]
    out.print(f"alerts: {len(firing)} firing, {len(live) - len(firing)} pending")
    for alert in live:
        since = alert.fired_at or alert.active_since
        held = f" - held back by {alert.suppressed_by}" if alert.suppressed_by else ""
        group = f" group {alert.group_id}" if alert.group_id else ""
        out.print(
            f"  {alert.state} {alert.rule_id} on {alert.subject} since "
            f"{since.astimezone(cfg.site.zone).strftime('%H:%M:%S %Z')}{group}{held}"
        )
    maintenance = {c: why for c, why in suppressions(tx, cfg, now).items() if "maintenance" in why}
    for component, why in sorted(maintenance.items()):
        out.print(f"  {component}: alerts held back by {why}")


def _print_social(tx: StoreTx, cfg: Settings, now: Any) -> None:
    """The public signal's health: each source, and the latest complaint spike."""
    if not cfg.social.sources:
        out.print("social signal: not configured")
        return
    rows = {row.source: row for row in tx.social_sources()}
    healthy = all(rows.get(name) and rows[name].status == "ok" for name in cfg.social.sources)
    out.print(f"social signal: {'available' if healthy else 'UNAVAILABLE'}")
    for name in cfg.social.sources:
        row = rows.get(name)
        if row is None:
            out.print(f"  {name}: not polled yet")
            continue
        last = (
            row.last_success_at.astimezone(cfg.site.zone).strftime("%H:%M:%S %Z")
            if (row.last_success_at)
            else "never"
        )
        retry = (
            f", retry after {row.retry_after.astimezone(cfg.site.zone).strftime('%H:%M:%S')}"
            if row.retry_after and row.retry_after > now
            else ""
        )
        why = f": {row.last_error}" if row.last_error else ""
        out.print(f"  {name}: {row.status}, last success {last}{retry}{why}")
    recent = tx.spikes(since=now - timedelta(days=1))
    if recent:
        spike = recent[-1]
        out.print(
            f"  latest spike: {spike.at.astimezone(cfg.site.zone).strftime('%d %b %H:%M %Z')}"
            f" {spike.value:.0f} against {spike.expected:.1f} normal ({spike.label})"
        )


def _print_silences(tx: StoreTx, cfg: Settings, now: Any) -> None:
    silences = tx.silences(now=now)
    out.print(f"silences: {len(silences)}")
    for row in silences:
        until = row.ends_at.astimezone(cfg.site.zone).strftime("%Y-%m-%d %H:%M %Z")
        out.print(f"  #{row.id} {row.component_id} until {until} by {row.author}: {row.reason}")


def _print_open_incidents(tx: StoreTx) -> None:
    open_incidents = tx.incidents(unresolved=True)
    out.print(f"open incidents: {len(open_incidents)}", markup=False)
    for incident in open_incidents:
        out.print(f"  #{incident.id} [{incident.status}] {incident.title('en')}", markup=False)


def _print_problem_deliveries(tx: StoreTx) -> None:
    failed = tx.deliveries(status=["failed", "sending"])
    pending = tx.deliveries(status=["pending"])
    out.print(
        f"alert deliveries: {len(pending)} pending, {len(failed)} failed or unconfirmed",
        markup=False,
    )
    for row in failed:
        out.print(
            f"  delivery {row.id} incident #{row.incident_id} to {row.target_label}: "
            f"{row.status} after {row.attempts} attempt(s): {row.last_error or 'outcome unknown'}",
            markup=False,
        )


# -- incidents ----------------------------------------------------------------
StatusOpt = Annotated[
    str | None, typer.Option("--status", help="investigating | identified | monitoring | resolved")
]
MessageOpt = Annotated[str | None, typer.Option("--message", "-m", help="Statement in Indonesian.")]
MessageEnOpt = Annotated[str | None, typer.Option("--message-en", help="Statement in English.")]
ComponentOpt = Annotated[
    list[str] | None,
    typer.Option("--component", help="Affected component: ID or ID=status (repeatable)."),
]
TemplateOpt = Annotated[
    str | None, typer.Option("--template", "-t", help="Statement template name.")
]
AuthorOpt = Annotated[
    str | None, typer.Option("--author", help="Who speaks (default: your user name).")
]
PostXOpt = Annotated[
    bool,
    typer.Option(
        "--post-x",
        help="Also post the statement to X ([incidents.x]), after the status page has it.",
    ),
]


def _require_x(cfg: Settings, post_x: bool) -> None:
    """Refuse --post-x before anything is written when X is not configured."""
    if post_x and cfg.incidents.x is None:
        err.print("--post-x needs [incidents.x] in the config (credentials from ${ENV})")
        raise typer.Exit(2)
    if post_x and not cfg.site.base_url:
        err.print("--post-x needs [site] base_url: the post links to the incident page")
        raise typer.Exit(2)


def _post_to_x(cfg: Settings, store: Store, update_id: int) -> int:
    """Post a committed timeline entry to X; the exit code (1 when the post failed)."""
    from monitor.xpost import XPostError, post_update

    try:
        result = post_update(store, cfg, update_id, now=SystemClock().now())
    except XPostError as exc:
        err.print(f"not posted to X: {exc.message} (the status page has the update)")
        return 1
    if result.status != "posted":
        err.print(
            f"posting to X failed: {result.error}. The status page has the update; "
            f"{len(result.post_ids)} of {len(result.parts)} post(s) made. "
            f"Retry with: pantau incident post-x {result.post_id}"
        )
        return 1
    out.print(f"posted to X: {result.url} ({len(result.post_ids)} post(s))")
    return 0


def _author(value: str | None) -> str:
    if value:
        return value
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER", "comms")


def _parse_components(values: list[str] | None, *, default: str) -> dict[str, str]:
    components: dict[str, str] = {}
    for value in values or []:
        cid, _, status_word = value.partition("=")
        components[cid.strip()] = status_word.strip() or default
    return components


def _statement(
    cfg: Settings,
    *,
    template: str | None,
    message: str | None,
    message_en: str | None,
    components: list[str],
    started_at: Any,
    now: Any,
    error_rate: float | None = None,
) -> Statement:
    if template:
        library = StatementLibrary(
            extra_dir=cfg.resolve_path(cfg.incidents.templates_dir)
            if cfg.incidents.templates_dir
            else None
        )
        variables = statement_variables(
            cfg, components, started_at=started_at, now=now, error_rate=error_rate
        )
        try:
            rendered = library.render(template, variables)
        except StatementError as exc:
            err.print(str(exc), markup=False)
            raise typer.Exit(2) from None
        return Statement(id=message or rendered.id, en=message_en or rendered.en)
    if not message and not message_en:
        err.print("give --message (and --message-en) or --template NAME", markup=False)
        raise typer.Exit(2)
    return Statement(id=message or message_en or "", en=message_en or message or "")


def _incident_json(tx: StoreTx, incident: IncidentRow, *, with_updates: bool) -> dict[str, Any]:
    assert incident.id is not None
    data: dict[str, Any] = {
        "id": incident.id,
        "status": incident.status,
        "title": incident.title_id,
        "title_en": incident.title_en,
        "impact": incident.impact,
        "automatic": incident.automatic,
        "components": tx.incident_components(incident.id),
        "started_at": incident.started_at.isoformat(),
        "updated_at": incident.updated_at.isoformat(),
        "resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else None,
    }
    if with_updates:
        data["updates"] = [
            {
                "id": u.id,
                "at": u.at.isoformat(),
                "status": u.status,
                "event": u.event,
                "author": u.author,
                "message": u.message_id,
                "message_en": u.message_en,
                "details": json.loads(u.details) if u.details else None,
            }
            for u in tx.updates(incident.id)
        ]
        data["x_posts"] = [
            {
                "id": p.id,
                "update_id": p.update_id,
                "status": p.status,
                "post_ids": json.loads(p.post_ids),
                "error": p.error,
            }
            for p in tx.x_posts(incident_id=incident.id)
        ]
    return data


@incident_app.command("list")
def incident_list(
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per incident per line.")
    ] = False,
    unresolved: Annotated[bool, typer.Option("--open", help="Only unresolved incidents.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
) -> None:
    """List incidents, newest first."""
    cfg = settings()
    store = open_store(cfg)
    with store.read() as tx:
        incidents = tx.incidents(unresolved=True if unresolved else None, limit=limit)
        if as_json:
            for incident in incidents:
                out.print(
                    json.dumps(
                        _incident_json(tx, incident, with_updates=False), ensure_ascii=False
                    ),
                    markup=False,
                )
        else:
            table = Table("id", "status", "title", "components", "started", "resolved")
            for incident in incidents:
                assert incident.id is not None
                table.add_row(
                    str(incident.id),
                    incident.status,
                    incident.title_id,
                    ", ".join(tx.incident_components(incident.id)),
                    incident.started_at.astimezone(cfg.site.zone).strftime("%Y-%m-%d %H:%M %Z"),
                    incident.resolved_at.astimezone(cfg.site.zone).strftime("%Y-%m-%d %H:%M %Z")
                    if incident.resolved_at
                    else "",
                )
            out.print(table)
    store.close()


@incident_app.command("show")
def incident_show(
    incident_id: int,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object with its updates.")
    ] = False,
) -> None:
    """Show one incident with its timeline."""
    cfg = settings()
    store = open_store(cfg)
    with store.read() as tx:
        incident = tx.incident(incident_id)
        if incident is None:
            err.print(f"no incident {incident_id}", markup=False)
            raise typer.Exit(2)  # a usage error, as for update and resolve
        data = _incident_json(tx, incident, with_updates=True)
    store.close()
    if as_json:
        out.print(json.dumps(data, ensure_ascii=False), markup=False)
        return
    out.print(
        f"#{data['id']} [{data['status']}] {data['title']} / {data['title_en']}", markup=False
    )
    out.print(f"components: {data['components']}", markup=False)
    for u in data["updates"]:
        out.print(f"  {u['at']} {u['status']:<13} {u['author']}: {u['message']}", markup=False)
        if u["message_en"] and u["message_en"] != u["message"]:
            out.print(f"  {'':<{len(u['at'])}} {'':<13} (en) {u['message_en']}", markup=False)
        evidence = Evidence.loads(json.dumps(u["details"])) if u["details"] else None
        if evidence is not None and evidence.runs:
            out.print(f"  {'':<{len(u['at'])}} {'':<13} evidence: {evidence.summary()}")
    for post in data["x_posts"]:
        ids = ", ".join(post["post_ids"]) or "none yet"
        why = f": {post['error']}" if post["error"] else ""
        out.print(
            f"  X post {post['id']} (update {post['update_id']}) {post['status']} [{ids}]{why}"
        )


@incident_app.command("open")
def incident_open(
    title: Annotated[str | None, typer.Option("--title", help="Title in Indonesian.")] = None,
    title_en: Annotated[str | None, typer.Option("--title-en", help="Title in English.")] = None,
    status_: StatusOpt = None,
    message: MessageOpt = None,
    message_en: MessageEnOpt = None,
    component: ComponentOpt = None,
    template: TemplateOpt = None,
    author: AuthorOpt = None,
    post_x: PostXOpt = False,
) -> None:
    """Open an incident (prints its id)."""
    cfg = settings()
    _require_x(cfg, post_x)
    now = SystemClock().now()
    components = _parse_components(component, default="major_outage")
    statement = _statement(
        cfg,
        template=template or (None if message or message_en else "investigating"),
        message=message,
        message_en=message_en,
        components=list(components),
        started_at=now,
        now=now,
    )
    names = statement_variables(cfg, list(components), started_at=now, now=now)
    default_title = Statement(
        id=f"Gangguan pada {names['id']['components']}" if components else "Gangguan layanan",
        en=f"{names['en']['components']} disruption" if components else "Service disruption",
    )
    store = open_store(cfg)
    try:
        with store.tx() as tx:
            incident = open_incident(
                tx,
                cfg,
                now=now,
                components=components,
                statement=statement,
                title=Statement(
                    id=title or title_en or default_title.id,
                    en=title_en or title or default_title.en,
                ),
                status=status_ or "investigating",
                author=_author(author),
            )
            incident_id = incident.id
            assert incident_id is not None
            update_id = tx.updates(incident_id)[0].id
        out.print(f"opened incident #{incident_id}", markup=False)
        code = _post_to_x(cfg, store, update_id or 0) if post_x else 0
    except IncidentError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(2) from None
    finally:
        store.close()
    raise typer.Exit(code)


def _change(
    incident_id: int,
    *,
    status_word: str | None,
    message: str | None,
    message_en: str | None,
    component: list[str] | None,
    template: str | None,
    author: str | None,
    post_x: bool = False,
) -> None:
    cfg = settings()
    _require_x(cfg, post_x)
    now = SystemClock().now()
    store = open_store(cfg)
    try:
        with store.tx() as tx:
            incident = tx.incident(incident_id)
            if incident is None:
                raise IncidentError(f"no incident {incident_id}")
            assert incident.id is not None
            components = _parse_components(component, default="major_outage")
            affected = sorted(set(tx.incident_components(incident.id)) | set(components))
            statement = _statement(
                cfg,
                template=template,
                message=message,
                message_en=message_en,
                components=affected,
                started_at=incident.started_at,
                now=now,
                error_rate=recent_error_rate(tx, affected, now=now),
            )
            update_incident(
                tx,
                cfg,
                incident_id,
                now=now,
                statement=statement,
                status=status_word,
                author=_author(author),
                components=components,
            )
            new_status = incident.status
            update_id = tx.updates(incident_id)[-1].id
        out.print(f"incident #{incident_id} is now {new_status}", markup=False)
        code = _post_to_x(cfg, store, update_id or 0) if post_x else 0
    except IncidentError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(2) from None
    finally:
        store.close()
    raise typer.Exit(code)


@incident_app.command("update")
def incident_update(
    incident_id: int,
    status_: StatusOpt = None,
    message: MessageOpt = None,
    message_en: MessageEnOpt = None,
    component: ComponentOpt = None,
    template: TemplateOpt = None,
    author: AuthorOpt = None,
    post_x: PostXOpt = False,
) -> None:
    """Post a statement to an incident's timeline (optionally changing its status)."""
    if status_ is not None and status_ not in INCIDENT_STATUSES:
        err.print(f"--status must be one of {', '.join(INCIDENT_STATUSES)}", markup=False)
        raise typer.Exit(2)
    _change(
        incident_id,
        status_word=status_,
        message=message,
        message_en=message_en,
        component=component,
        template=template,
        author=author,
        post_x=post_x,
    )


@incident_app.command("resolve")
def incident_resolve(
    incident_id: int,
    message: MessageOpt = None,
    message_en: MessageEnOpt = None,
    template: TemplateOpt = None,
    author: AuthorOpt = None,
    post_x: PostXOpt = False,
) -> None:
    """Resolve an incident (default statement: the ``resolved`` template)."""
    _change(
        incident_id,
        status_word="resolved",
        message=message,
        message_en=message_en,
        component=None,
        template=template or (None if message or message_en else "resolved"),
        author=author,
        post_x=post_x,
    )


@incident_app.command("post-x")
def incident_post_x(
    post_id: Annotated[int, typer.Argument(help="The X post to retry (from the failure message).")],
    force: Annotated[
        bool, typer.Option("--force", help="Resume a post left pending by a killed process.")
    ] = False,
) -> None:
    """Retry a statement whose posting to X failed, from the first part not yet posted."""
    from monitor.xpost import XPostError, resume_post

    cfg = settings()
    store = open_store(cfg)
    try:
        result = resume_post(store, cfg, post_id, now=SystemClock().now(), force=force)
    except XPostError as exc:
        err.print(exc.message)
        raise typer.Exit(2) from None
    finally:
        store.close()
    if result.status != "posted":
        err.print(f"posting to X failed again: {result.error}")
        raise typer.Exit(1)
    out.print(f"posted to X: {result.url} ({len(result.post_ids)} post(s))")


@incident_app.command("report")
def incident_report(
    incident_id: int,
    fmt: Annotated[str, typer.Option("--format", help="md or html.")] = "md",
    lang: Annotated[str, typer.Option("--lang", help="id or en.")] = "id",
    output: Annotated[
        Path | None, typer.Option("--out", help="Write to this file instead of stdout.")
    ] = None,
) -> None:
    """The incident report for comms and the press: timeline in WIB, impact per component,
    peak error rate, statements posted, alerts."""
    from monitor.correlate import correlate_incident
    from monitor.report import build_report, render_html, render_markdown

    if fmt not in ("md", "html") or lang not in ("id", "en"):
        err.print("--format is md or html; --lang is id or en")
        raise typer.Exit(2)
    cfg = settings()
    store = open_store(cfg)
    try:
        now = SystemClock().now()
        with store.read() as tx:
            correlation = correlate_incident(tx, cfg, incident_id, now=now)
            social = correlation.summary() if correlation is not None else None
            report = build_report(tx, cfg, incident_id, now=now, social=social)
    except KeyError:
        err.print(f"no incident {incident_id}")
        raise typer.Exit(2) from None
    finally:
        store.close()
    text = render_html(report, lang=lang) if fmt == "html" else render_markdown(report, lang=lang)
    if output is None:
        sys.stdout.write(text)
        return
    output.write_text(text, encoding="utf-8")
    out.print(f"wrote {output}")


@incident_app.command("templates")
def incident_templates() -> None:
    """List statement templates, one a line."""
    cfg = settings()
    extra = cfg.resolve_path(cfg.incidents.templates_dir) if cfg.incidents.templates_dir else None
    for name in StatementLibrary(extra_dir=extra).names():
        out.print(name, markup=False)


# -- silences -------------------------------------------------------------------
@silence_app.command("add")
def silence_add(
    component: Annotated[str, typer.Option("--component", help="Component to silence.")],
    duration: Annotated[str, typer.Option("--for", help="How long: 30m, 2h ...")],
    reason: Annotated[str, typer.Option("--reason", help="Why (shown to every engineer).")],
    author: AuthorOpt = None,
) -> None:
    """Hold back the alerts of a component for a while (the page still tells the truth)."""
    from monitor.fields import parse_duration
    from monitor.i18n import format_time
    from monitor.silences import SilenceError
    from monitor.silences import add_silence as add

    cfg = settings()
    try:
        span = parse_duration(duration)
    except ValueError as exc:
        err.print(f"--for: {exc}")
        raise typer.Exit(2) from None
    store = open_store(cfg)
    try:
        with store.tx() as tx:
            row = add(
                tx,
                cfg,
                component_id=component,
                duration=span,
                reason=reason,
                author=_author(author),
                now=SystemClock().now(),
            )
    except SilenceError as exc:
        err.print(str(exc))
        raise typer.Exit(2) from None
    finally:
        store.close()
    until = format_time(row.ends_at, cfg.site.zone, "en")
    out.print(f"silence #{row.id}: alerts for {component} held back until {until}")


@silence_app.command("list")
def silence_list(
    show_all: Annotated[
        bool, typer.Option("--all", help="Also silences that are over or removed.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Silences in force (and coming), or all of them."""
    cfg = settings()
    store = open_store(cfg)
    now = SystemClock().now()
    with store.read() as tx:
        rows = tx.silences() if show_all else tx.silences(now=now)
    store.close()
    if as_json:
        for row in rows:
            out.print(json.dumps(_silence_json(row, now), ensure_ascii=False))
        return
    table = Table("id", "component", "state", "until", "author", "reason")
    for row in rows:
        table.add_row(
            str(row.id),
            row.component_id,
            _silence_json(row, now)["state"],
            row.ends_at.astimezone(cfg.site.zone).strftime("%Y-%m-%d %H:%M %Z"),
            row.author,
            row.reason,
        )
    out.print(table)


def _silence_json(row: Any, now: Any) -> dict[str, Any]:
    if row.removed_at is not None:
        state = "removed"
    elif row.ends_at <= now:
        state = "expired"
    else:
        state = "active" if row.starts_at <= now else "scheduled"
    return {
        "id": row.id,
        "component": row.component_id,
        "state": state,
        "starts_at": row.starts_at.isoformat(),
        "ends_at": row.ends_at.isoformat(),
        "removed_at": row.removed_at.isoformat() if row.removed_at else None,
        "author": row.author,
        "reason": row.reason,
    }


@silence_app.command("remove")
def silence_remove(silence_id: int) -> None:
    """End a silence now."""
    from monitor.silences import SilenceError, remove_silence

    cfg = settings()
    store = open_store(cfg)
    try:
        with store.tx() as tx:
            row = remove_silence(tx, silence_id, now=SystemClock().now())
            component = row.component_id
    except SilenceError as exc:
        err.print(str(exc))
        raise typer.Exit(2) from None
    finally:
        store.close()
    out.print(f"silence #{silence_id} removed: alerts for {component} are sent again")


# -- complaints -------------------------------------------------------------------
@complaints_app.command("import")
def complaints_import(
    path: Annotated[Path, typer.Argument(help="JSONL or CSV of posts (text, created_at, ...).")],
) -> None:
    """Import posts exported by a social-listening tool: classified, deduplicated, counted.

    A malformed file is refused with its line number and nothing is imported.
    """
    from monitor.social.file import ImportFileError, read_posts
    from monitor.social.sources import ingest

    cfg = settings()
    try:
        posts = read_posts(path)
    except ImportFileError as exc:
        err.print(f"{path}: {exc}; nothing imported")
        raise typer.Exit(2) from None
    store = open_store(cfg)
    try:
        with store.tx() as tx:
            report = ingest(tx, "file", posts, now=SystemClock().now())
    except StoreError as exc:  # one transaction: nothing was imported
        err.print(f"storage error ({cfg.storage.url.masked()}): {exc}; nothing imported")
        raise typer.Exit(2) from None
    finally:
        store.close()
    out.print(
        f"imported {report.posts_added} post(s) from {path}: {report.complaints} complaint(s), "
        f"{report.duplicates} already known"
    )


@complaints_app.command("samples")
def complaints_samples(
    since: Annotated[str, typer.Option("--since", help="How far back: 30m, 1h, 2d ...")] = "1h",
    all_posts: Annotated[
        bool, typer.Option("--all", help="Also posts that are not complaints.")
    ] = False,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """For the comms team (internal): recent complaint posts with their topics.

    Post text and handles stay here and in the store: the public site shows volumes only.
    """
    from monitor.fields import parse_duration

    cfg = settings()
    try:
        span = parse_duration(since)
    except ValueError as exc:
        err.print(f"--since: {exc}")
        raise typer.Exit(2) from None
    store = open_store(cfg)
    now = SystemClock().now()
    with store.read() as tx:
        posts = tx.posts(since=now - span, complaints_only=not all_posts, limit=limit)
    store.close()
    if as_json:
        for post in posts:
            record = {
                "source": post.source,
                "created_at": post.created_at.isoformat(),
                "text": post.text,
                "complaint": post.complaint,
                "topics": [t for t in post.topics.split(",") if t],
                "author": post.author,
                "url": post.url,
            }
            out.print(json.dumps(record, ensure_ascii=False))
        return
    table = Table("time", "source", "topics", "author", "text")
    for post in posts:
        table.add_row(
            post.created_at.astimezone(cfg.site.zone).strftime("%d %b %H:%M"),
            post.source,
            post.topics or ("-" if post.complaint else "not a complaint"),
            post.author or "",
            post.text,
        )
    out.print(table)


@complaints_app.command("classify")
def complaints_classify() -> None:
    """Text lines on stdin -> one JSON object per line: {"text", "complaint", "topics"}."""
    from monitor.social.classify import classify

    for line in sys.stdin:
        text = line.rstrip("\r\n")
        if not text.strip():
            continue
        sys.stdout.write(json.dumps(classify(text).as_json(text), ensure_ascii=False) + "\n")
    sys.stdout.flush()


@complaints_app.command("detect")
def complaints_detect(
    csv_path: Annotated[
        Path, typer.Option("--csv", help="A timestamp,value series (counts per bucket).")
    ],
) -> None:
    """One JSON object per spike onset: {"timestamp", "value", "expected", "score"}."""
    from monitor.social.spikes import detect, read_series_csv

    try:
        series = read_series_csv(csv_path)
        spikes = detect(series)
    except OSError as exc:
        err.print(f"cannot read {csv_path}: {exc.strerror}")
        raise typer.Exit(2) from None
    except ValueError as exc:
        err.print(str(exc))
        raise typer.Exit(2) from None
    for spike in spikes:
        sys.stdout.write(json.dumps(spike.as_json()) + "\n")


# -- demo and serve ---------------------------------------------------------------
@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Where the status page goes.")] = Path(
        "site"
    ),
) -> None:
    """The offline end-to-end demo: a simulated site buckles, Pantau notices, alerts and publishes."""
    from monitor.demo import run_demo

    code = run_demo(out_dir=out_dir, console=out)
    raise typer.Exit(code)


@app.command()
def serve(
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1.")] = 8000,
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Folder to serve (default: [site] output_dir).")
    ] = None,
) -> None:
    """Preview the published status page on http://127.0.0.1:PORT/."""
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    root = directory or settings().resolve_path(settings().site.output_dir)
    if not (root / "index.html").exists():
        err.print(f"{root} has no index.html yet; run 'pantau publish' first", markup=False)
        raise typer.Exit(1)
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(root))
    with ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        out.print(
            f"serving {root} on http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C to stop)",
            markup=False,
        )
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except ConfigError as exc:  # configs built by other commands
        err.print(str(exc), markup=False)
        sys.exit(2)
