"""Recording into the real S3 server (radosgw on loopback), and surviving its outage."""

from __future__ import annotations

import json
import time

import pytest

from storage.url import open_store
from tests.plugins.recording import Station
from tests.plugins.s3 import S3Outage

pytestmark = [pytest.mark.s3, pytest.mark.slow]


def test_record_to_s3_with_object_lock_and_verify_from_it(station: Station, s3_url: str) -> None:
    summary = station.record(s3_url, 5, extra=("--retention-days", "1"))
    assert summary["pending_uploads"] == 0
    res = station.verify("session", str(summary["session_id"]), "--store", s3_url, "--json",
                         "--custodian-key", str(station.custodian_key))
    assert res.returncode == 0, res.stdout + res.stderr
    assert json.loads(res.stdout)["ok"] is True
    store = open_store(s3_url)
    info = store.stat(f"{summary['prefix']}manifest.json")
    assert info.retain_until is not None  # written with COMPLIANCE retention
    assert "secret" not in store.url and "s3testsecret" not in res.stdout + res.stderr


def test_store_away_for_60_s_loses_nothing(station: Station, s3_url: str, s3_outage: S3Outage) -> None:
    args = ("record", "--seconds", "80", "--store", s3_url, "--site", "HN-CA-01", "--room", "P101",
            "--case", "10/2026/HS", "--suspect", "A", "--interrogator", "B", "--legal-basis", "C", "--json")
    proc = station.popen_agent(*args)
    try:
        time.sleep(8)
        s3_outage.stop()
        t_stop = time.monotonic()
        time.sleep(30)
        queued = list((station.home / "outbox").rglob("*.bin"))
        assert len(queued) >= 5, "sealed segments should wait in the outbox while the store is away"
        time.sleep(max(0.0, 60 - (time.monotonic() - t_stop)))
        s3_outage.start()
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert summary["pending_uploads"] == 0 and summary["interruptions"] == []
    res = station.verify("session", str(summary["session_id"]), "--store", s3_url, "--json")
    report = json.loads(res.stdout)
    assert res.returncode == 0, res.stdout
    assert report["segments"] == summary["segments"] >= 38
    assert not list((station.home / "outbox").rglob("*.bin")), "confirmed uploads must be deleted locally"
