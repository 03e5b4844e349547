"""irms-web: the coverage server's command line.

  irms-web db upgrade                      create or upgrade the database schema (Alembic)
  irms-web user add NAME --role ROLE       add a user (password asked twice, or --password-stdin; --ldap: the
                                           unit's directory checks the password)
  irms-web user disable|enable NAME        disable (every login ends at once) or enable a user
  irms-web user reset-password NAME        a new password (asked twice, or --password-stdin); logins end
  irms-web user set-role NAME ROLE         change a user's role
  irms-web user list                       users, roles, disabled or not
  irms-web user reset-two-factor USER      a lost phone: the user enrols again at the next login
  irms-web import-sites FILE.csv           register provinces, sites and rooms from CSV
  irms-web coverage [--json]               print coverage now in the terminal
  irms-web coverage export --from DAY --to DAY --out DIR
                                           the coverage evidence bundle of those days, signed
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
  irms-web custodian new [--out PUB.pem] [--pkcs11]
                                           make a new custodian key pair (old ones are kept), sealed with
                                           the custodian passphrase or made on a PKCS#11 token
  irms-web custodian import KEY            take over an existing custodian private key
  irms-web custodian list                  key ids, which one is current, where each is kept
  irms-web custodian public [KEY_ID]       print (or --out) a public key for stations
  irms-web custody unlock|lock|status      the custody holder of the running server (custody socket)
  irms-web custody rewrap                  seal again keys still in the old PBKDF2/AES-CBC form
  irms-web custody hold                    the custody holder itself (`serve` starts it)
  irms-web alerts [--once] [--every S]     open, clear and tell alerts for rooms that stop working

The custodian private keys are sealed with the custodian passphrase (argon2id, AES-256-GCM) or
kept on a PKCS#11 token; the passphrase is never in a file or the environment. A custodian officer
unlocks the running server with `irms-web custody unlock` (terminal prompt; --passphrase-stdin).

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
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from evidence.custody_link import ENV_REFUSAL, PASSPHRASE_ENV, os_user
from evidence.errors import IrmsError
from evidence.owner_only import owner_only_umask, secure_files, secure_tree, warning_lines
from storage.url import has_password
from web import audit, i18n
from web.config import WebConfig, load_config
from web.db import Database, current_revision, head_revision, upgrade
from web.errors import BadRequest, ConfigError, DatabaseError
from web.models import Role, UnitKind
from web.sites import CSV_COLUMNS


def now_us() -> int:
    return time.time_ns() // 1000


def cli_actor() -> str:
    """Who the audit log names for a command: the operating-system user who ran it."""
    return f"irms-web cli ({os_user()})"[:100]


def _config(args: argparse.Namespace) -> WebConfig:
    overrides: dict[str, Any] = {}
    if args.database:
        overrides["database_url"] = args.database
        if has_password(args.database):
            print("irms-web: warning: the database password given in --database is in this command's argv, which "
                  "every local user can read (ps); set IRMS_WEB_DATABASE_URL or database_url in the configuration "
                  "file instead", file=sys.stderr)
    if getattr(args, "store", None):  # the commands that act on the store take it on their command line too
        overrides["store_url"] = args.store
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
    password = "" if args.ldap else _read_password(args)
    db = _db(_config(args))
    with db.session() as s:
        user = add_user(s, username=args.username, display_name=args.name or args.username, role=args.role,
                        password=password, actor=cli_actor(), now_us=now_us(), os_user=os_user(),
                        auth_source="ldap" if args.ldap else "local")
    print(f"user {user.username} ({user.role}{', LDAP password' if args.ldap else ''}) added")
    return 0


def cmd_unit(args: argparse.Namespace) -> int:
    """Units and who is in them: web/units.py (each change audited); web/scope.py decides what it means."""
    from sqlalchemy import select

    from web import units as U
    from web.models import Unit
    db = _db(_config(args))
    actor, t = cli_actor(), now_us()
    with db.session() as s:
        if args.unit_command == "add":
            U.add_unit(s, code=args.code, name=args.name or args.code, kind=args.kind, parent=args.parent, actor=actor,
                       now_us=t)
            done = f"unit {args.code} added"
        elif args.unit_command == "place":
            U.place_in_unit(s, site=args.site, room=args.room, unit=None if args.unit == "-" else args.unit,
                            actor=actor, now_us=t)
            done = f"{args.site}{'/' + args.room if args.room else ''} is in unit {args.unit}"
        elif args.unit_command == "assign":
            if args.remove:
                U.unassign_user(s, username=args.username, unit=args.unit, actor=actor, now_us=t)
                done = f"user {args.username} removed from unit {args.unit}"
            else:
                U.assign_user(s, username=args.username, unit=args.unit, personal_data=args.personal_data,
                              actor=actor, now_us=t)
                done = f"user {args.username} assigned to unit {args.unit}" + (
                    " (personal data)" if args.personal_data else "")
        else:
            units = s.scalars(select(Unit).order_by(Unit.code)).all()
            codes = {u.id: u.code for u in units}
            for u in units:
                print(f"{u.code}\t{u.kind}\t{codes.get(u.parent_id, '-') if u.parent_id else '-'}\t{u.name}")
            return 0
        s.commit()
    print(done)
    return 0


def cmd_case(args: argparse.Namespace) -> int:
    from web import units as U
    db = _db(_config(args))
    with db.session() as s:
        if args.remove:
            U.unassign_case(s, case_number=args.case_number, username=args.username, actor=cli_actor(),
                            now_us=now_us())
        else:
            U.assign_case(s, case_number=args.case_number, username=args.username, actor=cli_actor(),
                          now_us=now_us())
        s.commit()
    print(f"case {args.case_number} {'no longer' if args.remove else 'now'} assigned to {args.username}")
    return 0


def cmd_retention(args: argparse.Namespace) -> int:
    """Retention policies, and `apply`: extend every session's objects on the store (web/retention.py)."""
    from sqlalchemy import select

    from storage.url import redact
    from web import recordings as R
    from web import retention as RT
    from web.models import RetentionPolicy
    cfg = _config(args)
    db = _db(cfg)
    with db.session() as s:
        if args.retention_command == "policy":
            row = RT.add_policy(s, unit=None if args.unit in ("", "-") else args.unit, category=args.category,
                                anchor=args.anchor, years=args.years, days=args.days, mode=args.mode,
                                actor=cli_actor(), now_us=now_us())
            s.commit()
            print(f"policy {row.id}: {RT.describe(RT.policy_json(s, row))}")
            return 0
        if args.retention_command == "policies":
            for p in s.scalars(select(RetentionPolicy).order_by(RetentionPolicy.id)):
                print(f"{p.id}\t{RT.describe(RT.policy_json(s, p))}")
            return 0
        store = R.store_of(cfg)
        if not store.enforces_retention:
            raise ConfigError(f"store {redact(cfg.store_url)} enforces no retention (a file store, or a bucket "
                              "without Object Lock): nothing applied")
        res = RT.apply(s, store, now_us())
    print(f"{res.sessions} sessions: {res.extended} objects' retention extended, {res.kept} already retained as "
          f"long or longer, {res.held} legal holds placed")
    for err in res.errors:
        print(f"  {err}", file=sys.stderr)
    return 1 if res.errors else 0


