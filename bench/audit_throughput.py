"""The verifier's audit path (decrypt + decode every segment) over bare ffmpeg decoding the same plain
segments. Target: at least 0.8.

Makes N real 2 s segments (H.264 + AAC in MPEG-TS, as the synthetic kit records them) with one ffmpeg
run, seals them with the recorder's own sealer, then times, alternately and several times:
- `irms-verify audit SID --custodian-key K`: every integrity rule, then each segment decrypted and
  decoded (V14, V15);
- the baseline: `ffmpeg -v error -xerror -i SEG -f null -` over each plain segment, one after another.
Each run's ratio (baseline time / audit time) is printed, and the worst of them is the figure.

    python bench/audit_throughput.py [--segments 60] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_session import print_worst, seal_session, timed
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from evidence.keys import save_private_key
from storage.file import FileStore
from verifier.trust import trust_station_key

BIN = Path(sys.executable).parent
TARGET = 0.8


def make_segments(folder: Path, count: int) -> list[Path]:
    """`count` 2 s segments of a moving test picture with a clock and a tone, encoded as the kit encodes."""
    folder.mkdir()
    seconds = count * 2
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=25:d={seconds}",
         "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:d={seconds}",
         "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-crf", "23", "-maxrate", "1500k",
         "-bufsize", "3000k", "-g", "50", "-force_key_frames", "expr:gte(t,n_forced*2)", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-b:a", "64k", "-f", "segment", "-segment_time", "2", "-segment_format", "mpegts",
         "-reset_timestamps", "0", str(folder / "seg%06d.ts")],
        check=True, timeout=1800,
    )
    return sorted(folder.glob("seg*.ts"))


def duration_us(path: Path) -> int:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", str(path)],
                         capture_output=True, check=True, timeout=60).stdout
    return round(float(json.loads(out)["format"]["duration"]) * 1e6)



def bare_decode(segments: list[Path]) -> float:
    start = time.perf_counter()
    for seg in segments:
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-xerror", "-i", str(seg), "-f", "null", "-"],
                       check=True, timeout=600)
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--segments", type=int, default=60)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="irms-bench-audit-") as tmp:
        root = Path(tmp)
        segments = make_segments(root / "plain", args.segments)
        station = Ed25519PrivateKey.generate()
        custodian = X25519PrivateKey.generate()
        trust_station_key(root / "trust", "st-bench", station.public_key())
        save_private_key(root / "custodian.key", custodian)
        plains = []
        start = 0
        for seg in segments:
            d = duration_us(seg)
            plains.append((seg.read_bytes(), start, d))
            start += d
        sid = seal_session(FileStore(root / "store").put, plains, station, custodian.public_key())
        env = {**os.environ, "IRMS_TRUST": str(root / "trust")}
        audit_argv = [str(BIN / "irms-verify"), "audit", sid, "--store", str(root / "store"),
                      "--custodian-key", str(root / "custodian.key"), "--prosecutor", "bench",
                      "--key-use-log", str(root / "key-use.jsonl")]
        timed(audit_argv, env)  # warm the page cache and check that the session verifies at all
        bare_decode(segments)
        ratios = []
        for run in range(1, args.runs + 1):
            bare = bare_decode(segments)
            audit = timed(audit_argv, env)
            ratios.append(bare / audit)
            print(f"run {run}: {len(segments)} segments, bare ffmpeg decode {bare:.2f} s, "
                  f"irms-verify audit {audit:.2f} s, ratio {bare / audit:.3f}")
    print_worst("audit_throughput_ratio", ratios, TARGET)
    return 0


if __name__ == "__main__":
    sys.exit(main())
