"""Scale out: two `irms-web serve` nodes (each on its own IRMS_HOME, as on two hosts) on one PostgreSQL behind the
real nginx with the shipped configuration (deploy/nginx/irms.conf, as tests/web/test_slow_clients.py runs it)
behave as one: a login made on one node holds on the other, logout and disable on one end it on the other at
once, a two-factor code used on one is refused on the other, the login throttle counts across both, heartbeats
group-committed by both land as one history, and replay plays through both once the custodian officer has
unlocked each node's custody holder (docs/web.md, "Deployment": one holder per node host).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import ssl
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyotp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select, text

from evidence import keys as K
from tests.plugins.processes import Processes, free_port
from tests.plugins.recording import BIN, Recorded
from tests.web.conftest import CUSTODIAN_PASSPHRASE, PASSWORD, FakeNow, SimStation, World, enroll_existing_station
from tests.web.test_slow_clients import nginx_config, start_node
from web import custody
from web import recordings as R
from web import twofactor as TF
from web.config import WebConfig, load_config
from web.db import Database
from web.evidence import policy_of, snapshot, trend
from web.models import Base, Station, UptimeSpan, User
from web.sites import ensure_province, ensure_room, ensure_site
from web.units import add_unit, assign_user
from web.users import add_user

pytestmark = pytest.mark.postgres
STATIONS = 6
BEATS = 3


@dataclass
class Cluster:
    db: Database
    front: int
    """nginx's HTTPS port."""
    nodes: dict[str, int]
    homes: dict[str, Path]
    tls: ssl.SSLContext
    env: dict[str, str]
    recorded: Recorded
    secrets: dict[str, str] = field(default_factory=dict)
    stations: list[SimStation] = field(default_factory=list)

    def web(self, node: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "irms-web"), *args], env={**self.env, "IRMS_HOME": str(self.homes[node])},
                              cwd=self.homes[node], input=stdin, capture_output=True, text=True, timeout=120)


class Client:
    """A browser's cookie, sent to nginx (HTTPS) or to one node directly (as nginx would, from 127.0.0.1)."""

    def __init__(self, cluster: Cluster) -> None:
        self.c = cluster
        self.cookie = ""

    def request(self, where: str, method: str, path: str, form: dict[str, str] | None = None) -> tuple[int, str, str]:
        if where == "front":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection("127.0.0.1", self.c.front, timeout=60,
                                                                           context=self.c.tls)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.c.nodes[where], timeout=60)
        headers = {"Cookie": self.cookie} if self.cookie else {}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            set_cookie = resp.getheader("Set-Cookie")
            if set_cookie and set_cookie.startswith("session="):
                self.cookie = set_cookie.split(";")[0]
            media = resp.status == 200 and path.endswith(".ts")
            text_ = data[:4].hex() if media else data.decode("utf-8", "replace")
            return resp.status, resp.getheader("Location") or "", text_
        finally:
            conn.close()

    def get(self, where: str, path: str) -> int:
        return self.request(where, "GET", path)[0]

    def post(self, where: str, path: str, form: dict[str, str], page: str = "/login") -> tuple[int, str, str]:
        body = self.request(where, "GET", page)[2]
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', body) or re.search(
            r'value="([^"]+)"[^>]*name="csrf_token"', body)
        assert token, body[:300]
        return self.request(where, "POST", path, {**form, "csrf_token": token.group(1)})

    def login(self, where: str, username: str, password: str = PASSWORD) -> tuple[int, str]:
        status, location, _ = self.post(where, "/login", {"username": username, "password": password})
        return status, location

    def code(self, where: str, code: str) -> tuple[int, str]:
        status, location, _ = self.post(where, "/login/code", {"code": code}, page="/login/code")
        return status, location


def enrol(db: Database, username: str) -> str:
    """The user enrolled with a code of the previous time step (so this step's and the next one's remain)."""
    with db.session() as s:
        user = s.scalars(select(User).where(User.username == username)).one()
        secret = TF.pending_secret(s, user)
        TF.confirm_enrolment(s, user, pyotp.TOTP(secret).at(time.time() - 30), now_us=time.time_ns() // 1000,
                             ip="test")
    return secret


