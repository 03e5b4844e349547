"""Issue 10: every write on the recording path survives kill -9 between it and the next.

The agent is killed at named points (IRMS_TEST_CRASH_AT, recorder/crashpoint.py), then
restarted as an operator would. Each test asserts: the session verifies (or says why not)
with the fault declared, every object that was sealed at the crash reaches the store, and
the station's next session records and uploads.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.plugins.processes import free_port
from tests.plugins.recording import Station, run_cli

pytestmark = pytest.mark.slow

PLACE = ("--site", "HN-CA-01", "--room", "P101")
CASE = (*PLACE, "--case", "10/2026/HS", "--suspect", "A", "--interrogator", "B",
        "--legal-basis", "C")


def agent(station: Station, *args: str, crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
    env = station.env()
    env.pop("IRMS_TEST_CRASH_AT", None)
    if crash_at:
        env["IRMS_TEST_CRASH_AT"] = crash_at
    return run_cli("irms-agent", *args, env=env, check=False, timeout=180)


def record(station: Station, store: str, seconds: float, crash_at: str | None = None,
           drain: str = "60") -> subprocess.CompletedProcess[str]:
    return agent(station, "record", "--seconds", str(seconds), "--store", store, *CASE, "--json",
                 "--drain-timeout", drain, crash_at=crash_at)


def crashed(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == -9, f"expected kill -9 at the crash point, exit {proc.returncode}: {proc.stderr}"


def dead_store() -> str:
    """An S3 store nobody answers on: objects stay in the outbox."""
    return f"s3://k:s3secretsecret@127.0.0.1:{free_port()}/irms-away"


def sealed_names(station: Station, store: Path) -> set[str]:
    """Every object name sealed so far: in the outbox (queued or not yet) or in the store."""
    names = {p.name.replace("__", "/") for p in (station.home / "outbox").rglob("*") if p.is_file()
             and not p.name.startswith(".")}
    if store.exists():
        names |= {str(p.relative_to(store)) for p in store.rglob("*") if p.is_file() and not p.name.startswith(".")}
    return names


def stored(store: Path) -> set[str]:
    return {str(p.relative_to(store)) for p in store.rglob("*") if p.is_file() and not p.name.startswith(".")}


def verify(station: Station, store: Path, sid: str) -> tuple[int, dict[str, object]]:
    res = station.verify("session", sid, "--store", str(store), "--json", "--custodian-key",
                         str(station.custodian_key))
    return res.returncode, json.loads(res.stdout)


def session_ids(store: Path) -> list[str]:
    return sorted(p.stem for p in (store / "sessions").glob("*.json"))


def manifest_of(store: Path, sid: str) -> dict[str, object]:
    prefix = json.loads((store / "sessions" / f"{sid}.json").read_text())["prefix"]
    return dict(json.loads((store / prefix / "manifest.json").read_text()))


def next_session_records_and_uploads(station: Station, store: Path) -> str:
    out = record(station, str(store), 4)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["pending_uploads"] == 0
    code, report = verify(station, store, summary["session_id"])
    assert code == 0, report
    return str(summary["session_id"])


def first_session(station: Station) -> str:
    return next(p.name for p in (station.home / "outbox").iterdir())


# --- fault 1: key object vs journal ---------------------------------------------------


@pytest.mark.parametrize("point", ["key.outbox_written", "key.committed"])
def test_kill9_around_a_new_data_key_leaves_no_key_missing(station: Station, tmp_path: Path, point: str) -> None:
    store = tmp_path / "store"
    crashed(record(station, str(store), 30, crash_at="seal.committed@2"))
    # The restart resumes the session under a new data key and is killed around that key.
    crashed(record(station, str(store), 30, crash_at=point))
    before = sealed_names(station, store)
    out = agent(station, "recover", "--store", str(store), *PLACE, "--json")
    assert out.returncode == 0, out.stderr
    sid = json.loads(out.stdout)["closed"][0]
    code, report = verify(station, store, sid)
    assert code == 0, report
    manifest = manifest_of(store, sid)
    keys = sorted(p.name for p in (store / str(report["prefix"]) / "keys").glob("*.json"))
    assert manifest["key_count"] == len(keys) + 1 >= 2, (manifest["key_count"], keys)
    assert [i["cause"] for i in report["interruptions"]].count("crash") >= 1  # type: ignore[union-attr]
    assert before <= stored(store), before - stored(store)
    next_session_records_and_uploads(station, store)


# --- fault 2: header and locator vs the session row ------------------------------------


@pytest.mark.parametrize("point", ["start.outbox_written", "start.committed"])
def test_kill9_at_start_never_loses_the_header(station: Station, tmp_path: Path, point: str) -> None:
    store = tmp_path / "store"
    crashed(record(station, str(store), 6, crash_at=point))
    out = record(station, str(store), 6)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["pending_uploads"] == 0
    sids = session_ids(store)
    if point == "start.committed":
        # The session the journal knew is resumed (its header and locator were queued with it).
        assert "resuming session" in out.stderr
        assert sids == [summary["session_id"]]
    else:
        # Killed before the journal knew the session: it never existed; its files wait unqueued.
        assert "resuming session" not in out.stderr
        assert sids == [summary["session_id"]]
    for sid in sids:
        code, report = verify(station, store, sid)
        assert code == 0, report
    next_session_records_and_uploads(station, store)


# --- fault 3: manifest vs "closed", and a refused object never blocks the queue ---------


@pytest.mark.parametrize("point", ["close.outbox_written", "close.committed"])
def test_kill9_around_the_manifest_seals_one_manifest(station: Station, tmp_path: Path, point: str) -> None:
    store = tmp_path / "store"
    crashed(record(station, str(store), 4, crash_at=point))
    sid = first_session(station)
    before = sealed_names(station, store)
    next_id = next_session_records_and_uploads(station, store)
    code, report = verify(station, store, sid)
    assert code == 0, report
    manifest = manifest_of(store, sid)
    # Closed before the crash: its own end reason; otherwise the restart closed it as recovered.
    expected = "duration_reached" if point == "close.committed" else "recovered_after_crash"
    assert manifest["end_reason"] == expected
    assert before <= stored(store), before - stored(store)
    assert next_id != sid
    upload = agent(station, "upload", "--store", str(store), *PLACE)
    assert upload.returncode == 0, upload.stderr


def test_manifest_already_stored_before_closed_is_adopted_not_sealed_again(station: Station, tmp_path: Path) -> None:
    """What an agent that queued the manifest before the closing transaction left: the store has it, the
    journal says open. The restart closes the session with that manifest, never a second, different one."""
    store = tmp_path / "store"
    crashed(record(station, str(store), 4, crash_at="close.outbox_written"))
    sid = first_session(station)
    local = next((station.home / "outbox" / sid).glob("*manifest.json"))
    target = store / "HN-CA-01" / "P101" / sid / "manifest.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(local, target)
    first_manifest = target.read_bytes()
    out = record(station, str(store), 4)
    assert out.returncode == 0, out.stderr
    assert "closed with it" in out.stderr
    assert target.read_bytes() == first_manifest
    code, report = verify(station, store, sid)
    assert code == 0, report
    assert json.loads(out.stdout)["pending_uploads"] == 0
    upload = agent(station, "upload", "--store", str(store), *PLACE)
    assert upload.returncode == 0, upload.stderr


def test_refused_object_is_quarantined_and_the_queue_moves_on(station: Station, tmp_path: Path) -> None:
    store = tmp_path / "store"
    crashed(record(station, str(store), 6, crash_at="upload.before_put@1"))
    sid = first_session(station)
    header = next((station.home / "outbox" / sid).glob("*session.json"))
    name = header.name.replace("__", "/")
    # The store already holds other bytes under the header's name.
    (store / name).parent.mkdir(parents=True, exist_ok=True)
    (store / name).write_bytes(b'{"not": "this header"}')
    out = agent(station, "recover", "--store", str(store), *PLACE, "--json", "--drain-timeout", "60")
    assert out.returncode == 4, out.stderr
    result = json.loads(out.stdout)
    assert result["pending_uploads"] == 0
    assert [(h["name"], h["state"]) for h in result["held"]] == [(name, "quarantined")]
    assert f"irms-agent: error: quarantined {name}: store" in out.stderr
    assert header.exists(), "the quarantined local copy was deleted"
    upload = agent(station, "upload", "--store", str(store), *PLACE)
    assert upload.returncode == 4 and "quarantined" in upload.stderr, upload.stderr
    # Everything else of the session went, including its manifest.
    assert (store / name.replace("session.json", "manifest.json")).exists()
    next_session_records_and_uploads(station, store)
