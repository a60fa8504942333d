"""Helpers shared by the engine tests (importable, unlike conftest)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from checks.base import ProbeResult

COMPONENTS = [
    {"id": "home", "name": {"id": "Beranda", "en": "Home"}},
    {"id": "login", "name": {"id": "Masuk", "en": "Login"}},
    {"id": "signup", "name": {"id": "Pendaftaran", "en": "Signup"}},
    {"id": "otp", "name": {"id": "OTP", "en": "OTP"}},
]


def make_config(
    *, notify: list[str] | None = None, base_url: str = "http://127.0.0.1:9", **extra: Any
) -> dict[str, Any]:
    checks = [
        {"id": "home-page", "component": "home", "url": f"{base_url}/"},
        {"id": "login-page", "component": "login", "url": f"{base_url}/login"},
        {"id": "login-api", "component": "login", "url": f"{base_url}/api/login"},
        {"id": "signup-page", "component": "signup", "url": f"{base_url}/signup"},
        {"id": "otp-page", "component": "otp", "url": f"{base_url}/otp"},
    ]
    for check in checks:
        check.update(kind="http", interval="1s", timeout="1s", retries=0)
    return {
        "components": COMPONENTS,
        "checks": checks,
        "alerts": {
            "notify": notify or [],
            "backoff": "2s",
            "max_backoff": "30s",
            "max_attempts": 3,
        },
        **extra,
    }


ResultFactory = Callable[..., ProbeResult]
