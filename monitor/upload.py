"""Publishing to an S3-compatible bucket: the published site, mirrored object by object.

:func:`upload_site` copies a rendered site (the folder :func:`monitor.publish.publish_site`
swapped in) to ``[site.s3]``, so the page can be served by a CDN far from the registration
site's own infrastructure. It is the only module that talks to boto3 (``pantau[s3]``).

Readers never see a half-updated site: every other file goes first, then the *entry*
files that link to them (the ``api/v2`` JSON, the history and its feeds, each language's
``index.html``, the root one last), then objects under the prefix that are no longer in
the site are deleted: the prefix (the whole bucket when it is empty) belongs to Pantau.
Unchanged files (same MD5 as the object's ETag) are not sent again. A site without a
root ``index.html`` deletes nothing, so a broken render never wipes the bucket.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from monitor.config import S3Settings

log = logging.getLogger(__name__)

#: Readers must see a fresh status, but a CDN may serve a stale copy while the origin drowns.
SHORT_CACHE = "public, max-age=30, stale-while-revalidate=60, stale-if-error=86400"
#: Files that change only with a new release of Pantau.
LONG_CACHE = "public, max-age=3600"

#: Content-Type per file extension; others are ``application/octet-stream``.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".atom": "application/atom+xml",
    ".rss": "application/rss+xml",
    ".xml": "application/xml",
    ".txt": "text/plain; charset=utf-8",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
_LONG_CACHED = frozenset({".css"})

#: Files (in any folder) that link to others: uploaded after them.
_ENTRY_NAMES = frozenset({"index.html", "history.html", "history.atom", "history.rss"})

#: ``DeleteObjects`` takes at most this many keys per request.
_DELETE_BATCH = 1000

#: What a few client-side failures mean, for the message (never with their details).
_HINTS = {
    "NoCredentialsError": "no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
    "or [site.s3] access_key_id and secret_access_key)",
    "EndpointConnectionError": "cannot reach the endpoint",
    "ConnectTimeoutError": "the endpoint did not answer in time",
    "ReadTimeoutError": "the endpoint did not answer in time",
    "ConnectionClosedError": "the endpoint closed the connection",
}


class UploadError(Exception):
    """Uploading to the bucket failed.

    The message names the bucket and the S3 error code (``code``), never a credential.
    """

    def __init__(self, message: str, *, bucket: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.bucket = bucket
        self.code = code


@dataclass(frozen=True)
class UploadReport:
    """What an upload did: objects sent, left as they were, deleted; bytes sent."""

    uploaded: int
    skipped: int
    deleted: int
    bytes: int


class S3Client(Protocol):
    """The three calls of a boto3 S3 client that :func:`upload_site` makes."""

    def list_objects_v2(self, **kwargs: Any) -> Any: ...

    def put_object(self, **kwargs: Any) -> Any: ...

    def delete_objects(self, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class SiteFile:
    """One file of the site as it will be stored: its key, body, MD5 and headers."""

    #: The path in the site (``en/index.html``) and the object's key (prefix and path).
    name: str
    key: str
    body: bytes
    md5: str
    content_type: str
    cache_control: str
    #: Uploaded after every other file: it links to them.
    entry: bool


def upload_site(
    site_dir: Path, settings: S3Settings, *, client: S3Client | None = None
) -> UploadReport:
    """Mirror ``site_dir`` to ``settings.bucket`` under ``settings.prefix``; return what was done.

    Objects under the prefix that are not in the site are deleted, unless the site has no
    ``index.html`` (an empty or broken render never wipes the bucket). ``client`` replaces
    the boto3 client built from ``settings``. Raises UploadError (boto3 missing, an S3 or
    connection error after boto3's retries) and OSError (reading ``site_dir``).
    """
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        raise UploadError("install pantau[s3] to publish to S3") from None
    prefix = key_prefix(settings.prefix)
    files = scan_site(site_dir, prefix=prefix)
    try:
        s3 = client if client is not None else make_client(settings)
        report = _mirror(s3, settings.bucket, prefix, files)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code") or "UnknownError")
        raise _error(settings.bucket, code, f"{code} ({exc.operation_name})") from exc
    except BotoCoreError as exc:
        code = type(exc).__name__
        detail = f"{_HINTS[code]} ({code})" if code in _HINTS else code
        raise _error(settings.bucket, code, detail) from exc
    log.info(
        "uploaded site bucket=%s prefix=%s uploaded=%d skipped=%d deleted=%d bytes=%d",
        settings.bucket,
        prefix,
        report.uploaded,
        report.skipped,
        report.deleted,
        report.bytes,
    )
    return report


def _error(bucket: str, code: str, detail: str) -> UploadError:
    return UploadError(f"uploading to bucket {bucket!r} failed: {detail}", bucket=bucket, code=code)


def make_client(settings: S3Settings) -> Any:
    """A boto3 S3 client for ``settings``: bounded retries and timeouts.

    Credentials are the configured secrets, else whatever boto3 finds (``AWS_*``
    variables, profiles, instance roles). A custom endpoint gets path-style addressing,
    which every S3-compatible service understands. Raises UploadError.
    """
    import boto3
    from botocore.config import Config

    key_id, secret = settings.access_key_id, settings.secret_access_key
    if (key_id is None) != (secret is None):
        raise UploadError("[site.s3] needs both access_key_id and secret_access_key, or neither")
    config = Config(
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=5,
        read_timeout=20,
        s3={"addressing_style": "path"} if settings.endpoint_url else None,
    )
    try:
        # A session of its own: boto3's default one caches credentials and is not thread-safe.
        return boto3.session.Session().client(
            "s3",
            endpoint_url=settings.endpoint_url,
            region_name=settings.region,
            aws_access_key_id=key_id.reveal() if key_id else None,
            aws_secret_access_key=secret.reveal() if secret else None,
            config=config,
        )
    except ValueError:  # botocore's message quotes the endpoint; ours names the key
        raise UploadError(
            f"[site.s3] endpoint_url is not a valid URL for bucket {settings.bucket!r}"
        ) from None


def key_prefix(prefix: str) -> str:
    """The configured prefix as the start of keys: ``""`` or ``"some/folder/"``."""
    cleaned = prefix.strip("/")
    return f"{cleaned}/" if cleaned else ""


def scan_site(site_dir: Path, *, prefix: str = "") -> list[SiteFile]:
    """The files of ``site_dir`` (hidden ones such as ``.gitignore`` left out), by key."""
    files = []
    for path in sorted(site_dir.rglob("*")):
        relative = PurePosixPath(path.relative_to(site_dir).as_posix())
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        body = path.read_bytes()
        suffix = relative.suffix.lower()
        files.append(
            SiteFile(
                name=str(relative),
                key=prefix + str(relative),
                body=body,
                md5=hashlib.md5(body, usedforsecurity=False).hexdigest(),
                content_type=CONTENT_TYPES.get(suffix, "application/octet-stream"),
                cache_control=LONG_CACHE if suffix in _LONG_CACHED else SHORT_CACHE,
                entry=is_entry(relative),
            )
        )
    return files


def is_entry(relative: PurePosixPath) -> bool:
    """Whether readers come in through this file, so it goes last: the ``index.html`` of
    each language, the history and its feeds (they link to incident pages), the JSON API."""
    return relative.name in _ENTRY_NAMES or (
        relative.parts[:2] == ("api", "v2") and relative.suffix == ".json"
    )


def upload_order(files: Iterable[SiteFile]) -> list[SiteFile]:
    """Other files first, then the JSON API and the feeds, then the pages readers come in
    through (other languages first), the root ``index.html`` last of all."""

    def rank(file: SiteFile) -> tuple[int, int, str]:
        if not file.entry:
            return (0, 0, file.name)
        if not file.name.endswith(".html"):
            return (1, 0, file.name)
        return (3 if file.name == "index.html" else 2, -file.name.count("/"), file.name)

    return sorted(files, key=rank)


def _mirror(s3: S3Client, bucket: str, prefix: str, files: list[SiteFile]) -> UploadReport:
    remote = dict(_list_etags(s3, bucket, prefix))
    uploaded = sent = 0
    for file in upload_order(files):
        if remote.get(file.key) == file.md5:
            continue
        s3.put_object(
            Bucket=bucket,
            Key=file.key,
            Body=file.body,
            ContentMD5=base64.b64encode(bytes.fromhex(file.md5)).decode("ascii"),
            ContentType=file.content_type,
            CacheControl=file.cache_control,
        )
        uploaded += 1
        sent += len(file.body)
    stale = sorted(remote.keys() - {file.key for file in files})
    if stale and not _looks_complete(files):
        log.warning("site has no index.html; kept objects bucket=%s count=%d", bucket, len(stale))
        stale = []
    deleted = _delete(s3, bucket, stale)
    return UploadReport(
        uploaded=uploaded, skipped=len(files) - uploaded, deleted=deleted, bytes=sent
    )


def _looks_complete(files: list[SiteFile]) -> bool:
    """False for an empty or broken render: then nothing is deleted."""
    return any(file.name == "index.html" for file in files)


def _list_etags(s3: S3Client, bucket: str, prefix: str) -> Iterator[tuple[str, str]]:
    """``(key, md5)`` of every object under ``prefix``; md5 is "" when the ETag is not one
    (multipart uploads, some server-side encryptions)."""
    token: str | None = None
    while True:
        page = s3.list_objects_v2(
            Bucket=bucket, Prefix=prefix, **({"ContinuationToken": token} if token else {})
        )
        for item in page.get("Contents", ()):
            etag = str(item.get("ETag", "")).strip('"')
            yield item["Key"], etag if len(etag) == 32 and "-" not in etag else ""
        token = page.get("NextContinuationToken")
        if not page.get("IsTruncated") or not token:
            return


def _delete(s3: S3Client, bucket: str, keys: list[str]) -> int:
    """Delete ``keys`` in batches; return how many. Raises UploadError on a refused key."""
    for start in range(0, len(keys), _DELETE_BATCH):
        batch = keys[start : start + _DELETE_BATCH]
        answer = s3.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True}
        )
        errors = answer.get("Errors") or []
        if errors:
            code = str(errors[0].get("Code", "DeleteFailed"))
            raise _error(bucket, code, f"{code} (DeleteObjects, {len(errors)} object(s))")
    return len(keys)
