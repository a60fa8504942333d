"""A throwaway PKI for the TLS check tests, made with the ``openssl`` command.

``openssl ca`` is used (not ``openssl x509``) because only it sets exact ``notBefore``
and ``notAfter`` instants, which the expired and near-expiry cases need. Keys are P-256:
generating them takes milliseconds. Extensions follow RFC 5280 closely enough for
OpenSSL's strict mode (Python 3.13 turns on VERIFY_X509_STRICT by default).
"""

from __future__ import annotations

import os
import ssl
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

CA_NAME = "Pantau Test CA"
CA_ORG = "Pantau Tests"

_CONFIG = """\
[ca]
default_ca = test_ca

[test_ca]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/issued
serial = $dir/serial
certificate = $dir/ca.pem
private_key = $dir/ca.key
default_md = sha256
policy = any_name
unique_subject = no
copy_extensions = none
email_in_dn = no

[any_name]
commonName = supplied

[req]
distinguished_name = empty_dn
prompt = no

[empty_dn]

[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[leaf_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = $ENV::PANTAU_TEST_SAN

[self_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyCertSign
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
subjectAltName = $ENV::PANTAU_TEST_SAN
"""


@dataclass(frozen=True)
class Issued:
    """A certificate and its key on disk, with the validity period written into it."""

    cert: Path
    key: Path
    not_before: datetime
    not_after: datetime

    def server_context(self) -> ssl.SSLContext:
        """A server-side context presenting this certificate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


class TestPki:
    """A private CA in ``directory`` that issues leaf certificates with exact dates."""

    __test__ = False  # not a test class, despite the name

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        (directory / "issued").mkdir(parents=True)
        (directory / "index.txt").write_text("")
        (directory / "serial").write_text("1000\n")
        self.config = directory / "openssl.cnf"
        self.config.write_text(_CONFIG.format(dir=directory))
        self.ca_file = directory / "ca.pem"
        self.leaf_key = directory / "leaf.key"
        self._count = 0
        self._openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                      "-nodes", "-keyout", str(directory / "ca.key"), "-out", str(self.ca_file),
                      "-days", "30", "-subj", f"/O={CA_ORG}/CN={CA_NAME}",
                      "-extensions", "ca_ext")  # fmt: skip
        self._openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                      "-out", str(self.leaf_key))  # fmt: skip

    def leaf(
        self,
        *names: str,
        not_before: datetime,
        not_after: datetime,
    ) -> Issued:
        """A certificate for ``names`` (DNS names or IP addresses) signed by the CA."""
        stem = self._stem()
        csr, cert = stem.with_suffix(".csr"), stem.with_suffix(".pem")
        self._openssl("req", "-new", "-key", str(self.leaf_key), "-subj", f"/CN={names[0]}",
                      "-out", str(csr))  # fmt: skip
        self._openssl("ca", "-batch", "-notext", "-in", str(csr), "-out", str(cert),
                      "-startdate", _asn1(not_before), "-enddate", _asn1(not_after),
                      "-extensions", "leaf_ext", san=names)  # fmt: skip
        return Issued(cert, self.leaf_key, _seconds(not_before), _seconds(not_after))

    def self_signed(self, *names: str, days: int = 30) -> Issued:
        """A certificate for ``names`` that signs itself (trusted by nobody)."""
        cert = self._stem().with_suffix(".pem")
        self._openssl("req", "-x509", "-key", str(self.leaf_key), "-subj", f"/CN={names[0]}",
                      "-days", str(days), "-out", str(cert), "-extensions", "self_ext",
                      san=names)  # fmt: skip
        now = _seconds(datetime.now(UTC))
        return Issued(cert, self.leaf_key, now, now + timedelta(days=days))

    def _stem(self) -> Path:
        self._count += 1
        return self.directory / f"cert{self._count}"

    def _openssl(self, *args: str, san: tuple[str, ...] = ("unused.test",)) -> None:
        # The config reads the SAN from the environment; it must be set even when unused.
        entries = ",".join(_san(name) for name in san)
        env = {**os.environ, "PANTAU_TEST_SAN": entries, "OPENSSL_CONF": str(self.config)}
        subprocess.run(
            ["openssl", args[0], "-config", str(self.config), *args[1:]]
            if args[0] in {"req", "ca"}
            else ["openssl", *args],
            check=True,
            capture_output=True,
            env=env,
        )


def _san(name: str) -> str:
    return f"IP:{name}" if _looks_like_ip(name) else f"DNS:{name}"


def _looks_like_ip(name: str) -> bool:
    return name.replace(".", "").isdigit() or name.count(":") > 1


def _asn1(moment: datetime) -> str:
    """``YYYYMMDDHHMMSSZ`` in UTC, the form ``openssl ca -startdate`` takes."""
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%SZ")


def _seconds(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(microsecond=0)
