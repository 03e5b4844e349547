"""irms-web: the coverage server's command line.

  irms-web db upgrade                      create or upgrade the database schema (Alembic)
  irms-web user add NAME --role ROLE       add a user (password asked twice, or --password-stdin)
  irms-web user disable|enable NAME        disable (every login ends at once) or enable a user
  irms-web user reset-password NAME        a new password (asked twice, or --password-stdin); logins end
  irms-web user set-role NAME ROLE         change a user's role
  irms-web user list                       users, roles, disabled or not
  irms-web import-sites FILE.csv           register provinces, sites and rooms from CSV
  irms-web coverage [--json]               print coverage now in the terminal
  irms-web audit verify [--witness FILE] [--tsa-trust DIR]
                                           recompute the audit log's hash chain (and check it against
                                           the signed heads stations were given, and time-stamped)
  irms-web audit timestamp                 an RFC 3161 token over the signed audit head (timer)
  irms-web station code SITE [--room R]    issue a one-time enrollment code
  irms-web station revoke ID --reason TEXT revoke a station at once
  irms-web demo-country [--keys DIR]       fill the database with the demo country
  irms-web simulate --server URL --keys DIR   send the demo stations' signed heartbeats
  irms-web serve [--host H] [--port P] [--workers N]   run the server (gunicorn)
  irms-web sessions sync [--verify]        read every session in the store (store_url) into the database
  irms-web custodian new [--out PUB.pem]   make a new custodian key pair (old ones are kept); prints the public key
  irms-web custodian import KEY.pem        take over an existing custodian private key
  irms-web custodian list                  key ids, which one is current
  irms-web custodian public [KEY_ID]       print (or --out) a public key for stations

The custodian private keys are kept encrypted with the passphrase in IRMS_CUSTODIAN_PASSPHRASE.

Configuration: --config FILE (TOML) or IRMS_WEB_CONFIG, and IRMS_WEB_<KEY> variables
(e.g. IRMS_WEB_DATABASE_URL=postgresql://user@host/db). The default database is
$IRMS_HOME/web.db (SQLite).

Audit entries written by these commands name the operating-system user who ran them.

Exit codes: 0 done; 1 failed (e.g. the audit chain is broken); 2 bad configuration or arguments;
3 a peer is away (the time-stamping authority);
4 database problem; 130 interrupted.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from evidence.errors import IrmsError
from web import audit, i18n
from web.config import WebConfig, load_config
from web.db import Database, current_revision, head_revision, upgrade
from web.errors import BadRequest, ConfigError, DatabaseError
from web.models import Role
from web.sites import CSV_COLUMNS


def now_us() -> int:
    return time.time_ns() // 1000


def cli_actor() -> str:
    """Who the audit log names for a command: the operating-system user who ran it."""
    try:
        who = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        import os
        who = f"uid {os.getuid()}"
    return f"irms-web cli ({who})"[:100]


def _config(args: argparse.Namespace) -> WebConfig:
    overrides: dict[str, Any] = {}
    if args.database:
        overrides["database_url"] = args.database
    return load_config(Path(args.config) if args.config else None, **overrides)


def _db(cfg: WebConfig, *, check_schema: bool = True) -> Database:
    db = Database(cfg.resolved_database_url(Path.cwd() / "instance"))
    if check_schema and current_revision(db) != head_revision():
        raise DatabaseError("the database schema is not current: run `irms-web db upgrade`")
    return db


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    db = _db(_config(args), check_schema=False)
    rev = upgrade(db)
    print(f"database at revision {rev} ({db.engine.url.render_as_string(hide_password=True)})")
    return 0


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    password = getpass.getpass("password: ")
    if getpass.getpass("again: ") != password:
        raise BadRequest("the passwords differ")
    return password


def cmd_user_add(args: argparse.Namespace) -> int:
    from web.users import add_user
    password = _read_password(args)
    db = _db(_config(args))
    with db.session() as s:
        user = add_user(s, username=args.username, display_name=args.name or args.username, role=args.role,
                        password=password, actor=cli_actor(), now_us=now_us())
    print(f"user {user.username} ({user.role}) added")
    return 0


def cmd_user_change(args: argparse.Namespace) -> int:
    from web import users as U
    password = _read_password(args) if args.user_command == "reset-password" else ""
    db = _db(_config(args))
    with db.session() as s:
        user = U.find_user(s, args.username)
        t = now_us()
        if args.user_command in ("disable", "enable"):
            U.set_active(s, user, args.user_command == "enable", actor=cli_actor(), now_us=t)
            done = f"{args.user_command}d"
        elif args.user_command == "reset-password":
            U.set_password(s, user, password, actor=cli_actor(), now_us=t)
            done = "given a new password; their logins ended"
        else:
            U.set_role(s, user, args.role, actor=cli_actor(), now_us=t)
            done = f"now {args.role}"
    print(f"user {args.username} {done}")
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from web.models import User
    db = _db(_config(args))
    with db.session() as s:
        for u in s.scalars(select(User).order_by(User.username)):
            print(f"{u.username}\t{u.role}\t{'active' if u.active else 'disabled'}\t{u.display_name}")
    return 0


def cmd_import_sites(args: argparse.Namespace) -> int:
    from web.sites import import_csv
    try:
        text = Path(args.csv).read_text(encoding="utf-8-sig")
    except OSError as err:
        raise BadRequest(f"cannot read {args.csv}: {err.strerror}") from None
    db = _db(_config(args))
    with db.session() as s:
        res = import_csv(s, text, actor=cli_actor(), now_us=now_us(), source=args.csv)
    print(f"{res.rows} rows: {res.sites_added} sites and {res.rooms_added} rooms added")
    return 0


def cmd_coverage(args: argparse.Namespace) -> int:
    from web.api import coverage_json
    from web.evidence import current_coverage
    cfg = _config(args)
    db = _db(cfg)
    with db.session() as s:
        _, cov = current_coverage(s, cfg, now_us())
    if args.json:
        print(json.dumps(coverage_json(cov), ensure_ascii=False))
        return 0
    lang = args.lang
    f = cov.figures
    print(f"{i18n.translate('Facilities equipped', lang)}: {f.facilities_equipped}/{f.facilities_total} "
          f"({i18n.percent(f.facility_ratio)})")
    print(f"{i18n.translate('Rooms working', lang)}: {f.rooms_working}/{f.rooms_total} ({i18n.percent(f.room_ratio)})")
    print(f"{i18n.translate('Stations silent', lang)}: {len(cov.silent_stations)}")
    print(f"{i18n.translate('as of', lang)} {i18n.local_time(cov.now_us, cfg.timezone, True)} ({cfg.timezone})")
    print()
    width = max((len(p.province.name) for p in cov.provinces), default=10)
    for p in cov.provinces:
        pf = p.figures
        print(f"  {p.province.name:<{width}}  {pf.facilities_equipped:>4}/{pf.facilities_total:<4} "
              f"{i18n.percent(pf.facility_ratio):>7}   {pf.rooms_working:>5}/{pf.rooms_total:<5} "
              f"{i18n.percent(pf.room_ratio):>7}")
    failing = cov.failing
    if failing:
        print()
        print(f"{i18n.translate('Failing rooms', lang)} ({len(failing)}):")
        for r in failing[: args.limit]:
            reasons = "; ".join(i18n.reason_text(x, lang) for x in r.reasons)
            print(f"  {r.site.code}/{r.room.code}: {reasons}")
        if len(failing) > args.limit:
            print(f"  … {len(failing) - args.limit} more")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from verifier.trust import load_tsa_roots
    from web.audit_anchor import parse_heads, public_key_of, verify_timestamps, verify_witnessed
    cfg = _config(args)
    heads: list[Any] = []
    for name in args.witness or []:
        try:
            text = Path(name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"witness file {name} cannot be read: {err}") from None
        heads += parse_heads(text, f"witness file {name}")
    key = public_key_of(Path(args.key) if args.key else cfg.resolved_audit_key(Path.cwd() / "instance")) \
        if args.witness or args.tsa_trust else None
    roots = list(load_tsa_roots(Path(args.tsa_trust))) if args.tsa_trust else None
    db = _db(cfg)
    with db.session() as s:
        report = audit.verify(s)
        witnessed = verify_witnessed(s, heads, key) if key is not None and args.witness else None
        stamped = verify_timestamps(s, key, roots) if key is not None and roots is not None else None
    print(f"audit log verified: {report.entries} entries, head {report.head}")
    if witnessed is not None:
        print(f"matches {witnessed.heads} heads witnessed by stations (newest: entry {witnessed.newest_seq})")
    if stamped is not None:
        print(f"matches {stamped.heads} time-stamped heads (newest: entry {stamped.newest_seq})")
    return 0


def cmd_audit_timestamp(args: argparse.Namespace) -> int:
    from web.audit_anchor import AuditSigner, timestamp_head
    cfg = _config(args)
    if not cfg.audit_tsa_url:
        raise ConfigError("no time-stamping authority: set audit_tsa_url")
    signer = AuditSigner.from_file(cfg.resolved_audit_key(Path.cwd() / "instance"))
    db = _db(cfg)
    with db.session() as s:
        row = timestamp_head(s, signer, cfg.audit_tsa_url, now_us(), cfg.audit_timestamp_interval_s)
    if row is None:
        print("audit head unchanged since its last time-stamp (or the log is empty): nothing to do")
    else:
        print(f"audit log entry {row.seq} time-stamped")
    return 0


def cmd_station_code(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from web.errors import NotFound
    from web.models import Room, Site
    from web.stations import issue_code
    cfg = _config(args)
    db = _db(cfg)
    with db.session() as s:
        site = s.scalars(select(Site).where(Site.code == args.site)).first()
        if site is None:
            raise NotFound(f"no site {args.site}")
        room = None
        if args.room:
            room = s.scalars(select(Room).where(Room.site_id == site.id, Room.code == args.room)).first()
            if room is None:
                raise NotFound(f"site {args.site} has no room {args.room}")
        code = issue_code(s, site=site, room=room, actor=cli_actor(), now_us=now_us(),
                          ttl_s=args.ttl or cfg.enrollment_code_ttl_s)
    print(code)
    return 0


def cmd_station_revoke(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from web.errors import NotFound
    from web.models import Station
    from web.stations import revoke
    db = _db(_config(args))
    with db.session() as s:
        station = s.scalars(select(Station).where(Station.station_id == args.station_id)).first()
        if station is None:
            raise NotFound(f"no station {args.station_id}")
        revoke(s, station, actor=cli_actor(), reason=args.reason, now_us=now_us())
    print(f"station {args.station_id} revoked")
    return 0


def cmd_demo_country(args: argparse.Namespace) -> int:
    from web.demo import seed
    from web.evidence import current_coverage, policy_of
    cfg = _config(args)
    db = _db(cfg, check_schema=False)
    upgrade(db)
    t = now_us()
    with db.session() as s:
        summary = seed(s, now_us=t, policy=policy_of(cfg), days=cfg.trend_days,
                       keys_dir=Path(args.keys) if args.keys else None, sites_per_kind=args.sites_per_kind)
    with db.session() as s:
        _, cov = current_coverage(s, cfg, now_us())
    print(f"demo country: {summary.provinces} provinces, {summary.sites} sites, {summary.rooms} rooms, "
          f"{summary.stations} stations")
    f = cov.figures
    print(f"coverage: {f.facilities_equipped}/{f.facilities_total} facilities equipped "
          f"({i18n.percent(f.facility_ratio)}), {f.rooms_working}/{f.rooms_total} rooms working")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from web.demo import simulate, stations_with_keys
    cfg = _config(args)
    db = _db(cfg)
    with db.session() as s:
        stations = stations_with_keys(s, Path(args.keys))
    if not stations:
        raise BadRequest(f"no demo station keys in {args.keys}")
    simulate(args.server, stations, args.interval or cfg.heartbeat_interval_s, args.rounds)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from web.app import create_app
    cfg = _config(args)
    db = _db(cfg)
    db.dispose()
    if args.dev:
        create_app(cfg).run(host=args.host, port=args.port, debug=False, use_reloader=False)
        return 0
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"{args.host}:{args.port}")
            self.cfg.set("workers", args.workers)
            # uvicorn workers: an event loop per process (heartbeats on it), Flask in a thread pool
            self.cfg.set("worker_class", "web.asgi.Worker")
            self.cfg.set("accesslog", "-" if args.access_log else None)
            self.cfg.set("timeout", 60)
            if "control_socket_disable" in self.cfg.settings:
                self.cfg.set("control_socket_disable", True)  # no socket in the user's home directory

        def load(self) -> Any:
            from web.asgi import create_asgi_app
            return create_asgi_app(cfg, threads=args.threads)

    # Resolve the cookie secret once so every worker shares it.
    cfg = cfg.model_copy(update={"secret_key": cfg.resolved_secret(Path.cwd() / "instance")})
    print(f"irms-web: serving on http://{args.host}:{args.port}/ with {args.workers} workers", flush=True)
    Server().run()
    return 0


def cmd_sessions_sync(args: argparse.Namespace) -> int:
    from web import recordings as R
    cfg = _config(args)
    if args.store:
        cfg = cfg.model_copy(update={"store_url": args.store})
    db = _db(cfg)
    store = R.store_of(cfg)
    with db.session() as s:
        res = R.sync_store(s, store, now_us())
    print(f"{res.seen} sessions in the store: {res.added} new, {res.updated} updated")
    for err in res.errors:
        print(f"  unreadable: {err}", file=sys.stderr)
    if args.verify:
        from sqlalchemy import select

        from web.models import RecordingSession
        with db.session() as s:
            rows = s.scalars(select(RecordingSession).where(RecordingSession.verification != "verified")).all()
            for row in rows:
                report = R.verify_now(s, store, row, now_us())
                s.commit()
                print(f"  {row.session_id} {row.case_number}: {report.status}"
                      + (f" ({', '.join(R.failed_rules(row))})" if report.findings else ""))
    return 1 if res.errors else 0


def _print_public(row: Any, out: str | None) -> None:
    if out:
        Path(out).write_text(row.public_pem)
        print(f"custodian public key {row.key_id} written to {out}")
    else:
        print(f"# custodian key id {row.key_id}")
        print(row.public_pem, end="")


def cmd_custodian_new(args: argparse.Namespace) -> int:
    from web import custody
    db = _db(_config(args))
    with db.session() as s:
        row = custody.new_key(s, actor=cli_actor(), now_us=now_us())
    _print_public(row, args.out)
    print("install it on each station: irms-agent custodian PUB.pem (new sessions use it; old keys are kept)",
          file=sys.stderr)
    return 0


def cmd_custodian_import(args: argparse.Namespace) -> int:
    import os

    from web import custody
    try:
        pem = Path(args.pem).read_bytes()
    except OSError as err:
        raise BadRequest(f"cannot read {args.pem}: {err.strerror}") from None
    source = os.environ.get(args.passphrase_env, "").encode() if args.passphrase_env else None
    db = _db(_config(args))
    with db.session() as s:
        row = custody.import_key(s, pem, source or None, actor=cli_actor(), now_us=now_us())
    print(f"custodian key {row.key_id} imported and current; remove the plain copy {args.pem}")
    return 0


def cmd_custodian_list(args: argparse.Namespace) -> int:
    from web import custody
    db = _db(_config(args))
    with db.session() as s:
        for row in custody.all_keys(s):
            print(f"{row.key_id}  {i18n.local_time(row.created_at_us, 'Asia/Ho_Chi_Minh', True)}  "
                  f"{'current' if row.current else 'kept'}")
    return 0


def cmd_custodian_public(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from web import custody
    from web.errors import NotFound
    from web.models import CustodianKey
    db = _db(_config(args))
    with db.session() as s:
        row = (s.scalars(select(CustodianKey).where(CustodianKey.key_id == args.key_id)).first() if args.key_id
               else custody.current_key(s))
        if row is None:
            raise NotFound("no such custodian key (irms-web custodian new)")
        _print_public(row, args.out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="irms-web", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="configuration file (TOML)")
    parser.add_argument("--database", help="database URL (overrides the configuration)")
    parser.add_argument("--debug", action="store_true", help="log details and show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("db", help="database schema")
    dbsub = p.add_subparsers(dest="db_command", required=True)
    q = dbsub.add_parser("upgrade", help="create or upgrade the schema to the newest revision")
    q.set_defaults(func=cmd_db_upgrade)

    p = sub.add_parser("user", help="users")
    usub = p.add_subparsers(dest="user_command", required=True)
    q = usub.add_parser("add", help="add a user")
    q.add_argument("username")
    q.add_argument("--role", required=True, choices=[r.value for r in Role])
    q.add_argument("--name", help="display name")
    q.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    q.set_defaults(func=cmd_user_add)
    for name, what in (("disable", "disable a user: every login of theirs ends at once"),
                       ("enable", "enable a disabled user")):
        q = usub.add_parser(name, help=what)
        q.add_argument("username")
        q.set_defaults(func=cmd_user_change)
    q = usub.add_parser("reset-password", help="give a user a new password (asked twice); their logins end")
    q.add_argument("username")
    q.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    q.set_defaults(func=cmd_user_change)
    q = usub.add_parser("set-role", help="change a user's role")
    q.add_argument("username")
    q.add_argument("role", choices=[r.value for r in Role])
    q.set_defaults(func=cmd_user_change)
    q = usub.add_parser("list", help="list users")
    q.set_defaults(func=cmd_user_list)

    p = sub.add_parser("import-sites", help="register sites and rooms from a CSV file")
    p.add_argument("csv", help="columns: " + ",".join(CSV_COLUMNS))
    p.set_defaults(func=cmd_import_sites)

    p = sub.add_parser("coverage", help="print coverage now")
    p.add_argument("--json", action="store_true", help="print the same JSON as GET /api/v1/coverage")
    p.add_argument("--lang", choices=i18n.LANGUAGES, default="vi")
    p.add_argument("--limit", type=int, default=50, help="failing rooms to list (default 50)")
    p.set_defaults(func=cmd_coverage)

    p = sub.add_parser("audit", help="audit log")
    asub = p.add_subparsers(dest="audit_command", required=True)
    q = asub.add_parser("verify", help="recompute the hash chain (and check it against heads stations witnessed); "
                                       "exit 1 if it is broken")
    q.add_argument("--witness", action="append", metavar="FILE",
                   help="signed audit heads collected from stations (irms.audit-head/1): a JSON list or JSON "
                        "lines; repeatable")
    q.add_argument("--key", help="the server's audit key (its private key file or a public key PEM); default: "
                                 "audit_key_path, or audit-signing.key beside the database")
    q.add_argument("--tsa-trust", metavar="DIR",
                   help="check the audit head time-stamps against the TSA roots in DIR/tsa/*.pem")
    q.set_defaults(func=cmd_audit_verify)
    q = asub.add_parser("timestamp", help="ask audit_tsa_url for an RFC 3161 token over the signed audit head "
                                          "(run at a fixed interval: a systemd timer or cron)")
    q.set_defaults(func=cmd_audit_timestamp)

    p = sub.add_parser("station", help="stations: enrollment codes and revocation")
    ssub = p.add_subparsers(dest="station_command", required=True)
    q = ssub.add_parser("code", help="issue a one-time enrollment code (printed once, stored hashed)")
    q.add_argument("site", help="site code")
    q.add_argument("--room", help="room code (without it, the station names its room when enrolling)")
    q.add_argument("--ttl", type=int, help="seconds the code stays valid (default: enrollment_code_ttl_s)")
    q.set_defaults(func=cmd_station_code)
    q = ssub.add_parser("revoke", help="revoke a station at once")
    q.add_argument("station_id")
    q.add_argument("--reason", required=True)
    q.set_defaults(func=cmd_station_revoke)

    p = sub.add_parser("demo-country", help="fill the database with the 34-province demo country")
    p.add_argument("--keys", help="keep the simulated stations' private keys here (for `simulate`)")
    p.add_argument("--sites-per-kind", type=int, default=1, help="sites of each kind per province (default 1)")
    p.set_defaults(func=cmd_demo_country)

    p = sub.add_parser("simulate", help="send signed heartbeats for the demo stations")
    p.add_argument("--server", required=True, help="server URL, e.g. http://127.0.0.1:8080")
    p.add_argument("--keys", required=True, help="the --keys folder of demo-country")
    p.add_argument("--interval", type=float, help="seconds between rounds (default: heartbeat_interval_s)")
    p.add_argument("--rounds", type=int, help="stop after this many rounds (default: run until Ctrl-C)")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("sessions", help="sessions known to the server")
    ssub = p.add_subparsers(dest="sessions_command", required=True)
    q = ssub.add_parser("sync", help="read every session in the store into the database (idempotent)")
    q.add_argument("--store", help="store URL (default: store_url from the configuration)")
    q.add_argument("--verify", action="store_true", help="also verify every session not yet verified")
    q.set_defaults(func=cmd_sessions_sync)

    p = sub.add_parser("custodian", help="the custodian keys that decrypt recordings (kept encrypted)")
    csub = p.add_subparsers(dest="custodian_command", required=True)
    q = csub.add_parser("new", help="make a new key pair and make it current (rotation; old keys are kept)")
    q.add_argument("--out", help="write the public key (PEM) here instead of printing it")
    q.set_defaults(func=cmd_custodian_new)
    q = csub.add_parser("import", help="take over an existing custodian private key (PEM)")
    q.add_argument("pem")
    q.add_argument("--passphrase-env", help="variable holding the PEM file's own passphrase, if it has one")
    q.set_defaults(func=cmd_custodian_import)
    q = csub.add_parser("list", help="list custodian key ids")
    q.set_defaults(func=cmd_custodian_list)
    q = csub.add_parser("public", help="print or write a custodian public key for stations")
    q.add_argument("key_id", nargs="?", help="default: the current key")
    q.add_argument("--out", help="write the PEM here")
    q.set_defaults(func=cmd_custodian_public)

    p = sub.add_parser("serve", help="run the server")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (default 2)")
    p.add_argument("--threads", type=int, default=8,
                   help="threads per worker for pages and the API (default 8); heartbeats on PostgreSQL "
                        "are answered on the worker's event loop")
    p.add_argument("--access-log", action="store_true")
    p.add_argument("--dev", action="store_true", help="Flask's single-process server instead of gunicorn")
    p.set_defaults(func=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except IrmsError as err:
        if args.debug:
            traceback.print_exc()
        print(f"irms-web: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("irms-web: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head`
        sys.stderr.close()
        return 0



if __name__ == "__main__":
    sys.exit(main())
