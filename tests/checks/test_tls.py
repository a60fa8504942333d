"""The TLS check: real handshakes against servers on 127.0.0.1 with certificates made here.

A private CA (see ``tls_support.py``) issues the leaf certificates; the check trusts it
through ``ca_file``. OpenSSL judges dates against the system clock during the handshake;
the check judges them again against the injected clock, which the tests step to the exact
threshold instants.
"""

from __future__ import annotations

import gc
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from pydantic import ValidationError
from tls_support import CA_NAME, CA_ORG, Issued, TestPki

from checks import CHECK_KINDS, build_check
from checks.base import ErrorClass, ProbeContext, ProbeResult
from checks.tls import TlsCheck, TlsCheckSettings, classify_exception
from monitor.clock import ManualClock, SystemClock
from monitor.config import ConfigError, parse_settings

if TYPE_CHECKING:
    from conftest import RawServer

Serve = Callable[..., "RawServer"]
NAME = "pantau.test"
ISSUER = f"CN={CA_NAME}, O={CA_ORG}"
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Certificates:
    ca_file: Path
    valid: Issued  # 90 days left
    expiring: Issued  # 20 days left
    expired: Issued  # ended two days ago
    wrong_host: Issued  # for other.example
    self_signed: Issued
    for_ip: Issued  # for 127.0.0.1 itself


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    pki = TestPki(tmp_path_factory.mktemp("pki"))
    now = datetime.now(UTC)
    since = now - timedelta(hours=1)
    return Certificates(
        ca_file=pki.ca_file,
        valid=pki.leaf(NAME, not_before=since, not_after=now + 90 * DAY),
        expiring=pki.leaf(NAME, not_before=since, not_after=now + 20 * DAY),
        expired=pki.leaf(NAME, not_before=now - 30 * DAY, not_after=now - 2 * DAY),
        wrong_host=pki.leaf("other.example", not_before=since, not_after=now + 90 * DAY),
        self_signed=pki.self_signed(NAME),
        for_ip=pki.leaf("127.0.0.1", not_before=since, not_after=now + 90 * DAY),
    )


@pytest.fixture(scope="module", autouse=True)
def _no_leaked_resources() -> Iterator[None]:
    """Collect garbage after this module's tests, so an unclosed socket or transport
    caught in a reference cycle warns here (an error: warnings are errors) rather than in
    some other module. Once per module: a full collection costs ~0.15 s."""
    yield
    gc.collect()


def until_closed(conn: socket.socket, _server: RawServer) -> None:
    """After the handshake, wait for the client to hang up."""
    while conn.recv(1024):
        pass


def silent(_conn: socket.socket, server: RawServer) -> None:
    """Accept TCP and never say a word (no TLS handshake)."""
    server.stopping.wait()


def tls_settings(port: int, **fields: Any) -> TlsCheckSettings:
    data = {"id": "login-cert", "component": "login", "host": "127.0.0.1", "port": port}
    return TlsCheckSettings.model_validate({**data, **fields})


async def probe(
    client: httpx.AsyncClient, port: int, *, clock: Any = None, **fields: Any
) -> ProbeResult:
    ctx = ProbeContext(client=client, clock=clock or SystemClock())
    return await TlsCheck(tls_settings(port, **fields)).run(ctx)


def serve_cert(serve: Serve, issued: Issued) -> int:
    return serve(until_closed, tls=issued.server_context()).port


# --- valid and near expiry --------------------------------------------------------------


async def test_valid_certificate_is_ok_with_days_expiry_and_issuer(
    serve: Serve, client: httpx.AsyncClient, certs: Certificates
) -> None:
    port = serve_cert(serve, certs.valid)
    result = await probe(client, port, server_name=NAME, ca_file=str(certs.ca_file))
    assert (result.ok, result.degraded, result.error, result.state) == (True, False, None, "up")
    until = certs.valid.not_after.strftime("%Y-%m-%d %H:%M UTC")
    # 90 days minus the moments since the certificate was made: 89 whole days left.
    assert (
        result.detail
        == f"certificate for {NAME} valid 89 days more, until {until}, issued by {ISSUER}"
    )
    assert result.status_code is None
    assert result.latency_ms is not None and 0 < result.latency_ms < 2000
    assert (result.check_id, result.component_id) == ("login-cert", "login")


