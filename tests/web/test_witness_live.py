"""Witnessing end to end: the station daemon reports chain heads while a real session records, the
server keeps them, and the verifier uses them to catch a history rewritten with the station's own key."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from evidence.keys import load_station_private
from recorder.cli import main as agent
from tests.verifier.test_tamper import prefix_dir, rechain
from tests.web.conftest import World
from tests.web.test_agent import server  # noqa: F401 (fixture)
from web.db import Database
from web.heartbeat.witness import witnessed_heads

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def test_daemon_witnesses_a_real_recording(world: World, server: str, irms_home: Path,  # noqa: F811
                                           db: Database, tmp_path: Path) -> None:
    assert agent(["enroll", "--server", server, "--code", world.code("HN-TTG", "P01")]) == 0
    subprocess.run([str(BIN / "irms-verify"), "custodian-keygen", "--unencrypted", "--private", str(tmp_path / "c.key"),
                    "--public", str(tmp_path / "c.pub")], check=True, capture_output=True, timeout=60)
    assert agent(["custodian", str(tmp_path / "c.pub")]) == 0
    daemon = subprocess.Popen([str(BIN / "irms-agent"), "run", "--interval", "1"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    store = tmp_path / "store"
    try:
        out = subprocess.run([str(BIN / "irms-agent"), "record", "--seconds", "10", "--store", str(store),
                              "--site", "HN-TTG", "--room", "P01", "--case", "12/2026/HS", "--suspect", "A",
                              "--interrogator", "B", "--legal-basis", "C", "--json"],
                             capture_output=True, text=True, timeout=120, check=True)
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
    sid = json.loads(out.stdout)["session_id"]
    with db.session() as s:
        heads = witnessed_heads(s, sid)
    assert len(heads) >= 3, heads
    witness = tmp_path / "witness.json"
    witness.write_text(json.dumps(heads))

    def verify(store_dir: Path) -> tuple[int, dict[str, object]]:
        proc = subprocess.run([str(BIN / "irms-verify"), "session", sid, "--store", str(store_dir), "--witness",
                               str(witness), "--json"], capture_output=True, text=True, timeout=120)
        return proc.returncode, json.loads(proc.stdout)

    rc, report = verify(store)
    assert rc == 0, report
    # Whoever holds the station key rewrites segment 1 and re-signs everything after it: integrity alone
    # cannot tell, the heads the server witnessed during the recording can.
    forged = tmp_path / "forged"
    shutil.copytree(store, forged)
    for p in forged.rglob("*"):
        if p.is_file():
            p.chmod(0o640)
    d = prefix_dir(forged, sid)
    rec1 = json.loads((d / "seg" / "00000001.json").read_text())
    rec1["plain_sha256"] = "00" * 32
    (d / "seg" / "00000001.json").write_text(json.dumps(rec1))
    rechain(d, load_station_private(irms_home / "keys" / "station.key"))
    rc, report = verify(forged)
    assert rc == 1 and report["findings"][0]["rule"] == "V13", report  # type: ignore[index]
