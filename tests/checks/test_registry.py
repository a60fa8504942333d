"""The check seam: every registered kind is wired into config and has its own tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from checks import CHECK_KINDS, build_check
from checks.base import CheckSettings
from monitor.config import parse_settings

HERE = Path(__file__).resolve().parent


@pytest.mark.parametrize("kind", sorted(CHECK_KINDS))
def test_every_registered_kind_has_a_test_module(kind: str) -> None:
    assert (HERE / f"test_{kind}.py").is_file(), (
        f"checks kind {kind!r} has no tests/checks/test_{kind}.py"
    )


@pytest.mark.parametrize("kind", sorted(CHECK_KINDS))
def test_every_registered_kind_is_accepted_by_the_config(kind: str) -> None:
    model = CHECK_KINDS[kind].config_model
    assert issubclass(model, CheckSettings)
    assert model.model_fields["kind"].default == kind


def test_config_builds_the_registered_class() -> None:
    settings = parse_settings(
        {
            "components": [{"id": "login", "name": "Masuk"}],
            "checks": [
                {
                    "id": "login-page",
                    "component": "login",
                    "kind": "http",
                    "url": "http://127.0.0.1/",
                }
            ],
        }
    )
    check = build_check(settings.checks[0])
    assert isinstance(check, CHECK_KINDS["http"])
    assert check.settings is settings.checks[0]
