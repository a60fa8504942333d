"""End-to-end tests of the ``pantau`` command (DESIGN.md, "CLI").

Each test runs the installed console script as a subprocess against a config in
``tmp_path`` (SQLite store and site there too) and real servers on 127.0.0.1.
Exit codes: 0 ok, 1 a check or condition failed, 2 usage or config error.
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen, TimeoutExpired

import pytest
from cli_support import REPO, ConfigWriter, Outcome, Pantau, StubServer, parallel, stop_process

from monitor.demo.receiver import AlertReceiver
from monitor.demo.site import SimulatedSite

REPO_COMPONENTS = ("home", "login", "signup", "otp")
RESULT_KEYS = {"check", "component", "ok", "error", "detail", "status_code", "latency_ms", "step"}
INCIDENT_KEYS = {"id", "status", "title", "components", "started_at", "resolved_at"}
SECRET = "sk-very-secret-123"


def json_lines(outcome: Outcome) -> list[dict[str, object]]:
    """Every stdout line parsed as one JSON object (fails on any other line)."""
    return [json.loads(line) for line in outcome.lines()]


def opened_id(outcome: Outcome) -> int:
    assert outcome.code == 0, str(outcome)
    match = re.search(r"#(\d+)", outcome.stdout)
    assert match, str(outcome)
    return int(match.group(1))


# --- the demo runs beside the other tests ----------------------------------------------
# It spends ~25 s waiting for its simulated wave to break and recover, nearly all of it
# idle: started before the first test of this module, it is done when its test comes.

DEMO_DEADLINE = 100.0


@dataclass
class DemoRun:
    proc: Popen[str]
    out: Path
    started: float


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    root = tmp_path_factory.mktemp("demo")
    started = time.monotonic()
    proc = Pantau(cwd=root).popen("demo", "--out", root / "page")
    yield DemoRun(proc, root / "page", started)
    stop_process(proc)


@pytest.fixture(scope="module", autouse=True)
def _start_demo_early(request: pytest.FixtureRequest) -> None:
    if any(item.name == "test_demo_tells_the_whole_story" for item in request.session.items):
        request.getfixturevalue("demo_run")


# --- validate ---------------------------------------------------------------------------


def test_validate_finds_the_config_by_option_env_and_default(pantau: Pantau) -> None:
    repo_config = REPO / "config.toml"
    outcomes = parallel(
        lambda: pantau.run("--config", repo_config, "validate"),
        lambda: pantau.run("validate", env={"PANTAU_CONFIG": str(repo_config)}),
        lambda: pantau.run("validate", cwd=REPO),  # ./config.toml
    )
    for outcome in outcomes:
        assert outcome.code == 0, str(outcome)
        assert outcome.lines()[0].endswith("config.toml: OK"), str(outcome)
        named = re.findall(r"(?m)^ +([a-z]+): \S+ / \S+ - \d+ check", outcome.stdout)
        assert named == list(REPO_COMPONENTS), str(outcome)


# --- bad configs ------------------------------------------------------------------------

SEVERAL_ERRORS = """
[site]
title = "Status"
colour = 1

[[components]]
id = "login"
name = { id = "Masuk", en = "Login" }

