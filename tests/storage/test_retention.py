"""Retention extended, never shortened, and legal holds, against the real radosgw (issue 17); the file store
says it enforces neither."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from minio.deleteobjects import DeleteObject

from storage.base import LockMode
from storage.errors import ObjectLocked, RetentionRefused, RetentionUnsupported
from storage.file import FileStore
from storage.s3 import S3Store
from storage.url import open_store
from tests.plugins.s3 import S3Server

NAME = "site/room/sess/seg/00000001.bin"


def later(seconds: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)


@pytest.fixture
def s3_store(s3_url: str, s3_server: S3Server) -> Iterator[S3Store]:
    store = open_store(s3_url)
    assert isinstance(store, S3Store)
    yield store
    # Lift any hold so the bucket can be swept once the short GOVERNANCE locks end.
    for name in store.list():
        if store.legal_hold(name):
            store.set_legal_hold(name, False)


def test_file_store_reports_no_lock_and_refuses_retention(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "store")
    assert store.enforces_retention is False
    info = store.put(NAME, b"x", retain_until=later(3600))
    assert info.retain_until is None  # asked for, never applied: not reported
    assert store.retention(NAME) is None and store.legal_hold(NAME) is False
    with pytest.raises(RetentionUnsupported, match="enforces no retention"):
        store.set_retention(NAME, later(3600), LockMode.GOVERNANCE)
    with pytest.raises(RetentionUnsupported, match="legal hold"):
        store.set_legal_hold(NAME, True)


@pytest.mark.s3
@pytest.mark.parametrize("mode", [LockMode.GOVERNANCE, LockMode.COMPLIANCE])
def test_retention_is_extended_and_never_shortened(s3_store: S3Store, mode: LockMode) -> None:
    s3_store.put(NAME, b"evidence")
    assert s3_store.enforces_retention and s3_store.retention(NAME) is None
    first = s3_store.set_retention(NAME, later(20), mode)
    assert s3_store.retention(NAME) == first and first.mode is mode
    longer = s3_store.set_retention(NAME, later(40), mode)
    assert longer.until > first.until
    assert s3_store.retention(NAME) == longer  # radosgw holds the new date
    assert s3_store.set_retention(NAME, longer.until, mode) == longer  # the same again: nothing to do
    with pytest.raises(RetentionRefused, match="would shorten it") as refused:
        s3_store.set_retention(NAME, later(25), mode)
    assert "\n" not in str(refused.value)
    assert s3_store.retention(NAME) == longer
    with pytest.raises(ObjectLocked, match="retains it until"):
        s3_store.delete(NAME)


@pytest.mark.s3
def test_compliance_is_never_weakened_to_governance(s3_store: S3Store) -> None:
    s3_store.put(NAME, b"evidence", retain_until=later(15))  # as the uploader writes: COMPLIANCE
    lock = s3_store.set_retention(NAME, later(30), LockMode.GOVERNANCE)
    assert lock.mode is LockMode.COMPLIANCE
    assert s3_store.retention(NAME) == lock


@pytest.mark.s3
def test_a_legal_hold_blocks_deletion_also_with_governance_bypass(s3_store: S3Store, s3_server: S3Server) -> None:
    s3_store.put(NAME, b"evidence")
    s3_store.set_retention(NAME, later(10), LockMode.GOVERNANCE)
    s3_store.set_legal_hold(NAME, True)
    assert s3_store.legal_hold(NAME)
    with pytest.raises(ObjectLocked, match="legal hold"):
        s3_store.delete(NAME)
    # The admin's own credentials, asking S3 to bypass GOVERNANCE retention: the hold still refuses.
    admin = s3_server.client()
    version = admin.stat_object(s3_store.bucket, NAME).version_id
    errors = list(admin.remove_objects(s3_store.bucket, [DeleteObject(NAME, version)], bypass_governance_mode=True))
    assert [e.code for e in errors] == ["AccessDenied"]
    assert s3_store.get(NAME) == b"evidence"
    # Lifted, the GOVERNANCE retention alone yields to the bypass (which IRMS never sends).
    s3_store.set_legal_hold(NAME, False)
    assert not s3_store.legal_hold(NAME)
    assert list(admin.remove_objects(s3_store.bucket, [DeleteObject(NAME, version)],
                                     bypass_governance_mode=True)) == []
    assert not s3_store.exists(NAME)


@pytest.mark.s3
def test_hold_without_retention_blocks_delete_until_lifted(s3_store: S3Store) -> None:
    s3_store.put(NAME, b"evidence")
    s3_store.set_legal_hold(NAME, True)
    with pytest.raises(ObjectLocked):
        s3_store.delete(NAME)
    s3_store.set_legal_hold(NAME, False)
    s3_store.delete(NAME)
    assert not s3_store.exists(NAME)


@pytest.mark.s3
def test_bucket_without_object_lock_says_so(s3_server: S3Server, s3_bucket: str) -> None:
    s3_server.client().make_bucket(s3_bucket)
    store = open_store(s3_server.url(s3_bucket))
    store.put(NAME, b"x")
    assert store.enforces_retention is False
    with pytest.raises(RetentionUnsupported, match="no Object Lock"):
        store.set_retention(NAME, later(60), LockMode.GOVERNANCE)
    with pytest.raises(RetentionUnsupported):
        store.set_legal_hold(NAME, True)
    store.delete(NAME)