def cmd_disposal(args: argparse.Namespace) -> int:
    """Propose the disposals due, list them, execute the approved ones whose undo window passed."""
    from sqlalchemy import select

    from web import recordings as R
    from web import retention as RT
    from web.audit_anchor import AuditSigner
    from web.models import Disposal
    cfg = _config(args)
    db = _db(cfg)
    with db.session() as s:
        if args.disposal_command == "propose":
            made = RT.propose(s, actor=cli_actor(), now_us=now_us())
            s.commit()
            print(f"{len(made)} disposals proposed" + "".join(f"\n  {d.id}\t{d.session_id}" for d in made))
            return 0
        if args.disposal_command == "list":
            for d in s.scalars(select(Disposal).order_by(Disposal.id)):
                print(f"{d.id}\t{d.session_id}\t{d.state}\t{d.proposed_by}\t{d.first_approver}\t"
                      f"{d.second_approver}" + (f"\t{d.last_error}" if d.last_error else ""))
            return 0
        signer = AuditSigner.from_file(cfg.resolved_audit_key(Path.cwd() / "instance"))
        res = RT.execute_due(s, R.store_of(cfg), signer.key, now_us())
    for sid in res.executed:
        print(f"disposed {sid}: tombstone kept")
    for line in res.stopped:
        print(f"stopped {line}")
    for err in res.errors:
        print(f"  {err}", file=sys.stderr)
    return 1 if res.errors else 0


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
        elif args.user_command == "reset-two-factor":
            from web import twofactor as TF
            ended = TF.reset(s, user, actor=cli_actor(), now_us=t)
            done = f"has no second factor now ({ended} logins ended); they enrol again at their next login"
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