async def test_server_name_defaults_to_the_host(
    serve: Serve, client: httpx.AsyncClient, certs: Certificates
) -> None:
    port = serve_cert(serve, certs.for_ip)
    result = await probe(client, port, ca_file=str(certs.ca_file))
    assert result.ok and result.error is None
    assert result.detail.startswith("certificate for 127.0.0.1 valid 89 days more")


# Offsets from notAfter of a certificate valid 20 days, with warn_days = 14. The boundary:
# exactly warn_days left is still fine; one second less is degraded. notAfter itself is
# already expired, as OpenSSL counts it.
NEAR_EXPIRY = [
    pytest.param(-20 * DAY, "up", "valid 20 days more", id="day-0"),
    pytest.param(-14 * DAY, "up", "valid 14 days more", id="exactly-warn-days-left"),
    pytest.param(
        -14 * DAY + timedelta(seconds=1), "degraded", "expires in 13 days", id="one-second-less"
    ),
    pytest.param(-13 * DAY, "degraded", "expires in 13 days", id="a-week-later"),
    pytest.param(-DAY, "degraded", "expires in 1 day", id="one-day-left"),
    pytest.param(-timedelta(seconds=1), "degraded", "expires in less than a day", id="last-second"),
    pytest.param(timedelta(0), "down", "certificate expired on", id="at-not-after"),
    pytest.param(3 * DAY, "down", "certificate expired on", id="three-days-past"),
]


@pytest.mark.parametrize(("offset", "state", "wording"), NEAR_EXPIRY)
async def test_expiry_is_judged_by_the_injected_clock(
    serve: Serve,
    client: httpx.AsyncClient,
    certs: Certificates,
    offset: timedelta,
    state: str,
    wording: str,
) -> None:
    port = serve_cert(serve, certs.expiring)
    clock = ManualClock(certs.expiring.not_after + offset)
    result = await probe(client, port, clock=clock, server_name=NAME, ca_file=str(certs.ca_file))
    assert result.state == state, result.detail
    assert result.error == (None if state == "up" else ErrorClass.TLS)
    assert result.ok == (state != "down")
    assert wording in result.detail
    assert f"issued by {ISSUER}" in result.detail
    assert result.started_at == clock.now()


async def test_degraded_detail_names_the_expiry_and_threshold(
    serve: Serve, client: httpx.AsyncClient, certs: Certificates
) -> None:
    port = serve_cert(serve, certs.expiring)
    clock = ManualClock(certs.expiring.not_after - 6 * DAY)
    result = await probe(client, port, clock=clock, server_name=NAME, ca_file=str(certs.ca_file))
    until = certs.expiring.not_after.strftime("%Y-%m-%d %H:%M UTC")
    assert result.detail == (
        f"certificate for {NAME} expires in 6 days, on {until}, issued by {ISSUER} "
        "(warning from 14 days)"
    )


async def test_warn_days_zero_never_degrades(
    serve: Serve, client: httpx.AsyncClient, certs: Certificates
) -> None:
    port = serve_cert(serve, certs.expiring)
    clock = ManualClock(certs.expiring.not_after - timedelta(seconds=1))
    result = await probe(
        client, port, clock=clock, warn_days=0, server_name=NAME, ca_file=str(certs.ca_file)
    )
    assert (result.state, result.error) == ("up", None)


async def test_clock_before_not_before_is_a_failure(
    serve: Serve, client: httpx.AsyncClient, certs: Certificates
) -> None:
    port = serve_cert(serve, certs.expiring)
    clock = ManualClock(certs.expiring.not_before - timedelta(seconds=1))
    result = await probe(client, port, clock=clock, server_name=NAME, ca_file=str(certs.ca_file))
    assert (result.ok, result.error) == (False, ErrorClass.TLS)
    assert result.detail.startswith("certificate not valid before ")


# --- certificates OpenSSL rejects -----------------------------------------------------------


