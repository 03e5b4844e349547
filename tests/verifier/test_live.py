"""verifier/live.py: reading a recording session's records on from the last one accepted, each judged as the
full audit judges it, on a copy of a real recorded session (tests/plugins/recording.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from evidence.chain import chain_genesis
from evidence.keys import ed25519_public_from_raw, unb64
from storage.file import FileStore
from tests.plugins.recording import Recorded
from tests.verifier.test_tamper import prefix_dir
from verifier.live import read_on
from verifier.session import Options, audit
from verifier.trust import TrustStore


def copy(rec: Recorded, tmp_path: Path) -> tuple[FileStore, str, Path]:
    dst = tmp_path / "store"
    shutil.copytree(rec.store, dst)
    for p in dst.rglob("*"):
        if p.is_file():
            p.chmod(0o640)
    d = prefix_dir(dst, rec.session_id)
    return FileStore(dst), str(d.relative_to(dst)) + "/", d


def test_read_on_accepts_what_the_audit_accepts(recorded: Recorded, tmp_path: Path) -> None:
    store, prefix, d = copy(recorded, tmp_path)
    header = json.loads((d / "session.json").read_bytes())
    key = ed25519_public_from_raw(unb64(header["station_key"], "station_key"), "station_key")
    count = len(list((d / "seg").glob("*.json")))
    first = read_on(store, prefix, recorded.session_id, key, next_index=0, prev_chain=chain_genesis(header),
                    witnessed=[])
    report = audit(store, recorded.session_id, Options(trust=TrustStore({header["station_id"]: key}, "test"),
                                                       media=False, ciphertexts=False))
    assert first.records == report.records and first.finding is None
    assert first.reads == count + 1  # every record and the miss after the last
    # From the middle on: only the records after it.
    mid = count // 2
    rest = read_on(store, prefix, recorded.session_id, key, next_index=mid + 1,
                   prev_chain=report.records[mid]["chain"], witnessed=[])
    assert rest.records == report.records[mid + 1:] and rest.reads == count - mid
    # A head the server witnessed that the store does not have (V13), the record's own head (no finding).
    wrong = read_on(store, prefix, recorded.session_id, key, next_index=1, prev_chain=report.records[0]["chain"],
                    witnessed=[(1, report.records[1]["chain"]), (2, "ab" * 32)])
    assert [r["index"] for r in wrong.records] == [1] and wrong.finding is not None
    assert (wrong.finding.rule, wrong.finding.segment) == ("V13", 2)
    # Not chained on from the value given (V07), and a record changed after signing (V04).
    broken = read_on(store, prefix, recorded.session_id, key, next_index=1, prev_chain="00" * 32, witnessed=[])
    assert broken.records == [] and broken.finding is not None and broken.finding.rule == "V07"
    rec2 = json.loads((d / "seg" / "00000002.json").read_bytes())
    rec2["duration_us"] += 1
    (d / "seg" / "00000002.json").write_bytes(json.dumps(rec2, separators=(",", ":"), sort_keys=True).encode())
    signed = read_on(store, prefix, recorded.session_id, key, next_index=2, prev_chain=report.records[1]["chain"],
                     witnessed=[])
    assert signed.records == [] and signed.finding is not None
    assert (signed.finding.rule, signed.finding.segment, signed.reads) == ("V04", 2, 1)
