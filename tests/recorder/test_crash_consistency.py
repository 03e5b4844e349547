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
import threading
from pathlib import Path

import pytest

from tests.plugins.devices import CameraPeer
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
    assert summary["pending_uploads"] == 0 and summary["held_uploads"] == 0
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
    # The store already holds other bytes under the header's name, and the very bytes of the locator.
    (store / name).parent.mkdir(parents=True, exist_ok=True)
    (store / name).write_bytes(b'{"not": "this header"}')
    locator = station.home / "outbox" / sid / f"sessions__{sid}.json"
    (store / "sessions").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(locator, store / "sessions" / f"{sid}.json")
    out = agent(station, "recover", "--store", str(store), *PLACE, "--json", "--drain-timeout", "60")
    assert out.returncode == 4, out.stderr
    result = json.loads(out.stdout)
    assert result["pending_uploads"] == 0
    assert [(h["name"], h["state"]) for h in result["held"]] == [(name, "quarantined")]
    assert f"irms-agent: error: quarantined {name}: store" in out.stderr
    assert header.exists(), "the quarantined local copy was deleted"
    assert not locator.exists(), "identical bytes in the store were not taken as a confirmation"
    upload = agent(station, "upload", "--store", str(store), *PLACE)
    assert upload.returncode == 4 and "quarantined" in upload.stderr, upload.stderr
    # Everything else of the session went, including its manifest.
    assert (store / name.replace("session.json", "manifest.json")).exists()
    # Put back in the queue while the store still holds the other bytes: checked again, held again.
    retry = agent(station, "upload", "--store", str(store), *PLACE, "--retry-held", "--json")
    assert retry.returncode == 4, retry.stderr
    assert f"irms-agent: {name}: held, put back in the queue" in retry.stderr
    assert [(h["name"], h["state"]) for h in json.loads(retry.stdout)["held"]] == [(name, "quarantined")]
    assert (store / name).read_bytes() == b'{"not": "this header"}' and header.exists()
    # The store's administrator takes the wrong object away; the operator retries: the kept copy goes, the session
    # verifies, nothing is held any more.
    (store / name).unlink()
    retry = agent(station, "upload", "--store", str(store), *PLACE, "--retry-held", "--json")
    assert retry.returncode == 0, retry.stderr
    assert json.loads(retry.stdout) == {"pending_uploads": 0, "held": []}
    assert not header.exists()
    code, report = verify(station, store, sid)
    assert code == 0, report
    next_session_records_and_uploads(station, store)


# --- fault 8: outbox integrity ----------------------------------------------------------


