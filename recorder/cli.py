"""irms-agent: the recorder agent's command line.

Exit codes: 0 done; 1 failed; 2 bad configuration, profile, key or arguments;
3 object store problem; 4 (upload, recover) objects held back in the outbox, kept locally:
quarantined (the store holds other bytes under the name) or damaged (torn or missing);
5 session refused by the pre-flight check; 6 capture failed;
7 the station home is in use by another irms-agent process (nothing was done).
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import resource
import signal
import sys
import traceback
from pathlib import Path
from types import FrameType

from evidence.errors import IrmsError
from evidence.formats import CaseInfo, check_code
from evidence.owner_only import owner_only_umask, secure_tree, warning_lines
from recorder.clock import SystemClock
from recorder.config import load_config, save_latency
from recorder.errors import CaptureError, ConfigError
from recorder.events import EventSender, attach_event_sender
from recorder.profile import load_profile, with_latencies
from recorder.segmenter import warn_password_in_argv
from recorder.session import Recorder, RecorderSettings
from recorder.station import HomeLock, install_custodian, irms_home, keygen, load_station, lock_home
from storage.url import open_store, redact

DEFAULT_LEGAL_BASIS = "Điều 183 Bộ luật Tố tụng hình sự 2015"


def cmd_keygen(args: argparse.Namespace) -> int:
    home = irms_home()
    sid, path = keygen(home, args.station_id, Path(args.custodian_public) if args.custodian_public else None)
    print(f"station {sid}: key {path}, public key {home / 'keys' / 'station.pub'}")
    return 0


def cmd_custodian(args: argparse.Namespace) -> int:
    install_custodian(irms_home(), Path(args.public_key))
    print(f"custodian public key installed in {irms_home() / 'keys' / 'custodian.pub'}")
    return 0


def _recorder(args: argparse.Namespace) -> Recorder:
    check_code(args.site, "site")
    check_code(args.room, "room")
    station = load_station()
    config = load_config(station.home)
    profile = with_latencies(load_profile(args.kit), config.latency_ms)
    retention = args.retention_days if args.retention_days is not None else config.retention_days
    store = open_store(args.store, retention_days=retention)
    settings = RecorderSettings(
        site=args.site, room=args.room, label=args.label or f"{args.site}/{args.room}", retention_days=retention,
        drain_timeout_s=args.drain_timeout if args.drain_timeout is not None else config.drain_timeout_s,
        min_free_bytes=config.min_free_bytes, watchdog_s=config.watchdog_s, health_every_s=config.health_every_s,
        tsa_url=config.tsa_url, tsa_heads_every_s=config.tsa_heads_every_s,
        credentials=_device_overrides(args, config.credentials()),
    )
    rec = Recorder(station, store, profile, SystemClock(), settings)
    sender = attach_event_sender(rec, config.server_url, site=args.site, room=args.room)
    if sender is not None:
        _event_senders.append(sender)
        link = sender.link
        rec.clock_offset_source = lambda: link.offset_us
    return rec


# Session event senders started by this command; main() gives each a last try and stops it.
_event_senders: list[EventSender] = []


def _close_event_senders() -> None:
    while _event_senders:
        pending = _event_senders.pop().close()
        if pending:
            print(f"irms-agent: {pending} session events queued for the server; they go when it is back",
                  file=sys.stderr)


def _device_overrides(args: argparse.Namespace, creds: dict[str, str]) -> dict[str, str]:
    """--camera ROLE=URL and --mic ROLE=SOURCE replace a profile's device for this station."""
    out = dict(creds)
    for flag, prefix in ((args.camera or [], "url_"), (args.mic or [], "mic_")):
        for item in flag:
            role, sep, value = item.partition("=")
            if not sep or not role or not value:
                raise ConfigError(f"expected ROLE=VALUE, got {item!r}")
            if prefix == "url_":
                warn_password_in_argv(value, "--camera")
            out[prefix + role] = value
    return out


