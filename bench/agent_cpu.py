"""Agent CPU over bare ffmpeg: the same 720p synthetic session, same encode and segment settings.

Runs `irms-agent record` (capture, seal, sign, encrypt, upload to a file store) and
then bare ffmpeg with the argv the agent builds, each for the same number of seconds,
and prints CPU(agent incl. its ffmpeg) / CPU(bare ffmpeg). Target: at most 1.10.

    python bench/agent_cpu.py [--seconds 60]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_station import make_station

from recorder.profile import load_profile
from recorder.segmenter import build_argv

BIN = Path(sys.executable).parent


def launch(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def cpu_of(proc: subprocess.Popen[bytes], what: str) -> float:
    """CPU seconds (user + system) of a process and every child it waited for."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed with exit code {proc.returncode}")
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=int, default=60)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="irms-bench-") as tmp:
        base = Path(tmp)
        env = make_station(base)
        bare_dir = base / "bare"
        bare_dir.mkdir()
        argv = build_argv(load_profile("synthetic"), bare_dir, "BENCH/P1")
        argv = argv[:-1] + ["-t", str(args.seconds), argv[-1]]
        # Both run at the same time, so that whatever else loads the machine loads both alike.
        agent_proc = launch([str(BIN / "irms-agent"), "record", "--kit", "synthetic", "--seconds", str(args.seconds),
                             "--store", str(base / "store"), "--site", "BENCH", "--room", "P1", "--case", "bench",
                             "--suspect", "x", "--interrogator", "y", "--legal-basis", "z"], env, base)
        bare_proc = launch(argv, {**os.environ, "TZ": "Asia/Ho_Chi_Minh"}, bare_dir)
        agent = cpu_of(agent_proc, "irms-agent record")
        bare = cpu_of(bare_proc, "bare ffmpeg")
    ratio = agent / bare
    print(f"agent CPU {agent:.2f} s, bare ffmpeg CPU {bare:.2f} s for {args.seconds} s of 720p25")
    print(f"agent_cpu_ratio {ratio:.3f} (target <= 1.10) {'PASS' if ratio <= 1.10 else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
