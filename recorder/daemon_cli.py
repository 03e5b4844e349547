"""`irms-agent enroll` and `irms-agent run`: the station daemon's side of the coverage server.

  irms-agent enroll --server URL --code CODE [--room ROOM] [--kit NAME] [--screen-pin-stdin]
      register this station's public key (made now if there is none) with a one-time code
  irms-agent run [--server URL] [--interval S] [--once]
      send a signed heartbeat every interval; queue them while the server is away; run the daily
      self-test at `selftest_at` (station.toml), never while a session records (recorder/schedule.py)

`run --once` exits 0 when everything queued was delivered, 3 when heartbeats are still
queued (the server is away), 2 when the station is unknown or revoked.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from evidence.coverage import Policy
from recorder.clock import Clock, SystemClock
from recorder.config import StationConfig
from recorder.config import load_config as load_station_config
from recorder.errors import ConfigError, ProfileError, StationBusy
from recorder.events import EventSender
from recorder.heartbeat import (
    HeartbeatQueue,
    Recording,
    ServerLink,
    ServerRefused,
    ServerUnavailable,
    build_heartbeat,
    disk_free,
    enroll,
    flush,
    load_station_key,
    probe_json,
    read_station_file,
    versions,
)
from recorder.journal import Journal
from recorder.preflight import probe_kit
from recorder.profile import load_profile
from recorder.schedule import SelftestScheduler, parse_local_time, selftest_command
from recorder.selftest import latest_selftest
from recorder.station import irms_home, keygen, lock_home

log = logging.getLogger(__name__)


def current_recording(home: Path) -> Recording | None:
    """The open session's id, last sealed index and chain head, from the journal (if any)."""
    path = home / "journal.db"
    if not path.exists():
        return None
    journal = Journal(path)
    try:
        sessions = journal.open_sessions()
    finally:
        journal.close()
    if not sessions:
        return None
    s = sessions[-1]
    return Recording(s.session_id, s.next_index - 1, s.chain_head)


def station_busy(home: Path) -> str | None:
    """Why the self-test must not start now: a session records, or another agent process owns the home
    (a `record` about to start one, the station screen); None when the station is idle."""
    rec = current_recording(home)
    if rec is not None:
        return f"session {rec.session_id} is recording"
    try:
        lock = lock_home(home, "run (self-test check)")
    except StationBusy as err:
        return str(err)
    if lock is not None:
        lock.release()
    return None


def selftest_scheduler(home: Path, config: StationConfig, kit: str) -> SelftestScheduler | None:
    """The daily self-test's schedule from station.toml (None when `selftest_at` is not set)."""
    if not config.selftest_at:
        return None
    at = parse_local_time(config.selftest_at, f"selftest_at in {home / 'station.toml'}")
    room = config.selftest_room or str(read_station_file(home).get("room", ""))
    missing = [name for name, value in (("selftest_store", config.selftest_store),
                                        ("selftest_site", config.selftest_site), ("selftest_room", room)) if not value]
    if missing:
        raise ConfigError(f"selftest_at is set in {home / 'station.toml'} but {', '.join(missing)} is not")
    last = latest_selftest(home)
    last_s = last["at_us"] / 1e6 if last and isinstance(last.get("at_us"), int) else None
    return SelftestScheduler(at, config.selftest_jitter_s, config.selftest_retry_s,
                             selftest_command(config.selftest_store, config.selftest_site, room, kit,
                                              config.selftest_seconds),
                             home / "selftest" / "daemon-run.log", lambda: station_busy(home), last_s)


def device_probes(kit: str, credentials: dict[str, str]) -> list[dict[str, Any]]:
    """Probe every device the kit requires, as the pre-flight check does (the synthetic kit passes)."""
    try:
        profile = load_profile(kit)
    except ProfileError as err:
        return [probe_json("camera.profile", kit, False, str(err))]
    return [probe_json(r.check, r.device, r.ok, r.reason, r.value, r.unit)
            for r in probe_kit(profile, credentials)]


def selftest_summary(home: Path) -> dict[str, Any] | None:
    """The latest daily self-test (R19): when it ran and whether it passed."""
    result = latest_selftest(home)
    if not result or not isinstance(result.get("at_us"), int):
        return None
    return {"at_us": result["at_us"], "ok": bool(result.get("ok")), "session_id": result.get("session_id")}


def make_heartbeat(home: Path, station_id: str, link: ServerLink, kit: str, clock: Clock,
                   credentials: dict[str, str] | None = None) -> dict[str, Any]:
    """The heartbeat document now, without its run (`HeartbeatQueue.push_heartbeat` adds it)."""
    if link.offset_us is None:
        try:
            from recorder.probe import clock_offset_from_http
            link.offset_us = int(clock_offset_from_http(link.server.rstrip("/") + "/login", timeout_s=5) * 1e6)
        except Exception as err:  # noqa: BLE001 - offline or no probe module: the offset stays unknown
            log.info("clock offset unknown: %s", err)
    doc = build_heartbeat(
        station_id, clock.now_us(), probes=device_probes(kit, credentials or {}), disk_free_bytes=disk_free(home),
        clock_offset_ms=None if link.offset_us is None else link.offset_us // 1000, store_ok=None,
        versions={**versions(), "kit": kit}, recording=current_recording(home))
    doc["selftest"] = selftest_summary(home)
    return doc


