"""Uploading the published site to an S3-compatible bucket: moto's server on 127.0.0.1."""

from __future__ import annotations

import logging
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from itertools import count
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer
from typer.testing import CliRunner

from monitor.cli import app
from monitor.config import S3Settings, Settings
from monitor.publish import publish_site
from monitor.store import Store
from monitor.upload import LONG_CACHE, SHORT_CACHE, UploadError, UploadReport, upload_site

MakeSettings = Callable[..., Settings]

#: Credentials moto accepts; the environment boto3 reads them from in every test.
FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    # Never ask an instance-metadata service (a real network) for credentials.
    "AWS_EC2_METADATA_DISABLED": "true",
}
UNSET_ENV = (
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
)
KEY_ID = "AKIA-PANTAU-KEYID-7f3e"
SECRET_KEY = "pantau-SECRET-ACCESS-KEY-91ac"

_buckets = count(1)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """One moto S3 server for the module, on loopback only."""
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name, value in FAKE_ENV.items():
        monkeypatch.setenv(name, value)
    for name in UNSET_ENV:
        monkeypatch.delenv(name, raising=False)
    # No profile of the machine running the tests leaks in.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@pytest.fixture
def s3(endpoint: str, aws_env: None) -> Any:
    """A plain boto3 client to set up and inspect the bucket."""
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


@pytest.fixture
def bucket(s3: Any) -> str:
    """A fresh, empty bucket for each test."""
    name = f"pantau-status-{next(_buckets)}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_settings(endpoint: str, bucket: str) -> S3Settings:
    return S3Settings(bucket=bucket, prefix="status", endpoint_url=endpoint, region="us-east-1")


class RecordingClient:
    """A boto3 client that records its calls, listing ``page_size`` keys per page."""

    def __init__(self, client: Any, *, page_size: int | None = None) -> None:
        self.client = client
        self.page_size = page_size
        self.calls: list[tuple[str, str]] = []

    def list_objects_v2(self, **kwargs: Any) -> Any:
        self.calls.append(("list", kwargs.get("ContinuationToken", "")))
        if self.page_size:
            kwargs["MaxKeys"] = self.page_size
        return self.client.list_objects_v2(**kwargs)

    def put_object(self, **kwargs: Any) -> Any:
        self.calls.append(("put", kwargs["Key"]))
        return self.client.put_object(**kwargs)

    def delete_objects(self, **kwargs: Any) -> Any:
        self.calls += [("delete", obj["Key"]) for obj in kwargs["Delete"]["Objects"]]
        return self.client.delete_objects(**kwargs)

    def keys(self, operation: str) -> list[str]:
        return [key for op, key in self.calls if op == operation]


def _site_files(site: Path) -> dict[str, bytes]:
    """The files a reader may fetch (hidden ones such as ``.gitignore`` are not uploaded)."""
    return {
        path.relative_to(site).as_posix(): path.read_bytes()
        for path in sorted(site.rglob("*"))
        if path.is_file() and not path.name.startswith(".")
    }


