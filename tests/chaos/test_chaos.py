"""Chaos: ``pantau run`` killed with SIGKILL at seeded random moments while its target fails
and recovers; the harness is bench/chaos.py (its docstring and bench/README.md explain it).

One run with a fixed seed, 8 kills and two outages. It asserts the invariants of DESIGN.md
("Rules for bad input and faults"), never a timing: no result logged as committed is lost,
the SQLite store passes ``PRAGMA integrity_check``, each outage opened one incident that was
opened once and resolved once, no alert message arrived twice outside the documented window
(a sender killed after the receiver accepted it), and the published site was a complete tree
after every kill. Its deadlines are generous (a process must lead within 45 s of its start),
so a loaded CI machine only makes it slower. It takes 60 to 80 s.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCH_CHAOS = Path(__file__).resolve().parents[2] / "bench" / "chaos.py"
SEED = 20260917


def load_chaos() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pantau_bench_chaos", BENCH_CHAOS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


def test_sigkill_loses_no_result_and_repeats_nothing(tmp_path: Path) -> None:
    chaos = load_chaos()
    # Two 8 s outages 11.5 s apart: each spans a restart (3 to 5 s on a busy machine), and
    # the gap leaves time for the recovery to be seen and evaluated before the next one.
    plan = chaos.Plan(
        seed=SEED, kills=8, duration=42.0, outages=2, outage_s=8.0, lead_s=3.0, final_for=10.0
    )
    lines: list[str] = []
    report = chaos.run_chaos(plan, folder=tmp_path / "chaos", say=lines.append)
    chaos.print_report(report, plan, lines.append)
    told = "\n".join(lines)  # shown by pytest when an assertion fails

    assert report.kills >= plan.kills, told
    assert not report.unexpected_exits, told
    assert report.final_exit_code == 0, told
    # At-least-once probing: every result a process said it committed is in the store.
    assert report.results_written > 0, told
    assert report.results_lost == 0, told
    assert report.integrity_check == "ok", told
    # One incident per outage, opened once and resolved once.
    assert report.incidents_per_outage == [1, 1], told
    assert report.incidents_unmatched == [], told
    assert report.incidents_opened == report.incidents_resolved == 2, told
    # No alert twice, except a resend after a kill that fell after the receiver accepted.
    assert report.alert_duplicates == report.alert_duplicates_documented, told
    assert report.alert_unexpected == [], told
    # The site was a complete tree after every kill and at the end.
    assert report.site_checks_passed >= 1, told
    assert report.site_checks_failed == 0, told
