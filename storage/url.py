"""Open a store from its URL: a directory path, file:///path, or s3://host:port/bucket."""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

from storage.base import ObjectStore
from storage.errors import StoreConfigError
from storage.file import FileStore


def open_store(url: str, *, retention_days: int | None = None, create: bool = True) -> ObjectStore:
    """Return the store that `url` names.

    s3 URLs: ``s3://[ACCESS:SECRET@]HOST:PORT/BUCKET[?secure=1&region=R&retention_days=N]``;
    without credentials in the URL, IRMS_S3_ACCESS_KEY and IRMS_S3_SECRET_KEY are used.
    `create=False`: a file store must already exist (StoreUnavailable otherwise).
    """
    if not url:
        raise StoreConfigError("store URL is empty")
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme in ("", "file"):
        path = parsed.path if parsed.scheme == "file" else url
        return FileStore(Path(path).expanduser(), create=create)
    if parsed.scheme in ("s3", "s3+http", "s3+https"):
        from storage.s3 import S3Store

        query = dict(urllib.parse.parse_qsl(parsed.query))
        bucket = parsed.path.strip("/")
        if not parsed.hostname or not bucket or "/" in bucket:
            raise StoreConfigError(f"s3 store URL must be s3://HOST:PORT/BUCKET, got {redact(url)}")
        access = urllib.parse.unquote(parsed.username or "") or os.environ.get("IRMS_S3_ACCESS_KEY", "")
        secret = urllib.parse.unquote(parsed.password or "") or os.environ.get("IRMS_S3_SECRET_KEY", "")
        if not access or not secret:
            raise StoreConfigError(
                f"s3 store {redact(url)} has no credentials: put them in the URL or set "
                "IRMS_S3_ACCESS_KEY and IRMS_S3_SECRET_KEY"
            )
        secure = parsed.scheme == "s3+https" or query.get("secure", "0") in ("1", "true")
        endpoint = parsed.hostname + (f":{parsed.port}" if parsed.port else "")
        days = retention_days if retention_days is not None else int(query.get("retention_days", "0"))
        return S3Store(
            endpoint=endpoint,
            bucket=bucket,
            access_key=access,
            secret_key=secret,
            secure=secure,
            region=query.get("region", "us-east-1"),
            retention_days=days,
            create=create,
        )
    raise StoreConfigError(f"unknown store URL scheme {parsed.scheme!r} in {redact(url)}")


def has_password(url: str) -> bool:
    """Whether a URL carries a literal password (user:password@), not a {password} placeholder."""
    netloc = urllib.parse.urlsplit(url).netloc
    userinfo, at, _ = netloc.rpartition("@")
    return bool(at) and ":" in userinfo and "{password}" not in userinfo


def redact(url: str) -> str:
    """The URL with any password replaced, safe to log."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.password is None:
        return url
    netloc = f"{parsed.username}:***@{parsed.hostname}" + (f":{parsed.port}" if parsed.port else "")
    return urllib.parse.urlunsplit(parsed._replace(netloc=netloc))