def _bucket_keys(s3: Any, bucket: str) -> set[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def _is_entry(name: str) -> bool:
    """Pages and documents that link to others (incident pages, badges, the stylesheet)."""
    return name.startswith("api/v2/") or name.rpartition("/")[2] in {
        "index.html",
        "history.html",
        "history.atom",
        "history.rss",
    }


def _publish_local(store: Store, settings: Settings, site: Path, now: datetime) -> Path:
    return publish_site(store, settings, now=now, out_dir=site, upload=False)


# -- what is uploaded ----------------------------------------------------------------------


EXPECTED_HEADERS = {
    "index.html": ("text/html; charset=utf-8", SHORT_CACHE),
    "en/incidents/3.html": ("text/html; charset=utf-8", SHORT_CACHE),
    "api/v2/summary.json": ("application/json", SHORT_CACHE),
    "api/v2/incidents/unresolved.json": ("application/json", SHORT_CACHE),
    "style.css": ("text/css; charset=utf-8", LONG_CACHE),
    "history.atom": ("application/atom+xml", SHORT_CACHE),
    "history.rss": ("application/rss+xml", SHORT_CACHE),
    "badge/login.svg": ("image/svg+xml", SHORT_CACHE),
    "badge/login.json": ("application/json", SHORT_CACHE),
}


def test_publish_uploads_every_file_with_its_type_and_cache_policy(
    wave_store: Store,
    make_settings: MakeSettings,
    now: datetime,
    tmp_path: Path,
    s3: Any,
    bucket: str,
    endpoint: str,
) -> None:
    settings = make_settings(
        s3={"bucket": bucket, "prefix": "/status/", "endpoint_url": endpoint, "region": "us-east-1"}
    )
    site = publish_site(wave_store, settings, now=now, out_dir=tmp_path / "site")

    files = _site_files(site)
    assert (site / ".gitignore").exists()
    assert _bucket_keys(s3, bucket) == {f"status/{name}" for name in files}
    for name, body in files.items():
        stored = s3.get_object(Bucket=bucket, Key=f"status/{name}")
        assert stored["Body"].read() == body, name
        if name in EXPECTED_HEADERS:
            assert (stored["ContentType"], stored["CacheControl"]) == EXPECTED_HEADERS[name]
        else:
            assert stored["CacheControl"] in (SHORT_CACHE, LONG_CACHE), name
    assert set(EXPECTED_HEADERS) <= set(files)


@pytest.mark.parametrize(
    ("name", "content_type", "cache_control"),
    [
        ("feed.atom", "application/atom+xml", SHORT_CACHE),
        ("feed.rss", "application/rss+xml", SHORT_CACHE),
        ("badge.svg", "image/svg+xml", SHORT_CACHE),
        ("robots.txt", "text/plain; charset=utf-8", SHORT_CACHE),
        ("data.bin", "application/octet-stream", SHORT_CACHE),
    ],
)
def test_other_files_get_their_content_type(
    tmp_path: Path,
    s3: Any,
    s3_settings: S3Settings,
    name: str,
    content_type: str,
    cache_control: str,
) -> None:
    (tmp_path / "index.html").write_text("<!doctype html>")
    (tmp_path / name).write_bytes(b"x")

    upload_site(tmp_path, s3_settings)

    stored = s3.head_object(Bucket=s3_settings.bucket, Key=f"status/{name}")
    assert (stored["ContentType"], stored["CacheControl"]) == (content_type, cache_control)


def test_entry_files_are_uploaded_last_the_root_index_at_the_very_end(
    wave_store: Store,
    settings: Settings,
    now: datetime,
    tmp_path: Path,
    s3: Any,
    s3_settings: S3Settings,
) -> None:
    site = _publish_local(wave_store, settings, tmp_path / "site", now)
    client = RecordingClient(s3)

    report = upload_site(site, s3_settings, client=client)

    puts = [key.removeprefix("status/") for key in client.keys("put")]
    assert sorted(puts) == sorted(_site_files(site))
    assert report == UploadReport(
        uploaded=len(puts), skipped=0, deleted=0, bytes=sum(map(len, _site_files(site).values()))
    )
    entries = [k for k in puts if _is_entry(k)]
    assert {"en/history.html", "history.atom", "api/v2/summary.json"} <= set(entries)
    assert puts[-len(entries) :] == entries, "an entry file went before a file it links to"
    assert puts.index("history.rss") < puts.index("en/index.html") < puts.index("index.html")
    assert puts[-1] == "index.html"
    assert client.calls[0] == ("list", ""), "one listing first, to skip unchanged files"


# -- the second publish --------------------------------------------------------------------


def test_a_second_publish_sends_only_changed_files_and_deletes_removed_ones(
    wave_store: Store,
    settings: Settings,
    now: datetime,
    tmp_path: Path,
    s3: Any,
    s3_settings: S3Settings,
) -> None:
    site = tmp_path / "site"
    first = _site_files(_publish_local(wave_store, settings, site, now))
    upload_site(site, s3_settings)
    s3.put_object(Bucket=s3_settings.bucket, Key="status/incidents/99.html", Body=b"gone")
    s3.put_object(Bucket=s3_settings.bucket, Key="status-old/index.html", Body=b"not ours")
    s3.put_object(Bucket=s3_settings.bucket, Key="elsewhere.txt", Body=b"not ours")

    second = _site_files(_publish_local(wave_store, settings, site, now + timedelta(minutes=7)))
    # Listing three keys a page: the whole listing is read, not its first page.
    client = RecordingClient(s3, page_size=3)
    report = upload_site(site, s3_settings, client=client)

    changed = sorted(name for name, body in second.items() if first.get(name) != body)
    assert "index.html" in changed and "style.css" not in changed
    assert sorted(key.removeprefix("status/") for key in client.keys("put")) == changed
    assert report == UploadReport(
        uploaded=len(changed),
        skipped=len(second) - len(changed),
        deleted=1,
        bytes=sum(len(second[name]) for name in changed),
    )
    assert len(client.keys("list")) > 1
    assert client.keys("delete") == ["status/incidents/99.html"]
    assert client.calls[-1] == ("delete", "status/incidents/99.html"), "deleted after uploading"
    assert _bucket_keys(s3, s3_settings.bucket) == {
        *(f"status/{name}" for name in second),
        "status-old/index.html",
        "elsewhere.txt",
    }
    again = upload_site(site, s3_settings)
    assert again == UploadReport(uploaded=0, skipped=len(second), deleted=0, bytes=0)


@pytest.mark.parametrize("leftover", [None, "style.css"])
def test_an_empty_render_never_wipes_the_bucket(
    tmp_path: Path, s3: Any, s3_settings: S3Settings, leftover: str | None
) -> None:
    published = tmp_path / "published"
    (published / "en").mkdir(parents=True)
    (published / "index.html").write_text("<!doctype html>")
    (published / "en/index.html").write_text("<!doctype html>")
    upload_site(published, s3_settings)
    broken = tmp_path / "broken"
    broken.mkdir()
    if leftover:
        (broken / leftover).write_text("body {}")

    report = upload_site(broken, s3_settings)

    assert report.deleted == 0
    assert {"status/index.html", "status/en/index.html"} <= _bucket_keys(s3, s3_settings.bucket)


# -- failures ------------------------------------------------------------------------------


def test_a_wrong_bucket_names_the_bucket_and_code_and_the_local_site_stays_published(
    wave_store: Store,
    make_settings: MakeSettings,
    now: datetime,
    tmp_path: Path,
    endpoint: str,
) -> None:
    settings = make_settings(s3={"bucket": "no-such-pantau-bucket", "endpoint_url": endpoint})
    site = tmp_path / "site"

    with pytest.raises(UploadError) as caught:
        publish_site(wave_store, settings, now=now, out_dir=site)

    assert "'no-such-pantau-bucket'" in str(caught.value)
    assert "NoSuchBucket" in str(caught.value)
    assert (caught.value.bucket, caught.value.code) == ("no-such-pantau-bucket", "NoSuchBucket")
    assert "Kartu Prakerja" in (site / "index.html").read_text()


def test_credentials_from_the_config_are_used_and_never_shown(
    wave_store: Store,
    make_settings: MakeSettings,
    now: datetime,
    tmp_path: Path,
    endpoint: str,
    bucket: str,
    s3: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("PANTAU_S3_KEY_ID", KEY_ID)
    monkeypatch.setenv("PANTAU_S3_SECRET", SECRET_KEY)
    s3_table = {
        "endpoint_url": endpoint,
        "access_key_id": "${PANTAU_S3_KEY_ID}",
        "secret_access_key": "${PANTAU_S3_SECRET}",
    }
    good = make_settings(s3={**s3_table, "bucket": bucket})
    wrong = make_settings(s3={**s3_table, "bucket": "no-such-pantau-bucket"})
    # Only the config holds credentials now: the upload below signs with them.
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")

    publish_site(wave_store, good, now=now, out_dir=tmp_path / "site")
    with pytest.raises(UploadError) as caught:
        publish_site(wave_store, wrong, now=now, out_dir=tmp_path / "site")

    assert "status/index.html" not in _bucket_keys(s3, bucket)  # no prefix configured
    assert "index.html" in _bucket_keys(s3, bucket)
    shown = [
        str(caught.value),
        "".join(traceback.format_exception(caught.value)),  # the chained botocore error too
        repr(good.site.s3),
    ]
    assert "NoSuchBucket" in shown[0]
    assert good.site.s3 is not None and good.site.s3.access_key_id is not None
    assert good.site.s3.access_key_id.masked() == "${PANTAU_S3_KEY_ID}"
    for text in shown:
        assert KEY_ID not in text and SECRET_KEY not in text
    assert SECRET_KEY not in caplog.text
    # botocore's own debug log shows the key id in signed headers: the CLI keeps it quiet.
    ours = [r.getMessage() for r in caplog.records if not r.name.startswith("botocore")]
    assert not [line for line in ours if KEY_ID in line]


def test_missing_credentials_are_named_as_such(
    tmp_path: Path, s3_settings: S3Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    (tmp_path / "index.html").write_text("<!doctype html>")

    with pytest.raises(UploadError, match="no credentials") as caught:
        upload_site(tmp_path, s3_settings)

    assert caught.value.code == "NoCredentialsError"


def test_half_given_credentials_are_refused(tmp_path: Path, s3_settings: S3Settings) -> None:
    settings = S3Settings.model_validate(
        {**s3_settings.model_dump(), "access_key_id": "AKIA-ONLY"}, context={"env": {}}
    )

    with pytest.raises(UploadError, match="both access_key_id and secret_access_key") as caught:
        upload_site(tmp_path, settings)

    assert "AKIA-ONLY" not in str(caught.value)


def test_an_unreachable_endpoint_fails_fast(tmp_path: Path, s3_settings: S3Settings) -> None:
    closed = f"http://127.0.0.1:{_free_port()}"
    settings = s3_settings.model_copy(update={"endpoint_url": closed})
    (tmp_path / "index.html").write_text("<!doctype html>")
    started = time.monotonic()

    with pytest.raises(UploadError, match="cannot reach the endpoint") as caught:
        upload_site(tmp_path, settings)

    assert time.monotonic() - started < 10  # three attempts, then give up
    assert caught.value.code == "EndpointConnectionError"
    assert s3_settings.bucket in str(caught.value)


def test_without_boto3_the_error_says_what_to_install(
    tmp_path: Path, s3_settings: S3Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "botocore.exceptions", None)

    with pytest.raises(UploadError, match=r"install pantau\[s3\]"):
        upload_site(tmp_path, s3_settings)


# -- pantau publish ------------------------------------------------------------------------


def _write_config(tmp_path: Path, *, bucket: str, endpoint: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[storage]
url = "sqlite:///pantau.db"

[site]
output_dir = "site"

[site.s3]
bucket = "{bucket}"
prefix = "status"
endpoint_url = "{endpoint}"
region = "us-east-1"

[[components]]
id = "home"
name = "Beranda"
""",
        encoding="utf-8",
    )
    return path


def test_pantau_publish_prints_the_upload_summary(
    tmp_path: Path, endpoint: str, bucket: str, s3: Any
) -> None:
    config = _write_config(tmp_path, bucket=bucket, endpoint=endpoint)
    cli = CliRunner()

    first = cli.invoke(app, ["-c", str(config), "publish"])
    second = cli.invoke(app, ["-c", str(config), "publish"])

    assert first.exit_code == 0, first.output
    files = _site_files(tmp_path / "site")
    size = sum(map(len, files.values()))
    assert f"published {tmp_path / 'site' / 'index.html'}" in first.stdout
    assert (
        f"uploaded to s3://{bucket}/status/: {len(files)} file(s) ({size} bytes), "
        "0 unchanged, 0 deleted"
    ) in first.stdout
    assert second.exit_code == 0, second.output
    assert "unchanged, 0 deleted" in second.stdout
    assert _bucket_keys(s3, bucket) == {f"status/{name}" for name in files}


def test_pantau_publish_exits_1_when_the_upload_fails_and_keeps_the_local_site(
    tmp_path: Path, endpoint: str
) -> None:
    config = _write_config(tmp_path, bucket="no-such-pantau-bucket", endpoint=endpoint)

    result = CliRunner().invoke(app, ["-c", str(config), "publish"])

    assert result.exit_code == 1, result.output
    assert "published" in result.stdout
    assert "'no-such-pantau-bucket'" in result.stderr
    assert "NoSuchBucket" in result.stderr
    assert "the local site is published" in result.stderr
    assert (tmp_path / "site" / "index.html").exists()
