"""The figures of the benchmarks, gathered into one table (`make bench`, scripts/run-bench).

Each benchmark prints its human lines, then one `RESULT {json}` line per figure with its target
and verdict (`result()`). `python bench/results.py` runs every benchmark (or `--only NAME ...`),
passes its output through, prints one table of figure, value, target and PASS/FAIL, and writes
it with the machine's description and load to bench/RESULTS.md. A benchmark that ends without
a figure is a FAIL row saying how it ended. The exit status is 1 if any row failed. With --only, the
rows of the benchmarks not run are kept from the table already in the file, and the file says when
those were measured.

    python bench/results.py [--only agent_cpu av_offset ...] [--out bench/RESULTS.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PREFIX = "RESULT "
# Every benchmark, in the order they run, with the arguments `make bench` uses.
BENCHES: dict[str, list[str]] = {
    "verify_throughput": [],
    "audit_throughput": [],
    "agent_cpu": ["--seconds", "60", "--runs", "3"],
    "av_offset": ["--runs", "6", "--seconds", "8"],
    "storage_rate": [],
    "long_recording": ["--minutes", "10", "--runs", "3"],
    "replay": [],
    "export_job": ["--runs", "3"],
    "dashboard": [],
    "room_page": ["--runs", "3"],
    "heartbeat_ingest": ["--runs", "3"],
    "coverage_recompute": ["--runs", "3"],
    "live_latency": ["--segments", "1", "2", "4", "--runs", "2"],
    "live_viewers": ["--viewers", "20", "--seconds", "30", "--runs", "3"],
}


def result(figure: str, value: float, target: str, ok: bool, unit: str = "") -> None:
    """One figure of a benchmark, for the table: its value, its target in words, whether it is met."""
    print(PREFIX + json.dumps({"figure": figure, "value": round(value, 4), "unit": unit, "target": target,
                               "pass": bool(ok)}), flush=True)


def run(name: str, argv: list[str]) -> tuple[list[dict[str, object]], float, int]:
    """Run one benchmark, passing its output through; its figures, wall seconds and exit status."""
    started = time.monotonic()
    rows: list[dict[str, object]] = []
    with subprocess.Popen([sys.executable, str(HERE / f"{name}.py"), *argv], stdout=subprocess.PIPE,
                          text=True, bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(PREFIX):
                rows.append({"bench": name, **json.loads(line[len(PREFIX):])})
            else:
                print(line, end="", flush=True)
    code = proc.returncode
    if not rows:
        rows.append({"bench": name, "figure": "(none)", "value": None, "unit": "", "pass": False,
                     "target": f"ended with exit status {code} before printing its figure"})
    return rows, time.monotonic() - started, code


def machine() -> list[str]:
    """What the figures were measured on."""
    def first(path: str, key: str) -> str:
        try:
            for line in Path(path).read_text().splitlines():
                if line.startswith(key):
                    return line.split(":", 1)[1].strip() if ":" in line else line.split("=", 1)[1].strip('"')
        except OSError:
            pass
        return "?"

    ffmpeg = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, check=False).stdout
    mem_kib = first("/proc/meminfo", "MemTotal").split()[0]
    return [
        f"CPU: {first('/proc/cpuinfo', 'model name')}, {os.cpu_count()} logical cores",
        f"Memory: {int(mem_kib) / 2**20:.1f} GiB" if mem_kib.isdigit() else "Memory: ?",
        f"System: {first('/etc/os-release', 'PRETTY_NAME')}, Linux {platform.release()}, "
        f"Python {platform.python_version()}, ffmpeg {ffmpeg.split()[2] if ffmpeg else '?'}",
    ]


def table(rows: list[dict[str, object]]) -> list[str]:
    lines = ["| benchmark | figure | value | target | verdict |", "|---|---|---|---|---|"]
    for r in rows:
        value = "-" if r["value"] is None else f"{r['value']:g}{(' ' + str(r['unit'])) if r['unit'] else ''}"
        lines.append(f"| {r['bench']} | {r['figure']} | {value} | {r['target']} | {'PASS' if r['pass'] else 'FAIL'} |")
    return lines


def earlier(path: Path, skip: list[str]) -> list[str]:
    """The table rows of `path` whose benchmark is not in `skip`, each verdict dated with when it was measured."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return []
    started = re.search(r"started (\d{4}-\d\d-\d\d \d\d:\d\d) UTC", text)
    out = []
    for line in text.splitlines():
        cells = line.split("|")
        if not line.startswith("| ") or line.startswith("| benchmark |") or cells[1].strip() in skip:
            continue
        if "measured" not in cells[-2] and started:
            cells[-2] = f"{cells[-2].rstrip()} (measured {started.group(1)} UTC) "
        out.append("|".join(cells))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", choices=sorted(BENCHES), help="run these benchmarks only")
    ap.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    args = ap.parse_args()
    names = args.only or list(BENCHES)
    started = dt.datetime.now(dt.UTC)
    load_before = os.getloadavg()
    rows: list[dict[str, object]] = []
    timings = []
    for name in names:
        print(f"== bench/{name}.py {' '.join(BENCHES[name])}", flush=True)
        got, seconds, code = run(name, BENCHES[name])
        rows += got
        timings.append(f"{name} {seconds:.0f} s (exit {code})")
    load_after = os.getloadavg()
    lines = table(rows)
    kept = earlier(args.out, names) if args.only else []
    if kept:
        lines += kept
    print("\n".join(["", *lines]))
    doc = [
        "# Benchmark results",
        "",
        f"`make bench` ({'all benchmarks' if not args.only else 'only ' + ', '.join(names)}), "
        f"started {started:%Y-%m-%d %H:%M} UTC. Each figure is the worst of its runs where a benchmark "
        "has several; see each bench/*.py for what it measures and its same-run baseline.",
        *(["", f"The rows of {', '.join(sorted({r.split('|')[1].strip() for r in kept}))} were not measured "
               "this time: they are kept from the earlier table, each with when it was measured."] if kept else []),
        "",
        *lines,
        "",
        "## Machine",
        "",
        *[f"- {m}" for m in machine()],
        f"- Load average (1, 5, 15 min): {' '.join(f'{x:.2f}' for x in load_before)} at the start, "
        f"{' '.join(f'{x:.2f}' for x in load_after)} at the end (other work on the machine shows here)",
        f"- Time taken: {'; '.join(timings)}",
        "",
    ]
    args.out.write_text("\n".join(doc), encoding="utf-8")
    print(f"written to {args.out}")
    return 0 if all(r["pass"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