[[checks]]
id = "x"
component = "nope"
url = "http://127.0.0.1:9/"
interval = "fast"
headers = { Authorization = "Bearer ${PANTAU_TEST_MISSING_VAR}" }
"""
#: case -> (file text, or None for no file; every (key path, part of the message) expected)
BAD_CONFIGS: dict[str, tuple[str | None, list[tuple[str, str]]]] = {
    "several-errors": (
        SEVERAL_ERRORS,
        [
            ("site.colour", "unknown key"),
            ("checks[0](x).interval", "invalid duration 'fast'"),
            ("checks[0](x).component", "unknown component 'nope'"),
            ("checks[0](x).headers.Authorization", "PANTAU_TEST_MISSING_VAR is not set"),
        ],
    ),
    "toml-syntax": (
        SEVERAL_ERRORS.replace("[[checks]]", "[[checks]"),
        [("(syntax)", "not valid TOML")],
    ),
    "missing-file": (None, [("(file)", "cannot read")]),
}


@pytest.fixture(scope="module")
def bad_config_outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """``pantau validate`` on each bad config, run side by side once for the module."""
    root = tmp_path_factory.mktemp("bad-configs")
    paths = {}
    for case, (text, _) in BAD_CONFIGS.items():
        paths[case] = root / f"{case}.toml"
        if text is not None:
            paths[case].write_text(text, encoding="utf-8")
    outcomes = Pantau(cwd=root).run_all(*(["--config", p, "validate"] for p in paths.values()))
    return dict(zip(paths, outcomes, strict=True))


def error_lines(outcome: Outcome) -> list[str]:
    """The indented ``key.path: message`` lines under ``config error in FILE:``."""
    return [line.strip() for line in outcome.stderr.splitlines() if line.startswith("  ")]


@pytest.mark.parametrize("case", BAD_CONFIGS)
def test_a_bad_config_exits_2_listing_only_its_errors(
    case: str, bad_config_outcomes: dict[str, Outcome]
) -> None:
    outcome = bad_config_outcomes[case]
    assert outcome.code == 2, str(outcome)
    assert outcome.stdout == "", str(outcome)
    assert outcome.stderr.startswith(f"config error in {outcome.args[1]}:"), str(outcome)
    assert len(error_lines(outcome)) == len(BAD_CONFIGS[case][1]), str(outcome)


@pytest.mark.parametrize(
    ("case", "key_path", "message"),
    [(case, *error) for case, (_, errors) in BAD_CONFIGS.items() for error in errors],
)
def test_a_bad_config_error_names_its_key_path(
    case: str, key_path: str, message: str, bad_config_outcomes: dict[str, Outcome]
) -> None:
    outcome = bad_config_outcomes[case]
    assert any(
        line.startswith(f"{key_path}: ") and message in line for line in error_lines(outcome)
    ), str(outcome)


# --- check --------------------------------------------------------------------------------


def test_check_json_reports_a_healthy_target(
    pantau: Pantau, config: ConfigWriter, healthy_site: SimulatedSite
) -> None:
    path = config.write(
        [
            {"id": "home-page", "component": "home", "url": f"{healthy_site.base_url}/"},
            {
                "id": "login-page",
                "component": "login",
                "url": f"{healthy_site.base_url}/login",
                "body_contains": "Masuk",
            },
        ]
    )
    every, one, unknown = pantau.run_all(
        ["-c", path, "check", "--json"],
        ["-c", path, "check", "login-page", "--json"],
        ["-c", path, "check", "login-page", "no-such-check", "--json"],
    )
    assert every.code == 0, str(every)
    results = json_lines(every)
    assert [r["check"] for r in results] == ["home-page", "login-page"]
    for result in results:
        assert result.keys() >= RESULT_KEYS
        assert result["ok"] is True
        assert result["error"] is None
        assert result["status_code"] == 200
        assert result["step"] is None
        assert isinstance(result["latency_ms"], int | float)
        assert result["latency_ms"] >= 0
    assert [r["component"] for r in results] == ["home", "login"]

    assert one.code == 0, str(one)
    assert [r["check"] for r in json_lines(one)] == ["login-page"]

    assert unknown.code == 2, str(unknown)
    assert "no-such-check" in unknown.stderr
    assert unknown.stdout == ""


def test_check_classifies_each_failing_target_and_exits_1(
    pantau: Pantau,
    config: ConfigWriter,
    surging_site: SimulatedSite,
    stub_server: Callable[..., StubServer],
    closed_port: int,
) -> None:
    loop = stub_server(redirect_loop=True)
    path = config.write(
        [
            {"id": "busy", "component": "login", "url": f"{surging_site.base_url}/login"},
            {"id": "closed", "component": "login", "url": f"http://127.0.0.1:{closed_port}/"},
            {
                "id": "hangs",
                "component": "login",
                "url": f"{surging_site.base_url}/signup",
                "timeout": "500ms",
            },
            {"id": "loop", "component": "home", "url": loop.url("/again")},
        ]
    )
    as_json, table = pantau.run_all(["-c", path, "check", "--json"], ["-c", path, "check"])
    assert as_json.code == 1, str(as_json)
    results = {r["check"]: r for r in json_lines(as_json)}
    assert {check: r["error"] for check, r in results.items()} == {
        "busy": "http_status",
        "closed": "connect",
        "hangs": "timeout",
        "loop": "redirect_loop",
    }
    assert all(r["ok"] is False and r.keys() >= RESULT_KEYS for r in results.values())
    assert results["busy"]["status_code"] == 503
    assert results["hangs"]["latency_ms"] < 2000  # the 500 ms timeout, not the 5 s hang
    assert len(loop.requests) > 1

    assert table.code == 1, str(table)
    for error in ("http_status", "connect", "timeout", "redirect_loop"):
        assert error in table.stdout, str(table)


# --- incidents ------------------------------------------------------------------------------


def test_incident_workflow_from_open_to_resolved(pantau: Pantau, config: ConfigWriter) -> None:
    path = config.write()
    opened = pantau.run(
        *("-c", path, "incident", "open", "--component", "login"),
        *("--message", "Masuk gagal, kami sedang memeriksa."),
        *("--message-en", "Login is failing, we are looking into it."),
    )
    incident = opened_id(opened)
    updated = pantau.run(
        *("-c", path, "incident", "update", str(incident)),
        *("--status", "identified", "--template", "traffic-surge"),
    )
    assert updated.code == 0, str(updated)

    listed, shown = pantau.run_all(
        ["-c", path, "incident", "list", "--json"],
        ["-c", path, "incident", "show", str(incident), "--json"],
    )
    assert listed.code == 0, str(listed)
    [row] = json_lines(listed)
    assert row.keys() >= INCIDENT_KEYS
    assert row["id"] == incident
    assert row["status"] == "identified"
    assert "login" in row["components"]
    assert row["resolved_at"] is None
    assert shown.code == 0, str(shown)
    [detail] = json_lines(shown)
    assert detail.keys() >= INCIDENT_KEYS
    assert [(u["status"], u["event"]) for u in detail["updates"]] == [
        ("investigating", "opened"),
        ("identified", "update"),
    ]
    assert detail["updates"][0]["message"] == "Masuk gagal, kami sedang memeriksa."
    assert detail["updates"][0]["message_en"] == "Login is failing, we are looking into it."
    assert "Masuk" in detail["updates"][1]["message"]  # the template names the component

    resolved = pantau.run("-c", path, "incident", "resolve", str(incident))
    assert resolved.code == 0, str(resolved)
    shown = pantau.run("-c", path, "incident", "show", str(incident), "--json")
    [detail] = json_lines(shown)
    assert detail["status"] == "resolved"
    assert detail["resolved_at"] is not None
    assert detail["components"] == {"login": "operational"}
    assert [u["status"] for u in detail["updates"]] == ["investigating", "identified", "resolved"]
    assert [u["at"] for u in detail["updates"]] == sorted(u["at"] for u in detail["updates"])


def test_incident_text_is_printed_as_written(pantau: Pantau, config: ConfigWriter) -> None:
    """Statements come from people: what looks like rich markup or emoji codes is text."""
    path = config.write()
    title = "Login [/] [bold]down[/bold] :x:"
    message = "Tombol [Masuk] gagal :warning: [/x]"
    opened = pantau.run(
        *("-c", path, "incident", "open", "--component", "login"),
        *("--title", title, "--title-en", title, "--message", message, "--message-en", message),
    )
    incident = str(opened_id(opened))
    outcomes = pantau.run_all(
        ["-c", path, "incident", "list"],
        ["-c", path, "incident", "show", incident],
        ["-c", path, "incident", "show", incident, "--json"],
    )
    for outcome in outcomes:
        assert outcome.code == 0, str(outcome)
    table, show, show_json = outcomes
    assert title in table.stdout, str(table)
    assert title in show.stdout, str(show)
    assert message in show.stdout, str(show)
    [detail] = json_lines(show_json)
    assert detail["title"] == title
    assert detail["updates"][0]["message"] == message


def test_incident_templates_lists_one_name_per_line(pantau: Pantau, config: ConfigWriter) -> None:
    outcome = pantau.run("-c", config.write(), "incident", "templates")
    assert outcome.code == 0, str(outcome)
    names = [line.strip() for line in outcome.lines()]
    assert all(re.fullmatch(r"[a-z0-9_-]+", name) for name in names), str(outcome)
    for name in ("investigating", "identified", "monitoring", "resolved", "traffic-surge"):
        assert name in names


def test_refused_incident_commands_exit_2_and_change_nothing(
    pantau: Pantau, config: ConfigWriter
) -> None:
    path = config.write()
    incident = str(opened_id(pantau.run("-c", path, "incident", "open", "--component", "login")))
    refused = pantau.run_all(
        ["-c", path, "incident", "update", incident, "--status", "fixed", "-m", "x"],
        ["-c", path, "incident", "update", incident, "--component", "nope", "-m", "x"],
        ["-c", path, "incident", "open", "--component", "nope", "-m", "x"],
        ["-c", path, "incident", "update", "99", "--status", "identified", "-m", "x"],
        # Not a failed condition but a wrong argument, as for update.
        ["-c", path, "incident", "show", "99", "--json"],
        ["-c", path, "incident", "update", incident, "--template", "no-such"],
    )
    wrong = [str(o) for o in refused if o.code != 2 or "Traceback" in o.stderr or not o.stderr]
    assert not wrong, "\n\n".join(wrong)
    listed = pantau.run("-c", path, "incident", "list", "--json")
    [row] = json_lines(listed)  # no second incident was opened
    assert row["status"] == "investigating"
    assert row["components"] == {"login": "major_outage"}
    assert row["updated_at"] == row["started_at"]  # no statement was added


# --- publish ----------------------------------------------------------------------------------


def test_publish_writes_the_page_and_the_api(
    pantau: Pantau, config: ConfigWriter, tmp_path: Path
) -> None:
    path = config.write()
    opened_id(pantau.run("-c", path, "incident", "open", "--component", "login", "-m", "Gagal"))
    out = tmp_path / "elsewhere"
    published = pantau.run("-c", path, "publish", "--out", out)
    assert published.code == 0, str(published)
    assert str(out / "index.html") in published.stdout
    assert (out / "index.html").is_file()
    summary = json.loads((out / "api" / "v2" / "summary.json").read_text(encoding="utf-8"))
    assert [c["id"] for c in summary["components"]] == ["home", "login"]
    [incident] = summary["incidents"]
    assert incident["status"] == "investigating"
    assert [c["id"] for c in incident["components"]] == ["login"]
    assert summary["status"]["indicator"] == "major"
    assert not config.site.exists()  # --out replaces [site] output_dir


# --- run ----------------------------------------------------------------------------------------


def test_run_for_opens_an_incident_for_a_failing_component(
    pantau: Pantau, config: ConfigWriter, surging_site: SimulatedSite
) -> None:
    path = config.write(
        [
            {
                "id": "login-page",
                "component": "login",
                "url": f"{surging_site.base_url}/login",
                "interval": "500ms",
                "timeout": "1s",
            }
        ]
    )
    started = time.monotonic()
    ran = pantau.run("-c", path, "run", "--for", "4")
    assert ran.code == 0, str(ran)
    assert time.monotonic() - started < 30
    listed, status = pantau.run_all(
        ["-c", path, "incident", "list", "--json"],
        ["-c", path, "status"],
    )
    open_incidents = [i for i in json_lines(listed) if i["resolved_at"] is None]
    assert [list(i["components"]) for i in open_incidents] == [["login"]], str(listed)
    assert open_incidents[0]["status"] == "investigating"
    assert status.code == 0, str(status)
    assert re.search(r"login\s*\W\s*major_outage", status.stdout), str(status)
    assert re.search(r"home\s*\W\s*operational", status.stdout), str(status)
    assert (config.site / "index.html").is_file()
    summary = json.loads((config.site / "api" / "v2" / "summary.json").read_text("utf-8"))
    assert summary["status"]["indicator"] != "none"
    # A clean stop logs no errors (the default log level shows warnings and errors).
    assert "Traceback" not in ran.stderr, str(ran)
    assert " ERROR " not in ran.stderr, str(ran)


def probe_results_stored(db: Path) -> int:
    """Rows in the probe_result table, read without writing (0 before the table exists)."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return int(conn.execute("SELECT count(*) FROM probe_result").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def test_run_stops_cleanly_on_sigterm_and_publishes(
    pantau: Pantau, config: ConfigWriter, healthy_site: SimulatedSite
) -> None:
    url = f"{healthy_site.base_url}/login"
    path = config.write([{"id": "login-page", "component": "login", "url": url, "interval": "1s"}])
    proc = pantau.popen("-c", path, "run")
    try:
        deadline = time.monotonic() + 30
        while probe_results_stored(config.db) == 0:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no probe result stored within 30 s"
            time.sleep(0.1)
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            stdout, stderr = proc.communicate(timeout=10)
        except TimeoutExpired:
            pytest.fail("pantau run did not stop within 10 s of SIGTERM")
        assert proc.returncode == 0, (stdout, stderr)
        assert time.monotonic() - signalled < 5
        assert "Traceback" not in stderr
    finally:
        stop_process(proc)
    assert (config.site / "index.html").is_file()  # the last publish on the way out
    assert (config.site / "api" / "v2" / "summary.json").is_file()


