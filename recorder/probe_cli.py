"""`irms-agent probe` and `irms-agent devices`: check the kit now, list what the station sees.

`register(subparsers)` adds both sub-commands to the agent's argparse parser; each sets
`func`, which takes the parsed arguments and returns the exit code:

  probe    0 every check passed, 1 at least one failed, 2 nothing to probe / bad arguments
  devices  0 always (a device that cannot be read is listed with its error)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import asdict
from typing import Any

from evidence.errors import IrmsError
from recorder.devices import discover
from recorder.probe import (
    AudioThresholds,
    FrameThresholds,
    ProbeResult,
    Value,
    all_ok,
    clock_offset_from_http,
    probe_camera,
    probe_clock,
    probe_disk,
    probe_microphone,
    probe_store,
)
from storage.url import open_store, redact

_SIZE = re.compile(r"^(\d+)x(\d+)$")
_BYTES = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGTP]?)i?B?$", re.IGNORECASE)


def frame_size(text: str) -> tuple[int, int]:
    """'1280x720' -> (1280, 720)."""
    m = _SIZE.match(text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 1280x720, got {text!r}")
    return int(m[1]), int(m[2])


def byte_count(text: str) -> int:
    """'2G', '500M', '1048576' -> bytes (powers of 1024)."""
    m = _BYTES.match(text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"expected a size such as 2G, 500M or 1048576, got {text!r}")
    return int(float(m[1]) * 1024 ** " KMGTP".index(m[2].upper() or " "))


def register(subparsers: Any) -> None:
    """Add `probe` and `devices` to an argparse sub-parsers object."""
    p = subparsers.add_parser(
        "probe",
        help="check cameras, microphone, store, disk and clock now",
        description="Check the room's devices now and print one row per check: name, device, measured "
        "value, threshold, verdict. A camera fails when it sends no frames, frames of the wrong size, "
        "or a black, frozen, flat (covered) or blurred picture; a microphone when it is silent or "
        "clipping. Exit status 0 when every check passes, 1 when any fails, 2 when there is nothing "
        "to probe.",
    )
    p.add_argument("--camera", action="append", default=[], metavar="URL",
                   help="camera to check: rtsp://..., http://... or /dev/videoN (repeatable)")
    p.add_argument("--size", type=frame_size, metavar="WxH",
                   help="frame size every --camera must deliver, e.g. 1280x720")
    p.add_argument("--frames", type=int, default=15, help="frames to judge per camera (default 15)")
    p.add_argument("--mic", metavar="SOURCE", help="PulseAudio source to check, e.g. roommic.monitor")
    p.add_argument("--seconds", type=float, default=1.0, help="seconds of sound to judge (default 1)")
    p.add_argument("--store", metavar="URL", help="object store that must answer (path, file:// or s3://)")
    p.add_argument("--disk", metavar="PATH", help="directory whose file system needs free space")
    p.add_argument("--min-free", type=byte_count, default=2 * 2**30, metavar="SIZE",
                   help="free space --disk needs (default 2G)")
    p.add_argument("--clock-ref", metavar="URL", help="HTTP server whose Date header is the reference time")
    p.add_argument("--clock-tolerance", type=float, default=2.0, metavar="SECONDS",
                   help="allowed clock offset (default 2 s; Date headers are good to about 0.5 s)")
    p.add_argument("--timeout", type=float, default=15.0, metavar="SECONDS",
                   help="how long a camera may take to open and deliver (default 15)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_probe)

    d = subparsers.add_parser(
        "devices",
        help="list cameras and sound sources this station can see",
        description="List V4L2 cameras (with v4l2-ctl formats when installed), PulseAudio sources, "
        "PortAudio inputs, and what ffprobe finds at each --camera URL.",
    )
    d.add_argument("--camera", action="append", default=[], metavar="URL",
                   help="network camera to describe with ffprobe (repeatable)")
    d.add_argument("--kit", metavar="KIT",
                   help="also describe the network cameras this kit configures (URLs from station.toml)")
    d.add_argument("--json", action="store_true", help="print JSON instead of text")
    d.set_defaults(func=cmd_devices)


def run_checks(args: argparse.Namespace) -> list[ProbeResult]:
    """Every check the arguments ask for, in a stable order."""
    results: list[ProbeResult] = []
    for url in command_line_cameras(args.camera):
        results += probe_camera(url, args.size, frames=args.frames, timeout_s=args.timeout,
                                thresholds=FrameThresholds())
    if args.mic:
        results += probe_microphone(args.mic, seconds=args.seconds, thresholds=AudioThresholds())
    if args.store:
        try:
            store = open_store(args.store)
        except IrmsError as err:
            name = redact(args.store)
            results.append(ProbeResult("store.reachable", name, "no", "yes", "", False, str(err)))
        else:
            results.append(probe_store(store, device=redact(args.store)))
    if args.disk:
        results.append(probe_disk(args.disk, args.min_free))
    if args.clock_ref:
        try:
            offset = clock_offset_from_http(args.clock_ref, timeout_s=args.timeout)
        except IrmsError as err:
            results.append(ProbeResult("clock.offset", redact(args.clock_ref), None, args.clock_tolerance,
                                       "s", False, str(err)))
        else:
            results.append(probe_clock(offset, args.clock_tolerance, device=redact(args.clock_ref)))
    return results


def _show(value: Value, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "bytes" and isinstance(value, int | float):
        return f"{value / 2**30:.2f} GiB"
    if isinstance(value, float):
        text = f"{value:.3f}".rstrip("0").rstrip(".")
        return f"{text} {unit}".strip()
    return f"{value} {unit}".strip() if isinstance(value, int) else str(value)


def format_table(results: list[ProbeResult]) -> str:
    """One aligned row per check: check, device, measured, threshold, verdict (with the reason on failure)."""
    rows = [("CHECK", "DEVICE", "MEASURED", "THRESHOLD", "VERDICT")]
    for r in results:
        verdict = "ok" if r.ok else f"FAIL: {r.reason}"
        rows.append((r.check, r.device, _show(r.value, r.unit), _show(r.threshold, r.unit), verdict))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4]
                     for row in rows)


def cmd_probe(args: argparse.Namespace) -> int:
    if not (args.camera or args.mic or args.store or args.disk or args.clock_ref):
        print("irms-agent probe: nothing to probe: give --camera, --mic, --store, --disk or --clock-ref",
              file=sys.stderr)
        return 2
    results = run_checks(args)
    passed = all_ok(results)
    if args.json:
        document = {"ok": passed, "checks": [asdict(r) for r in results]}
        print(json.dumps(document, ensure_ascii=False, indent=2))
    else:
        print(format_table(results))
        failed = sum(not r.ok for r in results)
        summary = f"{len(results) - failed} of {len(results)} checks passed"
        print(f"\n{summary}" + ("" if passed else f", {failed} failed"))
    return 0 if passed else 1


def command_line_cameras(urls: list[str]) -> list[str]:
    """--camera URLs, {user}/{password}/{host} filled from this station's configuration (a literal
    password on the command line is warned about: argv is readable by every local user)."""
    from recorder.config import load_config
    from recorder.segmenter import fill_template, warn_password_in_argv
    from recorder.station import irms_home

    for url in urls:
        warn_password_in_argv(url, "--camera")
    if not any("{" in u for u in urls):
        return list(urls)
    creds = load_config(irms_home()).credentials()
    return [fill_template(u, creds) for u in urls]


def configured_cameras(kit: str) -> list[str]:
    """The network camera URLs a kit configures, filled from this station's configuration."""
    from recorder.config import load_config
    from recorder.profile import load_profile
    from recorder.segmenter import camera_url
    from recorder.station import irms_home

    creds = load_config(irms_home()).credentials()
    return [camera_url(c, creds) for c in load_profile(kit).cameras if c.source in ("rtsp", "http")]


