"""``pantau complaints`` from the real command: import, classify, detect, samples, and the
social signal in ``pantau status``. Post text stays internal: never on the published site."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cli_support import ConfigWriter, Pantau

POSTS = [
    {"id": "1", "text": "prakerja ga bisa login dari tadi, eror mulu", "created_at": "2026-09-17T07:01:02Z", "author": "warga4242"},
    {"id": "2", "text": "alhamdulillah lolos gelombang 9 prakerja", "created_at": "2026-09-17T07:01:30+07:00"},
    {"id": "3", "text": "kode otp prakerja gk masuk2, udh 3x kirim ulang", "created_at": "1789628520", "url": "https://t.co/x1"},
]  # fmt: skip


def _jsonl(path: Path, posts: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(p) + "\n" for p in posts), encoding="utf-8")
    return path


def test_import_is_deduplicated_and_a_malformed_file_imports_nothing(
    pantau: Pantau, config: ConfigWriter, tmp_path: Path
) -> None:
    path = config.write()
    good = _jsonl(tmp_path / "export.jsonl", POSTS)
    first = pantau.run("-c", path, "complaints", "import", good)
    assert first.code == 0, str(first)
    assert "imported 3 post(s)" in first.stdout and "2 complaint(s)" in first.stdout
    again = pantau.run("-c", path, "complaints", "import", good)
    assert "imported 0 post(s)" in again.stdout and "3 already known" in again.stdout
    bad = _jsonl(
        tmp_path / "bad.jsonl",
        [
            {"id": "9", "text": "web prakerja down", "created_at": "2026-09-17T08:00:00Z"},
            {"id": "10", "text": "prakerja error", "created_at": "kemarin"},
        ],
    )
    refused = pantau.run("-c", path, "complaints", "import", bad)
    assert refused.code == 2
    assert "line 2" in refused.stderr and "nothing imported" in refused.stderr
    samples = pantau.run(
        "-c", path, "complaints", "samples", "--since", "100000h", "--all", "--json"
    )
    rows = [json.loads(line) for line in samples.lines()]
    assert {r["text"] for r in rows} == {p["text"] for p in POSTS}  # nothing from bad.jsonl
    login = next(r for r in rows if r["author"] == "warga4242")
    assert login["complaint"] is True and "login" in login["topics"]
    # The comms team sees posts; the public page never does.
    assert pantau.run("-c", path, "publish").code == 0
    for page in config.site.rglob("*"):
        if page.is_file():
            text = page.read_text(encoding="utf-8", errors="replace")
            assert "warga4242" not in text and "eror mulu" not in text


def test_classify_reads_lines_and_prints_json_lines(pantau: Pantau, config: ConfigWriter) -> None:
    lines = "Susah amat daftar prakerja webnya error gini\n\nmood lagi down banget hari ini\n"
    result = pantau.run("-c", config.write(), "complaints", "classify", stdin=lines)
    assert result.code == 0, str(result)
    first, second = (json.loads(line) for line in result.lines())
    assert first == {
        "text": "Susah amat daftar prakerja webnya error gini",
        "complaint": True,
        "topics": ["signup", "down"],
    }
    assert second["complaint"] is False and second["topics"] == []


def test_detect_prints_one_object_per_spike(
    pantau: Pantau, config: ConfigWriter, tmp_path: Path
) -> None:
    rng = random.Random(5)
    start = datetime(2026, 9, 1, tzinfo=UTC)
    rows = ["timestamp,value"]
    spike_at = start + timedelta(days=3, hours=14)
    for i in range(5 * 288):
        at = start + timedelta(minutes=5 * i)
        value = rng.randint(8, 14)
        if spike_at <= at < spike_at + timedelta(minutes=30):
            value = 120
        rows.append(f"{at.isoformat()},{value}")
    series = tmp_path / "series.csv"
    series.write_text("\n".join(rows) + "\n")
    result = pantau.run("-c", config.write(), "complaints", "detect", "--csv", series)
    assert result.code == 0, str(result)
    (spike,) = [json.loads(line) for line in result.lines()]
    assert set(spike) == {"timestamp", "value", "expected", "score"}
    assert datetime.fromisoformat(spike["timestamp"]) == spike_at
    assert spike["value"] == 120 and spike["expected"] < 20
    broken = tmp_path / "broken.csv"
    broken.write_text("timestamp,value\n2026-09-01T00:00:00Z,3\n2026-09-01T00:05:00Z,many\n")
    refused = pantau.run("-c", config.write(), "complaints", "detect", "--csv", broken)
    assert refused.code == 2 and ":3:" in refused.stderr


def test_status_shows_the_social_signal(pantau: Pantau, config: ConfigWriter) -> None:
    quiet = pantau.run("-c", config.write(), "status")
    assert "social signal: not configured" in quiet.stdout
    path = config.write(
        name="social.toml",
        tables=[
            ("[social]", {"sources": ["file"], "file": "missing.jsonl", "poll_interval": "1s"})
        ],
    )
    assert pantau.run("-c", path, "run", "--for", "2").code == 0
    status = pantau.run("-c", path, "status")
    assert "social signal: UNAVAILABLE" in status.stdout
    assert "file: unavailable" in status.stdout and "missing.jsonl" in status.stdout


def test_an_import_the_store_refuses_exits_2_and_imports_nothing(
    pantau: Pantau, config: ConfigWriter, tmp_path: Path
) -> None:
    import sqlite3

    path = config.write()
    assert pantau.run("-c", path, "db", "upgrade").code == 0
    with sqlite3.connect(config.db) as db:  # the store breaks under the import (a trigger)
        db.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON complaint_count "
            "BEGIN SELECT RAISE(ABORT, 'disk trouble'); END"
        )
    refused = pantau.run("-c", path, "complaints", "import", _jsonl(tmp_path / "e.jsonl", POSTS))
    assert refused.code == 2, str(refused)
    assert "nothing imported" in refused.stderr and "Traceback" not in refused.stderr
    with sqlite3.connect(config.db) as db:
        assert db.execute("SELECT count(*) FROM complaint_post").fetchone() == (0,)