def cmd_enroll(args: argparse.Namespace) -> int:
    home = irms_home()
    if not (home / "keys" / "station.key").exists():
        sid, _ = keygen(home, None, None)
        print(f"made station key for {sid}")
    pin = None
    if args.screen_pin_stdin:  # checked before enrolling: the code is used once
        from recorder.screen_cli import read_pin
        from recorder.screen_login import check_new_pin
        pin = read_pin(True)
        check_new_pin(pin)
    result = enroll(home, args.server, args.code, args.room, SystemClock(), hardware_profile=args.kit)
    print(f"enrolled as station {result.station_id} with {args.server}")
    if pin is not None:
        from recorder.screen_login import set_pin
        set_pin(home, pin)
        print("screen PIN set")
    elif not (home / "screen-pin").exists():
        print("set the investigators' screen PIN next: irms-agent screen-pin")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    home = irms_home()
    data = read_station_file(home)
    config = load_station_config(home)
    server = args.server or config.server_url or data.get("server")
    if not server:
        raise ConfigError("no server: enroll first (irms-agent enroll), set server_url, or pass --server")
    station_id = str(data.get("station_id", ""))
    if not station_id:
        raise ConfigError(f"no station id in {home / 'station.json'}: enroll first")
    # Never slower than the server expects (it calls a station silent after two of its intervals).
    interval = args.interval or min(config.heartbeat_interval_s, float(data.get("heartbeat_interval_s", 60)))
    if interval <= 0:
        raise ConfigError("--interval must be positive")
    clock = SystemClock()
    link = ServerLink(str(server), station_id, load_station_key(home), clock)
    queue = HeartbeatQueue(home / "heartbeats.db")
    # Until the server's answer gives the coverage policy, the runs are judged by the default one at its interval.
    default_policy = Policy(interval_s=int(data.get("heartbeat_interval_s", 60)))
    events = EventSender(home / "events.db", link, clock, site="", room="") if (home / "events.db").exists() else None
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    if not args.once:
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    selftest = None if args.once else selftest_scheduler(home, config, args.kit)
    try:
        while True:
            queue.push_heartbeat(make_heartbeat(home, station_id, link, args.kit, clock, config.credentials()),
                                 clock.now_us(), default_policy)
            try:
                res = flush(queue, link)
                log.info("heartbeats sent %d, queued %d", res.sent, res.pending)
                pending = res.pending
                if events is not None:
                    pending += events.flush()  # session events queued while the server was away
            except ServerUnavailable as err:
                pending = len(queue)
                print(f"irms-agent: server away, {pending} heartbeats queued: {err}", flush=True)
            except ServerRefused as err:
                if err.status in (401, 403):
                    raise ConfigError(str(err)) from None
                raise
            if args.once:
                print(f"station {station_id}: {pending} heartbeats queued" if pending else
                      f"station {station_id}: heartbeat delivered")
                return 0 if pending == 0 else 3
            if _wait(stop, interval, selftest):
                return 0
    finally:
        if selftest is not None:
            selftest.stop()
        queue.close()


def _wait(stop: threading.Event, interval: float, selftest: SelftestScheduler | None) -> bool:
    """Wait for the next heartbeat, looking after the self-test's schedule meanwhile; True when stopped."""
    deadline = time.monotonic() + interval
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        step = left if selftest is None else min(left, max(selftest.poll(), 0.05))
        if stop.wait(step):
            return True


def register(subparsers: Any) -> None:
    """Add `enroll` and `run` to irms-agent's sub-commands."""
    p = subparsers.add_parser("enroll", help="register this station with the server using a one-time code")
    p.add_argument("--server", required=True, help="server URL, e.g. https://irms.example.vn")
    p.add_argument("--code", required=True, help="the one-time enrollment code an admin issued")
    p.add_argument("--room", help="room code (needed when the code was issued for a whole site)")
    p.add_argument("--kit", default="synthetic", help="hardware profile of this room (default: synthetic)")
    p.add_argument("--screen-pin-stdin", action="store_true",
                   help="also set the station screen PIN, read from the first line of stdin")
    p.set_defaults(func=cmd_enroll)

    p = subparsers.add_parser("run", help="the station daemon: send signed heartbeats every interval")
    p.add_argument("--server", help="server URL (default: the one enrolled with)")
    p.add_argument("--interval", type=float,
                   help="seconds between heartbeats (default: heartbeat_interval_s, at most the server's)")
    p.add_argument("--once", action="store_true", help="send one heartbeat (and the queue) and exit")
    p.add_argument("--kit", default="synthetic", help="hardware profile to probe (default: synthetic)")
    p.set_defaults(func=cmd_run)
