"""A tamper test for every verifier rule, on sessions recorded by irms-agent."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from evidence.canonical import canonical_json
from evidence.chain import chain_genesis, chain_next
from evidence.crypto import seal_segment, unwrap_key
from evidence.keys import load_custodian_private, load_station_private, sign_document
from tests.plugins.processes import kill9, wait_for
from tests.plugins.recording import Recorded

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


def offline_env(tmp_path: Path) -> dict[str, str]:
    """A reader with no IRMS home and no trust store of their own (the code under test on PYTHONPATH)."""
    env = {"PATH": os.environ["PATH"], "IRMS_HOME": str(tmp_path / "nohome")}
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


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
    from evidence.keys import b64, public_raw

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


def test_v13_cut_with_manifest_removed_is_caught_by_witness_past_the_end(recorded: Recorded, store_copy: Path,
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
    # One rule for a witness past the end: V13 (the spec and the code agree), and it fails, not "unterminated".
    assert rc == 1 and res["status"] == "failed"
    assert [(f["rule"], f["segment"]) for f in res["findings"]] == [("V13", n - 1)]
    assert "store ends at segment" in res["findings"][0]["message"]


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
    rec["plain_size"] = len(cipher) - 16  # the insider keeps the record consistent (V04 checks the sizes)
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
        env = offline_env(tmp_path)
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


# --- format 1.1: the verifier as strict as its spec (issue 11) ---------------------------------------------


def resign(path: Path, key: Ed25519PrivateKey, **changes: Any) -> dict[str, Any]:
    doc = load(path)
    doc.update(changes)
    signed = sign_document(doc, key)
    write(path, signed)
    return signed


def test_p1_unknown_member_in_a_record_signature(recorded: Recorded, store_copy: Path) -> None:
    path = prefix_dir(store_copy, recorded.session_id) / "seg" / "00000001.json"
    rec = load(path)
    rec["signature"]["note"] = "unsigned text"
    write(path, rec)
    rc, res = verify(recorded, store_copy, recorded.session_id)
    assert rc == 1 and first_rule(res) == "V04" and res["findings"][0]["segment"] == 1
    assert "unknown members ['note']" in res["findings"][0]["message"]


def test_p1_unknown_member_in_the_manifest_signature(recorded: Recorded, store_copy: Path) -> None:
    path = prefix_dir(store_copy, recorded.session_id) / "manifest.json"
    man = load(path)
    man["signature"]["note"] = "unsigned text"
    write(path, man)
    rc, res = verify(recorded, store_copy, recorded.session_id)
    assert rc == 1 and first_rule(res) == "V10" and "unknown members ['note']" in res["findings"][0]["message"]


def test_p2_duplicated_member_in_a_record(recorded: Recorded, store_copy: Path) -> None:
    path = prefix_dir(store_copy, recorded.session_id) / "seg" / "00000001.json"
    data = path.read_bytes()
    path.write_bytes(b'{"duration_us":9000000,' + data[1:])  # Python would keep the last, others the first
    rc, res = verify(recorded, store_copy, recorded.session_id)
    assert rc == 1 and first_rule(res) == "V04" and "'duration_us' appears twice" in res["findings"][0]["message"]


@pytest.mark.parametrize(("obj", "change", "rule"), [
    ("seg/00000002.json", "bom", "V04"),
    ("manifest.json", "newline", "V10"),
    ("session.json", "indent", "V01"),
    ("seg/00000000.json", "escape", "V04"),
])
def test_p2_stored_bytes_must_be_exactly_canonical(recorded: Recorded, store_copy: Path, obj: str, change: str,
                                                   rule: str) -> None:
    d = prefix_dir(store_copy, recorded.session_id)
    path = d / obj
    data = original = path.read_bytes()
    if change == "bom":
        data = b"\xef\xbb\xbf" + data
    elif change == "newline":
        data += b"\n"
    elif change == "indent":
        data = json.dumps(json.loads(data), indent=2, sort_keys=True, ensure_ascii=False).encode()
    else:  # the same string, written with an escape canonical JSON does not use
        data = data.replace(b'"format":"irms.record/1"', b'"format":"irms.record\\/1"')
    path.write_bytes(data)
    assert json.loads(data.decode("utf-8-sig")) == json.loads(original)  # the same document, other bytes
    rc, res = verify(recorded, store_copy, recorded.session_id)
    assert rc == 1 and first_rule(res) == rule and "canonical" in res["findings"][0]["message"]


def test_p3_cipher_size_is_plain_size_plus_the_tag(recorded: Recorded, store_copy: Path) -> None:
    path = prefix_dir(store_copy, recorded.session_id) / "seg" / "00000001.json"
    rec = load(path)
    resign(path, station_key(recorded), plain_size=rec["plain_size"] + 1)
    rc, res = verify(recorded, store_copy, recorded.session_id)
    assert rc == 1 and first_rule(res) == "V04" and "adds exactly 16 bytes" in res["findings"][0]["message"]


def test_p3_manifest_start_is_the_headers(recorded: Recorded, store_copy: Path) -> None:
    path = prefix_dir(store_copy, recorded.session_id) / "manifest.json"
    man = load(path)
    resign(path, station_key(recorded), started_at_us=man["started_at_us"] - 1_000_000,
           ended_at_us=man["ended_at_us"] - 1_000_000)
    rc, res = verify(recorded, store_copy, recorded.session_id)
    assert rc == 1 and first_rule(res) == "V10" and "the header at" in res["findings"][0]["message"]


def test_p3_session_stored_under_another_room_folder(recorded: Recorded, store_copy: Path) -> None:
    d = prefix_dir(store_copy, recorded.session_id)
    moved = store_copy / "HN-CA-01" / "P999" / recorded.session_id
    moved.parent.mkdir(parents=True)
    d.rename(moved)
    loc = store_copy / "sessions" / f"{recorded.session_id}.json"
    loc.write_bytes(canonical_json({"format": "irms.locator/1", "prefix": f"HN-CA-01/P999/{recorded.session_id}/",
                                    "session_id": recorded.session_id}))
    rc, res = verify(recorded, store_copy, recorded.session_id)
    assert rc == 1 and first_rule(res) == "V01" and "P999" in res["findings"][0]["message"]


def shift_after(d: Path, key: Ed25519PrivateKey, first: int, by_us: int) -> tuple[int, int]:
    """Move segments first.. later by `by_us`, re-signed; returns (end of segment first-1, new start of first)."""
    prev = load(d / "seg" / f"{first - 1:08d}.json")
    for i in range(first, segments(d)):
        rec = load(d / "seg" / f"{i:08d}.json")
        resign(d / "seg" / f"{i:08d}.json", key, start_us=rec["start_us"] + by_us)
    return prev["start_us"] + prev["duration_us"], load(d / "seg" / f"{first:08d}.json")["start_us"]


def uncovered_us(d: Path) -> int:
    """What the recorded manifest's span leaves uncovered (capture start and stop; more on a loaded machine)."""
    man = load(d / "manifest.json")
    media = sum(load(d / "seg" / f"{i:08d}.json")["duration_us"] for i in range(segments(d)))
    declared = sum(it["end_us"] - it["start_us"] for it in man["interruptions"])
    return int(man["ended_at_us"] - man["started_at_us"] - media - declared)