def cmd_devices(args: argparse.Namespace) -> int:
    cameras = command_line_cameras(args.camera) + (configured_cameras(args.kit) if args.kit else [])
    inventory, errors = discover(cameras)
    if args.json:
        print(json.dumps({**asdict(inventory), "errors": errors}, ensure_ascii=False, indent=2))
        return 0
    print("V4L2 cameras:")
    for v in inventory.video or []:
        print(f"  {v.path}  {v.name}" + (f"  ({v.error})" if v.error else ""))
        for m in v.modes:
            rates = "/".join(f"{f:g}" for f in m.fps) or "?"
            print(f"      {m.pixel_format:<5} {m.width}x{m.height} @ {rates} fps  {m.description}")
    if not inventory.video:
        print("  none")
    print("Sound sources:")
    for a in inventory.audio:
        spec = f"{a.channels} ch {a.rate} Hz" if a.rate else ""
        print(f"  [{a.backend} {a.index}] {a.name}  {spec}  {a.detail}".rstrip())
    if not inventory.audio:
        print("  none")
    if inventory.network:
        print("Network cameras:")
    for n in inventory.network:
        if n.ok:
            audio = f", audio {n.audio_codec} {n.sample_rate} Hz" if n.audio_codec else ", no audio"
            print(f"  {n.url}  {n.video_codec} {n.width}x{n.height} @ {n.fps:g} fps{audio}")
        else:
            print(f"  {n.url}  unreachable: {n.error}")
    for e in errors:
        print(f"warning: {e}", file=sys.stderr)
    return 0
