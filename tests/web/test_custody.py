"""Custody against the real server: `irms-web serve` (gunicorn, uvicorn workers, PostgreSQL) and its custody holder.

With the database and the server's environment alone no recording plays; a custodian officer unlocks the
server over the custody socket (0600, 0700 folder; another OS user cannot connect, and the holder checks
the kernel's word too); every unwrap, from the web replay or `irms-verify rebuild`, is an audit entry
naming the prosecutor and the OS user; locking takes effect at once; a systemd credential unlocks too.
"""

from __future__ import annotations

import hashlib
import http.cookiejar
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select, text

from evidence import sealed_key
from evidence.errors import KeyError_
from tests.plugins.processes import Proc, Processes, free_port, wait_for, wait_http
from tests.plugins.recording import BIN, Recorded
from tests.web.conftest import CUSTODIAN_PASSPHRASE, PASSWORD, enroll_existing_station
from web import custody
from web import recordings as R
from web.config import load_config
from web.db import Database
from web.models import AuditEntry, Base, CustodianKey
from web.sites import ensure_province, ensure_room, ensure_site
from web.units import add_unit, assign_user
from web.users import add_user

pytestmark = pytest.mark.postgres
PROSECUTOR = "kiemsat.a"


@dataclass
class Served:
    url: str
    db: Database
    env: dict[str, str]
    home: Path
    socket: Path
    server: Proc
    recorded: Recorded

    def web(self, *args: str, stdin: str = "", check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(BIN / "irms-web"), *args], env=self.env, cwd=self.home, input=stdin,
                              capture_output=True, text=True, timeout=120)
        if check:
            assert proc.returncode == 0, f"irms-web {' '.join(args)}: {proc.returncode} {proc.stderr}"
        return proc


@pytest.fixture
def served(pg_url: str, recorded: Recorded, tmp_path: Path) -> Iterator[Served]:
    db = Database(pg_url)
    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(t.name for t in Base.metadata.sorted_tables)} "
                          "RESTART IDENTITY CASCADE"))
    now = time.time_ns() // 1000
    with db.session() as s:
        prov = ensure_province(s, "HNI", "Thành phố Hà Nội")
        site, _ = ensure_site(s, prov, "HN-CA-01", "Công an Hà Nội", "investigation_office")
        for rc in ("P101", "P102"):
            ensure_room(s, site, rc, f"Phòng {rc}")
    enroll_existing_station(db, "st-rec-01", recorded.station.home / "keys" / "station.pub", ("HN-CA-01", "P101"),
                            now)
    with db.session() as s:
        key = custody.read_key_file(recorded.station.custodian_key.read_bytes(), None, "custodian.key")
        custody.import_key(s, key, CUSTODIAN_PASSPHRASE.encode(), actor="test", now_us=now, os_user="test")
        add_user(s, username=PROSECUTOR, display_name="Kiểm sát viên A", role="prosecutor", password=PASSWORD,
                 actor="test", now_us=now)
        add_user(s, username="it.staff", display_name="IT", role="it_staff", password=PASSWORD, actor="test",
                 now_us=now)
        # The prosecutor's unit is the national one: every session is in scope (web/scope.py).
        add_unit(s, code="VN", name="Toàn quốc", kind="national", parent=None, actor="test", now_us=now)
        assign_user(s, username=PROSECUTOR, unit="VN", personal_data=False, actor="test", now_us=now)
        R.sync_store(s, R.store_of(load_config(env={}, store_url=str(recorded.store))), now)
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("IRMS_WEB_")}
    env.update(IRMS_HOME=str(home), IRMS_WEB_SECRET_KEY="custody-test", IRMS_WEB_DATABASE_URL=pg_url,
               IRMS_WEB_STORE_URL=str(recorded.store), IRMS_WEB_TOTP_REQUIRED_ROLES="")  # 2FA: test_twofactor.py
    procs = Processes(tmp_path)
    port = free_port()
    proc = procs.spawn("irms-web-serve", [str(BIN / "irms-web"), "serve", "--host", "127.0.0.1", "--port", str(port),
                                          "--workers", "2"], env, home)
    try:
        wait_http(f"http://127.0.0.1:{port}/login", proc)
        yield Served(f"http://127.0.0.1:{port}", db, env, home, home / "custody" / "holder.sock", proc, recorded)
    finally:
        procs.stop_all()
        db.dispose()


class Browser:
    """A logged-in HTTP client (cookie jar, CSRF token from the login form)."""

    def __init__(self, base: str, username: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        page = self.opener.open(base + "/login", timeout=30).read().decode()
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page) or re.search(
            r'value="([^"]+)"[^>]*name="csrf_token"', page)
        assert token
        body = urllib.parse.urlencode({"username": username, "password": PASSWORD, "csrf_token": token.group(1)})
        self.opener.open(base + "/login", data=body.encode(), timeout=30)

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with self.opener.open(self.base + path, timeout=60) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()