def cmd_coverage_export(args: argparse.Namespace) -> int:
    from web.audit_anchor import AuditSigner
    from web.coverage_export import export_bundle, parse_day
    cfg = _config(args)
    first, last = parse_day(args.first, "--from"), parse_day(args.last, "--to")
    signer = AuditSigner.from_file(cfg.resolved_audit_key(Path.cwd() / "instance"))
    db = _db(cfg)
    with db.session() as s:
        manifest = export_bundle(s, cfg, signer, first, last, Path(args.out), now_us())
    files = manifest["files"]
    print(f"coverage bundle {args.out}: {first}..{last}, {files['heartbeats.jsonl']['bytes']} bytes of heartbeats, "
          f"signed by server key {manifest['signature']['key_id']}; check it with `irms-verify coverage {args.out}`")
    return 0


def cmd_alerts(args: argparse.Namespace) -> int:
    """Evaluate and deliver alerts once, or every --every seconds until stopped (a systemd timer runs --once)."""
    import time

    from web.alerts import channels, run_once
    cfg = _config(args)
    db = _db(cfg)
    if not channels(cfg):
        print("irms-web: warning: no alert channel configured (alert_smtp_host + alert_mail_to, "
              "alert_webhook_url): alerts are opened and shown at /admin/alerts but not sent", file=sys.stderr)
    while True:
        with db.session() as s:
            opened, cleared, sent = run_once(s, cfg, now_us())
        print(f"alerts: {opened} opened, {cleared} cleared, {sent} notices delivered", flush=True)
        if args.once:
            return 0
        time.sleep(args.every)


def cmd_coverage(args: argparse.Namespace) -> int:
    if getattr(args, "coverage_command", None) == "export":
        return cmd_coverage_export(args)
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
    password = sys.stdin.readline().rstrip("\n") if args.users_password_stdin else None
    with db.session() as s:
        summary = seed(s, now_us=t, policy=policy_of(cfg), days=cfg.trend_days,
                       keys_dir=Path(args.keys) if args.keys else None, sites_per_kind=args.sites_per_kind,
                       users_password=password)
    with db.session() as s:
        _, cov = current_coverage(s, cfg, now_us())
    print(f"demo country: {summary.provinces} provinces, {summary.sites} sites, {summary.rooms} rooms, "
          f"{summary.stations} stations, {summary.units} units, {summary.users} users")
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