def _measure_clock(rec: Recorder, args: argparse.Namespace) -> str:
    """The station clock against the reference (--clock-ref, else the enrolled server's Date).

    Records carry the measured offset (R18). A clock off beyond the tolerance is printed and
    returned, to be flagged in the session; the recording is not refused for it.
    """
    from recorder.probe import DeviceUnavailable, clock_offset_from_http, probe_clock

    config = load_config(rec.station.home)
    reference = args.clock_ref or (config.server_url.rstrip("/") + "/login" if config.server_url else None)
    if not reference:
        return ""
    try:
        offset = clock_offset_from_http(reference, clock=rec.clock, timeout_s=5.0)
    except DeviceUnavailable as err:
        print(f"irms-agent: warning: {err}; the station clock's offset is not measured", file=sys.stderr)
        return ""
    rec.clock_offset_us = -round(offset * 1e6)  # records hold station − reference
    check = probe_clock(offset, config.clock_tolerance_s, device=redact(reference))
    if check.ok:
        return ""
    flag = f"station {check.reason} ({redact(reference)})"
    print(f"irms-agent: warning: {flag}; this session's times carry that offset", file=sys.stderr)
    return flag


def cpu_account(rec: Recorder) -> dict[str, float]:
    """CPU seconds so far: this process (of which judging health), and the children it reaped (ffmpeg, ffprobe)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"agent_process_s": round(own.ru_utime + own.ru_stime, 3),
            "health_s": round(rec.health.cpu_s, 3), "health_checks": rec.health.checks,
            "children_s": round(children.ru_utime + children.ru_stime, 3)}


def cmd_record(args: argparse.Namespace) -> int:
    rec = _recorder(args)
    if args.seconds is not None and args.seconds <= 0:
        raise ConfigError("--seconds must be positive")

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        rec.stop_requested.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    clock_flag = _measure_clock(rec, args)
    rec.uploader_started()
    recovered = rec.recover()
    sid = None
    for rsid in recovered:
        s = rec.journal.session(rsid)
        if sid is None and s.prefix.startswith(f"{args.site}/{args.room}/") and (
            s.planned_end_us is None or s.planned_end_us > rec.clock.now_us()
        ):
            sid = rsid
            print(f"irms-agent: resuming session {rsid} after an interruption", file=sys.stderr)
        else:
            rec.close(rsid, "recovered_after_crash")
            print(f"irms-agent: closed interrupted session {rsid}", file=sys.stderr)
    if sid is None:
        if not args.suspect or not args.interrogator or not args.legal_basis:
            print("irms-agent: warning: suspect, interrogator or legal basis not given; "
                  "placeholders recorded in the header", file=sys.stderr)
        case = CaseInfo(
            case_number=args.case,
            suspect=args.suspect or "(không ghi / not given)",
            interrogators=tuple(args.interrogator or [getpass.getuser()]),
            legal_basis=args.legal_basis or DEFAULT_LEGAL_BASIS,
        )
        sid = rec.start(case, args.seconds)
    if clock_flag:
        rec.flag_clock(sid, clock_flag)
    until = rec.journal.session(sid).planned_end_us
    reason = rec.record(sid, until)
    rec.close(sid, reason)
    pending = rec.finish_uploads()
    summary = rec.session_summary(sid)
    summary["end_reason"] = reason
    summary["cpu"] = cpu_account(rec)
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"session {sid}: {summary['segments']} segments, {summary['duration_s']:.1f} s, "
              f"{len(summary['interruptions'])} interruptions, store {redact(rec.store.url)}")
        if pending:
            print(f"{pending} objects still queued for upload; they go when the store is back "
                  "(irms-agent upload)")
    if reason == "device_failure":
        raise CaptureError(f"the kit's devices delivered nothing in {rec.settings.watchdog_s:.0f} s "
                           f"({rec.capture_failure}): session {sid} closed as device_failure, "
                           "with a device_lost interruption")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Record a few seconds of flashes and beeps, measure picture − sound, optionally save it."""
    from recorder.calibrate import combine, record_and_measure

    home = irms_home()
    config = load_config(home)
    profile = with_latencies(load_profile(args.kit), config.latency_ms)
    cam = next((c for c in profile.cameras if c.role == args.camera_role), None)
    if cam is None:
        raise ConfigError(f"kit {profile.name} has no camera with role {args.camera_role!r}")
    if args.runs < 1:
        raise ConfigError("--runs must be at least 1")
    runs = [record_and_measure(profile, _device_overrides(args, config.credentials()), args.seconds,
                               audio_stream=args.audio_stream) for _ in range(args.runs)]
    offset = combine(runs)
    new_latency = cam.latency_ms + round(offset.offset_ms)
    result: dict[str, object] = {
        "camera": f"camera.{cam.role}", "offset_ms": round(offset.offset_ms, 2),
        "spread_ms": round(offset.spread_ms, 2), "flashes": offset.pairs,
        "runs_ms": [round(r.offset_ms, 2) for r in runs],
        "latency_ms_before": cam.latency_ms, "latency_ms_after": new_latency,
    }
    if args.write:
        result["written_to"] = str(save_latency(home, f"camera.{cam.role}", new_latency))
    print(json.dumps(result) if args.json else
          f"picture − sound = {offset}; camera.{cam.role} latency {cam.latency_ms} -> {new_latency} ms"
          + (f" (saved in {result['written_to']})" if args.write else " (not saved: use --write)"))
    return 0


