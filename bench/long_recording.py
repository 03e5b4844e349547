"""A long recording from the RTSP camera peer: dropped or repeated frames, and real-time ratio.

Records N minutes (default 10) from the real camera peer with `irms-agent record` (pass-through),
rebuilds the playable file with `irms-verify rebuild`, reads the frame number the camera codes
into the top rows of every frame, and counts frames missing from the sequence or repeated. The
camera's own count of frames it pushed while we recorded is the baseline: the ratio is frames
recorded / frames the camera pushed (target 1.000 minus what the camera itself dropped), and the
recorded duration over the wall-clock duration of the session (target 1.000 ± 0.005).

    python bench/long_recording.py [--minutes 10]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_station import make_station  # noqa: E402
from results import result  # noqa: E402

from tests.plugins.devices import CameraPeer  # noqa: E402

BIN = Path(sys.executable).parent
WIDTH, HEIGHT, FPS, BITS = 640, 360, 25, 32


def frame_numbers(video: Path) -> list[int]:
    """The number coded in each frame's top rows (32 blocks, MSB first, light = 1)."""
    rows = max(8, (HEIGHT // 45) & ~1)
    proc = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(video), "-map", "0:v:0", "-vf",
                           f"crop={WIDTH}:{rows}:0:0,format=gray", "-fps_mode", "passthrough", "-f", "rawvideo",
                           "pipe:1"], capture_output=True, check=True, timeout=3600)
    frames = np.frombuffer(proc.stdout, dtype=np.uint8).reshape(-1, rows, WIDTH)
    block = WIDTH // BITS
    means = frames[:, 1:-1, : block * BITS].reshape(len(frames), rows - 2, BITS, block)[:, :, :, 1:-1].mean(axis=(1, 3))
    bits = (means > 128).astype(np.int64)
    weights = 1 << np.arange(BITS - 1, -1, -1, dtype=np.int64)
    return [int(x) for x in bits @ weights]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--minutes", type=float, default=10.0)
    args = ap.parse_args()
    seconds = int(args.minutes * 60)
    with tempfile.TemporaryDirectory(prefix="irms-bench-long-") as tmp:
        base = Path(tmp)
        env = make_station(base)
        camera = CameraPeer(base / "camera.log", WIDTH, HEIGHT, FPS)
        camera.launch()
        try:
            before = json.loads(camera.control("status"))
            out = subprocess.run([str(BIN / "irms-agent"), "record", "--kit", "ip-camera-rtsp", "--camera",
                                  f"wide={camera.url}", "--seconds", str(seconds), "--store", str(base / "store"),
                                  "--site", "BENCH", "--room", "P1", "--case", "b", "--suspect", "s",
                                  "--interrogator", "i", "--legal-basis", "l", "--json"], env=env, check=True,
                                 capture_output=True, text=True, timeout=seconds + 300)
            after = json.loads(camera.control("status"))
        finally:
            camera.terminate()
        summary = json.loads(out.stdout)
        prefix = base / "store" / summary["prefix"]
        manifest = json.loads((prefix / "manifest.json").read_text())
        records = [json.loads(p.read_text()) for p in sorted((prefix / "seg").glob("*.json"))]
        recorded = sum(r["duration_us"] for r in records)
        wall = manifest["ended_at_us"] - records[0]["start_us"]
        audit = subprocess.run([str(BIN / "irms-verify"), "audit", summary["session_id"], "--store",
                                str(base / "store"), "--custodian-key", str(base / "c.key"),
                                "--prosecutor", "bench"], env=env,
                               capture_output=True, text=True, timeout=1200)
        print(audit.stdout.strip())
        subprocess.run([str(BIN / "irms-verify"), "rebuild", summary["session_id"], "--store", str(base / "store"),
                        "--custodian-key", str(base / "c.key"), "--prosecutor", "bench", "--out", str(base / "rec.mp4"),
                        "--force"],
                       env=env, check=True, capture_output=True, timeout=1200)
        numbers = frame_numbers(base / "rec.mp4")
    diffs = np.diff(np.array(numbers))
    repeated = int((diffs == 0).sum())
    missing = int(diffs[diffs > 1].sum() - (diffs > 1).sum())
    backwards = int((diffs < 0).sum())
    unique = len(set(numbers))
    pushed = after["frames_pushed"] - before["frames_pushed"]
    camera_resyncs = after["late_resyncs"] - before["late_resyncs"]
    print(f"{seconds} s session: {len(numbers)} frames decoded, {unique} distinct, {repeated} repeated, "
          f"{missing} missing inside the sequence, {backwards} going backwards; the camera pushed {pushed} frames "
          f"and resynced {camera_resyncs} times while we recorded")
    print(f"frames_ratio {unique / pushed:.4f} (distinct frames recorded / frames the camera pushed)")
    print(f"realtime_ratio {recorded / wall:.4f} (recorded {recorded / 1e6:.2f} s / wall {wall / 1e6:.2f} s; "
          f"target 1.000 ± 0.005) {'PASS' if abs(recorded / wall - 1) <= 0.005 else 'FAIL'}")
    result("frames_ratio", unique / pushed, ">= 0.9999", unique / pushed >= 0.9999)
    result("realtime_ratio", recorded / wall, "1.000 ± 0.005", abs(recorded / wall - 1) <= 0.005)
    return 0


if __name__ == "__main__":
    sys.exit(main())