# --- secrets ------------------------------------------------------------------------------------


def test_secrets_reach_no_output_store_or_page(
    pantau: Pantau,
    config: ConfigWriter,
    tmp_path: Path,
    stub_server: Callable[..., StubServer],
    flaky_alert_receiver: AlertReceiver,
) -> None:
    target = stub_server(status=503)
    path = config.write(
        [
            {
                "id": "login-page",
                "component": "login",
                "url": target.url("/masuk"),
                "interval": "500ms",
                "timeout": "1s",
                "headers": {
                    "Authorization": "Bearer ${PANTAU_TEST_SECRET}",
                    "X-Api-Key": "${PANTAU_TEST_SECRET}",
                },
            }
        ],
        alerts={
            "notify": [
                f"json://127.0.0.1:{flaky_alert_receiver.port}/hook/${{PANTAU_TEST_SECRET}}"
            ],
            "backoff": "500ms",
            "group_wait": "200ms",
            "evaluation_interval": "200ms",
        },
        detection={"failures_to_down": 1, "passes_to_recover": 1},
    )
    pantau.env["PANTAU_TEST_SECRET"] = SECRET
    outcomes = [
        *pantau.run_all(["-c", path, "validate"], ["-c", path, "check", "--json"]),
        pantau.run("-c", path, "-vv", "run", "--for", "3"),
    ]
    outcomes += pantau.run_all(
        ["-c", path, "publish"],
        ["-c", path, "incident", "list", "--json"],
        ["-c", path, "incident", "show", "1", "--json"],
        ["-c", path, "status"],
    )
    assert [o.code for o in outcomes] == [0, 1, 0, 0, 0, 0, 0], "\n".join(map(str, outcomes))
    # The secret was used where it belongs: in the probe's headers and the alert's URL.
    assert target.requests
    for _, headers in target.requests:
        assert headers.get("Authorization") == f"Bearer {SECRET}"
        assert headers.get("X-Api-Key") == SECRET
    assert flaky_alert_receiver.refused == 1
    assert flaky_alert_receiver.messages, "no alert arrived"
    assert flaky_alert_receiver.messages[0].path == f"/hook/{SECRET}"

    for outcome in outcomes:
        assert SECRET not in outcome.stdout + outcome.stderr, str(outcome)
    stored = sorted(tmp_path.glob("pantau.db*"))
    assert config.db in stored
    for file in stored:
        assert SECRET.encode() not in file.read_bytes(), file
    published = [f for f in config.site.rglob("*") if f.is_file()]
    assert config.site / "index.html" in published
    for file in published:
        assert SECRET.encode() not in file.read_bytes(), file


# --- demo ---------------------------------------------------------------------------------------


def test_demo_tells_the_whole_story(demo_run: DemoRun) -> None:
    remaining = DEMO_DEADLINE - (time.monotonic() - demo_run.started)
    try:
        stdout, stderr = demo_run.proc.communicate(timeout=max(remaining, 1))
    except TimeoutExpired:
        pytest.fail(f"pantau demo did not finish within {DEMO_DEADLINE:g} s")
    assert demo_run.proc.returncode == 0, (stdout, stderr)
    assert "opened" in stdout
    assert "public complaints spike" in stdout and "tied to the open incident" in stdout
    assert "label: confirmed" in stdout
    assert "resolved" in stdout
    for page in ("index.html", "en/index.html", "api/v2/summary.json", "incidents/1.html"):
        assert (demo_run.out / page).is_file(), page
