"""The station home is its owner's alone (evidence.owner_only): made so from the first file, and an
old home open to other users is fixed at the start of any `irms-agent` command, or refused."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import threading
from pathlib import Path

from tests.plugins.recording import Station, make_station


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def open_to_others(root: Path) -> list[str]:
    """Every path under `root` (root included) that a group or other user could read or enter."""
    out = []
    for path in [root, *root.rglob("*")]:
        try:
            m = mode(path)
        except FileNotFoundError:
            continue  # sealed and removed while we looked
        if m & 0o077 and not path.is_symlink():
            out.append(f"{path} {m:04o}")
    return out


def test_a_fresh_home_is_owner_only_from_the_first_file(tmp_path: Path) -> None:
    station = make_station(tmp_path / "station", "st-modes-01")
    # Enrolled with a server that is down: the session's events wait in events.db.
    info = station.home / "station.json"
    info.write_text(json.dumps({"station_id": "st-modes-01", "enrolled": True, "server": "http://127.0.0.1:9"}))
    seen: list[str] = []
    stop = threading.Event()

    def watch() -> None:  # the outbox, spool, -wal and -shm exist only while recording
        while not stop.wait(0.05):
            seen.extend(open_to_others(station.home))

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        station.record(str(tmp_path / "store"), 4)
    finally:
        stop.set()
        t.join(5)
    home = station.home
    assert mode(home) == 0o700 and mode(home / "keys") == 0o700
    assert mode(home / "keys" / "station.key") == 0o600
    for name in ("journal.db", "events.db", "station.json"):
        assert mode(home / name) == 0o600, name
    assert sorted(set(seen)) == [] and open_to_others(home) == []


def test_an_old_home_open_to_others_is_fixed_with_one_line_per_path(station: Station, tmp_path: Path) -> None:
    home = station.home
    station.record(str(tmp_path / "store"), 2)
    (home / "station.toml").write_text('camera_password = "hunter2"\n')
    os.chmod(home, 0o755)
    for path in (home / "journal.db", home / "keys" / "station.key", home / "station.toml"):
        os.chmod(path, 0o644)
    res = station.agent("custodian", str(station.custodian_pub))
    lines = res.stderr.splitlines()
    assert f"irms-agent: warning: folder {home} was open to other users (mode 0755); made owner-only (0700)" in lines
    for name in ("journal.db", "keys/station.key", "station.toml"):
        assert (f"irms-agent: warning: file {home / name} was open to other users (mode 0644); "
                "made owner-only (0600)") in lines
    assert open_to_others(home) == []
    again = station.agent("custodian", str(station.custodian_pub))
    assert "warning" not in again.stderr  # fixed once, silent after


def test_a_home_that_cannot_be_made_private_is_refused_in_one_line(station: Station, tmp_path: Path) -> None:
    journal = station.home / "journal.db"
    station.record(str(tmp_path / "store"), 2)
    os.chmod(journal, 0o644)
    # An immutable file: even its owner (root here) cannot change its mode.
    subprocess.run(["chattr", "+i", str(journal)], check=True)
    try:
        res = station.agent("custodian", str(station.custodian_pub), check=False)
    finally:
        subprocess.run(["chattr", "-i", str(journal)], check=True)
    assert res.returncode == 2
    errors = [ln for ln in res.stderr.splitlines() if "error" in ln]
    assert errors == [f"irms-agent: error: {journal} is open to other users (mode 0644) and cannot be made "
                      f"owner-only: Operation not permitted; fix it as its owner (chmod go= {journal}) "
                      "or run as that user"], res.stderr
