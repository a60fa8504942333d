"""Probe kinds. Each kind is one module; :data:`CHECK_KINDS` maps config ``kind`` to class.

Adding a kind means one new module and one line here (a test asserts each
registered kind has tests).
"""

from __future__ import annotations

from checks.base import Check, CheckSettings, ErrorClass, ProbeContext, ProbeResult
from checks.flow import FlowCheck
from checks.http import HttpCheck
from checks.tls import TlsCheck

CHECK_KINDS: dict[str, type[Check]] = {
    "flow": FlowCheck,
    "http": HttpCheck,
    "tls": TlsCheck,
}


def build_check(settings: CheckSettings) -> Check:
    """Instantiate the check class registered for ``settings.kind``."""
    cls = CHECK_KINDS[settings.kind]
    return cls(settings)  # type: ignore[call-arg]


__all__ = [
    "CHECK_KINDS",
    "Check",
    "CheckSettings",
    "ErrorClass",
    "ProbeContext",
    "ProbeResult",
    "build_check",
]