@pytest.fixture
def cluster(pg_url: str, recorded: Recorded, tmp_path: Path) -> Iterator[Cluster]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(nginx).exists(), "nginx is not installed (scripts/install-system)"
    db = Database(pg_url)
    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(t.name for t in Base.metadata.sorted_tables)} "
                          "RESTART IDENTITY CASCADE"))
    now = time.time_ns() // 1000
    stations = []
    with db.session() as s:
        site, _ = ensure_site(s, ensure_province(s, "HNI", "Thành phố Hà Nội"), "HN-CA-01", "Công an Hà Nội",
                              "investigation_office")
        rooms = [ensure_room(s, site, f"P{100 + i}", f"Phòng {i}")[0] for i in range(1, STATIONS + 3)]
        for i in range(STATIONS):
            key = Ed25519PrivateKey.generate()
            s.add(Station(station_id=f"st-node-{i}", public_key=K.b64(K.public_raw(key.public_key())),
                          status="enrolled", hardware_profile="synthetic", room_id=rooms[i + 2].id,
                          enrolled_at_us=now))
            stations.append(SimStation(f"st-node-{i}", key, policy_of(load_config(env={})), now))
        for name, role in (("kiemsat", "prosecutor"), ("quantri", "admin"), ("lan", "auditor"),
                           ("target", "auditor")):
            add_user(s, username=name, display_name=name, role=role, password=PASSWORD, actor="test", now_us=now)
        add_unit(s, code="VN", name="Toàn quốc", kind="national", parent=None, actor="test", now_us=now)
        assign_user(s, username="kiemsat", unit="VN", personal_data=False, actor="test", now_us=now)
    enroll_existing_station(db, "st-rec-01", recorded.station.home / "keys" / "station.pub", ("HN-CA-01", "P101"),
                            now)
    with db.session() as s:
        key = custody.read_key_file(recorded.station.custodian_key.read_bytes(), None, "custodian.key")
        custody.import_key(s, key, CUSTODIAN_PASSPHRASE.encode(), actor="test", now_us=now, os_user="test")
        R.sync_store(s, R.store_of(load_config(env={}, store_url=str(recorded.store))), now)
    secrets_ = {u: enrol(db, u) for u in ("kiemsat", "quantri")}
    # What every node shares (docs/web.md, "Deployment"): the database, the store, the cookie secret and the
    # audit signing key (copied to each host); each node has its own home and custody holder.
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o700)
    env = {"IRMS_WEB_SECRET_KEY": "scale-out-test-secret", "IRMS_WEB_AUDIT_KEY_PATH": str(shared / "audit.key"),
           "IRMS_WEB_STORE_URL": str(recorded.store), "IRMS_WEB_TRUSTED_PROXIES": "127.0.0.1",
           "IRMS_WEB_DATABASE_URL": pg_url}
    procs = Processes(tmp_path)
    homes = {n: tmp_path / f"home-{n}" for n in ("a", "b")}
    try:
        nodes = {}
        for n, home in homes.items():
            home.mkdir()
            nodes[n] = start_node(procs, pg_url, home, f"irms-web-{n}", **env)
        folder = tmp_path / "nginx"
        folder.mkdir()
        front, http_port = free_port(), free_port()
        conf = nginx_config(folder, list(nodes.values()), front, http_port)
        proxy = procs.spawn("nginx", [nginx, "-p", str(folder), "-c", str(conf), "-g", "daemon off;"],
                            dict(os.environ), folder)
        tls = ssl.create_default_context(cafile=str(folder / "server.crt"))
        c = Cluster(db, front, nodes, homes, tls, {**os.environ, **env}, recorded, secrets_, stations)
        deadline = time.monotonic() + 30
        while True:
            try:
                assert Client(c).get("front", "/login") == 200
                break
            except OSError:
                assert proxy.popen.poll() is None, proxy.tail()
                assert time.monotonic() < deadline, "nginx did not answer"
                time.sleep(0.2)
        yield c
    finally:
        procs.stop_all()
        db.dispose()


