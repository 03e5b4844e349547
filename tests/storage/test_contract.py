"""One contract that every ObjectStore backend passes: the file store and S3 (radosgw)."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from storage.base import ObjectInfo, ObjectStore
from storage.errors import (
    ObjectExists,
    ObjectNotFound,
    StoreConfigError,
    StoreError,
    StoreUnavailable,
)
from storage.file import FileStore
from storage.s3 import S3Store, parse_retain_until
from storage.url import open_store
from tests.plugins.s3 import S3Outage, S3Server

SEGMENT = "site/room/sess/seg/00000001.bin"


@pytest.fixture(params=["file", pytest.param("s3", marks=pytest.mark.s3)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "file":
        return FileStore(tmp_path / "store")
    # Only the s3 case asks for the server, so file-only runs never start radosgw.
    return open_store(request.getfixturevalue("s3_url"))


def test_satisfies_the_protocol(store: ObjectStore) -> None:
    assert isinstance(store, ObjectStore)


def test_put_get_round_trip(store: ObjectStore) -> None:
    info = store.put(SEGMENT, b"segment bytes")
    assert info == ObjectInfo(name=SEGMENT, size=13, retain_until=None)
    assert store.get(SEGMENT) == b"segment bytes"
    assert store.stat(SEGMENT).size == 13
    assert store.exists(SEGMENT)


def test_empty_object(store: ObjectStore) -> None:
    store.put("site/empty", b"")
    assert store.get("site/empty") == b""
    assert store.stat("site/empty").size == 0


def test_put_same_bytes_again_is_idempotent(store: ObjectStore) -> None:
    first = store.put(SEGMENT, b"abc")
    again = store.put(SEGMENT, b"abc")
    assert again.name == first.name and again.size == first.size == 3
    assert store.get(SEGMENT) == b"abc"
    assert list(store.list()) == [SEGMENT]


@pytest.mark.parametrize("other", [b"abd", b"abcd", b""], ids=["same-size", "longer", "empty"])
def test_put_other_bytes_raises_object_exists(store: ObjectStore, other: bytes) -> None:
    store.put(SEGMENT, b"abc")
    with pytest.raises(ObjectExists):
        store.put(SEGMENT, other)
    assert store.get(SEGMENT) == b"abc"


def test_missing_object(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFound):
        store.get("site/missing")
    with pytest.raises(ObjectNotFound):
        store.stat("site/missing")
    with pytest.raises(ObjectNotFound):
        store.delete("site/missing")
    assert not store.exists("site/missing")


def test_list_with_prefix_is_sorted(store: ObjectStore) -> None:
    names = [
        "site/room/sess/seg/00000002.bin",
        "site/room2/sess/seg/00000001.bin",
        "site/room/sess/manifest.json",
        SEGMENT,
        "site/room/sess/seg/00000010.bin",
        "other/x",
    ]
    for name in names:
        store.put(name, name.encode())
    assert list(store.list()) == sorted(names)
    assert list(store.list("site/room/")) == [
        "site/room/sess/manifest.json",
        SEGMENT,
        "site/room/sess/seg/00000002.bin",
        "site/room/sess/seg/00000010.bin",
    ]
    assert list(store.list("site/room")) == sorted(n for n in names if n.startswith("site/room"))
    assert list(store.list("nothing/")) == []


@pytest.mark.parametrize("name", ["", "/abs", "a//b", "a/../b", "../a", "./a", "a/.", "a/"])
def test_invalid_names_are_refused(store: ObjectStore, name: str) -> None:
    with pytest.raises(StoreConfigError):
        store.put(name, b"x")
    with pytest.raises(StoreConfigError):
        store.get(name)


def test_delete(store: ObjectStore) -> None:
    store.put(SEGMENT, b"abc")
    store.delete(SEGMENT)
    assert not store.exists(SEGMENT)
    assert list(store.list()) == []
    with pytest.raises(ObjectNotFound):
        store.get(SEGMENT)
    store.put(SEGMENT, b"other bytes after delete")
    assert store.get(SEGMENT) == b"other bytes after delete"


def test_ping(store: ObjectStore) -> None:
    store.ping()


def test_20_mib_object(store: ObjectStore) -> None:
    data = os.urandom(20 * 1024 * 1024)
    assert store.put("site/big.bin", data).size == len(data)
    assert store.stat("site/big.bin").size == len(data)
    assert hashlib.sha256(store.get("site/big.bin")).digest() == hashlib.sha256(data).digest()
    assert store.put("site/big.bin", data).size == len(data)  # idempotent, compared by sha256


def test_url_names_the_store(store: ObjectStore) -> None:
    assert store.url.startswith(("file://", "s3://"))


# --- S3 only --------------------------------------------------------------------------


def soon(seconds: int = 30) -> dt.datetime:
    """A retention end short enough that a later session can sweep the bucket."""
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)


@pytest.fixture
def s3_store(s3_url: str) -> S3Store:
    store = open_store(s3_url)
    assert isinstance(store, S3Store)
    return store


@pytest.mark.s3
def test_s3_bucket_is_created_with_object_lock(s3_store: S3Store, s3_server: S3Server) -> None:
    s3_store.ping()
    assert s3_store.object_lock
    config = s3_server.client().get_object_lock_config(s3_store.bucket)
    assert config is not None


@pytest.mark.s3
def test_s3_retention_is_set_and_blocks_delete(s3_store: S3Store) -> None:
    asked = soon().replace(microsecond=250_000)
    info = s3_store.put(SEGMENT, b"evidence", retain_until=asked)
    # Rounded up to whole seconds so the lock is never shorter than asked.
    assert info.retain_until == asked.replace(microsecond=0) + dt.timedelta(seconds=1)
    assert s3_store.stat(SEGMENT).retain_until == info.retain_until
    with pytest.raises(StoreError) as raised:
        s3_store.delete(SEGMENT)
    assert not isinstance(raised.value, ObjectNotFound)
    assert "Object Lock" in str(raised.value)
    assert s3_store.get(SEGMENT) == b"evidence"
    # A re-put of the same bytes reports the existing lock.
    assert s3_store.put(SEGMENT, b"evidence").retain_until == info.retain_until


@pytest.mark.s3
def test_s3_retention_days_uses_the_injected_clock(s3_server: S3Server, s3_bucket: str) -> None:
    # A clock one day behind makes retention_days=1 end 30 s from now (a short real lock).
    behind = soon() - dt.timedelta(days=1)
    store = S3Store(
        endpoint=s3_server.endpoint,
        bucket=s3_bucket,
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        retention_days=1,
        clock=lambda: behind,
    )
    info = store.put(SEGMENT, b"x")
    assert info.retain_until is not None
    assert info.retain_until - behind >= dt.timedelta(days=1)
    assert store.stat(SEGMENT).retain_until == info.retain_until
    with pytest.raises(StoreError):
        store.delete(SEGMENT)


@pytest.mark.s3
def test_s3_retention_in_the_past_is_not_sent(s3_store: S3Store) -> None:
    info = s3_store.put(SEGMENT, b"x", retain_until=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    assert info.retain_until is None
    s3_store.delete(SEGMENT)


@pytest.mark.s3
def test_s3_naive_retain_until_is_refused(s3_store: S3Store) -> None:
    with pytest.raises(StoreConfigError):
        s3_store.put(SEGMENT, b"x", retain_until=dt.datetime(2100, 1, 1))


@pytest.mark.s3
def test_s3_bucket_without_object_lock_stores_without_retention(s3_server: S3Server, s3_bucket: str) -> None:
    s3_server.client().make_bucket(s3_bucket)  # plain bucket, made by someone else
    store = open_store(s3_server.url(s3_bucket))
    assert isinstance(store, S3Store)
    assert not store.object_lock
    assert store.put(SEGMENT, b"x", retain_until=soon()).retain_until is None
    assert store.stat(SEGMENT).retain_until is None
    store.delete(SEGMENT)
    assert not store.exists(SEGMENT)


@pytest.mark.s3
def test_s3_object_from_another_tool_is_compared_by_content(s3_store: S3Store, s3_server: S3Server) -> None:
    s3_store.ping()  # creates the bucket
    s3_server.client().put_object(s3_store.bucket, SEGMENT, io.BytesIO(b"abc"), 3)  # no sha256 metadata
    assert s3_store.put(SEGMENT, b"abc").size == 3
    with pytest.raises(ObjectExists):
        s3_store.put(SEGMENT, b"abd")


@pytest.mark.s3
def test_s3_get_detects_content_that_does_not_match_its_sha256(
    s3_store: S3Store, s3_server: S3Server
) -> None:
    s3_store.ping()
    s3_server.client().put_object(
        s3_store.bucket, SEGMENT, io.BytesIO(b"abc"), 3, metadata={"sha256": "00" * 32}
    )
    with pytest.raises(StoreError, match="sha256"):
        s3_store.get(SEGMENT)


@pytest.mark.s3
def test_s3_concurrent_bucket_creation(s3_server: S3Server, s3_bucket: str) -> None:
    stores = [open_store(s3_server.url(s3_bucket)) for _ in range(4)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(stores))

    def ping(store: ObjectStore) -> None:
        barrier.wait()
        try:
            store.ping()
        except BaseException as err:  # collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=ping, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert all(isinstance(s, S3Store) and s.object_lock for s in stores)


def timed(call: Callable[[], object]) -> tuple[BaseException, float]:
    started = time.monotonic()
    try:
        call()
    except BaseException as err:
        return err, time.monotonic() - started
    raise AssertionError("expected an error")


@pytest.mark.s3
def test_s3_dead_endpoint_is_unavailable_quickly() -> None:
    store = open_store("s3://key:secret@127.0.0.1:1/irms-test-dead")
    for call in (store.ping, lambda: store.put(SEGMENT, b"x"), lambda: store.get(SEGMENT)):
        err, elapsed = timed(call)
        assert isinstance(err, StoreUnavailable), repr(err)
        assert elapsed < 10


@pytest.mark.s3
def test_s3_bad_credentials_are_a_config_error(s3_server: S3Server, s3_bucket: str) -> None:
    url = s3_server.url(s3_bucket).replace(s3_server.secret_key, "wrong-secret-0123456789")
    store = open_store(url)
    for call in (store.ping, lambda: store.put(SEGMENT, b"x")):
        err, _ = timed(call)
        assert isinstance(err, StoreConfigError), repr(err)
        assert "wrong-secret" not in str(err)
    bad_key = open_store(s3_server.url(s3_bucket).replace(s3_server.access_key, "nosuchkey", 1))
    with pytest.raises(StoreConfigError):
        bad_key.ping()


@pytest.mark.s3
def test_s3_url_never_holds_the_secret(s3_server: S3Server, s3_url: str) -> None:
    store = open_store(s3_url)
    assert s3_server.secret_key in s3_url
    assert store.url == f"s3://{s3_server.endpoint}/{s3_url.rsplit('/', 1)[1]}"
    assert s3_server.secret_key not in store.url
    assert s3_server.secret_key not in repr(store)
    assert s3_server.secret_key not in str(vars(store))


@pytest.mark.s3
def test_s3_outage_is_unavailable_then_recovers(s3_store: S3Store, s3_outage: S3Outage) -> None:
    s3_store.put(SEGMENT, b"before")
    s3_outage.stop()
    for call in (s3_store.ping, lambda: s3_store.put("site/during", b"x"), lambda: s3_store.get(SEGMENT)):
        err, elapsed = timed(call)
        assert isinstance(err, StoreUnavailable), repr(err)
        assert elapsed < 10
    s3_outage.start()
    s3_store.ping()
    assert s3_store.get(SEGMENT) == b"before"
    s3_store.put("site/after", b"x")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("2026-11-27T01:00:15.000000000Z", dt.datetime(2026, 11, 27, 1, 0, 15, tzinfo=dt.UTC)),
        ("2026-11-27T01:00:15.123456789Z", dt.datetime(2026, 11, 27, 1, 0, 15, 123456, tzinfo=dt.UTC)),
        ("2026-11-27T01:00:15.5Z", dt.datetime(2026, 11, 27, 1, 0, 15, 500000, tzinfo=dt.UTC)),
        ("2026-11-27T01:00:15Z", dt.datetime(2026, 11, 27, 1, 0, 15, tzinfo=dt.UTC)),
    ],
)
def test_parse_retain_until_takes_nanoseconds(header: str, expected: dt.datetime) -> None:
    assert parse_retain_until(header) == expected


def test_parse_retain_until_refuses_garbage() -> None:
    with pytest.raises(StoreError):
        parse_retain_until("tomorrow")
