"""``pantau incident ... --post-x``: the status page is updated first, then X.

Run in-process (typer's runner, the same ``pantau`` app) so that ``responses`` can stand
in for the X API v2: no request leaves the process.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import responses
from cli_support import ConfigWriter
from typer.testing import CliRunner

from monitor.cli import app

TWEETS = "https://api.twitter.com/2/tweets"
SECRETS = {
    "X_API_KEY": "ak-SECRET-4f1c",
    "X_API_SECRET": "as-SECRET-77d0",
    "X_ACCESS_TOKEN": "at-SECRET-9c3e",
    "X_ACCESS_TOKEN_SECRET": "ats-SECRET-31aa",
}
X_TABLE = (
    "[incidents.x]",
    {
        "api_key": "${X_API_KEY}",
        "api_secret": "${X_API_SECRET}",
        "access_token": "${X_ACCESS_TOKEN}",
        "access_token_secret": "${X_ACCESS_TOKEN_SECRET}",
    },
)
BASE = "https://status.prakerja.example"


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    return CliRunner()


def _created(post_id: str) -> dict[str, object]:
    return {"data": {"id": post_id, "text": "..."}}


def _bodies(mock: responses.RequestsMock) -> list[dict[str, object]]:
    return [json.loads(call.request.body or "{}") for call in mock.calls]


def _show(cli: CliRunner, path: Path, incident: int = 1) -> dict[str, object]:
    result = cli.invoke(app, ["-c", str(path), "incident", "show", str(incident), "--json"])
    assert result.exit_code == 0, result.output
    data: dict[str, object] = json.loads(result.stdout)
    return data


def test_open_update_and_retry_post_to_x_after_the_page_has_the_statement(
    cli: CliRunner, config: ConfigWriter
) -> None:
    path = config.write(site={"base_url": BASE}, tables=[X_TABLE])
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, TWEETS, json=_created("1850000000000000001"), status=201)
        opened = cli.invoke(
            app,
            [
                "-c", str(path), "incident", "open", "--component", "login",
                "--message", "Masuk gagal untuk sebagian pengguna.",
                "--message-en", "Login is failing for some users.", "--post-x",
            ],
        )  # fmt: skip
        assert opened.exit_code == 0, opened.output
        (body,) = _bodies(mock)
    assert "Masuk gagal untuk sebagian pengguna." in str(body["text"])
    assert "Login is failing for some users." in str(body["text"])
    assert f"{BASE}/incidents/1.html" in str(body["text"])
    assert "posted to X: https://x.com/i/web/status/1850000000000000001" in opened.stdout

    # X refuses the next one as duplicate content: the page has the update anyway.
    duplicate = {
        "detail": "You are not allowed to create a Tweet with duplicate content.",
        "type": "about:blank",
        "title": "Forbidden",
        "status": 403,
    }
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, TWEETS, json=duplicate, status=403)
        updated = cli.invoke(
            app,
            [
                "-c", str(path), "incident", "update", "1", "--status", "identified",
                "--template", "traffic-surge", "--post-x",
            ],
        )  # fmt: skip
    assert updated.exit_code == 1
    assert "incident #1 is now identified" in updated.stdout
    assert "duplicate content (403)" in updated.stderr
    assert "Retry with: pantau incident post-x 2" in updated.stderr
    shown = _show(cli, path)
    assert shown["status"] == "identified"
    posts = shown["x_posts"]
    assert isinstance(posts, list)
    assert [(p["status"], p["post_ids"]) for p in posts] == [
        ("posted", ["1850000000000000001"]),
        ("failed", []),
    ]
    published = cli.invoke(app, ["-c", str(path), "publish"])
    assert published.exit_code == 0, published.output
    assert "Lonjakan pengunjung" in (config.site / "incidents/1.html").read_text()

    with responses.RequestsMock() as mock:
        mock.add(responses.POST, TWEETS, json=_created("1850000000000000002"), status=201)
        mock.add(responses.POST, TWEETS, json=_created("1850000000000000003"), status=201)
        retried = cli.invoke(app, ["-c", str(path), "incident", "post-x", "2"])
        bodies = _bodies(mock)
    assert retried.exit_code == 0, retried.output
    assert "Lonjakan pengunjung" in str(bodies[0]["text"])
    # a long bilingual statement is a thread: the second post replies to the first
    assert bodies[-1]["reply"] == {"in_reply_to_tweet_id": "1850000000000000002"}
    for secret in SECRETS.values():
        assert secret not in opened.output + updated.output + retried.output
        assert secret.encode() not in config.db.read_bytes()


def test_rate_limited_and_unauthorized_posts_are_reported(
    cli: CliRunner, config: ConfigWriter
) -> None:
    path = config.write(site={"base_url": BASE}, tables=[X_TABLE])
    created = cli.invoke(
        app, ["-c", str(path), "incident", "open", "--component", "login", "-m", "Masuk gagal."]
    )
    assert created.exit_code == 0, created.output
    limited = {"title": "Too Many Requests", "detail": "Too Many Requests", "status": 429}
    with responses.RequestsMock() as mock:
        mock.add(
            responses.POST,
            TWEETS,
            json=limited,
            status=429,
            headers={
                "x-rate-limit-limit": "200",
                "x-rate-limit-remaining": "0",
                "x-rate-limit-reset": "4102444800",
            },
        )
        result = cli.invoke(
            app, ["-c", str(path), "incident", "update", "1", "-m", "Masih gagal.", "--post-x"]
        )
    assert result.exit_code == 1
    assert "rate limited by X (429); try again after" in result.stderr
    unauthorized = {"title": "Unauthorized", "type": "about:blank", "status": 401}
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, TWEETS, json=unauthorized, status=401)
        result = cli.invoke(app, ["-c", str(path), "incident", "resolve", "1", "--post-x"])
    assert result.exit_code == 1
    assert "X refused the credentials (401)" in result.stderr
    shown = _show(cli, path)
    assert shown["status"] == "resolved"  # the page is whole whatever X said
    assert len(shown["updates"]) == 3  # type: ignore[arg-type]


def test_post_x_without_x_configured_is_refused_before_anything_is_written(
    cli: CliRunner, config: ConfigWriter
) -> None:
    path = config.write(site={"base_url": BASE})
    created = cli.invoke(
        app, ["-c", str(path), "incident", "open", "--component", "login", "-m", "Masuk gagal."]
    )
    assert created.exit_code == 0, created.output
    refused = cli.invoke(
        app, ["-c", str(path), "incident", "update", "1", "-m", "Kabar baru.", "--post-x"]
    )
    assert refused.exit_code == 2
    assert "[incidents.x]" in refused.stderr
    assert len(_show(cli, path)["updates"]) == 1  # type: ignore[arg-type]


def test_incident_report_in_markdown_and_html(
    cli: CliRunner, config: ConfigWriter, tmp_path: Path
) -> None:
    path = config.write(site={"base_url": BASE}, tables=[X_TABLE])
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, TWEETS, json=_created("1850000000000000009"), status=201)
        opened = cli.invoke(
            app,
            [
                "-c", str(path), "incident", "open", "--component", "login",
                "--message", "Masuk gagal | <b>sebagian</b> pengguna.", "--post-x",
            ],
        )  # fmt: skip
    assert opened.exit_code == 0, opened.output
    resolved = cli.invoke(app, ["-c", str(path), "incident", "resolve", "1"])
    assert resolved.exit_code == 0, resolved.output
    md = cli.invoke(app, ["-c", str(path), "incident", "report", "1"])
    assert md.exit_code == 0, md.output
    assert "https://x.com/i/web/status/1850000000000000009" in md.stdout
    assert "WIB" in md.stdout
    assert "<b>" not in md.stdout and "\\|" in md.stdout
    english = cli.invoke(app, ["-c", str(path), "incident", "report", "1", "--lang", "en"])
    assert "Social signal not configured" in english.stdout
    page = tmp_path / "report.html"
    html = cli.invoke(
        app, ["-c", str(path), "incident", "report", "1", "--format", "html", "--out", str(page)]
    )
    assert html.exit_code == 0, html.output
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") or text.lower().startswith("<!doctype html>")
    assert "&lt;b&gt;sebagian&lt;/b&gt;" in text
    missing = cli.invoke(app, ["-c", str(path), "incident", "report", "9"])
    assert missing.exit_code == 2 and "no incident 9" in missing.stderr
    bad = cli.invoke(app, ["-c", str(path), "incident", "report", "1", "--format", "pdf"])
    assert bad.exit_code == 2
