"""Verifier throughput over sha256sum on the same bytes. Target: at least 0.9.

Builds a sealed session of N segments of random content with the recorder's own
sealer (the verifier's integrity rules read every ciphertext byte, check hashes,
chain and signatures), then times `irms-verify session` (integrity rules, no
decryption) and `sha256sum` over the same ciphertext files, page cache warm for both, alternately
and several times; each run's ratio is printed, and the worst of them is the figure.

    python bench/verify_throughput.py [--segments 200] [--segment-mib 2] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from bench_session import print_worst, seal_session, timed
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from storage.file import FileStore
from verifier.trust import trust_station_key

BIN = Path(sys.executable).parent
TARGET = 0.9


def build_session(root: Path, segments: int, size: int) -> str:
    store = FileStore(root / "store")
    key = Ed25519PrivateKey.generate()
    trust_station_key(root / "trust", "st-bench", key.public_key())
    plains = ((os.urandom(size), i * 2_000_000, 2_000_000) for i in range(segments))
    return seal_session(store.put, plains, key, X25519PrivateKey.generate().public_key())



def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--segments", type=int, default=200)
    ap.add_argument("--segment-mib", type=float, default=2.0)
    ap.add_argument("--runs", type=int, default=3)
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
        timed(verify_argv, env)
        mib = total / 2**20
        ratios = []
        for run in range(1, args.runs + 1):
            sha = timed(sha_argv, env)
            ver = timed(verify_argv, env)
            ratios.append(sha / ver)
            print(f"run {run}: {mib:.0f} MiB: irms-verify {mib / ver:.0f} MiB/s, sha256sum {mib / sha:.0f} MiB/s, "
                  f"ratio {sha / ver:.3f}")
    print_worst("verify_throughput_ratio", ratios, TARGET)
    return 0


if __name__ == "__main__":
    sys.exit(main())
