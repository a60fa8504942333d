"""TLS certificate checks (``kind = "tls"``).

One probe opens a verifying TLS connection (the default trust store, or a private CA
bundle), reads the peer certificate and judges its dates against the injected clock.
OpenSSL verifies the chain, the host name and the dates (against the system's clock)
during the handshake; :func:`judge` then applies Pantau's own view of time, so tests
and replays can step a :class:`~monitor.clock.ManualClock` to the exact thresholds.

Verdicts:

* valid, and at least ``warn_days`` left: ok;
* valid, fewer than ``warn_days`` left: ok **and** degraded, class ``tls`` (degraded is
  not down). The boundary: exactly ``warn_days`` days left is still fine, one second
  less is degraded;
* expired (from the instant of ``notAfter``, as OpenSSL counts it), not yet valid,
  untrusted, or for another host: failure, class ``tls``;
* refused or unreachable: ``connect``; name resolution: ``dns``; no handshake within
  the check's ``timeout``: ``timeout``.

When OpenSSL rejects a certificate for its name or its dates, the reason alone does not
say which names or dates it holds, so a second, purely descriptive handshake (chain still
verified, names and dates not) reads them for the detail. The verdict never depends on it.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator

from checks.base import CheckSettings, ErrorClass, ProbeContext, ProbeResult

_DAY = timedelta(days=1)
#: Seconds a closing connection may take to exchange close_notify before it is aborted.
_CLOSE_GRACE = 1.0
#: OpenSSL's X509_V_FLAG_NO_CHECK_TIME (stable since 1.1.0); the ssl module names no
#: constant for it. Used only by the descriptive handshake, never for a verdict.
_NO_CHECK_TIME = 0x200000
# OpenSSL verify codes (X509_V_ERR_*) whose detail needs the certificate's names or dates.
_NOT_YET_VALID, _EXPIRED = 9, 10
_NAME_MISMATCH = frozenset({62, 64})  # HOSTNAME_MISMATCH, IP_ADDRESS_MISMATCH
# UNABLE_TO_GET_ISSUER_CERT, DEPTH_ZERO_SELF_SIGNED, SELF_SIGNED_IN_CHAIN,
# UNABLE_TO_GET_ISSUER_CERT_LOCALLY, UNABLE_TO_VERIFY_LEAF_SIGNATURE
_UNTRUSTED = frozenset({2, 18, 19, 20, 21})
_RDN_NAMES = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "stateOrProvinceName": "ST",
    "localityName": "L",
}
_NAMES_SHOWN = 3


class TlsCheckSettings(CheckSettings):
    """``[[checks]]`` of kind ``tls``: the certificate a server presents."""

    kind: Literal["tls"] = "tls"
    #: Host name or IP address to connect to (no scheme, no port).
    host: str = Field(min_length=1)
    #: TCP port of the TLS service.
    port: int = Field(default=443, ge=1, le=65535)
    #: Name sent as SNI and verified against the certificate; defaults to ``host``.
    server_name: str | None = Field(default=None, min_length=1)
    #: Fewer days than this left before expiry makes the result degraded (0: never).
    warn_days: int = Field(default=14, ge=0, le=3650)
    #: PEM bundle of the CAs to trust instead of the system's (for private CAs); checked
    #: at load. Give an absolute path: a relative one is resolved against ``base_dir`` of
    #: the validation context (the config file's folder) when the loader passes one, and
    #: refused otherwise.
    ca_file: Path | None = None

    @property
    def verify_name(self) -> str:
        """The name the certificate must be valid for."""
        return self.server_name or self.host

    @field_validator("host", "server_name")
    @classmethod
    def _bare_host(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if "://" in value or "/" in value or any(ch.isspace() for ch in value):
            raise ValueError(f"{value!r} is not a host name: give the bare name, no scheme or path")
        if ":" in value and not _is_ip(value):
            raise ValueError(f"{value!r} is not a host name: give the port in `port`")
        return value

    @field_validator("ca_file")
    @classmethod
    def _usable_bundle(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        base_dir = (info.context or {}).get("base_dir")
        if not value.is_absolute():
            if base_dir is None:
                raise ValueError(f"{value}: give the CA bundle as an absolute path")
            value = Path(base_dir) / value
        if not value.is_file():
            raise ValueError(f"CA bundle {value} does not exist or is not a file")
        try:
            ssl.create_default_context(cafile=value)
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(f"CA bundle {value} is not usable PEM: {exc}") from None
        return value


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class PeerCertificate:
    """What a verdict needs from a certificate: its names, issuer and validity period."""

    names: tuple[str, ...]
    issuer: str
    not_before: datetime
    not_after: datetime

    @classmethod
    def from_peercert(cls, cert: Mapping[str, Any]) -> PeerCertificate:
        """Read the dict of :meth:`ssl.SSLSocket.getpeercert`. Raises KeyError, ValueError."""
        names = tuple(value for kind, value in cert.get("subjectAltName", ()) if kind != "email")
        if not names:
            names = tuple(
                value for key, value in _attributes(cert["subject"]) if key == "commonName"
            )
        return cls(
            names=names,
            issuer=_distinguished_name(cert["issuer"]),
            not_before=_cert_time(cert["notBefore"]),
            not_after=_cert_time(cert["notAfter"]),
        )

    def describe_names(self) -> str:
        shown = ", ".join(self.names[:_NAMES_SHOWN]) or "no name"
        hidden = len(self.names) - _NAMES_SHOWN
        return f"{shown} (+{hidden} more)" if hidden > 0 else shown


def _attributes(name: Iterable[Iterable[tuple[str, str]]]) -> list[tuple[str, str]]:
    return [pair for rdn in name for pair in rdn]


def _distinguished_name(name: Iterable[Iterable[tuple[str, str]]]) -> str:
    # getpeercert lists the most general attribute first; people read CN first (RFC 4514).
    parts = [f"{_RDN_NAMES.get(key, key)}={value}" for key, value in _attributes(name)]
    return ", ".join(reversed(parts))[:200] or "an empty name"


def _cert_time(text: str) -> datetime:
    return datetime.fromtimestamp(ssl.cert_time_to_seconds(text), UTC)


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _days(days: int) -> str:
    return "less than a day" if days < 1 else f"{days} day" + ("" if days == 1 else "s")


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of one probe before it becomes a :class:`ProbeResult`."""

    ok: bool
    detail: str
    error: ErrorClass | None = None
    degraded: bool = False

    @classmethod
    def failure(cls, error: ErrorClass, detail: str) -> Verdict:
        return cls(ok=False, detail=detail, error=error)


