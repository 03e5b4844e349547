"""Faults are tests, not hopes: kill -9, bad input, a full disk, real time."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest

from tests.plugins.processes import kill9, wait_for
from tests.plugins.recording import Station

pytestmark = pytest.mark.slow


def tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()



def test_kill9_mid_recording_then_restart_resumes_with_one_interruption(station: Station, tmp_path: Path) -> None:
    store = tmp_path / "store"
    args = ("record", "--seconds", "16", "--store", str(store), "--site", "HN-CA-01", "--room", "P101",
            "--case", "9/2026/HS", "--suspect", "A", "--interrogator", "B", "--legal-basis", "C", "--json")
    proc = station.popen_agent(*args)
    wait_for(lambda: len(list(store.rglob("seg/00000002.json"))) == 1, 60, "three sealed segments")
    time.sleep(0.9)  # mid-segment
    killed_at_us = time.time_ns() // 1000
    kill9(proc)
    out = station.agent(*args)
    assert "resuming session" in out.stderr
    summary = json.loads(out.stdout)
    sid = summary["session_id"]
    res = station.verify("session", sid, "--store", str(store), "--json",
                         "--custodian-key", str(station.custodian_key))
    report = json.loads(res.stdout)
    assert res.returncode == 0, res.stdout
    assert len(report["interruptions"]) == 1
    gap = report["interruptions"][0]
    assert gap["cause"] == "crash"
    lost_s = (killed_at_us - gap["start_us"]) / 1e6
    assert lost_s <= 0.5, f"{lost_s:.3f} s of media lost at the crash"
    # The partial segment was salvaged, sealed with a new data key, and nothing was renumbered.
    prefix = store / report["prefix"]
    records = [json.loads((prefix / "seg" / f"{i:08d}.json").read_text()) for i in range(report["segments"])]
    assert any(r["salvaged"] for r in records)
    assert [r["index"] for r in records] == list(range(len(records)))
    assert {r["key_index"] for r in records} == {0, 1}
    assert not list((station.home / "spool").rglob("*.ts")), "plain segments left behind"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("profile", "hardware profile"),
        ("missing-profile", "not found"),
        ("store-url", "unknown store URL scheme"),
        ("key", "private key"),
        ("custodian", "custodian"),
    ],
)
def test_bad_input_gives_one_clear_line_and_harms_nothing(station: Station, tmp_path: Path, change: str,
                                                          expected: str) -> None:
    store = tmp_path / "store"
    first = station.record(str(store), 3)
    before_store, before_home = tree_digest(store), tree_digest(station.home / "outbox")
    kit, store_url = "synthetic", str(store)
    if change == "profile":
        bad = tmp_path / "broken.toml"
        bad.write_text("format = 'irms.profile/1'\nname = [")
        kit = str(bad)
    elif change == "missing-profile":
        kit = "no-such-kit"
    elif change == "store-url":
        store_url = "ftp://example.invalid/x"
    elif change == "key":
        key = station.home / "keys" / "station.key"
        key.chmod(0o600)
        key.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    elif change == "custodian":
        (station.home / "keys" / "custodian.pub").unlink()
    proc = station.agent("record", "--kit", kit, "--seconds", "3", "--store", store_url, "--site", "HN-CA-01",
                         "--room", "P101", "--case", "x", check=False)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("irms-agent: error: ") and expected in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert tree_digest(store) == before_store and tree_digest(station.home / "outbox") == before_home
    res = station.verify("session", str(first["session_id"]), "--store", str(store))
    if change != "key":  # the trust store still holds the real key
        assert res.returncode == 0, res.stdout


def test_full_disk_refuses_new_session_and_keeps_evidence(station: Station, tmp_path: Path) -> None:
    store = tmp_path / "store"
    station.record(str(store), 3)
    env_before = tree_digest(store)
    # A disk with less free space than the threshold: no small filesystem can be mounted here,
    # so the threshold is raised above what this disk has free.
    import shutil

    free = shutil.disk_usage(station.home).free
    env = station.env()
    env["IRMS_MIN_FREE_BYTES"] = str(free * 2)
    from tests.plugins.recording import run_cli

    proc = run_cli("irms-agent", "record", "--seconds", "3", "--store", str(store), "--site", "HN-CA-01",
                   "--room", "P101", "--case", "x", env=env, check=False)
    assert proc.returncode == 5
    assert "new session refused" in proc.stderr and "recorded evidence kept" in proc.stderr
    assert tree_digest(store) == env_before


def test_sixty_second_session_keeps_real_time(station: Station, tmp_path: Path) -> None:
    store = tmp_path / "store"
    summary = station.record(str(store), 60)
    prefix = store / str(summary["prefix"])
    manifest = json.loads((prefix / "manifest.json").read_text())
    first = json.loads((prefix / "seg" / "00000000.json").read_text())
    recorded_us = sum(json.loads(p.read_text())["duration_us"] for p in (prefix / "seg").glob("*.json"))
    wall_us = manifest["ended_at_us"] - first["start_us"]
    ratio = recorded_us / wall_us
    print(f"recorded/wall = {recorded_us / 1e6:.3f} s / {wall_us / 1e6:.3f} s = {ratio:.4f}")
    assert 0.995 <= ratio <= 1.005
