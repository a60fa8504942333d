"""A plain (non-editable) install gives a working ``pantau`` with its templates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("pantau-*.whl")
    return built


def test_the_wheel_carries_both_packages_the_templates_and_the_script(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        scripts = archive.read(entry_points).decode()
    assert "monitor/cli.py" in names
    assert "checks/http.py" in names
    assert "monitor/_templates/site/index.html.j2" in names
    assert "monitor/_templates/statements/investigating.id.txt" in names
    assert "monitor/_templates/style.css" in names
    # The schema's migrations: Alembic's environment, its template and every revision.
    assert "monitor/migrations/env.py" in names
    assert "monitor/migrations/script.py.mako" in names
    assert "monitor/migrations/versions/0001_initial.py" in names
    assert "pantau = monitor.cli:main" in scripts


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel installed into a folder of its own (put it on PYTHONPATH to use it)."""
    target = tmp_path_factory.mktemp("installed")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    return target


def test_the_installed_wheel_publishes_a_site_without_the_source_tree(
    installed: Path, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[storage]\nurl = "sqlite:///' + str(tmp_path / "p.db") + '"\n'
        '[[components]]\nid = "login"\nname = { id = "Masuk", en = "Login" }\n'
    )
    env = {**os.environ, "PYTHONPATH": str(installed)}
    code = "import monitor.resources as r, sys; print(r.templates_dir()); sys.argv[0] = 'pantau'; from monitor.cli import main; main()"
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "--config",
            str(config),
            "publish",
            "--out",
            str(tmp_path / "site"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[0].startswith(str(installed))
    summary = json.loads((tmp_path / "site/api/v2/summary.json").read_text())
    assert [c["name"] for c in summary["components"]] == ["Masuk"]


def test_the_installed_wheel_migrates_a_database_from_its_own_revisions(
    installed: Path, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[storage]\nurl = "sqlite:///' + str(tmp_path / "p.db") + '"\n')
    env = {**os.environ, "PYTHONPATH": str(installed)}
    code = (
        "import sys, monitor.schema as s; print(s.MIGRATIONS); sys.argv[0] = 'pantau'; "
        "from monitor.cli import main; main()"
    )
    outcomes = [
        subprocess.run(
            [sys.executable, "-c", code, "--config", str(config), "db", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        for args in (["upgrade"], ["current", "--json"])
    ]
    for run in outcomes:
        assert run.returncode == 0, run.stderr
        assert run.stdout.splitlines()[0].startswith(str(installed))
    assert outcomes[0].stdout.splitlines()[1].startswith("schema upgraded: none -> ")
    assert json.loads(outcomes[1].stdout.splitlines()[1])["state"] == "current"
