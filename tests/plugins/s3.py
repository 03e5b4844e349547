"""The loopback S3 server (scripts/s3-server, Ceph radosgw) as pytest fixtures.

`make test` starts the server and sets IRMS_TEST_S3_ENDPOINT (``127.0.0.1:7480``),
IRMS_TEST_S3_ACCESS_KEY and IRMS_TEST_S3_SECRET_KEY, plus IRMS_TEST_S3_DIR (its
S3_DIR) so that outage tests can stop and restart radosgw. Without them the session
starts its own server in /tmp/irms-pytest-s3 on ports 7490/3310 (so it never collides
with a developer's server on the defaults) and stops it at the end.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import urllib3
from minio import Minio
from minio.error import S3Error

from storage.s3 import http_client
from tests.plugins.base import missing_service

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "s3-server"
OWN_DIR = "/tmp/irms-pytest-s3"
OWN_PORT = int(os.environ.get("IRMS_TEST_S3_PORT", "7490"))
OWN_MON_PORT = int(os.environ.get("IRMS_TEST_S3_MON_PORT", "3310"))
DEFAULT_ACCESS_KEY = "s3testaccesskey"
DEFAULT_SECRET_KEY = "s3testsecretkey0123456789"
BUCKET_PREFIX = "irms-test-"
# Test buckets older than this are swept at session start (their short locks have expired).
STALE_BUCKET_AGE = dt.timedelta(hours=1)


@dataclass(frozen=True)
class S3Server:
    """A running radosgw on loopback, and how to reach and control it."""

    endpoint: str  # host:port
    access_key: str
    secret_key: str
    s3_dir: str | None  # None: an external server whose S3_DIR we were not told
    started_here: bool

    @property
    def port(self) -> int:
        return int(self.endpoint.rsplit(":", 1)[1])

    def url(self, bucket: str) -> str:
        """An s3:// store URL with the credentials in it."""
        access = urllib.parse.quote(self.access_key, safe="")
        secret = urllib.parse.quote(self.secret_key, safe="")
        return f"s3://{access}:{secret}@{self.endpoint}/{bucket}"

    def client(self) -> Minio:
        return Minio(
            self.endpoint,
            access_key=self.access_key,
            secret_key=self.secret_key,
            secure=False,
            region="us-east-1",
            http_client=http_client(secure=False),  # short timeouts: a dead server fails fast
        )

    def script(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        """Run scripts/s3-server against this server's S3_DIR."""
        if self.s3_dir is None:
            missing_service("needs IRMS_TEST_S3_DIR: the S3_DIR of the external S3 server")
        return run_script(
            *args,
            s3_dir=self.s3_dir,
            port=self.port,
            timeout=timeout,
            access_key=self.access_key,
            secret_key=self.secret_key,
        )


def run_script(
    *args: str,
    s3_dir: str,
    port: int,
    mon_port: int | None = None,
    timeout: float = 240,
    access_key: str = DEFAULT_ACCESS_KEY,
    secret_key: str = DEFAULT_SECRET_KEY,
) -> subprocess.CompletedProcess[str]:
    """Run scripts/s3-server with S3_DIR and ports; S3_MON_PORT unset means "as bootstrapped"."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("S3_")}
    env.update(S3_DIR=s3_dir, S3_PORT=str(port), S3_ACCESS_KEY=access_key, S3_SECRET_KEY=secret_key)
    if mon_port is not None:
        env["S3_MON_PORT"] = str(mon_port)
    return subprocess.run(
        [str(SCRIPT), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def http_ok(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{endpoint}/", timeout=3) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def remove_bucket(client: Minio, bucket: str) -> bool:
    """Best effort: delete every object version and the bucket. False if a lock kept something."""
    try:
        for obj in client.list_objects(bucket, recursive=True, include_version=True):
            if obj.object_name is None:
                continue
            # A version still under Object Lock stays; a later session sweeps it.
            with contextlib.suppress(S3Error):
                client.remove_object(bucket, obj.object_name, version_id=obj.version_id)
        client.remove_bucket(bucket)
    except (S3Error, urllib3.exceptions.HTTPError):
        return False
    return True


def sweep_stale_buckets(client: Minio, now: dt.datetime) -> None:
    """Remove test buckets left by earlier sessions, so the user never hits max_buckets."""
    for bucket in client.list_buckets():
        created = bucket.creation_date
        if bucket.name.startswith(BUCKET_PREFIX) and created and now - created > STALE_BUCKET_AGE:
            remove_bucket(client, bucket.name)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """The loopback S3 server for this session: the one `make test` started, or our own."""
    endpoint = os.environ.get("IRMS_TEST_S3_ENDPOINT")
    if endpoint:
        server = S3Server(
            endpoint=endpoint,
            access_key=os.environ.get("IRMS_TEST_S3_ACCESS_KEY", DEFAULT_ACCESS_KEY),
            secret_key=os.environ.get("IRMS_TEST_S3_SECRET_KEY", DEFAULT_SECRET_KEY),
            s3_dir=os.environ.get("IRMS_TEST_S3_DIR"),
            started_here=False,
        )
        if not http_ok(endpoint):
            pytest.fail(f"IRMS_TEST_S3_ENDPOINT={endpoint} does not answer HTTP 200 on GET /")
        sweep_stale_buckets(server.client(), dt.datetime.now(dt.UTC))
        yield server
        return

    if shutil.which("radosgw") is None:
        missing_service("Ceph radosgw is not installed: run scripts/install-system, or set IRMS_TEST_S3_ENDPOINT")
    status = run_script("status", s3_dir=OWN_DIR, port=OWN_PORT, mon_port=OWN_MON_PORT, timeout=60)
    already_running = status.returncode == 0
    started = time.monotonic()
    result = run_script("start", s3_dir=OWN_DIR, port=OWN_PORT, mon_port=OWN_MON_PORT)
    if result.returncode != 0:
        pytest.fail(
            f"scripts/s3-server start failed (rc {result.returncode}):\n{result.stdout}{result.stderr}"
        )
    server = S3Server(
        endpoint=f"127.0.0.1:{OWN_PORT}",
        access_key=DEFAULT_ACCESS_KEY,
        secret_key=DEFAULT_SECRET_KEY,
        s3_dir=OWN_DIR,
        started_here=not already_running,
    )
    if server.started_here:
        print(f"\ns3_server: started radosgw in {OWN_DIR} in {time.monotonic() - started:.1f}s")
    sweep_stale_buckets(server.client(), dt.datetime.now(dt.UTC))
    try:
        yield server
    finally:
        # Stop only what this session started; a server that was already up stays up.
        if server.started_here:
            run_script("stop", s3_dir=OWN_DIR, port=OWN_PORT, mon_port=OWN_MON_PORT, timeout=120)


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> Iterator[str]:
    """A fresh bucket name; the bucket is removed afterwards unless Object Lock still holds it."""
    bucket = BUCKET_PREFIX + secrets.token_hex(6)
    yield bucket
    remove_bucket(s3_server.client(), bucket)


@pytest.fixture
def s3_url(s3_server: S3Server, s3_bucket: str) -> str:
    """``s3://ACCESS:SECRET@127.0.0.1:PORT/irms-test-<random>``: a fresh bucket per test."""
    return s3_server.url(s3_bucket)


@dataclass
class S3Outage:
    """Stops and restarts radosgw alone (the mon and osd keep running)."""

    server: S3Server
    stopped: bool = False

    def stop(self) -> None:
        result = self.server.script("stop-rgw", timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        self.stopped = True

    def start(self) -> None:
        result = self.server.script("start-rgw", timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        self.stopped = False


@pytest.fixture
def s3_outage(s3_server: S3Server) -> Iterator[S3Outage]:
    """Take radosgw down mid-test with `.stop()`, bring it back with `.start()`.

    radosgw is restarted at teardown if the test left it stopped. The server is
    shared by the session, so tests that use this must not run in parallel with others.
    """
    if s3_server.s3_dir is None:
        missing_service("outage tests need IRMS_TEST_S3_DIR: the S3_DIR of the external S3 server")
    outage = S3Outage(s3_server)
    try:
        yield outage
    finally:
        if outage.stopped or not http_ok(s3_server.endpoint):
            outage.start()
