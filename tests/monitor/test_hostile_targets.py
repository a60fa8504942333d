"""Bad targets become classified results and the monitor keeps running.

One real loopback server misbehaves in a different way per path: hangs, resets,
garbage, redirect loops, 50 MB bodies. ``Engine.run`` probes all of them at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from monitor.alerts import AppriseNotifier
from monitor.clock import SystemClock
from monitor.config import parse_settings
from monitor.runtime import Engine, make_client
from monitor.store import Store

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        path = head.split(b" ", 2)[1].decode()
        await BEHAVIOURS[path](writer)
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        pass
    except asyncio.CancelledError:
        pass  # the server is closing at the end of the test
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def _hang(writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(30)


async def _reset(writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\npartial")
    await writer.drain()
    writer.transport.abort()  # RST mid-body


async def _garbage(writer: asyncio.StreamWriter) -> None:
    writer.write(b"\x00\xffnot http at all\r\n\r\n")
    await writer.drain()


async def _loop(writer: asyncio.StreamWriter) -> None:
    writer.write(
        b"HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    await writer.drain()


async def _huge(writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 52428800\r\nConnection: close\r\n\r\n")
    chunk = b"x" * 65536
    for _ in range(800):  # 50 MiB, stopped early when the probe hangs up
        writer.write(chunk)
        await writer.drain()


async def _ok(writer: asyncio.StreamWriter) -> None:
    writer.write(OK)
    await writer.drain()


BEHAVIOURS = {
    "/hang": _hang,
    "/reset": _reset,
    "/garbage": _garbage,
    "/loop": _loop,
    "/huge": _huge,
    "/ok": _ok,
}
EXPECTED = {
    "hang": "timeout",
    "reset": "connect",
    "garbage": "protocol",
    "loop": "redirect_loop",
    "huge": "too_large",
    "closed": "connect",
    "ok": None,
}


@pytest.fixture
async def hostile() -> AsyncIterator[str]:
    server = await asyncio.start_server(_handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(server.wait_closed(), 1)


async def test_every_bad_target_is_classified_and_probing_continues(
    hostile: str, tmp_path: Path
) -> None:
    checks = [
        {
            "id": name,
            "component": "home",
            "kind": "http",
            "url": f"{hostile}/{name}",
            "interval": "1s",
            "timeout": "1500ms",
        }
        for name in EXPECTED
        if name != "closed"
    ]
    checks.append(
        {
            "id": "closed",
            "component": "home",
            "kind": "http",
            "url": "http://127.0.0.1:9/",
            "interval": "1s",
            "timeout": "1500ms",
        }
    )
    settings = parse_settings({"components": [{"id": "home", "name": "Beranda"}], "checks": checks})
    store = Store(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        async with make_client(settings) as client:
            engine = Engine(
                settings, store, clock=SystemClock(), client=client, notifier=AppriseNotifier()
            )
            await engine.run(duration=4.5)
        with store.read() as tx:
            rows = tx.results()
    finally:
        store.close()
    errors: dict[str, set[str | None]] = defaultdict(set)
    for row in rows:
        errors[row.check_id].add(row.error)
    assert {check: classes for check, classes in errors.items()} == {
        k: {v} for k, v in EXPECTED.items()
    }
    counts = {check: sum(1 for r in rows if r.check_id == check) for check in EXPECTED}
    assert all(n >= 2 for n in counts.values()), counts  # every check kept running
