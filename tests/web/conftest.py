"""Web fixtures: a migrated database (SQLite and PostgreSQL), the app with a fake clock, users, stations."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text

from evidence import keys as K
from evidence.coverage import Policy, RunState, next_run
from evidence.request_auth import sign_request
from tests.plugins.base import missing_service
from web import stations as ST
from web.app import create_app
from web.config import WebConfig, load_config
from web.db import Database, upgrade
from web.models import Base, Room, Site, Unit
from web.sites import ensure_province, ensure_room, ensure_site
from web.users import add_user

PG_ADMIN_URL = os.environ.get("IRMS_TEST_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
T0 = 1_800_000_000_000_000  # 15/01/2027 08:00 UTC
PASSWORD = "mật-khẩu-đủ-dài"


class FakeNow:
    """The server's clock in tests: moves only when told."""

    def __init__(self, t_us: int = T0) -> None:
        self.t_us = t_us

    def __call__(self) -> int:
        return self.t_us

    def advance(self, seconds: float) -> None:
        self.t_us += int(seconds * 1_000_000)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("db") / "template.db"
    db = Database(f"sqlite:///{path}")
    upgrade(db)
    db.dispose()
    return path


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh, uniquely named database in the local PostgreSQL for this test session."""
    admin = Database(PG_ADMIN_URL)
    name = f"irms_test_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as err:  # noqa: BLE001 - any failure here means "no PostgreSQL"
        admin.dispose()
        missing_service(f"PostgreSQL not available at {PG_ADMIN_URL}: {err.__class__.__name__}")
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    db = Database(url)
    upgrade(db)
    db.dispose()
    try:
        yield url
    finally:
        with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[str]:
    """An empty, migrated database: a copy of a template file (SQLite) or a truncated one (PostgreSQL)."""
    if request.param == "sqlite":
        path = tmp_path / "web.db"
        shutil.copy(sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    url = request.getfixturevalue("pg_url")
    db = Database(url)
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    db.dispose()
    yield url


@pytest.fixture
def now() -> FakeNow:
    return FakeNow()


@pytest.fixture
def config(db_url: str) -> WebConfig:
    return load_config(env={}, database_url=db_url, secret_key="test-secret", testing=True,
                       heartbeat_interval_s=60, clock_tolerance_s=2, min_disk_free_bytes=5 * 2**30,
                       trend_cache_s=0, totp_required_roles=())  # tests/web/test_twofactor.py requires it


@pytest.fixture
def app(config: WebConfig, now: FakeNow) -> Iterator[Flask]:
    app = create_app(config, clock=now)
    yield app
    app.extensions["irms"].db.dispose()


@pytest.fixture
def db(app: Flask) -> Database:
    database: Database = app.extensions["irms"].db
    return database


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    page = client.get(path).get_data(as_text=True)
    m = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', page)
    assert m, f"no CSRF token on {path}"
    return m.group(1)


def login(client: FlaskClient, username: str, password: str = PASSWORD) -> int:
    token = csrf_token(client)
    resp = client.post("/login", data={"username": username, "password": password, "csrf_token": token})
    return resp.status_code


@dataclass
class World:
    """A small country: provinces, sites and rooms, plus helpers for users and stations."""

    db: Database
    now: FakeNow
    client: FlaskClient
    sites: dict[str, int] = field(default_factory=dict)
    rooms: dict[str, int] = field(default_factory=dict)

    def user(self, username: str, role: str) -> str:
        with self.db.session() as s:
            add_user(s, username=username, display_name=username.title(), role=role, password=PASSWORD,
                     actor="test", now_us=self.now())
        return username

    def unit(self, code: str, kind: str = "province", parent: str | None = "VN") -> str:
        """A unit (the national unit `VN` first, when missing)."""
        from web import units as U
        with self.db.session() as s:
            if parent == "VN" and code != "VN" and s.scalars(select(Unit).where(Unit.code == "VN")).first() is None:
                U.add_unit(s, code="VN", name="Toàn quốc", kind="national", parent=None, actor="test",
                           now_us=self.now())
            if code == "VN":
                kind, parent = "national", None
            U.add_unit(s, code=code, name=f"Đơn vị {code}", kind=kind, parent=parent, actor="test", now_us=self.now())
            s.commit()
        return code

    def place(self, site: str, unit: str | None, room: str | None = None) -> None:
        from web import units as U
        with self.db.session() as s:
            U.place_in_unit(s, site=site, room=room, unit=unit, actor="test", now_us=self.now())
            s.commit()

    def assign(self, username: str, unit: str, personal_data: bool = False) -> None:
        from web import units as U
        with self.db.session() as s:
            U.assign_user(s, username=username, unit=unit, personal_data=personal_data, actor="test",
                          now_us=self.now())
            s.commit()

    def assign_case(self, case_number: str, username: str) -> None:
        from web import units as U
        with self.db.session() as s:
            U.assign_case(s, case_number=case_number, username=username, actor="test", now_us=self.now())
            s.commit()

    def code(self, site: str, room: str | None = None, ttl_s: int = 3600) -> str:
        with self.db.session() as s:
            site_row = s.get(Site, self.sites[site])
            room_row = s.get(Room, self.rooms[f"{site}/{room}"]) if room else None
            assert site_row is not None
            return ST.issue_code(s, site=site_row, room=room_row, actor="test", now_us=self.now(), ttl_s=ttl_s)

    def enroll(self, site: str, room: str, station_id: str | None = None) -> SimStation:
        key = Ed25519PrivateKey.generate()
        body = {"code": self.code(site, room), "public_key": K.b64(K.public_raw(key.public_key())),
                "station_id": station_id, "hardware_profile": "synthetic"}
        resp = self.client.post("/api/v1/enroll", json=body)
        assert resp.status_code == 201, resp.get_json()
        policy = self.client.application.extensions["irms"].heartbeats.policy
        return SimStation(resp.get_json()["station_id"], key, policy, self.now())


@dataclass
class SimStation:
    station_id: str
    key: Ed25519PrivateKey
    policy: Policy = field(default_factory=Policy)
    enrolled_at_us: int | None = None
    runs: RunState | None = None
    """The station's run, built by the station's rule (`next_run`) heartbeat after heartbeat, in call order."""

    def body(self, sent_us: int, **over: object) -> dict[str, object]:
        doc: dict[str, object] = {
            "format": "irms.heartbeat/1", "station_id": self.station_id, "sent_at_us": sent_us,
            "probes": [{"check": "camera.black", "device": "wide", "ok": True, "reason": "luma 120"},
                       {"check": "mic.level", "device": "room", "ok": True, "reason": "-20 dBFS"}],
            "disk_free_bytes": 100 * 2**30, "clock_offset_ms": 15, "store_ok": True,
            "versions": {"agent": "0.1.0"}, "recording": None,
        }
        doc.update(over)
        if "run" not in over:
            run = next_run(self.runs, doc, self.policy, self.enrolled_at_us)
            doc["run"] = run.as_json()
            self.runs = (self.runs or RunState()).after(run, sent_us, json.dumps(doc).encode())
        return doc

    def headers(self, body: bytes, now_us: int, nonce: str | None = None, path: str = "/api/v1/heartbeat",
                key: Ed25519PrivateKey | None = None) -> dict[str, str]:
        return sign_request(key or self.key, self.station_id, "POST", path, body, now_us // 1_000_000, nonce)


def beat(client: FlaskClient, st: SimStation, now_us: int, **over: object) -> tuple[int, dict[str, object]]:
    import json
    raw = json.dumps(st.body(now_us, **over)).encode()
    resp = client.post("/api/v1/heartbeat", data=raw, headers={**st.headers(raw, now_us),
                                                               "Content-Type": "application/json"})
    return resp.status_code, resp.get_json()


@pytest.fixture
def world(db: Database, now: FakeNow, client: FlaskClient) -> World:
    """Two provinces; HN has a detention centre with two rooms and an office with one; HUE a site with none."""
    w = World(db, now, client)
    with db.session() as s:
        hn = ensure_province(s, "HNI", "Thành phố Hà Nội")
        hue = ensure_province(s, "HUE", "Thành phố Huế")
        for code, prov, ftype, rooms in (("HN-TTG", hn, "detention_centre", ("P01", "P02")),
                                         ("HN-CQDT", hn, "investigation_office", ("P01",)),
                                         ("HUE-NTG", hue, "temporary_detention", ())):
            site, _ = ensure_site(s, prov, code, f"Cơ sở {code}", ftype)
            w.sites[code] = site.id
            for rc in rooms:
                room, _ = ensure_room(s, site, rc, f"Phòng {rc}")
                w.rooms[f"{code}/{rc}"] = room.id
    return w


# --- sessions, custody and replay ------------------------------------------------------------------------

CUSTODIAN_PASSPHRASE = "mật khẩu người giữ khoá 2027"


@dataclass
class SessionsWorld:
    """The `recorded` store (two real sessions) served by the app: station enrolled, custodian key held."""

    world: World
    recorded: object
    store: Path
    session_id: str
    other_session_id: str
    holder: object = None
    station_id: str = "st-rec-01"

    def login(self, client: FlaskClient, role: str) -> None:
        assert login(client, role.replace("_", "-")) == 302


def enroll_existing_station(db: Database, station_id: str, public_key_pem: Path, site_room: tuple[str, str],
                            now_us: int) -> None:
    """Register a station whose key was made by `irms-agent keygen` (as enrollment would)."""
    from sqlalchemy import select

    from web.models import Station
    key = K.load_public_key(public_key_pem)
    with db.session() as s:
        site = s.scalars(select(Site).where(Site.code == site_room[0])).one()
        room = s.scalars(select(Room).where(Room.site_id == site.id, Room.code == site_room[1])).one()
        s.add(Station(station_id=station_id, public_key=K.b64(K.public_raw(key)), status="enrolled",
                      hardware_profile="synthetic", room_id=room.id, enrolled_at_us=now_us))


@pytest.fixture
def sessions_world(world: World, recorded: object, db: Database, app: Flask, tmp_path: Path,
                   request: pytest.FixtureRequest) -> Iterator[SessionsWorld]:
    """Synced; verified too in browser tests (the other tests see verification happen on view).

    The custody holder serves its socket in a thread of the test process (as `irms-web custody hold`
    does in its own process) and is unlocked, as a custodian officer would.
    """
    from web import custody
    from web import recordings as R
    from web.custody_holder import Holder, HolderServer
    verify = request.node.get_closest_marker("browser") is not None
    rec = recorded  # tests.plugins.recording.Recorded
    store = rec.store  # type: ignore[attr-defined]
    sock = tmp_path / "custody" / "holder.sock"
    app.extensions["irms"].config = app.extensions["irms"].config.model_copy(
        update={"store_url": str(store), "custody_socket": str(sock), "export_dir": str(tmp_path / "exports")})
    with db.session() as s:
        hn = ensure_province(s, "HNI", "Thành phố Hà Nội")
        site, _ = ensure_site(s, hn, "HN-CA-01", "Công an Hà Nội", "investigation_office")
        for rc in ("P101", "P102"):
            ensure_room(s, site, rc, f"Phòng {rc}")
    enroll_existing_station(db, "st-rec-01", rec.station.home / "keys" / "station.pub",  # type: ignore[attr-defined]
                            ("HN-CA-01", "P101"), world.now())
    with db.session() as s:
        key = custody.read_key_file(rec.station.custodian_key.read_bytes(), None, "custodian.key")  # type: ignore
        custody.import_key(s, key, CUSTODIAN_PASSPHRASE.encode(), actor="test", now_us=world.now(), os_user="test")
        R.sync_store(s, R.store_of(app.extensions["irms"].config), world.now())
    if verify:  # as `irms-web sessions sync --verify` does
        from sqlalchemy import select

        from web.models import RecordingSession
        with db.session() as s:
            for row in s.scalars(select(RecordingSession)).all():
                R.verify_now(s, R.store_of(app.extensions["irms"].config), row, world.now())
    for role in ("prosecutor", "auditor", "it_staff", "admin", "investigator"):
        world.user(role.replace("_", "-"), role)
    # The recording site is in Hà Nội's unit; the prosecutor and the auditor (no personal data) are assigned there.
    world.unit("VKS-HNI")
    world.place("HN-CA-01", "VKS-HNI")
    world.assign("prosecutor", "VKS-HNI")
    world.assign("auditor", "VKS-HNI")
    holder = HolderServer(Holder(db, "", app.extensions["irms"].config.data_key_cache_s), sock).start()
    holder.holder.unlock(CUSTODIAN_PASSPHRASE, "custodian-officer", "test")
    try:
        yield SessionsWorld(world, rec, store, rec.session_id, rec.other_session_id, holder)  # type: ignore[attr-defined]
    finally:
        holder.stop()