def judge(cert: PeerCertificate, *, now: datetime, name: str, warn_days: int) -> Verdict:
    """Judge a certificate OpenSSL accepted by its dates as seen from ``now``."""
    issuer = f"issued by {cert.issuer}"
    if now < cert.not_before:
        return Verdict.failure(
            ErrorClass.TLS, f"certificate not valid before {_when(cert.not_before)}, {issuer}"
        )
    if now >= cert.not_after:  # OpenSSL, too, counts the notAfter instant as expired
        return Verdict.failure(
            ErrorClass.TLS, f"certificate expired on {_when(cert.not_after)}, {issuer}"
        )
    left = cert.not_after - now
    days, until = left // _DAY, _when(cert.not_after)
    if left < timedelta(days=warn_days):
        detail = (
            f"certificate for {name} expires in {_days(days)}, on {until}, {issuer} "
            f"(warning from {warn_days} days)"
        )
        return Verdict(ok=True, detail=detail, error=ErrorClass.TLS, degraded=True)
    return Verdict(
        ok=True, detail=f"certificate for {name} valid {_days(days)} more, until {until}, {issuer}"
    )


def classify_exception(
    exc: BaseException, *, name: str, timeout: float, cert: PeerCertificate | None = None
) -> tuple[ErrorClass, str]:
    """Map an exception of a TLS probe to an error class and a short detail.

    The single place where connection and handshake errors become Pantau's error
    classes. ``cert``, when known, names what the rejected certificate holds. Anything
    unforeseen is ``protocol``. Never raises.
    """
    if isinstance(exc, TimeoutError):
        return (
            ErrorClass.TIMEOUT,
            f"timed out after {timeout:g} s, before the TLS handshake completed",
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ErrorClass.TLS, _rejection(exc, name=name, cert=cert)
    if isinstance(exc, ssl.SSLError):
        return ErrorClass.TLS, f"TLS handshake failed: {_text(exc)}"
    if isinstance(exc, socket.gaierror):
        return ErrorClass.DNS, f"name resolution failed: {_text(exc)}"
    if isinstance(exc, OSError):
        return ErrorClass.CONNECT, f"connection failed: {_text(exc)}"
    return ErrorClass.PROTOCOL, f"unexpected {type(exc).__name__}: {_text(exc)}"


def _rejection(
    exc: ssl.SSLCertVerificationError, *, name: str, cert: PeerCertificate | None
) -> str:
    code, reason = exc.verify_code, str(exc.verify_message or _text(exc))
    issuer = f", issued by {cert.issuer}" if cert else ""
    if code in _NAME_MISMATCH:
        held = cert.describe_names() if cert else "another name"
        return f"certificate is for {held}, not {name}"
    if code == _EXPIRED:
        return (
            f"certificate expired on {_when(cert.not_after)}{issuer}"
            if cert
            else "certificate expired (by this host's clock)"
        )
    if code == _NOT_YET_VALID:
        start = f" before {_when(cert.not_before)}" if cert else " yet"
        return f"certificate not valid{start}{issuer}"
    if code in _UNTRUSTED:
        return f"certificate not trusted: {reason}"
    return f"certificate verify failed: {reason}"


def _text(exc: BaseException) -> str:
    try:
        text = str(exc).strip()
    except Exception:  # a broken __str__ must not turn a result into a raise
        text = ""
    return text[:200] or type(exc).__name__


def _needs_a_look(exc: BaseException) -> bool:
    return isinstance(exc, ssl.SSLCertVerificationError) and (
        exc.verify_code in _NAME_MISMATCH or exc.verify_code in (_EXPIRED, _NOT_YET_VALID)
    )


def client_context(ca_file: Path | None, *, descriptive: bool = False) -> ssl.SSLContext:
    """A verifying client context: the system's trust store, or only ``ca_file``.

    ``descriptive`` contexts still verify the chain but neither the name nor the dates:
    they serve to read what a rejected certificate holds. Raises OSError and ssl.SSLError
    when ``ca_file`` cannot be read.
    """
    stamp = ca_file.stat().st_mtime_ns if ca_file else 0
    return _cached_context(ca_file, stamp, descriptive)


# Loading the system trust store costs ~60 ms and ~1 MB; a thousand checks share one
# context per bundle (keyed by mtime, so a replaced bundle is read again).
@functools.lru_cache(maxsize=32)
def _cached_context(ca_file: Path | None, _mtime_ns: int, descriptive: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file)
    if descriptive:
        context.check_hostname = False
        context.verify_flags |= _NO_CHECK_TIME
    return context


async def _close(writer: asyncio.StreamWriter, deadline: float) -> None:
    """Close politely (close_notify both ways) within ``_CLOSE_GRACE`` and ``deadline``;
    then abort: a peer that never answers the close must not stretch the probe."""
    writer.close()
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout_at(min(deadline, loop.time() + _CLOSE_GRACE)):
            await writer.wait_closed()
    except TimeoutError:
        writer.transport.abort()
    except OSError:  # a peer that resets is no failure
        pass


class TlsCheck:
    """Connect with TLS and judge the server's certificate."""

    config_model: ClassVar[type[CheckSettings]] = TlsCheckSettings

    def __init__(self, settings: TlsCheckSettings) -> None:
        self._settings = settings

    @property
    def settings(self) -> TlsCheckSettings:
        return self._settings

    async def run(self, ctx: ProbeContext) -> ProbeResult:
        """Probe once and return a classified result. Never raises (only cancellation)."""
        s = self._settings
        now = ctx.clock.now()  # read once: the verdict and the result share this instant
        verdict, latency_ms = await self._attempt(ctx, now=now)
        return ProbeResult(
            check_id=s.id,
            component_id=s.component,
            started_at=now,
            ok=verdict.ok,
            latency_ms=latency_ms,
            error=verdict.error,
            detail=verdict.detail,
            degraded=verdict.degraded,
            region=ctx.region,
        )

    async def _attempt(self, ctx: ProbeContext, *, now: datetime) -> tuple[Verdict, float | None]:
        """Return the verdict and the time in ms from connecting until the handshake
        completed or failed (None when no connection was tried)."""
        s = self._settings
        try:
            context = client_context(s.ca_file)
        except (OSError, ssl.SSLError) as exc:  # the bundle vanished or broke since loading
            return Verdict.failure(ErrorClass.TLS, f"cannot load CA bundle: {_text(exc)}"), None
        start = ctx.clock.monotonic()
        deadline = asyncio.get_running_loop().time() + s.timeout.total_seconds()
        try:
            peer = await self._handshake(context, deadline)
        except Exception as exc:
            latency_ms = (ctx.clock.monotonic() - start) * 1000.0
            return await self._explain(exc, deadline), latency_ms
        latency_ms = (ctx.clock.monotonic() - start) * 1000.0
        try:
            cert = PeerCertificate.from_peercert(peer)
        except Exception as exc:  # a certificate we cannot read must not become a raise
            detail = f"unreadable certificate: {type(exc).__name__} {_text(exc)}"
            return Verdict.failure(ErrorClass.PROTOCOL, detail), latency_ms
        return judge(cert, now=now, name=s.verify_name, warn_days=s.warn_days), latency_ms

    async def _handshake(self, context: ssl.SSLContext, deadline: float) -> Mapping[str, Any]:
        """Connect, complete the handshake and return the peer certificate's dict.

        Raises what the connection raises, TimeoutError past ``deadline``, and
        ssl.SSLError when the server sent no certificate.
        """
        s = self._settings
        async with asyncio.timeout_at(deadline):
            _reader, writer = await asyncio.open_connection(
                s.host,
                s.port,
                ssl=context,
                server_hostname=s.verify_name,
                ssl_shutdown_timeout=_CLOSE_GRACE,
            )
        try:
            peer: Mapping[str, Any] | None = writer.get_extra_info("peercert")
        finally:
            await _close(writer, deadline)
        if not peer:
            raise ssl.SSLError("the server sent no certificate")
        return peer

    async def _explain(self, exc: Exception, deadline: float) -> Verdict:
        """Classify a failed probe; read the rejected certificate when the detail needs it."""
        cert = await self._look(deadline) if _needs_a_look(exc) else None
        s = self._settings
        error, detail = classify_exception(
            exc, name=s.verify_name, timeout=s.timeout.total_seconds(), cert=cert
        )
        return Verdict.failure(error, detail)

    async def _look(self, deadline: float) -> PeerCertificate | None:
        """The certificate, read with a descriptive context within what is left of the
        timeout; None when that fails too (the detail then says less)."""
        try:
            context = client_context(self._settings.ca_file, descriptive=True)
            return PeerCertificate.from_peercert(await self._handshake(context, deadline))
        except Exception:  # only the wording of the detail depends on this
            return None