def secure_instance(cfg: WebConfig, instance: Path) -> list[str]:
    """The instance folder 0700; the SQLite database (its -wal, -shm) and the audit key 0600, wherever
    they are. What was open to other users is made owner-only; the warning lines say what and from what."""
    from sqlalchemy.engine import make_url

    fixed = secure_tree(cfg.data_dir(instance))
    files = [cfg.resolved_audit_key(instance)]
    url = make_url(cfg.resolved_database_url(instance))
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        db = Path(url.database)
        files += [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
    return warning_lines(fixed + secure_files(files), "irms-web")


def cmd_serve(args: argparse.Namespace) -> int:
    from web.app import create_app
    cfg = _config(args)
    for line in secure_instance(cfg, Path.cwd() / "instance"):
        print(line, file=sys.stderr)
    db = _db(cfg)
    db.dispose()
    # Resolve the cookie secret and the custody socket once so every worker shares them.
    cfg = cfg.model_copy(update={"secret_key": cfg.resolved_secret(Path.cwd() / "instance"),
                                 "custody_socket": str(cfg.resolved_custody_socket(Path.cwd() / "instance"))})
    holder = _start_holder(args, cfg) if not args.no_custody_holder else None
    try:
        if args.dev:
            create_app(cfg).run(host=args.host, port=args.port, debug=False, use_reloader=False)
        else:
            _gunicorn(args, cfg)
    finally:
        if holder is not None:
            holder.terminate()
            holder.wait(30)
    return 0


def _gunicorn(args: argparse.Namespace, cfg: WebConfig) -> None:
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

    print(f"irms-web: serving on http://{args.host}:{args.port}/ with {args.workers} workers", flush=True)
    Server().run()


def _start_holder(args: argparse.Namespace, cfg: WebConfig) -> Any:
    """`irms-web custody hold` beside gunicorn (the one process that holds the custodian keys)."""
    import subprocess
    cmd = [sys.executable, "-m", "web.cli", *(["--config", args.config] if args.config else []),
           *(["--database", args.database] if args.database else []),
           "custody", "hold", "--with-parent", "--socket", cfg.custody_socket]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not Path(cfg.custody_socket).is_socket():
        if proc.poll() is not None:
            raise ConfigError(f"the custody holder stopped at start (exit {proc.returncode})")
        if time.monotonic() > deadline:
            proc.terminate()
            raise ConfigError(f"the custody holder did not open {cfg.custody_socket} in 30 s")
        time.sleep(0.05)
    return proc


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


def _secret(args: argparse.Namespace, prompt: str, *, confirm: bool = False) -> str:
    """A passphrase or PIN: from the terminal (asked twice when made), or the next line of stdin."""
    if getattr(args, "passphrase_stdin", False):
        line = sys.stdin.readline()
        if not line:
            raise BadRequest(f"stdin ended before the {prompt.rstrip(': ')}")
        return line.rstrip("\n")
    value = getpass.getpass(prompt)
    if confirm and getpass.getpass("again: ") != value:
        raise BadRequest("the two entries differ")
    return value


def cmd_custodian_new(args: argparse.Namespace) -> int:
    from web import custody
    cfg = _config(args)
    db = _db(cfg)
    if args.pkcs11:
        token = args.token or cfg.pkcs11_token
        if not token:
            raise BadRequest("no token: set pkcs11_token or give --token LABEL")
        pin = _secret(args, f"user PIN of token {token}: ")
        with db.session() as s:
            row = custody.new_token_key(s, cfg.pkcs11_module, token, pin, actor=cli_actor(), now_us=now_us(),
                                        os_user=os_user())
    else:
        secret = _secret(args, "custodian passphrase: ", confirm=True).encode("utf-8")
        with db.session() as s:
            row = custody.new_key(s, secret, actor=cli_actor(), now_us=now_us(), os_user=os_user())
    _print_public(row, args.out)
    print("install it on each station: irms-agent custodian PUB.pem (new sessions use it; old keys are kept); "
          "then unlock the server again (irms-web custody unlock) so it holds the new key", file=sys.stderr)
    return 0


def cmd_custodian_import(args: argparse.Namespace) -> int:
    from evidence import sealed_key
    from web import custody
    try:
        data = Path(args.pem).read_bytes()
    except OSError as err:
        raise BadRequest(f"cannot read {args.pem}: {err.strerror}") from None
    source = None
    if sealed_key.is_sealed(data) or sealed_key.is_legacy(data):
        source = _secret(args, f"passphrase of {args.pem}: ").encode("utf-8")
    key = custody.read_key_file(data, source, args.pem)
    secret = _secret(args, "custodian passphrase (to seal it on the server): ", confirm=True).encode("utf-8")
    db = _db(_config(args))
    with db.session() as s:
        row = custody.import_key(s, key, secret, actor=cli_actor(), now_us=now_us(), os_user=os_user())
    print(f"custodian key {row.key_id} imported, sealed and current; keep {args.pem} offline or destroy it")
    return 0


def cmd_custodian_list(args: argparse.Namespace) -> int:
    from web import custody
    db = _db(_config(args))
    with db.session() as s:
        for row in custody.all_keys(s):
            print(f"{row.key_id}  {i18n.local_time(row.created_at_us, 'Asia/Ho_Chi_Minh', True)}  "
                  f"{'current' if row.current else 'kept'}  {custody.where_kept(row)}")
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


def _socket(args: argparse.Namespace, cfg: WebConfig) -> Path:
    return Path(args.socket) if getattr(args, "socket", None) else cfg.resolved_custody_socket(Path.cwd() / "instance")


def cmd_custody_unlock(args: argparse.Namespace) -> int:
    from evidence.custody_link import request
    cfg = _config(args)
    path = _socket(args, cfg)
    secret = _secret(args, "custodian passphrase (or token PIN): ")
    answer = request(path, {"op": "unlock", "passphrase": secret}, timeout=120)
    print(f"custody holder at {path} unlocked by {os_user()}: holds {', '.join(answer['held'])}")
    return 0


def cmd_custody_lock(args: argparse.Namespace) -> int:
    from evidence.custody_link import request
    path = _socket(args, _config(args))
    request(path, {"op": "lock"})
    print(f"custody holder at {path} locked: no custodian key in memory")
    return 0


def cmd_custody_status(args: argparse.Namespace) -> int:
    from evidence.custody_link import request
    path = _socket(args, _config(args))
    answer = request(path, {"op": "status"})
    if args.json:
        print(json.dumps(answer, ensure_ascii=False))
    elif answer["locked"]:
        print(f"locked ({path}); keys: " + ", ".join(f"{k} ({w})" for k, w in answer["kept"].items()))
    else:
        print(f"unlocked by {answer['unlocked_by']} ({path}); holds {', '.join(answer['held'])}"
              + (f"; not held: {', '.join(answer['not_held'])}" if answer["not_held"] else ""))
    return 0 if not answer["locked"] else 1


def cmd_custody_rewrap(args: argparse.Namespace) -> int:
    from web import custody
    old = _secret(args, "old custodian passphrase: ").encode("utf-8")
    new = _secret(args, "new custodian passphrase: ", confirm=True).encode("utf-8")
    db = _db(_config(args))
    with db.session() as s:
        done = custody.rewrap(s, old, new, actor=cli_actor(), now_us=now_us(), os_user=os_user())
    print(f"{len(done)} custodian keys sealed again (argon2id, AES-256-GCM)" + (f": {', '.join(done)}" if done else
                                                                                 ": none was in the old form"))
    return 0


def cmd_custody_hold(args: argparse.Namespace) -> int:
    import signal
    import threading

    from web.custody_holder import Holder, HolderServer, credential_unlock
    cfg = _config(args)
    db = _db(cfg)
    path = _socket(args, cfg)
    server = HolderServer(Holder(db, cfg.pkcs11_module, cfg.data_key_cache_s), path).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        unlocked = credential_unlock(server.holder)
        print(f"irms-web: custody holder on {path} ({'unlocked by the systemd credential' if unlocked else 'locked'})",
              flush=True)
        parent = os.getppid()
        while not stop.wait(1.0):
            if args.with_parent and os.getppid() != parent:  # `irms-web serve` is gone: so is the holder
                break
    finally:
        server.stop()
        db.dispose()
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
    q.add_argument("--ldap", action="store_true", help="the user logs in with the unit's LDAP directory password "
                                                       "(ldap_url); no password is kept here")
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
    q = usub.add_parser("reset-two-factor", help="take away a user's authenticator and recovery codes (lost "
                                                 "phone); their logins end and they enrol again")
    q.add_argument("username")
    q.set_defaults(func=cmd_user_change)
    q = usub.add_parser("list", help="list users")
    q.set_defaults(func=cmd_user_list)

    p = sub.add_parser("unit", help="units (national, provincial, regional): who sees which sessions")
    usub = p.add_subparsers(dest="unit_command", required=True)
    q = usub.add_parser("add", help="add a unit")
    q.add_argument("code")
    q.add_argument("--name")
    q.add_argument("--kind", required=True, choices=[k.value for k in UnitKind])
    q.add_argument("--parent", help="the unit above (every unit but the national one has one)")
    q.set_defaults(func=cmd_unit)
    q = usub.add_parser("place", help="put a site (or one of its rooms) in a unit ('-': out of any unit)")
    q.add_argument("site")
    q.add_argument("unit")
    q.add_argument("--room")
    q.set_defaults(func=cmd_unit)
    q = usub.add_parser("assign", help="assign a user to a unit (sees its sessions and those of the units below)")
    q.add_argument("username")
    q.add_argument("unit")
    q.add_argument("--personal-data", action="store_true", help="an auditor also sees personal data there")
    q.add_argument("--remove", action="store_true", help="take the user out of the unit")
    q.set_defaults(func=cmd_unit)
    q = usub.add_parser("list", help="list the units")
    q.set_defaults(func=cmd_unit)

    p = sub.add_parser("case", help="cases assigned to named prosecutors")
    csub = p.add_subparsers(dest="case_command", required=True)
    q = csub.add_parser("assign", help="give a prosecutor the sessions of a case, wherever they were recorded")
    q.add_argument("case_number")
    q.add_argument("username")
    q.add_argument("--remove", action="store_true", help="take the case back")
    q.set_defaults(func=cmd_case)

    p = sub.add_parser("retention", help="retention policies; extend each session's lock on the store")
    rsub = p.add_subparsers(dest="retention_command", required=True)
    q = rsub.add_parser("policy", help="set the policy of a unit and case category (replaces the one there was)")
    q.add_argument("--unit", default="-", help="unit code ('-': every unit)")
    q.add_argument("--category", default="", help="case category (default: every category)")
    q.add_argument("--anchor", choices=("final", "recorded"), required=True,
                   help="count from the final judgment, or from the end of the recording (a fixed period)")
    q.add_argument("--years", type=int, default=0)
    q.add_argument("--days", type=int, default=0)
    q.add_argument("--mode", choices=("governance", "compliance"), default="compliance", help="the store's lock mode")
    q.set_defaults(func=cmd_retention)
    q = rsub.add_parser("policies", help="list the policies")
    q.set_defaults(func=cmd_retention)
    q = rsub.add_parser("apply", help="extend every session's objects to its retention (and place holds in force) "
                                      "on the store; idempotent, never shortens")
    q.add_argument("--store", help="store URL (default: store_url of the configuration)")
    q.set_defaults(func=cmd_retention)

    p = sub.add_parser("disposal", help="disposals: propose those due, list, execute after the undo window")
    dsub = p.add_subparsers(dest="disposal_command", required=True)
    for name, text in (("propose", "propose the disposal of every session whose retention ended and no hold covers"),
                       ("list", "list disposals"),
                       ("execute", "remove the objects of approved disposals whose undo window passed, leaving "
                                   "signed tombstones")):
        q = dsub.add_parser(name, help=text)
        if name == "execute":
            q.add_argument("--store", help="store URL (default: store_url of the configuration)")
        q.set_defaults(func=cmd_disposal)

    p = sub.add_parser("import-sites", help="register sites and rooms from a CSV file")
    p.add_argument("csv", help="columns: " + ",".join(CSV_COLUMNS))
    p.set_defaults(func=cmd_import_sites)

    p = sub.add_parser("coverage", help="print coverage now")
    p.add_argument("--json", action="store_true", help="print the same JSON as GET /api/v1/coverage")
    p.add_argument("--lang", choices=i18n.LANGUAGES, default="vi")
    p.add_argument("--limit", type=int, default=50, help="failing rooms to list (default 50)")
    p.set_defaults(func=cmd_coverage)
    csub = p.add_subparsers(dest="coverage_command")
    q = csub.add_parser("export", help="write the coverage evidence bundle of a period (docs/evidence-format.md)")
    q.add_argument("--from", dest="first", required=True, help="first local day, YYYY-MM-DD")
    q.add_argument("--to", dest="last", required=True, help="last local day, YYYY-MM-DD (cut at now)")
    q.add_argument("--out", required=True, help="the folder to create")

    p = sub.add_parser("alerts", help="open, clear and tell alerts for rooms that stop working (e-mail, webhook)")
    p.add_argument("--once", action="store_true", help="one round, then exit (for a systemd timer or cron)")
    p.add_argument("--every", type=float, default=60.0, help="seconds between rounds (default 60)")
    p.set_defaults(func=cmd_alerts)

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
    p.add_argument("--users-password-stdin", action="store_true",
                   help="also make the demo users (national and per province, each in its unit) with the password "
                        "on the first line of stdin")
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
    q.add_argument("--pkcs11", action="store_true", help="make it on the PKCS#11 token (pkcs11_module, "
                                                          "pkcs11_token): the private key never leaves it")
    q.add_argument("--token", help="token label (default: pkcs11_token)")
    q.add_argument("--passphrase-stdin", action="store_true",
                   help="read the passphrase (or PIN) from a line of stdin instead of the terminal")
    q.set_defaults(func=cmd_custodian_new)
    q = csub.add_parser("import", help="take over an existing custodian private key (irms-verify custodian-keygen)")
    q.add_argument("pem")
    q.add_argument("--passphrase-stdin", action="store_true",
                   help="read from stdin: the key file's own passphrase (if sealed), then the custodian passphrase")
    q.set_defaults(func=cmd_custodian_import)
    q = csub.add_parser("list", help="list custodian key ids")
    q.set_defaults(func=cmd_custodian_list)
    q = csub.add_parser("public", help="print or write a custodian public key for stations")
    q.add_argument("key_id", nargs="?", help="default: the current key")
    q.add_argument("--out", help="write the PEM here")
    q.set_defaults(func=cmd_custodian_public)

    p = sub.add_parser("custody", help="the custody holder: unlock, lock, status; re-wrap old keys")
    csub = p.add_subparsers(dest="custody_command", required=True)
    for name, func, text in (("unlock", cmd_custody_unlock, "hand the running server the custodian passphrase "
                                                              "(or token PIN) over the custody socket"),
                             ("lock", cmd_custody_lock, "drop every custodian key from the server's memory"),
                             ("status", cmd_custody_status, "locked or unlocked, by whom, which keys (exit 1: "
                                                            "locked)"),
                             ("rewrap", cmd_custody_rewrap, "seal keys still in the old PBKDF2/AES-CBC form "
                                                            "with argon2id + AES-256-GCM"),
                             ("hold", cmd_custody_hold, "be the custody holder (irms-web serve starts it)")):
        q = csub.add_parser(name, help=text)
        q.add_argument("--socket", help="the custody socket (default: custody_socket, or custody/holder.sock "
                                        "beside the database)")
        if name in ("unlock", "rewrap"):
            q.add_argument("--passphrase-stdin", action="store_true", help="read the passphrase(s) from stdin, "
                                                                            "one a line")
        if name == "status":
            q.add_argument("--json", action="store_true")
        if name == "hold":
            q.add_argument("--with-parent", action="store_true", help="stop when the process that started it stops")
        q.set_defaults(func=func)

    p = sub.add_parser("serve", help="run the server")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (default 2)")
    p.add_argument("--threads", type=int, default=8,
                   help="threads per worker for pages and the API (default 8); heartbeats on PostgreSQL "
                        "are answered on the worker's event loop")
    p.add_argument("--access-log", action="store_true")
    p.add_argument("--dev", action="store_true", help="Flask's single-process server instead of gunicorn")
    p.add_argument("--no-custody-holder", action="store_true",
                   help="do not start the custody holder (it runs as its own service: irms-web custody hold)")
    p.set_defaults(func=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if os.environ.get(PASSPHRASE_ENV):
        print(f"irms-web: error: {ENV_REFUSAL}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    old_umask = owner_only_umask()  # the database, its -wal/-shm and keys it creates: 0600
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
    finally:
        os.umask(old_umask)  # for callers in the same process (tests)



if __name__ == "__main__":
    sys.exit(main())