def cmd_selftest(args: argparse.Namespace) -> int:
    from recorder.selftest import run_selftest

    rec = _recorder(args)
    rec.uploader_started()
    result = run_selftest(rec, args.seconds)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        for c in result["checks"]:
            print(f"{'ok  ' if c['ok'] else 'FAIL'} {c['check']:<18} {c['device'][:40]:<40} {c['reason']}")
        print(f"self-test {'PASSED' if result['ok'] else 'FAILED'} (session {result['session_id']})")
    return 0 if result["ok"] else 1


def cmd_recover(args: argparse.Namespace) -> int:
    rec = _recorder(args)
    rec.uploader_started()
    closed = []
    for sid in rec.recover():
        rec.close(sid, "recovered_after_crash")
        closed.append(sid)
    pending = rec.finish_uploads()
    held = _report_held(rec)
    print(json.dumps({"closed": closed, "pending_uploads": pending, "held": held}) if args.json
          else f"closed {len(closed)} interrupted sessions; {pending} objects queued")
    return 4 if held else 0


def cmd_upload(args: argparse.Namespace) -> int:
    rec = _recorder(args)
    if args.retry_held:
        who = os.environ.get("USER") or str(os.getuid())
        for name in rec.journal.retry_held(f"held, put back in the queue by {who}"):
            print(f"irms-agent: {name}: held, put back in the queue by {who}; checked again before any upload",
                  file=sys.stderr)
    pending = rec.finish_uploads()
    held = _report_held(rec)
    print(json.dumps({"pending_uploads": pending, "held": held}) if args.json else f"{pending} objects still queued")
    if pending:
        return 3
    return 4 if held else 0


def _report_held(rec: Recorder) -> list[dict[str, str]]:
    """One error line per object the uploader holds back (kept in the outbox); the list for --json."""
    held = rec.journal.held_objects()
    for h in held:
        print(f"irms-agent: error: {h.state} {h.name}: {h.error}", file=sys.stderr)
    return [{"name": h.name, "session_id": h.session_id, "state": h.state, "path": h.path, "error": h.error}
            for h in held]