def key_uses(db: Database) -> list[tuple[str, dict[str, object]]]:
    with db.session() as s:
        rows = s.scalars(select(AuditEntry).where(AuditEntry.action == "custodian.key_use")
                         .order_by(AuditEntry.seq)).all()
        return [(r.actor, json.loads(r.detail)) for r in rows]


def environ_of(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return [item.partition(b"=")[2].decode("utf-8", "replace") for item in raw.split(b"\0") if item]


def server_pids(root: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(root)], capture_output=True, text=True).stdout.split()
    children = [int(p) for p in out]
    return [root, *children, *[g for c in children for g in server_pids(c)[1:]]]


def as_nobody(code: str) -> subprocess.CompletedProcess[str]:
    """Python run as the OS user `nobody` (uid 65534): another user on the server host."""
    return subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True, text=True, timeout=60,
                          preexec_fn=lambda: (os.setgid(65534), os.setuid(65534)),  # noqa: PLW1509
                          env={"PATH": "/usr/bin:/bin"})


def test_no_content_until_unlocked_then_every_unwrap_audited(served: Served, tmp_path: Path) -> None:
    sid = served.recorded.session_id
    prefix = json.loads((served.recorded.store / "sessions" / f"{sid}.json").read_text())["prefix"]
    record = json.loads((served.recorded.store / prefix / "seg" / "00000000.json").read_text())
    kiemsat = Browser(served.url, PROSECUTOR)
    assert kiemsat.get(f"/replay/{sid}")[0] == 200  # the page (verified on view); no content in it

    # 1. With the database and the server's environment alone nothing plays: the server is locked, the
    #    key in the database is sealed (argon2id, AES-256-GCM), and no value in the environment of any of
    #    the server's processes (gunicorn, workers, custody holder) opens it.
    status, body = kiemsat.get(f"/replay/{sid}/seg/00000000.ts")
    assert status == 503 and b"irms-web custody unlock" in body and b"\x47" not in body[:1]
    with served.db.session() as s:
        sealed = s.scalars(select(CustodianKey)).one().private_pem
    assert json.loads(sealed)["kdf"] == {**sealed_key.KDF_PARAMS, "salt": json.loads(sealed)["kdf"]["salt"]}
    pids = server_pids(served.server.popen.pid)
    assert len(pids) >= 4, pids  # serve, gunicorn workers, the holder
    values = {v for pid in pids for v in environ_of(pid) if len(v) >= sealed_key.MIN_PASSPHRASE}
    assert values and not any("IRMS_CUSTODIAN" in k for pid in pids
                              for k in Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0"))
    for value in values:
        with pytest.raises(KeyError_, match="does not open"):
            sealed_key.open_sealed(sealed, value.encode(), "custodian key")
    locked = served.web("custody", "status", check=False)
    assert locked.returncode == 1 and locked.stdout.startswith("locked")

    # 2. The socket: 0600 in a 0700 folder, owned by the server's user; another OS user cannot connect...
    st, folder = served.socket.stat(), served.socket.parent.stat()
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 and stat.S_IMODE(folder.st_mode) == 0o700
    assert st.st_uid == os.getuid()
    probe = (f"import socket; s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect({str(served.socket)!r}); "
             "s.sendall(b'{\"op\": \"status\"}\\n'); print(s.recv(4096).decode())")
    refused = as_nobody(probe)
    assert refused.returncode != 0 and "PermissionError" in refused.stderr
    # ... and were the modes loosened (a hard link in an open folder, the socket 0666), the holder still
    # refuses the uid the kernel names (SO_PEERCRED)
    open_dir = Path(tempfile.mkdtemp(prefix="irms-custody-probe-", dir="/tmp"))
    os.chmod(open_dir, 0o755)
    os.link(served.socket, open_dir / "holder.sock")
    os.chmod(served.socket, 0o666)
    try:
        answered = as_nobody(probe.replace(str(served.socket), str(open_dir / "holder.sock")))
    finally:
        os.chmod(served.socket, 0o600)
        shutil.rmtree(open_dir)
    assert answered.returncode == 0 and "uid 65534 may not use the custody socket" in answered.stdout

    # 3. A wrong passphrase: one line, still locked; the right one unlocks (the officer's OS user recorded)
    wrong = served.web("custody", "unlock", "--passphrase-stdin", stdin="sai mật khẩu hoàn toàn\n", check=False)
    assert wrong.returncode != 0 and len(wrong.stderr.splitlines()) == 1 and "does not open" in wrong.stderr
    assert served.web("custody", "status", check=False).returncode == 1
    out = served.web("custody", "unlock", "--passphrase-stdin", stdin=CUSTODIAN_PASSPHRASE + "\n").stdout
    assert "unlocked by root" in out
    assert "unlocked by root" in served.web("custody", "status").stdout

    # 4. Replay plays, and the unwrap is audited: the prosecutor served, the OS user and pid of the worker
    status, body = kiemsat.get(f"/replay/{sid}/seg/00000000.ts")
    assert status == 200 and body[0] == 0x47
    assert hashlib.sha256(body).hexdigest() == record["plain_sha256"]
    assert kiemsat.get(f"/replay/{sid}/seg/00000001.ts")[0] == 200
    uses = key_uses(served.db)
    assert [(a, d["purpose"], d["os_user"]) for a, d in uses] == [(PROSECUTOR, "replay", "root")]  # once, then held
    assert uses[0][1]["pid"] in server_pids(served.server.popen.pid)
    with served.db.session() as s:
        unlocks = s.scalars(select(AuditEntry).where(AuditEntry.action == "custodian.unlock")).all()
        assert [json.loads(u.detail)["os_user"] for u in unlocks] == ["root"]

    # 5. `irms-verify rebuild` through the server's holder: audited the same way, for a named prosecutor only
    out_mp4 = tmp_path / "rec.mp4"
    verify_env = {**served.env, "IRMS_TRUST": str(served.recorded.station.trust)}
    refused_cli = subprocess.run([str(BIN / "irms-verify"), "rebuild", sid, "--store", str(served.recorded.store),
                                  "--custodian-socket", str(served.socket), "--prosecutor", "it.staff", "--force",
                                  "--out", str(out_mp4)], env=verify_env, capture_output=True, text=True, timeout=300)
    assert refused_cli.returncode != 0 and "not an active prosecutor account" in refused_cli.stderr
    assert not out_mp4.exists()
    done = subprocess.run([str(BIN / "irms-verify"), "rebuild", sid, "--store", str(served.recorded.store),
                           "--custodian-socket", str(served.socket), "--prosecutor", PROSECUTOR, "--force",
                           "--out", str(out_mp4)], env=verify_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert out_mp4.stat().st_size > 10_000
    cli_uses = [(a, d) for a, d in key_uses(served.db) if d["purpose"] == "irms-verify rebuild"]
    assert cli_uses and all(a == PROSECUTOR and d["os_user"] == "root" for a, d in cli_uses)

    # 6. Locked again: nothing plays, at once (no worker keeps a data key)
    assert "locked" in served.web("custody", "lock").stdout
    assert kiemsat.get(f"/replay/{sid}/seg/00000002.ts")[0] == 503
    assert kiemsat.get(f"/replay/{sid}/seg/00000000.ts")[0] == 503

    # 7. A prosecutor added from the command line: the OS user who ran it is in the audit entry
    served.web("user", "add", "kiemsat.b", "--role", "prosecutor", "--password-stdin", stdin=PASSWORD + "\n")
    with served.db.session() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "user.add", AuditEntry.target == "kiemsat.b"))
        detail = json.loads(entry.one().detail)
    assert detail == {"role": "prosecutor", "os_user": "root"}
    assert "audit log verified" in served.web("audit", "verify").stdout


