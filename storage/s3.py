"""The S3 store: a bucket with Object Lock on MinIO, Ceph radosgw or any S3 service.

Every minio / urllib3 exception is converted here into the storage error tree, so
nothing above this module sees a third-party exception:

- the server cannot be reached, times out or answers 5xx -> StoreUnavailable
- a missing object -> ObjectNotFound
- wrong credentials, a bucket owned by someone else, a bad endpoint -> StoreConfigError
- a locked or held object that cannot be deleted -> ObjectLocked
- a retention that would shorten or weaken a lock -> RetentionRefused
- anything else -> StoreError

Retention and legal hold (issue 17): `set_retention` reads the object's lock first and only ever extends it
(a shorter date is refused in one line; a COMPLIANCE lock stays COMPLIANCE); `set_legal_hold` places or lifts
an S3 Object Legal Hold, which blocks deletion whatever the retention, also for a user who may bypass
GOVERNANCE. Both act on the object's current version (objects are written once: it is the only one).

Write-once: `put` reads the object's size and the sha256 it stored in user metadata
before writing. S3 (radosgw 16 included) has no conditional create, so two writers
racing on one name with different bytes are not caught; object names carry the
station, session and segment, so each name has one writer.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import io
import logging
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NoReturn

import urllib3
from minio import Minio
from minio import time as minio_time
from minio.commonconfig import COMPLIANCE, GOVERNANCE
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError
from minio.retention import Retention
from urllib3.exceptions import HTTPError, SSLError

from storage.base import LockMode, ObjectInfo
from storage.base import Retention as Lock
from storage.errors import (
    ObjectExists,
    ObjectLocked,
    ObjectNotFound,
    RetentionRefused,
    RetentionUnsupported,
    StoreConfigError,
    StoreError,
    StoreUnavailable,
)
from storage.file import check_name

log = logging.getLogger(__name__)

SHA256_META = "sha256"  # stored by S3 as the x-amz-meta-sha256 header
_SHA256_HEADER = "x-amz-meta-" + SHA256_META
_RETAIN_HEADER = "x-amz-object-lock-retain-until-date"
_MODE_HEADER = "x-amz-object-lock-mode"
_HOLD_HEADER = "x-amz-object-lock-legal-hold"

# Short timeouts so an unreachable store fails within seconds: the recorder spools
# locally and retries later, it must not hang on an upload for minutes.
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 10.0

# Single PUT up to 5 GiB: one request is atomic (no half-made multipart upload) and
# radosgw 16 returns an empty ETag for multipart uploads.
_MIN_PART = 5 * 1024 * 1024
_MAX_SINGLE_PUT = 5 * 1024**3

_CONFIG_CODES = frozenset(
    {
        "AccessDenied",
        "AccountProblem",
        "AllAccessDisabled",
        "AuthorizationHeaderMalformed",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "InvalidBucketName",
        "InvalidToken",
        "NoSuchBucket",
        "RequestTimeTooSkewed",
        "SignatureDoesNotMatch",
    }
)
# Refusals of a request's signature; with the clocks this far apart, the clock is the reason.
_AUTH_CODES = frozenset({"AccessDenied", "RequestTimeTooSkewed", "SignatureDoesNotMatch"})
_SKEW_ALLOWED_S = 15 * 60.0
_UNAVAILABLE_CODES = frozenset(
    {"InternalError", "RequestTimeout", "ServiceUnavailable", "SlowDown", "ServerBusy"}
)
_ISO_UTC = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?Z$")


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def parse_retain_until(value: str) -> dt.datetime:
    """Parse an S3 retain-until date; radosgw sends nanoseconds, which strptime cannot."""
    match = _ISO_UTC.match(value.strip())
    if not match:
        raise StoreError(f"unparsable Object Lock date {value!r} from the S3 server")
    whole, fraction = match.groups()
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    parsed = dt.datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC)
    return parsed.replace(microsecond=micros)


def _ceil_second(value: dt.datetime) -> dt.datetime:
    """S3 keeps retain-until to the millisecond at best; round up so a lock is never shorter."""
    if value.microsecond:
        value = value.replace(microsecond=0) + dt.timedelta(seconds=1)
    return value


def http_client(*, secure: bool) -> urllib3.PoolManager:
    """The urllib3 pool minio uses: short timeouts, one retry, so outages surface quickly."""
    retries = urllib3.Retry(
        total=2,
        connect=1,
        read=1,
        status=1,
        backoff_factor=0.2,
        status_forcelist=(500, 502, 503, 504),
        allowed_methods=None,  # PUT is safe to repeat: put() is idempotent
        raise_on_status=False,  # let minio turn the last 5xx answer into ServerError
    )
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT, read=READ_TIMEOUT),
        maxsize=10,
        retries=retries,
        cert_reqs="CERT_REQUIRED" if secure else "CERT_NONE",
    )


def _clock_skew_s(err: S3Error) -> float | None:
    """This station's clock minus the store's (from the answer's Date), as minio signed; None if unknown."""
    server = err.response.headers.get("Date") if err.response is not None else None
    try:
        stamp = email.utils.parsedate_to_datetime(server) if server else None
    except (TypeError, ValueError):
        return None
    if stamp is None:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return (minio_time.utcnow() - stamp).total_seconds()  # minio signs requests with this clock


def _skew_words(code: str | None, skew: float | None) -> str:
    """A refusal for a skewed clock in words: the clocks differ, the keys are not in question."""
    by = f" by {skew:+.0f} s" if skew is not None else ""
    return (f"the station clock differs from the store's{by} ({code}): S3 refuses requests signed more "
            f"than {_SKEW_ALLOWED_S // 60:.0f} min off; set the station clock (NTP), the access key is not in question")


class S3Store:
    """Objects in one S3 bucket; created with Object Lock if missing.

    With `retention_days` > 0 (or a `retain_until` on put) and a bucket that has Object
    Lock, every object is written with a COMPLIANCE retention that nobody, root
    included, can shorten or delete before it ends.
    """

    def __init__(
        self,
        *,
        endpoint: str,
        bucket: str,
        access_key: str,
        secret_key: str,
        secure: bool = False,
        region: str = "us-east-1",
        retention_days: int = 0,
        clock: Callable[[], dt.datetime] = _utcnow,
        create: bool = True,
    ) -> None:
        if retention_days < 0:
            raise StoreConfigError(f"retention_days must be 0 or more, got {retention_days}")
        self.endpoint = endpoint
        self.bucket = bucket
        self.retention_days = retention_days
        self.create = create  # False: a missing bucket is unreachable, never made (readers, the verifier)
        self.url = f"{'s3+https' if secure else 's3'}://{endpoint}/{bucket}"
        self._clock = clock
        try:
            self._client = Minio(
                endpoint,
                access_key=access_key,
                secret_key=secret_key,
                secure=secure,
                region=region,
                http_client=http_client(secure=secure),
            )
        except ValueError as err:
            raise StoreConfigError(f"bad s3 store {self.url}: {err}") from None
        self._ready = False
        self._object_lock = False
        self._ready_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3Store({self.url!r})"

    # --- the boundary -------------------------------------------------------------

    def _fail(self, err: Exception, doing: str) -> NoReturn:
        """Raise the storage error that a minio / urllib3 / OS error stands for."""
        where = f"s3 store {self.url}: cannot {doing}"
        if isinstance(err, S3Error):
            detail = f"{err.code}" + (f" ({err.message})" if err.message else "")
            if err.code == "NoSuchKey":
                raise ObjectNotFound(f"{where}: no such object") from None
            if err.code == "NoSuchBucket":
                raise StoreConfigError(f"{where}: bucket {self.bucket} does not exist") from None
            skew = _clock_skew_s(err)
            # radosgw answers a skewed signature with a plain AccessDenied: the Date it sends tells them apart.
            if err.code == "RequestTimeTooSkewed" or (
                    err.code in _AUTH_CODES and skew is not None and abs(skew) > _SKEW_ALLOWED_S):
                raise StoreConfigError(f"{where}: {_skew_words(err.code, skew)}") from None
            if err.code in _CONFIG_CODES:
                raise StoreConfigError(
                    f"{where}: {detail}; check the access key, secret key and bucket permissions"
                ) from None
            if err.code in _UNAVAILABLE_CODES:
                raise StoreUnavailable(f"{where}: server busy or failing: {detail}") from None
            raise StoreError(f"{where}: {detail}") from None
        if isinstance(err, ServerError):
            cls = StoreUnavailable if err.status_code >= 500 else StoreError
            raise cls(f"{where}: HTTP {err.status_code} from the server") from None
        if isinstance(err, InvalidResponseError):
            # Something answered that does not speak S3: a proxy's error page, or the
            # endpoint points at another service.
            status = int(getattr(err, "_code", 0) or 0)
            cls = StoreUnavailable if status >= 500 else StoreConfigError
            raise cls(
                f"{where}: not an S3 answer (HTTP {status}); is {self.endpoint} an S3 endpoint?"
            ) from None
        if isinstance(err, SSLError) or isinstance(getattr(err, "reason", None), SSLError):
            raise StoreConfigError(f"{where}: TLS failed: {err}") from None
        if isinstance(err, HTTPError | OSError):
            reason = getattr(err, "reason", None) or err
            raise StoreUnavailable(f"{where}: {type(reason).__name__}: {reason}") from None
        if isinstance(err, ValueError):
            raise StoreConfigError(f"{where}: {err}") from None
        raise StoreError(f"{where}: {type(err).__name__}: {err}") from None

    @contextmanager
    def _boundary(self, doing: str) -> Iterator[None]:
        try:
            yield
        except StoreError:
            raise
        except (MinioException, HTTPError, OSError, ValueError) as err:
            self._fail(err, doing)

    # --- bucket -------------------------------------------------------------------

    def _ensure_bucket(self) -> None:
        """Create the bucket with Object Lock if missing, and learn whether it has the lock."""
        if self._ready:
            return
        with self._ready_lock:
            if self._ready:
                return
            with self._boundary(f"prepare bucket {self.bucket}"):
                if not self._client.bucket_exists(self.bucket):
                    if not self.create:
                        raise StoreUnavailable(f"store unreachable: bucket {self.bucket} does not exist at "
                                               f"{self.endpoint}")
                    try:
                        self._client.make_bucket(self.bucket, object_lock=True)
                        log.info("created bucket %s with Object Lock at %s", self.bucket, self.endpoint)
                    except S3Error as err:
                        # Another process created it between our check and our create.
                        if err.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                            raise
                self._object_lock = self._has_object_lock()
            if not self._object_lock and self.retention_days:
                log.warning(
                    "bucket %s at %s has no Object Lock: objects are stored without retention",
                    self.bucket,
                    self.endpoint,
                )
            self._ready = True

    def _has_object_lock(self) -> bool:
        try:
            self._client.get_object_lock_config(self.bucket)
        except S3Error as err:
            if err.code == "ObjectLockConfigurationNotFoundError":
                return False
            raise
        return True

    @property
    def object_lock(self) -> bool:
        """Whether the bucket has Object Lock (and so retention is applied)."""
        self._ensure_bucket()
        return self._object_lock

    @property
    def enforces_retention(self) -> bool:
        return self.object_lock

    # --- the ObjectStore protocol -----------------------------------------------

    def put(self, name: str, data: bytes, *, retain_until: dt.datetime | None = None) -> ObjectInfo:
        """Store `data` once under `name`; the same bytes again is a no-op, other bytes ObjectExists."""
        check_name(name)
        if retain_until is not None and retain_until.tzinfo is None:
            raise StoreConfigError("retain_until must be timezone-aware")
        if len(data) > _MAX_SINGLE_PUT:
            raise StoreConfigError(f"object {name} is {len(data)} bytes; the limit is 5 GiB")
        self._ensure_bucket()
        digest = hashlib.sha256(data).hexdigest()
        existing = self._stat_or_none(name)
        if existing is not None:
            return self._same_or_raise(name, data, digest, existing)

        until = self._retention_for(retain_until)
        retention = Retention(COMPLIANCE, until) if until is not None else None
        with self._boundary(f"write {name}"):
            self._client.put_object(
                self.bucket,
                name,
                io.BytesIO(data),
                len(data),
                metadata={SHA256_META: digest},
                part_size=max(_MIN_PART, len(data)),
                retention=retention,
            )
        return ObjectInfo(name=name, size=len(data), retain_until=until)

    def _retention_for(self, retain_until: dt.datetime | None) -> dt.datetime | None:
        """The lock date for a new object: the later of the asked date and the store's policy."""
        if not self._object_lock:
            return None
        now = self._clock()
        candidates = [d for d in (retain_until,) if d is not None]
        if self.retention_days > 0:
            candidates.append(now + dt.timedelta(days=self.retention_days))
        if not candidates:
            return None
        until = _ceil_second(max(candidates).astimezone(dt.UTC))
        return until if until > now else None

    def _same_or_raise(self, name: str, data: bytes, digest: str, info: _Stat) -> ObjectInfo:
        if info.size == len(data):
            same = info.sha256 == digest if info.sha256 else self.get(name) == data
            if same:
                return ObjectInfo(name=name, size=info.size, retain_until=info.retain_until)
        raise ObjectExists(f"object {name} already exists in {self.url} with other content")

    def get(self, name: str) -> bytes:
        check_name(name)
        self._ensure_bucket()
        with self._boundary(f"read {name}"):
            response = self._client.get_object(self.bucket, name)
            try:
                data = response.read()
                stored = response.headers.get(_SHA256_HEADER)
            finally:
                response.close()
                response.release_conn()
        if stored and hashlib.sha256(data).hexdigest() != stored:
            raise StoreError(f"s3 store {self.url}: object {name} does not match its stored sha256")
        return data

    def stat(self, name: str) -> ObjectInfo:
        st = self._stat(name)
        return ObjectInfo(name=name, size=st.size, retain_until=st.retain_until)

    def _stat(self, name: str) -> _Stat:
        check_name(name)
        self._ensure_bucket()
        with self._boundary(f"stat {name}"):
            obj = self._client.stat_object(self.bucket, name)
        headers = {k.lower(): v for k, v in (obj.metadata or {}).items()}
        # Read the lock date from the HEAD answer: minio 7.2's get_object_retention
        # cannot parse radosgw's nanosecond dates.
        raw_until = headers.get(_RETAIN_HEADER)
        mode = (headers.get(_MODE_HEADER) or "").upper()
        return _Stat(
            size=obj.size or 0,
            sha256=headers.get(_SHA256_HEADER),
            retain_until=parse_retain_until(raw_until) if raw_until else None,
            version_id=obj.version_id,
            mode=LockMode(mode) if mode in LockMode.__members__ else None,
            legal_hold=(headers.get(_HOLD_HEADER) or "").upper() == "ON",
        )

    def _stat_or_none(self, name: str) -> _Stat | None:
        try:
            return self._stat(name)
        except ObjectNotFound:
            return None

    def exists(self, name: str) -> bool:
        return self._stat_or_none(name) is not None

    def list(self, prefix: str = "") -> Iterator[str]:
        """Names under `prefix`, sorted (S3 lists keys in UTF-8 byte order, which is str order)."""
        self._ensure_bucket()
        with self._boundary(f"list {prefix or 'the bucket'}"):
            for obj in self._client.list_objects(self.bucket, prefix=prefix or None, recursive=True):
                if obj.object_name and not obj.is_dir:
                    yield obj.object_name

    # --- retention and legal hold ------------------------------------------------------------

    def _lockable(self, doing: str) -> None:
        self._ensure_bucket()
        if not self._object_lock:
            raise RetentionUnsupported(f"s3 store {self.url}: cannot {doing}: bucket {self.bucket} has no Object Lock")

    def retention(self, name: str) -> Lock | None:
        st = self._stat(name)
        if st.retain_until is None or st.mode is None:
            return None
        return Lock(st.retain_until, st.mode)

    def set_retention(self, name: str, until: dt.datetime, mode: LockMode) -> Lock:
        """Extend `name`'s lock to `until`; RetentionRefused if that would shorten it (nothing changes then).
        An equal or later lock already there is kept as it is; a COMPLIANCE lock is never made GOVERNANCE."""
        if until.tzinfo is None:
            raise StoreConfigError("retention date must be timezone-aware")
        mode = LockMode(mode)
        self._lockable(f"retain {name}")
        until = _ceil_second(until.astimezone(dt.UTC))
        st = self._stat(name)
        if st.retain_until is not None and st.mode is not None:
            if until < st.retain_until:
                raise RetentionRefused(
                    f"s3 store {self.url}: {name} is retained until {st.retain_until.isoformat()} ({st.mode.value}); "
                    f"{until.isoformat()} would shorten it: refused, retention is only ever extended")
            if st.mode is LockMode.COMPLIANCE:
                mode = LockMode.COMPLIANCE
            if until == st.retain_until and mode is st.mode:
                return Lock(st.retain_until, st.mode)
        if until <= self._clock():
            raise RetentionRefused(f"s3 store {self.url}: cannot retain {name} until {until.isoformat()}: "
                                   "that date has passed")
        with self._boundary(f"retain {name}"):
            try:
                self._client.set_object_retention(
                    self.bucket, name, Retention(COMPLIANCE if mode is LockMode.COMPLIANCE else GOVERNANCE, until),
                    version_id=st.version_id)
            except S3Error as err:
                if err.code == "AccessDenied" and st.retain_until is not None:
                    raise RetentionRefused(f"s3 store {self.url}: the server refused to change the lock of {name}: "
                                           f"{err.message or err.code}") from None
                raise
        return Lock(until, mode)

    def legal_hold(self, name: str) -> bool:
        return self._stat(name).legal_hold

    def set_legal_hold(self, name: str, on: bool) -> None:
        """Place (on) or lift (off) an S3 Object Legal Hold on `name`."""
        self._lockable(f"{'place' if on else 'lift'} a legal hold on {name}")
        st = self._stat(name)
        with self._boundary(f"{'place' if on else 'lift'} a legal hold on {name}"):
            if on:
                self._client.enable_object_legal_hold(self.bucket, name, version_id=st.version_id)
            else:
                self._client.disable_object_legal_hold(self.bucket, name, version_id=st.version_id)

    def delete(self, name: str) -> None:
        """Delete every version of `name`; ObjectLocked if Object Lock retention or a legal hold protects it."""
        info = self._stat(name)
        with self._boundary(f"delete {name}"):
            versions = [
                obj.version_id
                for obj in self._client.list_objects(self.bucket, prefix=name, include_version=True)
                if obj.object_name == name
            ] or [info.version_id]
            for version_id in versions:
                try:
                    self._client.remove_object(self.bucket, name, version_id=version_id)
                except S3Error as err:
                    if err.code == "AccessDenied":
                        if info.legal_hold:
                            raise ObjectLocked(f"s3 store {self.url}: cannot delete {name}: "
                                               "a legal hold protects it (Object Lock)") from None
                        until = info.retain_until.isoformat() if info.retain_until else "a later date"
                        raise ObjectLocked(
                            f"s3 store {self.url}: cannot delete {name}: Object Lock retains it until {until}"
                        ) from None
                    raise

    def ping(self) -> None:
        """Raise StoreUnavailable (or StoreConfigError) unless the bucket answers now."""
        if not self._ready:
            self._ensure_bucket()
            return
        with self._boundary("reach the store"):
            if not self._client.bucket_exists(self.bucket):
                raise StoreConfigError(f"s3 store {self.url}: bucket {self.bucket} does not exist")


@dataclass(frozen=True)
class _Stat:
    """What a HEAD tells about one object, beyond ObjectInfo."""

    size: int
    sha256: str | None
    retain_until: dt.datetime | None
    version_id: str | None
    mode: LockMode | None = None
    legal_hold: bool = False