@pytest.mark.parametrize(("hole_us", "verdict"), [(200_000, 0), (1_000_000, 1)])
def test_p5_gap_covered_by_two_adjacent_interruptions(recorded: Recorded, store_copy: Path, hole_us: int,
                                                      verdict: int) -> None:
    d = prefix_dir(store_copy, recorded.session_id)
    key = station_key(recorded)
    honest = uncovered_us(d)
    a, b = shift_after(d, key, 2, 4_000_000)
    mid = a + (b - a) // 2
    man = load(d / "manifest.json")
    # The span grows by the shift, less what stays uncovered, so that V17 is not what decides here.
    resign(d / "manifest.json", key, ended_at_us=man["ended_at_us"] + 4_000_000 - honest - hole_us, interruptions=[
        {"cause": "device_lost", "end_us": mid - hole_us // 2, "reason": "camera", "start_us": a},
        {"cause": "pause", "end_us": b, "reason": "break", "start_us": mid + hole_us // 2},
    ])
    rc, res = verify(recorded, store_copy, recorded.session_id, audit=True)
    assert rc == verdict, res
    if verdict:
        assert [(f["rule"], f["segment"]) for f in res["findings"]] == [("V16", 2)]


def test_p6_manifest_span_not_covered(recorded: Recorded, store_copy: Path) -> None:
    path = prefix_dir(store_copy, recorded.session_id) / "manifest.json"
    man = load(path)
    resign(path, station_key(recorded), ended_at_us=man["ended_at_us"] + 3_600_000_000)
    rc, res = verify(recorded, store_copy, recorded.session_id)
    assert rc == 1 and first_rule(res) == "V17" and "spans 36" in res["findings"][0]["message"]


@pytest.mark.parametrize(("beyond_us", "verdict"), [(-200_000, 0), (200_000, 1)])
def test_p6_manifest_span_tolerance_is_3_s_plus_1_percent(recorded: Recorded, store_copy: Path, beyond_us: int,
                                                         verdict: int) -> None:
    d = prefix_dir(store_copy, recorded.session_id)
    man = load(d / "manifest.json")
    media = man["ended_at_us"] - man["started_at_us"] - uncovered_us(d)
    # span = media + u with u = 3 s + 1 % of span, i.e. span = (media + 3 s) / 0.99; then 0.2 s either side.
    span = (media + 3_000_000) * 100 // 99 + beyond_us
    resign(d / "manifest.json", station_key(recorded), ended_at_us=man["started_at_us"] + span)
    rc, res = verify(recorded, store_copy, recorded.session_id, audit=True)
    assert rc == verdict, res
    if verdict:
        assert [f["rule"] for f in res["findings"]] == ["V17"]


def export_folder(recorded: Recorded, tmp_path: Path) -> Path:
    out = tmp_path / "export"
    proc = recorded.station.verify("export", recorded.session_id, "--store", str(recorded.store), "--out", str(out),
                                   "--label", "case-file")
    assert proc.returncode == 0, proc.stderr
    for p in out.rglob("*"):
        if p.is_file():
            p.chmod(0o640)
    return out


def test_p7_export_resigned_by_an_attacker_with_its_own_key_in_trust(recorded: Recorded, tmp_path: Path) -> None:
    from evidence.keys import b64, public_raw
    from tests.plugins.recording import run_cli
    from verifier.trust import trust_station_key

    out = export_folder(recorded, tmp_path)
    d = prefix_dir(out / "objects", recorded.session_id)
    other = Ed25519PrivateKey.generate()
    header = load(d / "session.json")
    header["station_key"] = b64(public_raw(other.public_key()))
    write(d / "session.json", sign_document(header, other))
    man = load(d / "manifest.json")
    write(d / "manifest.json", sign_document({**man, "header_sha256": chain_genesis(load(d / "session.json"))}, other))
    rechain(d, other)
    (out / "trust" / "stations" / "st-rec-01.pub").unlink()
    trust_station_key(out / "trust", "st-rec-01", other.public_key())
    # A reader with no trust store of their own: it verifies, but says on its first line against which key.
    env = offline_env(tmp_path)
    res = run_cli("irms-verify", "session", recorded.session_id, "--store", str(out), env=env, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    from evidence.keys import key_id
    attacker_id = key_id(public_raw(other.public_key()))
    assert res.stdout.splitlines()[0] == (f"verified against the key carried by this folder: {attacker_id}, "
                                          "compare with the annex")
    res = run_cli("irms-verify", "session", recorded.session_id, "--store", str(out), "--json", env=env, check=False)
    assert json.loads(res.stdout)["trust_basis"] == "carried"
    assert json.loads(res.stdout)["station_key_id"] == attacker_id
    # The station's own trust store knows the station: the folder's anchor contradicts it.
    rc, res_json = verify(recorded, out, recorded.session_id)
    assert rc == 1 and first_rule(res_json) == "V02" and "the local trust store holds" in \
        res_json["findings"][0]["message"]
    assert not (tmp_path / "nohome").exists(), "the verifier created its home"


def test_p7_honest_export_names_the_local_anchor(recorded: Recorded, tmp_path: Path) -> None:
    out = export_folder(recorded, tmp_path)
    rc, res = verify(recorded, out, recorded.session_id)
    assert rc == 0 and res["trust_basis"] == "local"
    info = (out / "EXPORT.json").read_bytes()
    assert canonical_json(json.loads(info)) == info
    assert set(json.loads(info)) == {"exported_at_us", "format", "label", "manifest_sha256", "segments",
                                     "session_id", "station_id", "station_key_id"}


def test_p8_store_that_does_not_exist_is_unreachable_and_not_created(recorded: Recorded, tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent"
    proc = recorded.station.verify("session", recorded.session_id, "--store", str(missing))
    assert proc.returncode == 3 and "store unreachable" in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert not missing.exists()


def test_p8_reachable_store_without_the_session(recorded: Recorded, store_copy: Path) -> None:
    d = prefix_dir(store_copy, recorded.session_id)
    shutil.rmtree(d)
    proc = recorded.station.verify("session", recorded.session_id, "--store", str(store_copy))
    assert proc.returncode == 5, proc.stderr
    assert f"session {recorded.session_id} is not in" in proc.stderr
    proc = recorded.station.verify("session", "0badc0de-0000-4000-8000-000000000000", "--store", str(store_copy))
    assert proc.returncode == 5


def test_p8_locator_pointing_elsewhere_still_finds_the_session(recorded: Recorded, store_copy: Path) -> None:
    loc = store_copy / "sessions" / f"{recorded.session_id}.json"
    loc.write_bytes(canonical_json({"format": "irms.locator/1", "prefix": f"XX/YY/{recorded.session_id}/",
                                    "session_id": recorded.session_id}))
    rc, res = verify(recorded, store_copy, recorded.session_id)
    assert rc == 0, res


def test_p8_v09_names_why_a_session_is_unterminated(recorded: Recorded, store_copy: Path) -> None:
    (prefix_dir(store_copy, recorded.session_id) / "manifest.json").unlink()
    rc, res = verify(recorded, store_copy, recorded.session_id)
    assert rc == 4 and res["findings"] == [] and [f["rule"] for f in res["open"]] == ["V09"]
    proc = recorded.station.verify("session", recorded.session_id, "--store", str(store_copy))
    assert proc.returncode == 4 and "no manifest (V09)" in proc.stdout


def test_p8_no_assert_in_the_audit() -> None:
    import ast

    root = Path(__file__).resolve().parents[2] / "verifier"
    asserts = [f"{p.name}:{n.lineno}" for p in root.rglob("*.py") for n in ast.walk(ast.parse(p.read_text()))
               if isinstance(n, ast.Assert)]
    assert asserts == []



def test_p4_crash_resumed_session_in_progress_is_unterminated_not_failed(station: Any, tmp_path: Path) -> None:
    """kill -9 of `irms-agent record`, a resumed run still recording, then killed too, then recovered."""
    store = tmp_path / "store"
    args = ("record", "--kit", "synthetic", "--seconds", "60", "--store", str(store), "--site", "HN-CA-01",
            "--room", "P101", "--case", "9/2026/HS", "--suspect", "A", "--interrogator", "B", "--legal-basis", "C",
            "--json")
    first = station.popen_agent(*args)
    try:
        wait_for(lambda: len(list(store.rglob("seg/00000002.json"))) == 1, 90, "three sealed segments")
    finally:
        kill9(first)
    before = len(list(store.rglob("seg/*.json")))
    sid = next(store.rglob("session.json")).parent.name
    resumed = station.popen_agent(*args)
    try:
        wait_for(lambda: list(store.rglob("keys/0001.json")) and len(list(store.rglob("seg/*.json"))) >= before + 3,
                 90, "segments sealed by the resumed run")
        res = station.verify("audit", sid, "--store", str(store), "--json",
                             "--custodian-key", str(station.custodian_key))
        report = json.loads(res.stdout)
        assert res.returncode == 4, res.stdout
        assert report["status"] == "unterminated" and report["findings"] == []
        assert [f["rule"] for f in report["open"]] == ["V09"]
        assert report["proven_segments"] >= before + 2
        assert len(report["gaps"]) == 1, "the crash left one gap, reported, not judged"
    finally:
        kill9(resumed)
    rc, report = verify_cli(station, store, sid)
    assert rc == 4 and report["findings"] == [] and len(report["gaps"]) == 1, report
    # Once an agent closes it, the two crash interruptions are declared and cover both gaps (V16, V17).
    station.agent("recover", "--kit", "synthetic", "--store", str(store), "--site", "HN-CA-01", "--room", "P101")
    rc, report = verify_cli(station, store, sid, "--custodian-key", str(station.custodian_key))
    assert rc == 0, report
    assert [i["cause"] for i in report["interruptions"]] == ["crash", "crash"]


def test_p8_key_object_deleted_is_a_finding_not_a_crash(station: Any, tmp_path: Path) -> None:
    # 14 s: the restarted agent must find the session's planned end still ahead and resume it under
    # a new data key, even on a loaded machine where it starts seconds after the kill.
    store = tmp_path / "store"
    args = ("record", "--kit", "synthetic", "--seconds", "14", "--store", str(store), "--site", "HN-CA-01",
            "--room", "P101", "--case", "9/2026/HS", "--suspect", "A", "--interrogator", "B", "--legal-basis", "C",
            "--json")
    first = station.popen_agent(*args)
    try:
        wait_for(lambda: len(list(store.rglob("seg/00000001.json"))) == 1, 90, "two sealed segments")
    finally:
        kill9(first)
    station.agent(*args)  # resumes (or, past its planned end, closes) the session: either makes data key 1
    key_obj = next(store.rglob("keys/0001.json"))
    sid = key_obj.parent.parent.name
    key_obj.chmod(0o640)
    key_obj.unlink()
    rc, report = verify_cli(station, store, sid, "--custodian-key", str(station.custodian_key), audit=True)
    assert rc == 1 and {f["rule"] for f in report["findings"]} == {"V12", "V14"}, report
    assert "key object 1 missing" in {f["message"] for f in report["findings"]}


def verify_cli(station: Any, store: Path, sid: str, *extra: str, audit: bool = False) -> tuple[int, dict[str, Any]]:
    proc = station.verify("audit" if audit else "session", sid, "--store", str(store), "--json", *extra)
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_p8_no_export_of_an_unterminated_session(recorded: Recorded, store_copy: Path, tmp_path: Path) -> None:
    (prefix_dir(store_copy, recorded.session_id) / "manifest.json").unlink()
    proc = recorded.station.verify("export", recorded.session_id, "--store", str(store_copy),
                                   "--out", str(tmp_path / "out"))
    assert proc.returncode == 1 and "unterminated" in proc.stderr and len(proc.stderr.splitlines()) == 1


def test_v05_object_named_with_other_digits_is_unexpected(recorded: Recorded, store_copy: Path) -> None:
    d = prefix_dir(store_copy, recorded.session_id)
    shutil.copyfile(d / "seg" / "00000001.json", d / "seg" / ("\u0661" * 8 + ".json"))  # Arabic-Indic digits
    rc, res = verify(recorded, store_copy, recorded.session_id)
    assert rc == 1 and first_rule(res) == "V05" and "unexpected object" in res["findings"][0]["message"]


def test_session_id_typed_in_capitals_is_the_same_session(recorded: Recorded) -> None:
    rc, res = verify(recorded, recorded.store, recorded.session_id.upper())
    assert rc == 0 and res["session_id"] == recorded.session_id
