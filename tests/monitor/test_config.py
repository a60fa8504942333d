"""Config parsing: one frozen tree, every error with its key path."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from checks import CHECK_KINDS
from monitor.config import ConfigError, load_settings, parse_settings
from monitor.fields import parse_duration

ROOT = Path(__file__).resolve().parents[2]

COMPONENTS = [{"id": "login", "name": {"id": "Masuk", "en": "Login"}}]


def _check(**extra: object) -> dict[str, object]:
    return {
        "id": "login-page",
        "component": "login",
        "kind": "http",
        "url": "http://127.0.0.1/",
        **extra,
    }


def _errors(data: dict[str, object], **kwargs: object) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        parse_settings(data, **kwargs)  # type: ignore[arg-type]
    return dict(info.value.errors)


def test_example_config_is_valid_for_the_prakerja_case() -> None:
    settings = load_settings(ROOT / "config.toml", env={})
    assert [c.name.get("id") for c in settings.components] == [
        "Beranda",
        "Masuk",
        "Pendaftaran",
        "OTP",
    ]
    assert [c.name.get("en") for c in settings.components] == ["Home", "Login", "Signup", "OTP"]
    kinds = {c.id: c.kind for c in settings.checks}
    assert {kinds[i] for i in ("home-page", "login-page", "signup-page", "otp-page")} == {"http"}
    assert all(kind in CHECK_KINDS for kind in kinds.values())
    assert settings.site.timezone == "Asia/Jakarta"


def test_defaults_follow_the_design() -> None:
    settings = parse_settings({"components": COMPONENTS, "checks": [_check()]})
    check = settings.checks[0]
    assert settings.storage.url.reveal() == "sqlite:///pantau.db"
    assert settings.site.languages == ("id", "en")
    assert settings.site.publish_interval == timedelta(seconds=30)
    assert check.expect_status.accepts(200) and check.expect_status.accepts(399)
    assert not check.expect_status.accepts(400)
    assert check.max_body_bytes == 1024 * 1024
    assert settings.detection.failures_to_down == 2 and settings.detection.passes_to_recover == 2


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("30s", 30), ("2m", 120), ("1h", 3600), (15, 15), (0.25, 0.25), ("1.5s", 1.5)],
)
def test_durations_take_units_or_seconds(text: object, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "soon", "-1s", 0, "10 parsecs", True, "5 m s"])
def test_bad_durations_are_refused(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_every_error_is_reported_with_its_key_path() -> None:
    errors = _errors(
        {
            "site": {"colour": "red", "timezone": "Mars/Olympus"},
            "components": COMPONENTS,
            "checks": [_check(interval="soon", bogus=1), _check(id="other", component="nope")],
        }
    )
    assert errors["site.colour"] == "unknown key"
    assert "unknown time zone" in errors["site.timezone"]
    assert "invalid duration" in errors["checks[0](login-page).interval"]
    assert errors["checks[0](login-page).bogus"] == "unknown key"
    assert "unknown component 'nope'" in errors["checks[1](other).component"]


def test_missing_keys_and_unknown_kinds_are_named() -> None:
    errors = _errors(
        {"components": COMPONENTS, "checks": [{"id": "x", "component": "login", "kind": "ftp"}]}
    )
    assert any(path.startswith("checks[0](x)") for path in errors)


def test_duplicate_ids_are_refused() -> None:
    errors = _errors({"components": COMPONENTS * 2, "checks": [_check(), _check()]})
    assert "duplicate component id" in errors["components[1](login).id"]
    assert "duplicate check id" in errors["checks[1](login-page).id"]


def test_secrets_resolve_from_the_environment_and_are_masked() -> None:
    settings = parse_settings(
        {
            "components": COMPONENTS,
            "checks": [_check(headers={"Authorization": "Bearer ${API_TOKEN}"})],
        },
        env={"API_TOKEN": "s3cr3t-value"},
    )
    header = settings.checks[0].headers["Authorization"]
    assert header.reveal() == "Bearer s3cr3t-value"
    assert "s3cr3t-value" not in repr(settings)
    assert "s3cr3t-value" not in str(header)
    assert "s3cr3t-value" not in settings.model_dump_json()


def test_a_missing_secret_variable_is_a_clear_error() -> None:
    errors = _errors(
        {
            "components": COMPONENTS,
            "checks": [_check(headers={"Authorization": "Bearer ${NOT_SET_ANYWHERE}"})],
        },
        env={},
    )
    assert (
        errors["checks[0](login-page).headers.Authorization"]
        == "environment variable NOT_SET_ANYWHERE is not set"
    )


def test_settings_are_frozen() -> None:
    settings = parse_settings({"components": COMPONENTS})
    with pytest.raises(ValidationError):
        settings.site.timezone = "UTC"  # type: ignore[misc]


def test_unreadable_and_malformed_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[site\ntitle = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad)


def test_localized_text_falls_back_to_the_other_language() -> None:
    settings = parse_settings({"components": [{"id": "otp", "name": {"id": "Kode OTP"}}]})
    assert settings.components[0].name.get("en") == "Kode OTP"
    errors = _errors({"components": [{"id": "otp", "name": {}}]})
    assert "at least one language" in errors["components[0](otp).name"]


@pytest.mark.parametrize(
    ("spec", "accepted", "refused"),
    [
        ("200-299", [200, 299], [300, 404]),
        ([200, 204], [200, 204], [201]),
        ("200,301-302", [301], [303]),
    ],
)
def test_expect_status_ranges(spec: object, accepted: list[int], refused: list[int]) -> None:
    settings = parse_settings({"components": COMPONENTS, "checks": [_check(expect_status=spec)]})
    ranges = settings.checks[0].expect_status
    assert all(ranges.accepts(code) for code in accepted)
    assert not any(ranges.accepts(code) for code in refused)


def test_bad_status_range_is_refused() -> None:
    errors = _errors({"components": COMPONENTS, "checks": [_check(expect_status="2xx")]})
    assert "invalid status" in errors["checks[0](login-page).expect_status"]


def test_a_relative_sqlite_file_is_taken_from_the_config_folder(tmp_path: Path) -> None:
    config = tmp_path / "etc" / "config.toml"
    config.parent.mkdir()
    config.write_text('[storage]\nurl = "sqlite:///data/pantau.db"\n')
    settings = load_settings(config)
    assert settings.database_url() == f"sqlite:///{tmp_path / 'etc' / 'data' / 'pantau.db'}"
    absolute = parse_settings({"storage": {"url": "sqlite:////var/lib/pantau.db"}})
    assert absolute.database_url() == "sqlite:////var/lib/pantau.db"
    postgres = parse_settings(
        {"storage": {"url": "postgresql+psycopg://u:${PW}@db/p"}}, env={"PW": "x"}
    )
    assert postgres.database_url() == "postgresql+psycopg://u:x@db/p"


def test_a_check_without_kind_is_an_http_check() -> None:
    settings = parse_settings(
        {
            "components": COMPONENTS,
            "checks": [{"id": "x", "component": "login", "url": "http://127.0.0.1/"}],
        }
    )
    assert settings.checks[0].kind == "http"


def test_an_unknown_kind_names_the_registered_ones() -> None:
    errors = _errors(
        {"components": COMPONENTS, "checks": [{"id": "x", "component": "login", "kind": "ftp"}]}
    )
    (message,) = errors.values()
    assert "'http'" in message
    assert "'flow'" in message
    assert "'tls'" in message