async def test_expired_certificate_fails_with_its_end_date(
    serve: Serve, client: httpx.AsyncClient, certs: Certificates
) -> None:
    port = serve_cert(serve, certs.expired)
    result = await probe(client, port, server_name=NAME, ca_file=str(certs.ca_file))
    until = certs.expired.not_after.strftime("%Y-%m-%d %H:%M UTC")
    assert (result.ok, result.error) == (False, ErrorClass.TLS)
    assert result.detail == f"certificate expired on {until}, issued by {ISSUER}"


@pytest.mark.parametrize(
    ("which", "trust_our_ca", "reason"),
    [
        pytest.param("self_signed", False, "self-signed certificate", id="self-signed"),
        pytest.param("self_signed", True, "self-signed certificate", id="self-signed-private-ca"),
        pytest.param(
            "valid", False, "unable to get local issuer certificate", id="unknown-private-ca"
        ),
    ],
)
async def test_untrusted_certificate_is_tls(
    serve: Serve,
    client: httpx.AsyncClient,
    certs: Certificates,
    which: str,
    trust_our_ca: bool,
    reason: str,
) -> None:
    port = serve_cert(serve, getattr(certs, which))
    trust = {"ca_file": str(certs.ca_file)} if trust_our_ca else {}
    result = await probe(client, port, server_name=NAME, **trust)
    assert (result.ok, result.error) == (False, ErrorClass.TLS)
    assert result.detail == f"certificate not trusted: {reason}"


async def test_certificate_for_another_host_is_tls(
    serve: Serve, client: httpx.AsyncClient, certs: Certificates
) -> None:
    port = serve_cert(serve, certs.wrong_host)
    result = await probe(client, port, server_name=NAME, ca_file=str(certs.ca_file))
    assert (result.ok, result.error) == (False, ErrorClass.TLS)
    assert result.detail == f"certificate is for other.example, not {NAME}"


async def test_connecting_by_ip_to_a_named_certificate_is_tls(
    serve: Serve, client: httpx.AsyncClient, certs: Certificates
) -> None:
    port = serve_cert(serve, certs.valid)
    result = await probe(client, port, ca_file=str(certs.ca_file))
    assert (result.error, result.detail) == (
        ErrorClass.TLS,
        f"certificate is for {NAME}, not 127.0.0.1",
    )


# --- transport faults -----------------------------------------------------------------------


async def test_refused_port_is_connect(client: httpx.AsyncClient, closed_port: int) -> None:
    result = await probe(client, closed_port)
    assert (result.ok, result.error) == (False, ErrorClass.CONNECT)
    assert result.detail.startswith("connection failed: ")


async def test_server_that_never_speaks_tls_times_out(
    serve: Serve, client: httpx.AsyncClient
) -> None:
    port = serve(silent).port
    start = time.monotonic()
    result = await probe(client, port, timeout="500ms")
    elapsed = time.monotonic() - start
    assert (result.ok, result.error) == (False, ErrorClass.TIMEOUT)
    assert result.detail == "timed out after 0.5 s, before the TLS handshake completed"
    assert 0.4 < elapsed < 2
    assert result.latency_ms is not None and 400 < result.latency_ms < 2000


async def test_plain_http_server_is_a_tls_handshake_failure(
    serve: Serve, client: httpx.AsyncClient
) -> None:
    def plain_http(conn: socket.socket, server: RawServer) -> None:
        conn.recv(4096)
        server.respond(conn, status="400 Bad Request")

    port = serve(plain_http).port
    result = await probe(client, port)
    assert (result.ok, result.error) == (False, ErrorClass.TLS)
    assert result.detail.startswith("TLS handshake failed: ")


async def test_vanished_ca_file_is_a_result_not_a_raise(
    serve: Serve, client: httpx.AsyncClient, certs: Certificates, tmp_path: Path
) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(certs.ca_file.read_bytes())
    check = TlsCheck(tls_settings(serve_cert(serve, certs.valid), ca_file=str(bundle)))
    bundle.unlink()
    result = await check.run(ProbeContext(client=client, clock=SystemClock()))
    assert (result.ok, result.error) == (False, ErrorClass.TLS)
    assert result.detail.startswith("cannot load CA bundle: ")


