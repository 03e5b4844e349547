"""A tamper test for every verifier rule, on sessions recorded by irms-agent."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.plugins.recording import Recorded
from verifier.canonical import canonical_json
from verifier.chain import chain_genesis, chain_next
from verifier.crypto import seal_segment, unwrap_key
from verifier.keys import load_custodian_private, load_station_private, sign_document

pytestmark = pytest.mark.slow


def prefix_dir(store: Path, sid: str) -> Path:
    loc = json.loads((store / "sessions" / f"{sid}.json").read_text())
    return store / loc["prefix"]


def verify(rec: Recorded, store: Path, sid: str, *extra: str, audit: bool = False) -> tuple[int, dict[str, Any]]:
    proc = rec.station.verify("audit" if audit else "session", sid, "--store", str(store), "--json", *extra)
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def first_rule(result: dict[str, Any]) -> str:
    assert result["findings"], result
    return str(result["findings"][0]["rule"])


def load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_bytes()))


def write(path: Path, doc: dict[str, Any]) -> None:
    path.write_bytes(canonical_json(doc))


def station_key(rec: Recorded) -> Ed25519PrivateKey:
    return load_station_private(rec.station.home / "keys" / "station.key")


def segments(d: Path) -> int:
    return len(list((d / "seg").glob("*.json")))


def rechain(d: Path, key: Ed25519PrivateKey, start: int = 0) -> None:
    """What an insider holding the station key would do: recompute chain and signatures."""
    header = load(d / "session.json")
    prev = chain_genesis(header)
    n = segments(d)
    for i in range(n):
        rec = load(d / "seg" / f"{i:08d}.json")
        if i >= start:
            rec["prev_chain"] = prev
            rec["chain"] = chain_next(prev, i, rec["plain_sha256"], rec["cipher_sha256"])
            write(d / "seg" / f"{i:08d}.json", sign_document(rec, key))
        prev = rec["chain"]
    man = load(d / "manifest.json")
    man["chain_head"] = prev
    write(d / "manifest.json", sign_document(man, key))


def test_intact_session_verifies(recorded: Recorded) -> None:
    rc, res = verify(recorded, recorded.store, recorded.session_id,
                     "--custodian-key", str(recorded.station.custodian_key))
    assert rc == 0, res
    assert res["ok"] and res["status"] == "verified" and res["findings"] == []
    assert res["segments"] >= 4 and res["media_checked"] is True
    assert 8.0 < res["duration_s"] < 10.0


def test_v01_header_missing(recorded: Recorded, store_copy: Path) -> None:
    (prefix_dir(store_copy, recorded.session_id) / "session.json").unlink()
    rc, res = verify(recorded, store_copy, recorded.session_id)
    assert rc == 1 and first_rule(res) == "V01"


def test_v02_everything_resigned_by_another_station(recorded: Recorded, store_copy: Path) -> None:
    d = prefix_dir(store_copy, recorded.session_id)
    other = Ed25519PrivateKey.generate()
    from verifier.keys import b64, public_raw

    header = load(d / "session.json")
    header["station_key"] = b64(public_raw(other.public_key()))
    write(d / "session.json", sign_document(header, other))
    rechain(d, other)
    rc, res = verify(recorded, store_copy, recorded.session_id)
    assert rc == 1 and first_rule(res) == "V02"


def test_v03_header_edited(recorded: Recorded, store_copy: Path) -> None:
    d = prefix_dir(store_copy, recorded.session_id)
    header = load(d / "session.json")
    header["case"]["suspect"] = "Someone Else"
    write(d / "session.json", header)
    rc, res = verify(recorded, store_copy, recorded.session_id)
    assert rc == 1 and first_rule(res) == "V03"


def test_v04_flipped_byte_in_record(recorded: Recorded, store_copy: Path) -> None:
    path = prefix_dir(store_copy, recorded.session_id) / "seg" / "00000001.json"
    rec = load(path)
    rec["duration_us"] += 1
    write(path, rec)
    rc, res = verify(recorded, store_copy, recorded.session_id)
    assert rc == 1 and first_rule(res) == "V04" and res["findings"][0]["segment"] == 1


def test_v04_record_signed_by_another_key(recorded: Recorded, store_copy: Path) -> None:
    path = prefix_dir(store_copy, recorded.session_id) / "seg" / "00000002.json"
    write(path, sign_document(load(path), Ed25519PrivateKey.generate()))
    rc, res = verify(recorded, store_copy, recorded.session_id)
    assert rc == 1 and first_rule(res) == "V04"


def test_v04_segment_moved_in_from_another_session(recorded: Recorded, store_copy: Path) -> None:
    d = prefix_dir(store_copy, recorded.session_id)
    o = prefix_dir(store_copy, recorded.other_session_id)
    for ext in ("bin", "json"):
        shutil.copyfile(o / "seg" / f"00000001.{ext}", d / "seg" / f"00000001.{ext}")
    rc, res = verify(recorded, store_copy, recorded.session_id)
    assert rc == 1 and first_rule(res) == "V04"


def test_v05_ciphertext_deleted(recorded: Recorded, store_copy: Path) -> None:
    (prefix_dir(store_copy, recorded.session_id) / "seg" / "00000002.bin").unlink()
    rc, res = verify(recorded, store_copy, recorded.session_id)
    assert rc == 1 and first_rule(res) == "V05"


def test_v05_foreign_object_inserted(recorded: Recorded, store_copy: Path) -> None:
    (prefix_dir(store_copy, recorded.session_id) / "seg" / "extra.bin").write_bytes(b"x" * 100)
    rc, res = verify(recorded, store_copy, recorded.session_id)
    assert rc == 1 and first_rule(res) == "V05"


def test_v06_flipped_byte_in_segment(recorded: Recorded, store_copy: Path) -> None:
    path = prefix_dir(store_copy, recorded.session_id) / "seg" / "00000001.bin"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    rc, res = verify(recorded, store_copy, recorded.session_id)
    assert rc == 1 and first_rule(res) == "V06" and res["findings"][0]["segment"] == 1


def test_v06_ciphertext_from_another_session(recorded: Recorded, store_copy: Path) -> None:
    d = prefix_dir(store_copy, recorded.session_id)
    o = prefix_dir(store_copy, recorded.other_session_id)
    shutil.copyfile(o / "seg" / "00000000.bin", d / "seg" / "00000000.bin")
    rc, res = verify(recorded, store_copy, recorded.session_id)
    assert rc == 1 and first_rule(res) == "V06"


def test_v07_segments_swapped(recorded: Recorded, store_copy: Path) -> None:
    d = prefix_dir(store_copy, recorded.session_id)
    for ext in ("bin", "json"):
        a, b = d / "seg" / f"00000001.{ext}", d / "seg" / f"00000002.{ext}"
        tmp = a.read_bytes()
        a.write_bytes(b.read_bytes())
        b.write_bytes(tmp)
    rc, res = verify(recorded, store_copy, recorded.session_id)
    assert rc == 1 and first_rule(res) == "V07" and res["findings"][0]["segment"] == 1


def test_v07_segment_duplicated(recorded: Recorded, store_copy: Path) -> None:
    d = prefix_dir(store_copy, recorded.session_id)
    for ext in ("bin", "json"):
        shutil.copyfile(d / "seg" / f"00000001.{ext}", d / "seg" / f"00000002.{ext}")
    rc, res = verify(recorded, store_copy, recorded.session_id)
    assert rc == 1 and first_rule(res) == "V07" and res["findings"][0]["segment"] == 2


def test_v08_segment_deleted(recorded: Recorded, store_copy: Path) -> None:
    d = prefix_dir(store_copy, recorded.session_id)
    for ext in ("bin", "json"):
        (d / "seg" / f"00000001.{ext}").unlink()
    rc, res = verify(recorded, store_copy, recorded.session_id, audit=True)
    assert rc == 1 and first_rule(res) == "V08"
    assert "V07" in {f["rule"] for f in res["findings"]}  # the chain no longer joins either


def test_v09_manifest_missing_is_unterminated_not_complete(recorded: Recorded, store_copy: Path) -> None:
    d = prefix_dir(store_copy, recorded.session_id)
    (d / "manifest.json").unlink()
    rc, res = verify(recorded, store_copy, recorded.session_id)
    assert rc == 4 and res["status"] == "unterminated" and not res["ok"]
    assert res["proven_segments"] == segments(d)


def test_v10_manifest_edited(recorded: Recorded, store_copy: Path) -> None:
    path = prefix_dir(store_copy, recorded.session_id) / "manifest.json"
    man = load(path)
    man["interruptions"] = []
    man["end_reason"] = "stopped"
    write(path, man)
    rc, res = verify(recorded, store_copy, recorded.session_id)
    assert rc == 1 and first_rule(res) == "V10"


def test_v11_last_segments_cut_off(recorded: Recorded, store_copy: Path) -> None:
    d = prefix_dir(store_copy, recorded.session_id)
    n = segments(d)
    for i in (n - 1, n - 2):
        for ext in ("bin", "json"):
            (d / "seg" / f"{i:08d}.{ext}").unlink()
    rc, res = verify(recorded, store_copy, recorded.session_id)
    assert rc == 1 and first_rule(res) == "V11"


def test_v11_cut_with_manifest_removed_is_caught_by_witness(recorded: Recorded, store_copy: Path,
                                                            tmp_path: Path) -> None:
    d = prefix_dir(store_copy, recorded.session_id)
    n = segments(d)
    witness = [{"index": i, "chain": load(d / "seg" / f"{i:08d}.json")["chain"]} for i in range(n)]
    (tmp_path / "w.json").write_text(json.dumps(witness))
    (d / "manifest.json").unlink()
    for ext in ("bin", "json"):
        (d / "seg" / f"{n - 1:08d}.{ext}").unlink()
    rc, res = verify(recorded, store_copy, recorded.session_id, "--witness", str(tmp_path / "w.json"),
                     audit=True)
    assert rc == 1 and {"V11", "V13"} <= {f["rule"] for f in res["findings"]}


def test_v12_key_count_forged(recorded: Recorded, store_copy: Path) -> None:
    d = prefix_dir(store_copy, recorded.session_id)
    man = load(d / "manifest.json")
    man["key_count"] = 2
    write(d / "manifest.json", sign_document(man, station_key(recorded)))
    rc, res = verify(recorded, store_copy, recorded.session_id)
    assert rc == 1 and first_rule(res) == "V12"


def test_v13_station_key_holder_rewrites_witnessed_history(recorded: Recorded, store_copy: Path,
                                                           tmp_path: Path) -> None:
    d = prefix_dir(store_copy, recorded.session_id)
    witness = [{"index": i, "chain": load(d / "seg" / f"{i:08d}.json")["chain"]} for i in range(segments(d))]
    (tmp_path / "w.json").write_text(json.dumps(witness))
    # Replace segment 1's content with another session's, re-chain and re-sign with the station's own key.
    o = prefix_dir(store_copy, recorded.other_session_id)
    shutil.copyfile(o / "seg" / "00000001.bin", d / "seg" / "00000001.bin")
    rec = load(d / "seg" / "00000001.json")
    import hashlib

    cipher = (d / "seg" / "00000001.bin").read_bytes()
    rec["cipher_sha256"], rec["cipher_size"] = hashlib.sha256(cipher).hexdigest(), len(cipher)
    write(d / "seg" / "00000001.json", rec)
    rechain(d, station_key(recorded))
    rc, res = verify(recorded, store_copy, recorded.session_id)
    assert rc == 0, "without a witness an insider re-signing everything is not detectable by integrity alone"
    rc, res = verify(recorded, store_copy, recorded.session_id, "--witness", str(tmp_path / "w.json"))
    assert rc == 1 and first_rule(res) == "V13" and res["findings"][0]["segment"] == 1
    # ... and with the custodian key the foreign ciphertext does not decrypt here (V14).
    rc, res = verify(recorded, store_copy, recorded.session_id,
                     "--custodian-key", str(recorded.station.custodian_key))
    assert rc == 1 and first_rule(res) == "V14"


def test_v15_undecodable_media_sealed_with_the_right_key(recorded: Recorded, store_copy: Path) -> None:
    d = prefix_dir(store_copy, recorded.session_id)
    custodian = load_custodian_private(recorded.station.custodian_key)
    header = load(d / "session.json")
    data_key = unwrap_key(header["wrapped_key"], custodian, recorded.session_id, 0)
    import hashlib

    plain = os.urandom(50_000)
    cipher = seal_segment(data_key, recorded.session_id, 2, plain)
    (d / "seg" / "00000002.bin").write_bytes(cipher)
    rec = load(d / "seg" / "00000002.json")
    rec.update(plain_sha256=hashlib.sha256(plain).hexdigest(), plain_size=len(plain),
               cipher_sha256=hashlib.sha256(cipher).hexdigest(), cipher_size=len(cipher))
    write(d / "seg" / "00000002.json", rec)
    rechain(d, station_key(recorded))
    rc, res = verify(recorded, store_copy, recorded.session_id,
                     "--custodian-key", str(recorded.station.custodian_key))
    assert rc == 1 and first_rule(res) == "V15" and res["findings"][0]["segment"] == 2


def test_v15_duration_disagrees_with_media(recorded: Recorded, store_copy: Path) -> None:
    d = prefix_dir(store_copy, recorded.session_id)
    rec = load(d / "seg" / "00000001.json")
    rec["duration_us"] += 900_000
    write(d / "seg" / "00000001.json", sign_document(rec, station_key(recorded)))
    rc, res = verify(recorded, store_copy, recorded.session_id,
                     "--custodian-key", str(recorded.station.custodian_key), audit=True)
    assert rc == 1 and "V15" in {f["rule"] for f in res["findings"]}


def test_v16_unexplained_gap(recorded: Recorded, store_copy: Path) -> None:
    d = prefix_dir(store_copy, recorded.session_id)
    key = station_key(recorded)
    for i in range(2, segments(d)):
        rec = load(d / "seg" / f"{i:08d}.json")
        rec["start_us"] += 3_000_000
        write(d / "seg" / f"{i:08d}.json", sign_document(rec, key))
    rc, res = verify(recorded, store_copy, recorded.session_id)
    assert rc == 1 and first_rule(res) == "V16" and res["findings"][0]["segment"] == 2


def test_export_copies_verify_offline_and_detect_tampering(recorded: Recorded, tmp_path: Path) -> None:
    out = tmp_path / "export"
    proc = recorded.station.verify("export", recorded.session_id, "--store", str(recorded.store), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    for label in ("case-file", "procuracy-file"):
        folder = out / label
        # Offline: a verifier with no IRMS home and no trust store of its own.
        env = {"PATH": os.environ["PATH"], "IRMS_HOME": str(tmp_path / "nohome")}
        from tests.plugins.recording import run_cli

        res = run_cli("irms-verify", "session", recorded.session_id, "--store", str(folder), "--json",
                      env=env, check=False)
        assert res.returncode == 0, res.stdout + res.stderr
        assert json.loads(res.stdout)["ok"] is True
    seg = next((out / "case-file" / "objects").rglob("00000000.bin"))
    seg.chmod(0o640)
    seg.write_bytes(seg.read_bytes()[:-1] + b"\x00")
    res = recorded.station.verify("session", recorded.session_id, "--store", str(out / "case-file"))
    assert res.returncode == 1 and "V06" in res.stdout


def test_rebuild_gives_one_playable_file(recorded: Recorded, tmp_path: Path) -> None:
    out = tmp_path / "rec.mp4"
    proc = recorded.station.verify("rebuild", recorded.session_id, "--store", str(recorded.store),
                                   "--custodian-key", str(recorded.station.custodian_key), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    import subprocess

    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_name",
                            "-of", "json", str(out)], capture_output=True, text=True, timeout=60, check=True)
    info = json.loads(probe.stdout)
    assert {s["codec_name"] for s in info["streams"]} == {"h264", "aac"}
    assert abs(float(info["format"]["duration"]) - float(str(recorded.summary["duration_s"]))) < 0.3