def _store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kit", default="synthetic", help="hardware profile name or path (default: synthetic)")
    p.add_argument("--store", required=True, help="object store: a directory, file:///dir or s3://host:port/bucket")
    p.add_argument("--site", required=True, help="site (facility) code, e.g. HN-CA-01")
    p.add_argument("--room", required=True, help="room code, e.g. P101")
    p.add_argument("--label", help="text burned into the picture (default SITE/ROOM)")
    p.add_argument("--retention-days", type=int, help="Object Lock retention for uploaded objects")
    p.add_argument("--drain-timeout", type=float,
                   help="seconds to wait at the end for queued uploads (they are kept either way)")
    p.add_argument("--camera", action="append", metavar="ROLE=URL",
                   help="use this URL for the kit's camera ROLE (e.g. wide=rtsp://10.0.0.5/cam)")
    p.add_argument("--mic", action="append", metavar="ROLE=SOURCE",
                   help="use this capture source for the kit's microphone ROLE (e.g. room=roommic.monitor)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="irms-agent", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="log details and show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("keygen", help="make this station's Ed25519 key (once)")
    p.add_argument("--station-id", help="station id (default: derived from the key)")
    p.add_argument("--custodian-public", help="the custodian's X25519 public key (PEM) to wrap session keys to")
    p.set_defaults(func=cmd_keygen)

    p = sub.add_parser("custodian", help="install the custodian's public key")
    p.add_argument("public_key")
    p.set_defaults(func=cmd_custodian)

    p = sub.add_parser("record", help="record a session (resumes an interrupted one first)")
    _store_args(p)
    p.add_argument("--case", required=True, help="case number")
    p.add_argument("--suspect", help="suspect's name")
    p.add_argument("--interrogator", action="append", help="interrogator (repeat for several)")
    p.add_argument("--legal-basis", help="legal basis of the interrogation")
    p.add_argument("--seconds", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    p.add_argument("--clock-ref", metavar="URL",
                   help="HTTP server whose Date header is the reference time (default: the enrolled server)")
    p.set_defaults(func=cmd_record)

    p = sub.add_parser("calibrate", help="measure a camera's latency against the microphone (flash and beep)")
    p.add_argument("--kit", required=True, help="hardware profile name or path")
    p.add_argument("--camera-role", default="wide", help="which camera of the kit (default: wide)")
    p.add_argument("--camera", action="append", metavar="ROLE=URL", help="camera URL override")
    p.add_argument("--mic", action="append", metavar="ROLE=SOURCE", help="microphone source override")
    p.add_argument("--audio-stream", type=int, default=0, help="which audio stream is the microphone (default 0)")
    p.add_argument("--seconds", type=float, default=8.0, help="how long to record the flashes (default 8)")
    p.add_argument("--runs", type=int, default=3,
                   help="recordings to take the median of (default 3: each connection's latency differs a little)")
    p.add_argument("--write", action="store_true", help="save the measured latency in station.toml")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("selftest", help="daily self-test: probe, record a short clip, verify it (R19)")
    _store_args(p)
    p.add_argument("--seconds", type=float, default=6.0, help="length of the test clip (default 6)")
    p.set_defaults(func=cmd_selftest)

    p = sub.add_parser("recover", help="salvage and close sessions interrupted by a crash")
    _store_args(p)
    p.set_defaults(func=cmd_recover)

    p = sub.add_parser("upload", help="upload whatever is still queued")
    _store_args(p)
    p.add_argument("--retry-held", action="store_true",
                   help="first put the objects held back (quarantined, damaged) in the queue again, once the store or "
                        "the outbox was put right; each is checked as before: other bytes in the store or a torn file "
                        "hold it again")
    p.set_defaults(func=cmd_upload)

    try:
        from recorder import probe_cli
    except ImportError:  # pragma: no cover - only while the probe module is absent
        pass
    else:
        probe_cli.register(sub)
    from recorder import screen_cli
    screen_cli.register(sub)
    from recorder import daemon_cli
    daemon_cli.register(sub)
    return parser


# Commands that write the station's journal, spool or outbox: one such process per station home.
# `run` (the heartbeat daemon) only reads the journal and runs beside them, so it takes no lock.
OWNING_COMMANDS = frozenset({"record", "recover", "upload", "selftest", "screen"})


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    lock: HomeLock | None = None
    old_umask = owner_only_umask()  # what this command creates in the home is its owner's alone
    try:
        for line in warning_lines(secure_tree(irms_home()), "irms-agent"):
            print(line, file=sys.stderr)
        if args.command in OWNING_COMMANDS:
            lock = lock_home(irms_home(), args.command)  # held until this process ends
        return int(args.func(args))
    except IrmsError as err:
        if args.debug:
            traceback.print_exc()
        print(f"irms-agent: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("irms-agent: interrupted", file=sys.stderr)
        return 130
    finally:
        _close_event_senders()
        if lock is not None:
            lock.release()
        os.umask(old_umask)  # for callers in the same process (tests)


if __name__ == "__main__":
    sys.exit(main())
