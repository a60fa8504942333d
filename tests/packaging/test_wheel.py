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
    assert "pantau = monitor.cli:main" in scripts


def test_the_installed_wheel_publishes_a_site_without_the_source_tree(
    wheel: Path, tmp_path: Path
) -> None:
    target = tmp_path / "installed"
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
    config = tmp_path / "config.toml"
    config.write_text(
        '[storage]\nurl = "sqlite:///' + str(tmp_path / "p.db") + '"\n'
        '[[components]]\nid = "login"\nname = { id = "Masuk", en = "Login" }\n'
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
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
    assert run.stdout.splitlines()[0].startswith(str(target))
    summary = json.loads((tmp_path / "site/api/v2/summary.json").read_text())
    assert [c["name"] for c in summary["components"]] == ["Masuk"]
