"""Helpers of the social-source tests: settings, posts that are (not) complaints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from monitor.config import Settings, parse_settings

#: The bearer token of the tests' X app; it must appear in no error, row or log.
TOKEN = "AAAAAAAAAAAAAAAAAAAAAMLheAAAAAAA0%2BuSeid-SECRET-BEARER-TOKEN"
ENV = {"X_BEARER_TOKEN": TOKEN}

#: Posts the classifier takes for outage complaints, and posts it does not.
COMPLAINTS = (
    "prakerja error terus gak bisa login dari tadi",
    "Web prakerja down, OTP ga masuk2",
    "prakerja lemot banget pas daftar",
)
NOT_COMPLAINTS = (
    "Alhamdulillah lolos prakerja gelombang 70",
    "insentif prakerja sudah cair",
)


def social_settings(base_dir: Path, **social: Any) -> Settings:
    """Settings with ``[social]`` as given, paths taken from ``base_dir``."""
    return parse_settings({"social": social}, env=ENV, base_dir=base_dir)


def x_settings(base_dir: Path, **social: Any) -> Settings:
    return social_settings(base_dir, sources=["x"], bearer_token="${X_BEARER_TOKEN}", **social)


def file_settings(base_dir: Path, name: str = "posts.jsonl") -> Settings:
    return social_settings(base_dir, sources=["file"], file=name)