def test_torn_outbox_object_is_reported_kept_and_never_uploaded(station: Station, tmp_path: Path) -> None:
    store = tmp_path / "store"
    # The store is away, so sealed objects wait in the outbox; then a power cut tears one of them.
    crashed(record(station, dead_store(), 30, crash_at="seal.committed@3"))
    sid = first_session(station)
    torn = next((station.home / "outbox" / sid).glob("*seg__00000001.bin"))
    torn.write_bytes(torn.read_bytes()[: torn.stat().st_size // 2])
    half = torn.read_bytes()
    name = torn.name.replace("__", "/")
    before = sealed_names(station, store) - {name}
    out = agent(station, "recover", "--store", str(store), *PLACE, "--json", "--drain-timeout", "60")
    assert out.returncode == 4, out.stderr
    result = json.loads(out.stdout)
    assert [(h["name"], h["state"]) for h in result["held"]] == [(name, "damaged")]
    assert f"irms-agent: error: damaged {name}: outbox file {torn} is damaged" in out.stderr
    assert torn.read_bytes() == half, "the torn object was replaced or deleted"
    assert not (store / name).exists(), "the torn object was uploaded"
    assert before <= stored(store), before - stored(store)
    # The manifest declares it, and the verifier names the one segment the store lacks.
    events = manifest_of(store, sid)["events"]
    assert any(e["kind"] == "object_damaged" and torn.name in e["detail"] for e in events), events  # type: ignore[attr-defined]
    code, report = verify(station, store, sid)
    findings = report["findings"]
    assert code == 1 and [(f["rule"][:3], f["segment"]) for f in findings] == [("V05", 1)], findings  # type: ignore[index,union-attr]
    upload = agent(station, "upload", "--store", str(store), *PLACE)
    assert upload.returncode == 4 and "damaged" in upload.stderr, upload.stderr
    # Put back in the queue while still torn: its digest is checked again, it is held again and never uploaded.
    retry = agent(station, "upload", "--store", str(store), *PLACE, "--retry-held")
    assert retry.returncode == 4 and f"error: damaged {name}" in retry.stderr, retry.stderr
    assert not (store / name).exists() and torn.read_bytes() == half
    next_session_records_and_uploads(station, store)


# --- fault 9: durability order -----------------------------------------------------------


def test_run_directory_is_fsynced_before_a_segment_is_sealed(station: Station, tmp_path: Path) -> None:
    store = tmp_path / "store"
    trace = tmp_path / "fsync.trace"
    env = station.env()
    env.pop("IRMS_TEST_CRASH_AT", None)
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed")
    proc = subprocess.run([strace, "-f", "-y", "-e", "trace=fsync", "-o", str(trace),
                           str(Path(shutil.which("irms-agent") or "irms-agent")), "record", "--seconds", "5",
                           "--store", str(store), *CASE, "--json"],
                          env=env, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    synced = [line.split("<", 1)[1].split(">", 1)[0] for line in trace.read_text().splitlines()
              if "fsync(" in line and "<" in line]
    seg_file = next(i for i, p in enumerate(synced) if p.endswith("/run000/seg000000.ts"))
    run_dir = next(i for i, p in enumerate(synced) if p.endswith("/run000") and i > seg_file)
    sealed = next(i for i, p in enumerate(synced) if "seg__00000000.bin" in p)
    assert seg_file < run_dir < sealed, synced[:20]


def test_undecodable_partial_is_kept_for_inspection_not_deleted(station: Station, tmp_path: Path) -> None:
    store = tmp_path / "store"
    crashed(record(station, str(store), 30, crash_at="seal.committed@2"))
    sid = first_session(station)
    run_dir = station.home / "spool" / sid / "run000"
    junk = b"\x47" + bytes(187) * 3  # a torn start of a TS packet: nothing ffmpeg can decode
    (run_dir / "seg000077.ts").write_bytes(junk)
    out = agent(station, "recover", "--store", str(store), *PLACE, "--json")
    assert out.returncode == 0, out.stderr
    kept = station.home / "inspect" / sid / "run000-seg000077.ts"
    assert kept.read_bytes() == junk
    assert not (station.home / "spool" / sid).exists()
    events = manifest_of(store, sid)["events"]
    assert any(e["kind"] == "partial_kept" and "seg000077.ts" in e["detail"] for e in events), events  # type: ignore[attr-defined]
    code, report = verify(station, store, sid)
    assert code == 0, report
    next_session_records_and_uploads(station, store)


# --- fault 7 (part): "captured" for a plain file that is gone ------------------------------


def test_captured_plain_file_gone_is_a_declared_loss(station: Station, tmp_path: Path) -> None:
    store = tmp_path / "store"
    crashed(record(station, str(store), 30, crash_at="seal.outbox_written@3"))
    sid = first_session(station)
    # The journal says segment 2 is captured; a power cut lost its plain file.
    (station.home / "spool" / sid / "run000" / "seg000002.ts").unlink()
    out = agent(station, "recover", "--store", str(store), *PLACE, "--json")
    assert out.returncode == 0, out.stderr
    code, report = verify(station, store, sid)
    assert code == 0, report
    causes = [i["cause"] for i in report["interruptions"]]  # type: ignore[union-attr]
    assert "power" in causes, report["interruptions"]
    events = manifest_of(store, sid)["events"]
    assert any(e["kind"] == "segment_lost" and "seg000002.ts" in e["detail"] for e in events), events  # type: ignore[attr-defined]
    next_session_records_and_uploads(station, store)


# --- fault 7: a damaged journal ------------------------------------------------------------


def damage_journal(home: Path, how: str) -> None:
    db = home / "journal.db"
    wal = db.with_name("journal.db-wal")
    if how == "db-flipped":
        # Every b-tree page of the checkpointed database loses its page type; the pages the WAL
        # holds newer copies of stay readable, so only the station's older history is damaged.
        with db.open("r+b") as f:
            for page in range(1, db.stat().st_size // 4096):
                f.seek(page * 4096)
                f.write(b"\x00" * 8)
    elif how == "wal-flipped":
        with wal.open("r+b") as f:
            f.seek(32 + 2 * (24 + 4096) + 24 + 100)  # inside the WAL's third frame: its checksum fails
            byte = f.read(1)
            f.seek(-1, 1)
            f.write(bytes([byte[0] ^ 0xFF]))
    else:
        wal.unlink()  # a power cut before the WAL reached the disk


@pytest.mark.parametrize("how", ["db-flipped", "wal-flipped", "wal-lost"])
def test_damaged_journal_is_kept_and_rebuilt_and_the_station_records_again(station: Station, tmp_path: Path,
                                                                           how: str) -> None:
    store = tmp_path / "store"
    earlier = record(station, str(store), 3)  # a station with a history: its journal was checkpointed
    assert earlier.returncode == 0, earlier.stderr
    crashed(record(station, str(store), 30, crash_at="seal.committed@4"))
    sid = next(p.name for p in (station.home / "spool").iterdir())
    before = sealed_names(station, store)
    damage_journal(station.home, how)
    out = record(station, str(store), 4)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    assert "journal damaged" in out.stderr, out.stderr
    kept = list((station.home / "journal-damaged").glob("*/journal.db"))
    assert len(kept) == 1, "the damaged journal was not kept"
    summary = json.loads(out.stdout)
    assert summary["session_id"] != sid and summary["pending_uploads"] == 0
    # The interrupted session is closed from what describes itself, with the crash declared.
    code, report = verify(station, store, sid)
    assert code == 0, report
    manifest = manifest_of(store, sid)
    assert manifest["end_reason"] == "recovered_after_crash"
    assert "crash" in [i["cause"] for i in manifest["interruptions"]]  # type: ignore[attr-defined]
    rebuilt = [e["detail"] for e in manifest["events"] if e["kind"] == "journal_rebuilt"]  # type: ignore[attr-defined]
    assert len(rebuilt) == 1, manifest["events"]
    # Damaged bytes are found by the integrity check; a lost or torn WAL by what the journal cannot explain.
    found_by = ("integrity check failed", "cannot be read") if how == "db-flipped" else ("does not know",)
    assert any(words in rebuilt[0] for words in found_by), rebuilt[0]
    assert int(str(manifest["segment_count"])) >= 4
    assert before <= stored(store), before - stored(store)
    code, report = verify(station, store, summary["session_id"])
    assert code == 0, report
    upload = agent(station, "upload", "--store", str(store), *PLACE)
    assert upload.returncode == 0, upload.stderr


# --- journals left by an agent without the atomic steps --------------------------------------


@pytest.mark.parametrize("lost", ["key", "header"])
def test_object_promised_but_never_queued_is_made_again_from_the_journal(station: Station, tmp_path: Path,
                                                                         lost: str) -> None:
    """The state faults 1 and 2 left before the atomic steps: the journal promises an object (a counted
    key, a session row) whose outbox entry never existed. The restart rebuilds it from the journal."""
    import sqlite3

    store = tmp_path / "store"
    away = dead_store()
    if lost == "key":
        crashed(record(station, away, 30, crash_at="seal.committed@2"))
        crashed(record(station, away, 30, crash_at="key.committed"))
        pattern = "keys/0001.json"
    else:
        crashed(record(station, away, 30, crash_at="start.committed"))
        pattern = ""
    sid = first_session(station)
    db = sqlite3.connect(station.home / "journal.db")
    names = [r[0] for r in db.execute("SELECT name FROM objects WHERE session_id=?", (sid,))]
    gone = [n for n in names if (n.endswith(pattern) if pattern else n.endswith("session.json") or
                                 n.startswith("sessions/"))]
    assert gone, names
    with db:
        for n in gone:
            db.execute("DELETE FROM objects WHERE name=?", (n,))
            (station.home / "outbox" / sid / n.replace("/", "__")).unlink()
    db.close()
    out = agent(station, "recover", "--store", str(store), *PLACE, "--json")
    assert out.returncode == 0, out.stderr
    assert "journal damaged" not in out.stderr
    code, report = verify(station, store, sid)
    assert code == 0, report
    next_session_records_and_uploads(station, store)


def test_journal_lost_while_the_store_is_away_is_rebuilt_when_it_is_back(station: Station, tmp_path: Path) -> None:
    store = tmp_path / "store"
    away = dead_store()
    crashed(record(station, away, 30, crash_at="seal.committed@3"))
    sid = first_session(station)
    before = sealed_names(station, store)
    damage_journal(station.home, "wal-lost")
    # Records already uploaded would only be in the store: without it the agent refuses, in one line.
    out = record(station, away, 4, drain="1")
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("irms-agent: error:")]
    assert out.returncode != 0 and len(lines) == 1 and "rebuilding the journal needs the store" in lines[0], out.stderr
    assert "Traceback" not in out.stderr
    assert before <= sealed_names(station, store), "a sealed object was lost while the store was away"
    # The store is back: the next start rebuilds, closes the session and records.
    next_session_records_and_uploads(station, store)
    code, report = verify(station, store, sid)
    assert code == 0, report
    assert before <= stored(store), before - stored(store)


# --- a late start and the first segment ----------------------------------------------------


def test_kill9_as_a_late_first_segment_is_journaled_never_loses_the_late_start(
        station: Station, tmp_path: Path, camera_peer: CameraPeer) -> None:
    """The camera sends nothing for the session's first 3 s, so the first segment begins late and that
    time is declared. The declaration is journaled with the first segment: killed there, the session
    is recovered with the late start (or the crash) declared and verifies; it used to be journaled
    just after, and a kill between the two left the time unexplained (V17)."""
    store = tmp_path / "store"
    camera_peer.control("stall")
    resume = threading.Timer(3.0, camera_peer.control, ("resume",))
    resume.start()
    try:
        crashed(agent(station, "record", "--seconds", "14", "--store", str(store), *CASE, "--json",
                      "--kit", "ip-camera-rtsp", "--camera", f"wide={camera_peer.url}",
                      crash_at="capture.first_journaled"))
    finally:
        resume.cancel()
    sid = first_session(station)
    out = agent(station, "recover", "--store", str(store), *PLACE, "--json")
    assert out.returncode == 0, out.stderr
    code, report = verify(station, store, sid)
    assert code == 0, (report["findings"], report["interruptions"], manifest_of(store, sid)["events"])
    manifest = manifest_of(store, sid)
    gaps = report["interruptions"]
    assert gaps and gaps[0]["start_us"] == manifest["started_at_us"], gaps  # type: ignore[index]
    next_session_records_and_uploads(station, store)