@pytest.mark.parametrize(
    ("exc", "error", "detail"),
    [
        (
            TimeoutError(),
            ErrorClass.TIMEOUT,
            "timed out after 2 s, before the TLS handshake completed",
        ),
        (
            socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
            ErrorClass.DNS,
            "name resolution failed: [Errno -2] Name or service not known",
        ),
        (
            ConnectionRefusedError(111, "Connection refused"),
            ErrorClass.CONNECT,
            "connection failed: [Errno 111] Connection refused",
        ),
        (
            OSError(101, "Network is unreachable"),
            ErrorClass.CONNECT,
            "connection failed: [Errno 101] Network is unreachable",
        ),
        (ssl.SSLError(1, "boom"), ErrorClass.TLS, "TLS handshake failed: boom"),
        (KeyError("notAfter"), ErrorClass.PROTOCOL, "unexpected KeyError: 'notAfter'"),
    ],
)
def test_classify_exception(exc: BaseException, error: ErrorClass, detail: str) -> None:
    assert classify_exception(exc, name=NAME, timeout=2.0) == (error, detail)


# --- settings -------------------------------------------------------------------------------


def test_settings_defaults() -> None:
    settings = TlsCheckSettings.model_validate(
        {"id": "cert", "component": "login", "host": "prakerja.go.id"}
    )
    assert (settings.kind, settings.port, settings.warn_days) == ("tls", 443, 14)
    assert (settings.server_name, settings.verify_name, settings.ca_file) == (
        None,
        "prakerja.go.id",
        None,
    )


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"warn_days": -1}, "warn_days", "greater than or equal to 0"),
        ({"host": None}, "host", "Field required"),
        ({"host": ""}, "host", "at least 1 character"),
        ({"host": "https://prakerja.go.id"}, "host", "not a host name"),
        ({"host": "prakerja.go.id:443"}, "host", "give the port in `port`"),
        ({"port": 0}, "port", "greater than or equal to 1"),
        ({"port": 70000}, "port", "less than or equal to 65535"),
        ({"server_name": "a b"}, "server_name", "not a host name"),
        ({"ca_file": "/nonexistent/ca.pem"}, "ca_file", "does not exist or is not a file"),
        ({"ca_file": "ca.pem"}, "ca_file", "give the CA bundle as an absolute path"),
        ({"hostname": "x"}, "hostname", "Extra inputs are not permitted"),
    ],
)
def test_settings_validation_errors(fields: dict[str, Any], field: str, message: str) -> None:
    data = {"id": "cert", "component": "login", "host": "prakerja.go.id", **fields}
    data = {key: value for key, value in data.items() if value is not None}
    with pytest.raises(ValidationError) as raised:
        TlsCheckSettings.model_validate(data)
    errors = {str(e["loc"][0]): e["msg"] for e in raised.value.errors()}
    assert message in errors[field], errors


def test_ipv6_literal_host_is_accepted() -> None:
    settings = tls_settings(443, host="::1")
    assert settings.verify_name == "::1"


def test_ca_file_that_is_not_pem_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "ca.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ValidationError, match="is not usable PEM"):
        tls_settings(443, ca_file=str(junk))


def test_relative_ca_file_is_taken_from_base_dir_in_the_context(certs: Certificates) -> None:
    settings = TlsCheckSettings.model_validate(
        {"id": "cert", "component": "login", "host": "h", "ca_file": certs.ca_file.name},
        context={"base_dir": certs.ca_file.parent},
    )
    assert settings.ca_file == certs.ca_file


def test_config_builds_a_tls_check_and_reports_key_paths(certs: Certificates) -> None:
    check = {"id": "cert", "component": "login", "kind": "tls", "host": "prakerja.go.id"}
    data = {"components": [{"id": "login", "name": "Masuk"}], "checks": [check]}
    built = build_check(parse_settings(data).checks[0])
    assert CHECK_KINDS["tls"] is TlsCheck
    assert isinstance(built, TlsCheck)
    assert built.settings.ca_file is None
    bad = {**check, "warn_days": -3}
    with pytest.raises(ConfigError) as raised:
        parse_settings({**data, "checks": [bad]})
    assert raised.value.errors == [
        ("checks[0](cert).warn_days", "Input should be greater than or equal to 0")
    ]
