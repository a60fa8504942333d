"""Fixtures of the end-to-end CLI tests: the ``pantau`` command, config files in
``tmp_path`` and real servers on 127.0.0.1 (the demo's simulated site and alert receiver)."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cli_support import ConfigWriter, Pantau, StubServer

from monitor.demo.receiver import AlertReceiver
from monitor.demo.site import SimulatedSite

#: Far enough in the future that a simulated site never surges, or never recovers.
NEVER = 1e9


@pytest.fixture
def pantau(tmp_path: Path) -> Pantau:
    """The ``pantau`` command, run from ``tmp_path`` with no ``PANTAU_*`` variables set."""
    return Pantau(cwd=tmp_path)


@pytest.fixture
def config(tmp_path: Path) -> ConfigWriter:
    """Writes config files whose store (``pantau.db``) and site (``site/``) are in tmp_path."""
    return ConfigWriter(tmp_path)


@pytest.fixture
def healthy_site() -> Iterator[SimulatedSite]:
    """The demo's simulated site, never surging: every page answers 200."""
    site = SimulatedSite(wave_opens=NEVER, recovers=NEVER).start()
    yield site
    site.stop()


@pytest.fixture
def surging_site() -> Iterator[SimulatedSite]:
    """The simulated site surging from the start and never recovering:
    ``/login`` and ``/otp`` answer 503 and ``/signup`` hangs for 5 s."""
    site = SimulatedSite(wave_opens=0, recovers=NEVER, hang_seconds=5.0).start()
    yield site
    site.stop()


@pytest.fixture
def stub_server() -> Iterator[Callable[..., StubServer]]:
    """Makes :class:`StubServer` instances; each is stopped after the test."""
    made: list[StubServer] = []

    def make(*, status: int = 200, redirect_loop: bool = False) -> StubServer:
        made.append(StubServer(status=status, redirect_loop=redirect_loop))
        return made[-1]

    yield make
    for server in made:
        server.stop()


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound once, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def flaky_alert_receiver() -> Iterator[AlertReceiver]:
    """The demo's alert receiver; it refuses the first post (answers 500), then records."""
    receiver = AlertReceiver(fail_next=1).start()
    yield receiver
    receiver.stop()
