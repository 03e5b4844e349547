"""`irms-agent screen`: serve the investigator's screen from the station itself.

  irms-agent screen --store URL --site S --room R [--kit K] [--host 127.0.0.1] [--port 8765]
  irms-agent screen-pin [--pin-stdin]      set the investigators' screen PIN (asked twice)

The screen shows nothing before the station's screen PIN is given (recorder/screen_login.py); it
refuses to start until one is set, and answers only to its own host names (127.0.0.1, localhost,
[::1], the --host it listens on).

The screen needs nothing but the station (keys, journal, kit): it keeps working when the
central server and the store are unreachable, and segments queue until the store is back.
It listens on loopback by default: the live picture is plain content, so open it to the
network only behind the station's own access control. SIGTERM or Ctrl-C ends a running
session properly (manifest signed) before the agent exits.

Exit codes: 0 stopped cleanly; 2 bad configuration, profile, key or arguments; 3 store URL unusable.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from evidence.formats import check_code
from recorder.clock import SystemClock
from recorder.config import load_config
from recorder.profile import load_profile
from recorder.session import Recorder, RecorderSettings
from recorder.station import irms_home, load_station
from storage.url import open_store, redact

log = logging.getLogger(__name__)


def recorder_factory(home: Path, store_url: str, site: str, room: str, kit: str = "synthetic",
                     label: str | None = None) -> Callable[[], Recorder]:
    """A factory of Recorders configured like `irms-agent record` (station.toml + IRMS_* overrides)."""
    station = load_station(home)
    config = load_config(home)
    profile = load_profile(kit)
    retention = config.retention_days
    open_store(store_url, retention_days=retention)  # a wrong URL fails now, not at the first session

    def factory() -> Recorder:
        settings = RecorderSettings(
            site=site, room=room, label=label or f"{site}/{room}", retention_days=retention,
            drain_timeout_s=config.drain_timeout_s, min_free_bytes=config.min_free_bytes,
            watchdog_s=config.watchdog_s, health_every_s=config.health_every_s, tsa_url=config.tsa_url,
            tsa_heads_every_s=config.tsa_heads_every_s,
            credentials=config.credentials(),
        )
        return Recorder(station, open_store(store_url, retention_days=retention), profile, SystemClock(), settings)

    return factory


def cmd_screen(args: argparse.Namespace) -> int:
    # Flask and werkzeug only for this command: every other command of the agent (record above
    # all, started once per session) would pay a third of a second of CPU to import them.
    from werkzeug.serving import make_server

    from recorder.screen import ScreenSettings, create_screen_app, host_name
    from recorder.screen_login import load_pin_hash

    check_code(args.site, "site")
    check_code(args.room, "room")
    home = irms_home()
    config = load_config(home)
    factory = recorder_factory(home, args.store, args.site, args.room, args.kit, args.label)
    reference = args.clock_ref or (config.server_url.rstrip("/") + "/login" if config.server_url else None)
    hosts = ScreenSettings.hosts
    if args.host not in ("0.0.0.0", "::", "127.0.0.1", "localhost"):  # noqa: S104 - compared, not bound
        hosts = (*hosts, host_name(f"[{args.host}]" if ":" in args.host else args.host))
    app = create_screen_app(factory, ScreenSettings(site=args.site, room=args.room, clock_reference=reference,
                                                    clock_tolerance_s=config.clock_tolerance_s, hosts=hosts,
                                                    pin_hash=load_pin_hash(home),
                                                    marker_labels=tuple(config.marker_labels),
                                                    support_contact=config.support_contact),
                            home=home)
    server = make_server(args.host, args.port, app, threaded=True)
    stopping = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"station screen for {args.site}/{args.room} on http://{args.host}:{server.server_port}/ "
          f"(store {redact(args.store)})", flush=True)
    try:
        server.serve_forever()
    finally:
        app.extensions["irms_screen"].stop_all()
        server.server_close()
    return 0


def read_pin(from_stdin: bool) -> str:
    """A new PIN: the first line of stdin, or asked twice on the terminal (never from argv)."""
    import getpass
    import sys

    from recorder.errors import ConfigError
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    pin = getpass.getpass("screen PIN: ")
    if getpass.getpass("again: ") != pin:
        raise ConfigError("the PINs differ")
    return pin


def cmd_screen_pin(args: argparse.Namespace) -> int:
    from recorder.screen_login import set_pin  # argon2: only for this command

    path = set_pin(irms_home(), read_pin(args.pin_stdin))
    print(f"screen PIN set ({path}); screens started from now on ask for it")
    return 0


def register(subparsers: Any) -> None:
    """Add `screen` to the agent's argparse sub-parsers."""
    p = subparsers.add_parser(
        "screen", help="serve the investigator's screen (case form, pre-flight, recording, annex)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", required=True, help="object store: a directory, file:///dir or s3://host:port/bucket")
    p.add_argument("--site", required=True, help="site (facility) code, e.g. HN-CA-01")
    p.add_argument("--room", required=True, help="room code, e.g. P101")
    p.add_argument("--kit", default="synthetic", help="hardware profile name or path (default: synthetic)")
    p.add_argument("--label", help="text burned into the picture (default SITE/ROOM)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    p.add_argument("--clock-ref", metavar="URL",
                   help="HTTP server whose Date header is the reference time (default: the enrolled server)")
    p.set_defaults(func=cmd_screen)

    p = subparsers.add_parser("screen-pin", help="set the investigators' station screen PIN (asked twice)")
    p.add_argument("--pin-stdin", action="store_true", help="read the PIN from the first line of stdin")
    p.set_defaults(func=cmd_screen_pin)

