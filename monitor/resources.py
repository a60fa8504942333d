"""Where the shipped templates live: ``templates/`` in a checkout, ``monitor/_templates`` in a wheel."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def templates_dir() -> Path:
    """Return the folder of shipped jinja2 templates and static assets."""
    installed = _PACKAGE_DIR / "_templates"
    if installed.is_dir():
        return installed
    return _PACKAGE_DIR.parent / "templates"
