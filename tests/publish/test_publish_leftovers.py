"""A publish killed mid-way leaves its staging folder beside the site; a later publish
removes it once it is clearly abandoned (ten minutes old), never a fresh one."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

from monitor.config import parse_settings
from monitor.publish import LEFTOVER_AGE, publish_site
from monitor.store import Store


def test_a_later_publish_removes_folders_left_by_a_killed_one(tmp_path: Path) -> None:
    settings = parse_settings(
        {
            "site": {"output_dir": str(tmp_path / "site")},
            "components": [{"id": "login", "name": "Login"}],
        },
        env={},
    )
    stale = tmp_path / ".site.new-abandoned"
    old_tree = tmp_path / ".site.old-abandoned"
    fresh = tmp_path / ".site.new-in-progress"
    for folder in (stale, old_tree, fresh):
        folder.mkdir()
        (folder / "index.html").write_text("half")
    then = time.time() - LEFTOVER_AGE - 60
    for folder in (stale, old_tree):
        os.utime(folder, (then, then))
    store = Store(f"sqlite:///{tmp_path / 'pantau.db'}")
    try:
        publish_site(store, settings, now=datetime(2026, 9, 17, tzinfo=UTC))
    finally:
        store.close()
    assert (tmp_path / "site" / "index.html").is_file()
    assert not stale.exists() and not old_tree.exists()
    assert fresh.exists()  # maybe another publish at work: left alone
