"""Status page budget: the full site from 90 days of 1-minute probes of 10 components.

Run from the project root::

    .venv/bin/python bench/publish_speed.py [--days 90] [--components 10] [--runs 5]

It fills a SQLite store (a temporary file) with one check per component probed every
minute from one region for ``--days`` days (about 1.3 million results by default, written
with Core ``executemany`` in large transactions), with a realistic sprinkling of trouble:
isolated failures that a quick re-probe answers (attempt 2 passes), slow degraded
stretches, and outages (failing runs whose re-probes fail too), each outage and degraded
stretch with its component transitions, and an incident for most outages (a few still
open). Then it

1. runs :func:`monitor.rollup.rollup` once and times it: the one-off backfill of a store
   that had no rollups yet;
2. adds one more minute of results and times the incremental rollup the service runs
   every minute;
3. times :func:`monitor.publish.publish_site` for the whole site (every page, feed, badge
   and API document), the median of ``--runs`` runs, with ``load_snapshot`` and rendering
   also timed apart;
4. measures ``index.html`` + ``style.css`` gzipped (as ``gzip.compress`` does, level 9).

Budgets (DESIGN.md, "Budgets"): the full site in under 2 s; ``index.html`` with its CSS
under 30 KB gzipped. The last line printed is one JSON object. The script never fails:
a missed budget prints ``FAIL`` and it still exits 0.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import random
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from monitor.config import Settings, parse_settings
from monitor.publish import load_snapshot, publish_site, render_site
from monitor.rollup import rollup
from monitor.store import (
    IncidentRow,
    IncidentUpdateRow,
    ProbeResultRow,
    Store,
    TransitionRow,
)

PUBLISH_BUDGET_S = 2.0  # DESIGN.md, Budgets: full site from 90 days x 10 components
SIZE_BUDGET = 30 * 1024  # DESIGN.md, Budgets: index.html with its CSS, gzipped
#: 14.05 WIB on a Thursday: the bench's "now" (fixed, so runs compare).
NOW = datetime(2026, 9, 17, 7, 5, tzinfo=UTC)
BATCH = 50_000
COMPONENTS = (
    ("home", "Beranda", "Home"),
    ("login", "Masuk", "Login"),
    ("signup", "Pendaftaran", "Signup"),
    ("otp", "Kode OTP", "OTP codes"),
    ("profile", "Profil", "Profile"),
    ("courses", "Katalog pelatihan", "Course catalogue"),
    ("payment", "Pembayaran insentif", "Incentive payments"),
    ("certificate", "Sertifikat", "Certificates"),
    ("support", "Layanan pengaduan", "Support desk"),
    ("api", "API mitra", "Partner API"),
)


@dataclass(frozen=True, slots=True)
class Episode:
    """A stretch of trouble of one component: ``kind`` is degraded, partial or major."""

    component: str
    start: datetime
    end: datetime
    kind: str


def make_settings(components: int, base_dir: Path) -> Settings:
    chosen = COMPONENTS[:components] + tuple(
        (f"extra{n}", f"Layanan {n}", f"Service {n}") for n in range(components - 10)
    )
    return parse_settings(
        {
            "site": {
                "title": {"id": "Status Kartu Prakerja", "en": "Kartu Prakerja Status"},
                "base_url": "https://status.prakerja.example/",
                "output_dir": str(base_dir / "site"),
            },
            "components": [{"id": c, "name": {"id": i, "en": e}} for c, i, e in chosen],
            "checks": [
                {
                    "id": f"{c}-page",
                    "component": c,
                    "kind": "http",
                    "url": f"https://www.prakerja.example/{c}",
                    "interval": "60s",
                }
                for c, _, _ in chosen
            ],
        },
        base_dir=base_dir,
    )


def plan_episodes(settings: Settings, days: int, rng: random.Random) -> list[Episode]:
    """About one outage a fortnight and one slow stretch a week per component, none
    overlapping, plus a major outage of login and signup now (wave 9 opening)."""
    episodes: list[Episode] = []
    start = NOW - timedelta(days=days)
    for component in settings.components:
        moment = start + timedelta(hours=rng.uniform(6, 72))
        while moment < NOW - timedelta(hours=3):
            kind = rng.choices(["degraded", "partial", "major"], weights=[5, 2, 1.5])[0]
            length = timedelta(minutes=rng.uniform(5, 150 if kind == "degraded" else 90))
            episodes.append(Episode(component.id, moment, moment + length, kind))
            moment += length + timedelta(days=rng.expovariate(1 / 4))
    for component in ("login", "signup"):
        if any(c.id == component for c in settings.components):
            wave = NOW - timedelta(minutes=45)
            episodes.append(Episode(component, wave, NOW + timedelta(hours=1), "major"))
    return sorted(episodes, key=lambda e: e.start)


def result_rows(
    settings: Settings, days: int, episodes: list[Episode], rng: random.Random
) -> Iterator[dict[str, Any]]:
    """One run a minute per check, in time order (and the re-probes of failed runs)."""
    trouble: dict[str, list[Episode]] = {}
    for episode in episodes:
        trouble.setdefault(episode.component, []).append(episode)
    start = NOW - timedelta(days=days)
    minutes = days * 24 * 60
    for check in settings.checks:
        spans = trouble.get(check.component, [])
        phase = timedelta(seconds=rng.uniform(0, 59))
        index = 0
        for minute in range(minutes):
            at = start + timedelta(minutes=minute) + phase
            while index < len(spans) and spans[index].end <= at:
                index += 1
            episode = spans[index] if index < len(spans) and spans[index].start <= at else None
            yield from _run(check.id, check.component, at, episode, rng)


def _run(
    check_id: str, component: str, at: datetime, episode: Episode | None, rng: random.Random
) -> Iterator[dict[str, Any]]:
    hour = at.hour + 7  # busier in the WIB daytime
    base = 120 + 60 * math.sin((hour % 24) / 24 * 2 * math.pi)
    latency = base * rng.lognormvariate(0, 0.35)
    kind = episode.kind if episode else None
    if kind == "degraded":
        yield _row(check_id, component, at, ok=True, latency=latency * 8, degraded=True)
    elif kind in ("partial", "major") and rng.random() < (0.95 if kind == "major" else 0.6):
        yield _row(check_id, component, at, ok=False, latency=10_000.0)
        retry = at + timedelta(seconds=12)
        yield _row(check_id, component, retry, ok=False, latency=10_000.0, attempt=2)
    elif rng.random() < 0.002:  # a dropped response that the quick re-probe answers
        yield _row(check_id, component, at, ok=False, latency=10_000.0)
        yield _row(
            check_id, component, at + timedelta(seconds=12), ok=True, latency=latency, attempt=2
        )
    else:
        yield _row(check_id, component, at, ok=True, latency=latency)


def _row(
    check_id: str,
    component: str,
    at: datetime,
    *,
    ok: bool,
    latency: float,
    degraded: bool = False,
    attempt: int = 1,
) -> dict[str, Any]:
    return {
        "check_id": check_id,
        "component_id": component,
        "region": "default",
        "started_at": at,
        "ok": ok,
        "error": None if ok else "timeout",
        "detail": "" if ok else "no response within 10s",
        "status_code": 200 if ok else None,
        "latency_ms": round(latency, 1),
        "step": None,
        "attempt": attempt,
        "degraded": degraded,
        "steps": None,
    }


def fill(store: Store, settings: Settings, days: int, rng: random.Random) -> dict[str, int]:
    """Write the results, transitions and incidents; return how many of each."""
    episodes = plan_episodes(settings, days, rng)
    table = ProbeResultRow.__table__  # type: ignore[attr-defined]
    results = 0
    batch: list[dict[str, Any]] = []
    with store.engine.begin() as connection:
        for row in result_rows(settings, days, episodes, rng):
            batch.append(row)
            if len(batch) >= BATCH:
                connection.execute(insert(table), batch)
                results += len(batch)
                batch = []
        if batch:
            connection.execute(insert(table), batch)
            results += len(batch)
    incidents = _transitions_and_incidents(store, episodes, rng)
    return {"results": results, "episodes": len(episodes), "incidents": incidents}


def _transitions_and_incidents(store: Store, episodes: list[Episode], rng: random.Random) -> int:
    status_of = {"degraded": "degraded_performance", "partial": "partial_outage"}
    incidents = 0
    with store.tx() as tx:
        for episode in episodes:
            status = status_of.get(episode.kind, "major_outage")
            begin = episode.start + timedelta(minutes=2)  # two failing runs confirm it
            tx.session.add(_transition(episode.component, "operational", status, begin))
            if episode.end < NOW:
                back = episode.end + timedelta(minutes=2)
                tx.session.add(_transition(episode.component, status, "operational", back))
            if episode.kind != "degraded" and rng.random() < 0.8:
                incidents += _incident(tx, episode, status, begin)
    return incidents


def _transition(component: str, before: str, after: str, at: datetime) -> TransitionRow:
    return TransitionRow(
        component_id=component, from_status=before, to_status=after, at=at, cause="bench"
    )


def _incident(tx: Any, episode: Episode, status: str, begin: datetime) -> int:
    resolved = episode.end < NOW
    end = episode.end + timedelta(minutes=5)
    row = IncidentRow(
        title_id=f"Gangguan pada {episode.component}",
        title_en=f"{episode.component} disrupted",
        status="resolved" if resolved else "investigating",
        impact="major" if status == "major_outage" else "minor",
        automatic=True,
        started_at=begin,
        updated_at=end if resolved else begin,
        resolved_at=end if resolved else None,
    )
    incident = tx.add_incident(row, {episode.component: status})
    updates = [(begin, "investigating", "Kami sedang menyelidiki.", "We are investigating.")]
    if resolved:
        updates.append((end, "resolved", "Layanan kembali normal.", "Service is back."))
    for at, update_status, message_id, message_en in updates:
        tx.add_update(
            IncidentUpdateRow(
                incident_id=incident.id,
                at=at,
                status=update_status,
                message_id=message_id,
                message_en=message_en,
                automatic=True,
            )
        )
    return 1


def timed(function: Any, *args: Any, **kwargs: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    value = function(*args, **kwargs)
    return time.perf_counter() - started, value


def run_bench(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    settings = make_settings(args.components, tmp)
    store = Store(f"sqlite:///{tmp / 'pantau.db'}")
    rng = random.Random(args.seed)
    fill_s, counts = timed(fill, store, settings, args.days, rng)
    print(
        f"filled    {counts['results']:,} results, {counts['episodes']} episodes, "
        f"{counts['incidents']} incidents in {fill_s:.1f} s"
    )

    def roll(now: datetime) -> int:
        with store.tx() as tx:
            return rollup(tx, settings, now=now)

    backfill_s, rows = timed(roll, NOW)
    print(f"rollup    backfill {backfill_s:.2f} s ({rows:,} rows written)")
    later = NOW + timedelta(minutes=1)
    with store.engine.begin() as connection:
        table = ProbeResultRow.__table__  # type: ignore[attr-defined]
        connection.execute(
            insert(table),
            [_row(c.id, c.component, later, ok=True, latency=130.0) for c in settings.checks],
        )
    incremental_s, incremental_rows = timed(roll, later + timedelta(seconds=5))
    print(f"rollup    incremental {incremental_s * 1000:.0f} ms ({incremental_rows} rows)")

    publish_times, load_times, render_times = [], [], []
    for run in range(args.runs):
        out = tmp / "site"
        elapsed, _ = timed(publish_site, store, settings, now=later, out_dir=out)
        publish_times.append(elapsed)
        load_s, snapshot = timed(load_snapshot, store, settings, now=later)
        load_times.append(load_s)
        render_s, _ = timed(render_site, snapshot, settings, tmp / f"render-{run}")
        render_times.append(render_s)
        print(
            f"publish   run {run + 1}: {elapsed:.3f} s (load {load_s:.3f} s, render {render_s:.3f} s)"
        )
    site = tmp / "site"
    raw = {name: (site / name).read_bytes() for name in ("index.html", "style.css")}
    gzipped = {name: len(gzip.compress(data)) for name, data in raw.items()}
    pages = sum(1 for p in site.rglob("*") if p.is_file())
    store.close()
    return {
        "days": args.days,
        "components": args.components,
        "results": counts["results"],
        "incidents": counts["incidents"],
        "fill_s": fill_s,
        "rollup_backfill_s": backfill_s,
        "rollup_rows": rows,
        "rollup_incremental_ms": incremental_s * 1000,
        "publish_median_s": statistics.median(publish_times),
        "publish_max_s": max(publish_times),
        "load_snapshot_median_s": statistics.median(load_times),
        "render_median_s": statistics.median(render_times),
        "site_files": pages,
        "index_html_bytes": len(raw["index.html"]),
        "index_html_gzip_bytes": gzipped["index.html"],
        "style_css_gzip_bytes": gzipped["style.css"],
        "page_gzip_bytes": sum(gzipped.values()),
    }


def verdicts(figures: dict[str, Any]) -> dict[str, str]:
    return {
        "publish": "PASS" if figures["publish_median_s"] < PUBLISH_BUDGET_S else "FAIL",
        "size": "PASS" if figures["page_gzip_bytes"] < SIZE_BUDGET else "FAIL",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=90, help="days of results (default 90)")
    parser.add_argument("--components", type=int, default=10, help="components (default 10)")
    parser.add_argument("--runs", type=int, default=5, help="timed publishes (default 5)")
    parser.add_argument("--seed", type=int, default=9, help="random seed (default 9)")
    args = parser.parse_args()
    try:
        with tempfile.TemporaryDirectory(prefix="pantau-publish-bench-") as tmp:
            figures = run_bench(args, Path(tmp))
    except Exception:  # a benchmark never fails: say what broke and exit 0
        traceback.print_exc()
        print(json.dumps({"error": "the benchmark did not complete", "publish": "FAIL"}))
        return 0
    result = verdicts(figures)
    print(
        f"publish   median {figures['publish_median_s']:.3f} s "
        f"(budget {PUBLISH_BUDGET_S:.0f} s): {result['publish']}"
    )
    print(
        f"size      index.html {figures['index_html_gzip_bytes']:,} B + style.css "
        f"{figures['style_css_gzip_bytes']:,} B gzipped = {figures['page_gzip_bytes']:,} B "
        f"(budget {SIZE_BUDGET:,} B): {result['size']}"
    )
    rounded = {k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}
    print(json.dumps({**rounded, **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