def test_two_nodes_behind_nginx_behave_as_one(cluster: Cluster) -> None:
    c = cluster
    # 1. A login made through the front (two factors) holds on both nodes; logout on A ends it on B at once.
    lan = Client(c)
    assert lan.login("front", "lan") == (302, "/")
    assert lan.get("a", "/") == lan.get("b", "/") == lan.get("front", "/") == 200
    assert lan.post("a", "/logout", {}, page="/")[0] == 302
    assert lan.get("b", "/") == 302 and lan.get("front", "/") == 302

    boss = Client(c)
    assert boss.login("a", "quantri") == (302, "/login/code")
    assert boss.code("b", pyotp.TOTP(c.secrets["quantri"]).now()) == (302, "/")  # the second factor on the other node
    assert boss.get("a", "/admin/users") == boss.get("b", "/admin/users") == 200

    # 2. A two-factor code used through one node is refused through the other (shared last time step).
    pro = Client(c)
    code = pyotp.TOTP(c.secrets["kiemsat"]).now()
    assert pro.login("front", "kiemsat") == (302, "/login/code")
    assert pro.code("a", code) == (302, "/")
    thief = Client(c)
    assert thief.login("b", "kiemsat") == (302, "/login/code")
    status, _, page = thief.post("b", "/login/code", {"code": code}, page="/login/code")
    assert status == 401 and "Mã này đã được dùng" in page

    # 3. Disabled through B: lan's login through A ends at once.
    assert lan.login("a", "lan") == (302, "/")
    assert boss.post("b", "/admin/users/lan/disable", {}, page="/admin/users")[0] == 302
    assert lan.get("a", "/") == 302 and lan.get("front", "/") == 302

    # 4. Heartbeats through the front: group commits of both nodes make one history per station.
    errors: list[str] = []

    def send(st: SimStation) -> None:
        for _ in range(BEATS):
            now = time.time_ns() // 1000
            raw = json.dumps(st.body(now)).encode()
            conn = http.client.HTTPSConnection("127.0.0.1", c.front, timeout=60, context=c.tls)
            conn.request("POST", "/api/v1/heartbeat", body=raw, headers={**st.headers(raw, now),
                                                                         "Content-Type": "application/json"})
            resp = conn.getresponse()
            if resp.status != 201:
                errors.append(f"{st.station_id}: {resp.status} {resp.read()[:200]!r}")
            conn.close()

    threads = [threading.Thread(target=send, args=(st,)) for st in c.stations]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    with c.db.session() as s:
        per_station = dict(s.execute(text(
            "SELECT s.station_id, count(*) FROM heartbeats h JOIN stations s ON s.id = h.station_pk "
            "GROUP BY s.station_id")).all())
        spans = dict(s.execute(text(
            "SELECT s.station_id, count(*) FROM uptime_spans u JOIN stations s ON s.id = u.station_pk "
            "GROUP BY s.station_id")).all())
    assert per_station == {st.station_id: BEATS for st in c.stations}
    assert spans == {st.station_id: 1 for st in c.stations}  # one continuous span each, whichever node took a beat
    audit = c.web("a", "audit", "verify")
    assert audit.returncode == 0, audit.stdout + audit.stderr

    # 5. Custody: one holder per node host. Unlocked on A only, replay plays through A and is refused on B ...
    sid = c.recorded.session_id
    seg = f"/replay/{sid}/seg/00000000.ts"
    assert pro.get("front", f"/replay/{sid}") == 200  # verified on view
    unlock = c.web("a", "custody", "unlock", "--passphrase-stdin", stdin=CUSTODIAN_PASSPHRASE + "\n")
    assert unlock.returncode == 0, unlock.stderr
    assert pro.request("a", "GET", seg)[0] == 200
    status, _, body = pro.request("b", "GET", seg)
    assert status == 503 and "irms-web custody unlock" in body
    # ... and once the officer unlocks B's holder too, through the front every request plays, on either node.
    unlock = c.web("b", "custody", "unlock", "--passphrase-stdin", stdin=CUSTODIAN_PASSPHRASE + "\n")
    assert unlock.returncode == 0, unlock.stderr
    answers = [pro.request("front", "GET", seg) for _ in range(6)]
    assert [(status, body[:2]) for status, _, body in answers] == [(200, "47")] * 6  # MPEG-TS sync byte
    assert pro.request("b", "GET", seg)[0] == 200
    with c.db.session() as s:
        uses = s.execute(text("SELECT detail FROM audit_log WHERE action = 'custodian.key_use'")).scalars().all()
    assert len(uses) == 2  # one unwrap audited by each node's holder (each keeps the data key for a while)

    # 6. The login throttle counts failures taken by either node (nginx gives both the same client address).
    target = Client(c)
    for where in ("a", "b", "front", "a", "b"):
        assert target.login(where, "target", "wrong-wrong-wrong")[0] == 401
    assert target.login("b", "target")[0] == 429
    assert target.login("a", "target")[0] == 429


def test_trend_cache_sees_a_late_heartbeat_another_node_stored(world: World, config: WebConfig, now: FakeNow,
                                                               db: Database) -> None:
    """The one per-process cache of derived data (the trend's past days) is keyed by the database: a span for a
    past day stored by another node (a late, queued heartbeat) shows on this node's next view, not 5 min on."""
    world.enroll("HN-TTG", "P01")
    cfg = config.model_copy(update={"trend_cache_s": 300})

    def yesterday() -> float | None:
        with db.session() as s:
            return trend(s, snapshot(s), cfg, now()).days[-2].room_uptime

    before = yesterday()
    assert before == yesterday()  # from the cache
    day = 86_400_000_000
    with db.session() as s:  # what node B's ingest of a late heartbeat stores
        st = s.scalars(select(Station)).one()
        s.add(UptimeSpan(station_pk=st.id, room_id=st.room_id, start_us=now() - day - 3_600_000_000,
                         end_us=now() - day, closed=True))
    after = yesterday()
    assert after is not None and after > (before or 0)
