"""Storage rate of a static room, and CPU per room for encoding and for pass-through.

1. A static room (a still, detailed picture with light sensor noise, and room tone) is recorded
   by `irms-agent record` at 720p and 1080p with the kit's capped encode settings; the figure is
   megabits per second of sealed segments, and the ratio is against bare ffmpeg with x264's
   defaults (crf 23, no cap) on the same input in the same run. Targets: 720p <= 1.5 Mb/s,
   1080p <= 3 Mb/s.
2. CPU per room: agent CPU seconds per second recorded, for the 720p encode and for an RTSP
   camera passed through without re-encoding (the real camera peer); ratio pass-through/encode.

    python bench/storage_rate.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_station import make_station  # noqa: E402
from results import result  # noqa: E402

from tests.plugins.devices import CameraPeer  # noqa: E402

BIN = Path(sys.executable).parent
STATIC = ("testsrc2=size={width}x{height}:rate={fps}:duration=0.04,loop=loop=-1:size=1:start=0,"
          "setpts=N/{fps}/TB,noise=alls=2:allf=t")


def kit(path: Path, width: int, height: int, cap_kbps: int, camera: str = "") -> Path:
    cam = (f'source = "rtsp"\ndevice = "{camera}"\npassthrough = true' if camera else
           f'source = "lavfi"\ndevice = "{STATIC}"')
    mic = ('source = "camera"\ndevice = "0"\nrate = 8000' if camera else
           'source = "lavfi"\ndevice = "anoisesrc=color=pink:amplitude=0.003:sample_rate={rate}"\nrate = 48000')
    path.write_text(f"""format = "irms.profile/1"
name = "{path.stem}"
description = "benchmark kit"
[[cameras]]
role = "wide"
{cam}
width = {width}
height = {height}
fps = 25
[[microphones]]
role = "room"
{mic}
channels = 1
[encode]
max_bitrate_kbps = {cap_kbps}
audio_bitrate_kbps = 32
""")
    return path


def record(base: Path, env: dict[str, str], kit_path: Path, seconds: int) -> tuple[float, float, float]:
    """(Mb/s of sealed plain segments, CPU s per recorded s, recorded s)."""
    store = base / f"store-{kit_path.stem}"
    proc = subprocess.Popen([str(BIN / "irms-agent"), "record", "--kit", str(kit_path), "--seconds", str(seconds),
                             "--store", str(store), "--site", "BENCH", "--room", "P1", "--case", "b", "--suspect", "s",
                             "--interrogator", "i", "--legal-basis", "l", "--json"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"record with {kit_path.name} failed")
    summary = json.loads(out)
    records = [json.loads(p.read_text()) for p in (store / summary["prefix"] / "seg").glob("*.json")]
    size = sum(r["plain_size"] for r in records)
    dur = sum(r["duration_us"] for r in records) / 1e6
    return size * 8 / dur / 1e6, (usage.ru_utime + usage.ru_stime) / dur, dur


def bare_default(base: Path, width: int, height: int, seconds: int) -> float:
    """Mb/s of the same static input with x264 defaults (crf 23, no cap)."""
    out = base / f"bare-{height}.ts"
    src = STATIC.format(width=width, height=height, fps=25)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", src, "-f", "lavfi", "-i",
                    "anoisesrc=color=pink:amplitude=0.003:sample_rate=48000", "-t", str(seconds), "-c:v", "libx264",
                    "-preset", "veryfast", "-c:a", "aac", "-b:a", "32k", "-ac", "1", "-f", "mpegts", str(out)],
                   check=True, timeout=seconds * 10)
    return out.stat().st_size * 8 / seconds / 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="irms-bench-storage-") as tmp:
        base = Path(tmp)
        env = make_station(base)
        rows = []
        for width, height, cap, target in ((1280, 720, 1500, 1.5), (1920, 1080, 3000, 3.0)):
            mbps, cpu, _ = record(base, env, kit(base / f"static-{height}.toml", width, height, cap), args.seconds)
            base_mbps = bare_default(base, width, height, args.seconds)
            rows.append((height, mbps, base_mbps, target, cpu))
        camera = CameraPeer(base / "camera.log", 1280, 720, 25)
        camera.launch()
        try:
            pt_mbps, pt_cpu, _ = record(base, env, kit(base / "passthrough.toml", 1280, 720, 2000, camera.url),
                                        args.seconds)
        finally:
            camera.terminate()
    for height, mbps, base_mbps, target, cpu in rows:
        print(f"static room {height}p: {mbps:.2f} Mb/s (x264 defaults {base_mbps:.2f} Mb/s), "
              f"storage_ratio_{height}p {mbps / base_mbps:.3f}; target <= {target} Mb/s "
              f"{'PASS' if mbps <= target else 'FAIL'}; agent CPU {cpu:.3f} s per s")
        result(f"storage_{height}p_mbps", mbps, f"<= {target} Mb/s (static room)", mbps <= target, "Mb/s")
    enc_cpu = rows[0][4]
    print(f"CPU per room: encode 720p {enc_cpu:.3f} s/s ({enc_cpu * 100:.0f}% of a core), pass-through 720p "
          f"{pt_cpu:.3f} s/s ({pt_cpu * 100:.1f}% of a core), {pt_mbps:.2f} Mb/s from the camera; "
          f"passthrough_cpu_ratio {pt_cpu / enc_cpu:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
