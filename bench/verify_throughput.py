"""Verifier throughput over sha256sum on the same bytes. Target: at least 0.5.

Builds a sealed session of N segments of random content with the recorder's own
sealer (the verifier's integrity rules read every ciphertext byte, check hashes,
chain and signatures), then times `irms-verify session` (integrity rules, no
decryption) and `sha256sum` over the same ciphertext files, page cache warm for both.

    python bench/verify_throughput.py [--segments 200] [--segment-mib 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from recorder.sealer import seal
from storage.file import FileStore
from verifier.canonical import canonical_json
from verifier.chain import chain_genesis
from verifier.crypto import new_data_key, wrap_key
from verifier.formats import (
    CaseInfo,
    build_header,
    build_manifest,
    header_name,
    locator_name,
    manifest_name,
    record_name,
    segment_name,
    session_prefix,
)
from verifier.keys import b64, public_raw, sign_document
from verifier.trust import trust_station_key

BIN = Path(sys.executable).parent


def build_session(root: Path, segments: int, size: int) -> str:
    store = FileStore(root / "store")
    key = Ed25519PrivateKey.generate()
    trust_station_key(root / "trust", "st-bench", key.public_key())
    sid = str(uuid.uuid4())
    data_key = new_data_key()
    header = sign_document(build_header(
        session_id=sid, station_id="st-bench", station_key_b64=b64(public_raw(key.public_key())), site="BENCH",
        room="P1", case=CaseInfo("b", "s", ("i",), "l"), kit={"profile": "bench", "devices": []},
        started_at_us=1_800_000_000_000_000, segment_target_us=2_000_000,
        wrapped_key=wrap_key(data_key, X25519PrivateKey.generate().public_key(), sid, 0)), key)
    prefix = session_prefix("BENCH", "P1", sid)
    store.put(header_name(prefix), canonical_json(header))
    store.put(locator_name(sid), canonical_json({"format": "irms.locator/1", "prefix": prefix, "session_id": sid}))
    chain = chain_genesis(header)
    t = 1_800_000_000_000_000
    for i in range(segments):
        out = seal(plain=os.urandom(size), session_id=sid, index=i, key_index=0, run=0, data_key=data_key,
                   station_key=key, prev_chain=chain, start_us=t, duration_us=2_000_000, clock_offset_us=0,
                   salvaged=False)
        store.put(segment_name(prefix, i), out.cipher)
        store.put(record_name(prefix, i), canonical_json(out.record))
        chain = out.record["chain"]
        t += 2_000_000
    store.put(manifest_name(prefix), canonical_json(sign_document(build_manifest(
        session_id=sid, header_sha256=chain_genesis(header), segment_count=segments, chain_head=chain,
        started_at_us=1_800_000_000_000_000, ended_at_us=t, end_reason="stopped", key_count=1, interruptions=[],
        events=[], devices=[]), key)))
    return sid


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, timeout=3600)
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--segments", type=int, default=200)
    ap.add_argument("--segment-mib", type=float, default=2.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="irms-bench-") as tmp:
        root = Path(tmp)
        sid = build_session(root, args.segments, int(args.segment_mib * 2**20))
        bins = sorted(str(p) for p in (root / "store").rglob("*.bin"))
        total = sum(os.path.getsize(p) for p in bins)
        env = {**os.environ, "IRMS_TRUST": str(root / "trust")}
        verify_argv = [str(BIN / "irms-verify"), "session", sid, "--store", str(root / "store")]
        sha_argv = ["sha256sum", *bins]
        timed(sha_argv, env)  # warm the page cache
        sha = min(timed(sha_argv, env) for _ in range(3))
        ver = min(timed(verify_argv, env) for _ in range(3))
    ratio = (total / ver) / (total / sha)
    mib = total / 2**20
    print(f"{mib:.0f} MiB: irms-verify {mib / ver:.0f} MiB/s, sha256sum {mib / sha:.0f} MiB/s")
    print(f"verify_throughput_ratio {ratio:.3f} (target >= 0.5) {'PASS' if ratio >= 0.5 else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