def test_systemd_credential_unlocks_a_holder(served: Served, tmp_path: Path) -> None:
    creds = tmp_path / "credentials"
    creds.mkdir(mode=0o700)
    (creds / "custodian-passphrase").write_text(CUSTODIAN_PASSPHRASE + "\n")
    sock = tmp_path / "c2" / "holder.sock"
    procs = Processes(tmp_path)
    holder = procs.spawn("custody-hold", [str(BIN / "irms-web"), "custody", "hold", "--socket", str(sock)],
                         {**served.env, "CREDENTIALS_DIRECTORY": str(creds)}, served.home)
    try:
        wait_for(lambda: "custody holder on" in holder.tail(), 60, "the holder to start")
        assert "unlocked by the systemd credential" in holder.tail()
        status = json.loads(served.web("custody", "status", "--json", "--socket", str(sock)).stdout)
        assert status["locked"] is False and status["unlocked_by"] == "root"
        with served.db.session() as s:
            entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "custodian.unlock")).one()
            assert json.loads(entry.detail)["via"] == "systemd-credential"
    finally:
        procs.stop_all()
    assert not sock.exists()


def test_passphrase_in_the_environment_is_refused(served: Served) -> None:
    for argv in (["irms-web", "custody", "status"], ["irms-verify", "rebuild", "S", "--store", "x", "--out", "y"]):
        proc = subprocess.run([str(BIN / argv[0]), *argv[1:]], cwd=served.home,
                              env={**served.env, "IRMS_CUSTODIAN_PASSPHRASE": CUSTODIAN_PASSPHRASE},
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
        assert "no longer read" in proc.stderr and "irms-web custody unlock" in proc.stderr
