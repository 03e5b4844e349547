"""A/V offset of a camera and a separate microphone, before and after calibration.

Starts the real RTSP camera peer and PulseAudio microphone peer (flash and beep on every
whole second), measures picture − sound with `irms-agent calibrate` over several
recordings with no latency correction, calibrates (saves the camera latency), and
measures again. Prints every run, the mean and spread of each, and the worst run after
calibration. Target: every run |offset| <= 20 ms after calibration (bar), <= 5 ms (goal).

    python bench/av_offset.py [--runs 6] [--seconds 8]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from results import result  # noqa: E402

from tests.plugins.devices import CameraPeer, MicPeer  # noqa: E402

BIN = Path(sys.executable).parent


def calibrate(env: dict[str, str], kit: Path, seconds: float, write: bool = False) -> dict[str, Any]:
    """One recording measured (a run), or the station's calibration as an operator runs it (--write)."""
    argv = [str(BIN / "irms-agent"), "calibrate", "--kit", str(kit), "--seconds", str(seconds), "--json",
            *(["--write"] if write else ["--runs", "1"])]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=4 * seconds + 120)
    if proc.returncode != 0:
        raise SystemExit(f"calibrate failed: {proc.stderr.strip()}")
    return dict(json.loads(proc.stdout))


def summary(values: list[float]) -> str:
    spread = statistics.pstdev(values) if len(values) > 1 else 0.0
    return f"mean {statistics.fmean(values):+.1f} ms, spread {spread:.1f} ms, runs {[round(v, 1) for v in values]}"


def runs(label: str, env: dict[str, str], kit: Path, args: argparse.Namespace) -> list[float]:
    out = []
    for i in range(args.runs):
        out.append(calibrate(env, kit, args.seconds)["offset_ms"])
        print(f"  {label} calibration, run {i + 1}: {out[-1]:+.1f} ms", flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=8.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="irms-bench-av-") as tmp:
        base = Path(tmp)
        camera = CameraPeer(base / "camera.log", 640, 360, 25)
        mic = MicPeer(base / "mic.log", base / "pulse-runtime")
        camera.launch()
        mic.launch()
        try:
            mic.control("beep")
            kit = base / "kit.toml"
            kit.write_text(f"""
format = "irms.profile/1"
name = "bench-camera-mic"
description = "RTSP camera peer and PulseAudio microphone peer"
[[cameras]]
role = "wide"
source = "rtsp"
device = "{camera.url}"
width = 640
height = 360
fps = 25
passthrough = true
[[microphones]]
role = "room"
source = "pulse"
device = "{mic.source}"
rate = 48000
channels = 1
""")
            env = {**os.environ, "IRMS_HOME": str(base / "home"), "PULSE_SERVER": mic.server}
            (base / "home").mkdir()
            before = runs("before", env, kit, args)
            saved = calibrate(env, kit, args.seconds, write=True)
            print(f"calibrated camera latency: {saved['latency_ms_after']} ms (median of recordings "
                  f"{saved['runs_ms']} ms)", flush=True)
            after = runs("after", env, kit, args)
        finally:
            camera.terminate()
            mic.shutdown()
    worst_after = max(abs(v) for v in after)
    mean_before = abs(statistics.fmean(before))
    mean_after = abs(statistics.fmean(after))
    print(f"before calibration: {summary(before)}")
    print(f"after calibration:  {summary(after)}")
    ratio = mean_after / mean_before if mean_before else float("nan")
    print(f"av_offset_ratio {ratio:.3f} (|mean after| / |mean before|); |mean after| {mean_after:.1f} ms")
    verdict = "PASS" if worst_after <= 20 else "FAIL"
    print(f"av_offset_worst_ms {worst_after:.1f} (every run after calibration; bar <= 20 ms, goal <= 5 ms: "
          f"{'met' if worst_after <= 5 else 'not met'}) {verdict}")
    result("av_offset_worst_ms", worst_after, f"<= 20 ms, goal 5 ms (every one of {len(after)} runs)",
           worst_after <= 20, "ms")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
