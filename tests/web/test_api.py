"""The JSON API: enrollment, signed heartbeats (and every refusal), coverage, witness, metrics."""

from __future__ import annotations

import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask.testing import FlaskClient
from sqlalchemy import func, select, text

from evidence import keys as K
from tests.web.conftest import World, beat, login
from web.db import Database
from web.models import AuditEntry, Heartbeat, Station, WitnessedHead

HB = "/api/v1/heartbeat"


def post_hb(client: FlaskClient, raw: bytes, headers: dict[str, str]) -> tuple[int, dict[str, object]]:
    resp = client.post(HB, data=raw, headers={**headers, "Content-Type": "application/json"})
    return resp.status_code, resp.get_json()


def test_enroll_with_one_time_code(world: World, client: FlaskClient, db: Database) -> None:
    key = Ed25519PrivateKey.generate()
    code = world.code("HN-TTG", "P01")
    body = {"code": code.lower(), "public_key": K.b64(K.public_raw(key.public_key())), "station_id": "st-a"}
    resp = client.post("/api/v1/enroll", json=body)
    assert resp.status_code == 201 and resp.get_json()["station_id"] == "st-a"
    again = client.post("/api/v1/enroll", json={**body, "station_id": "st-b"})
    assert again.status_code == 409 and "already used" in again.get_json()["message"]
    with db.session() as s:
        st = s.scalars(select(Station).where(Station.station_id == "st-a")).one()
        assert st.status == "enrolled" and st.room_id == world.rooms["HN-TTG/P01"]
        assert s.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "station.enroll")) == 1
        # the code itself is never stored
        assert code not in json.dumps([r[0] for r in s.execute(text("SELECT code_hash FROM enrollment_codes"))])


def test_enroll_refusals(world: World, client: FlaskClient) -> None:
    pub = K.b64(K.public_raw(Ed25519PrivateKey.generate().public_key()))
    assert client.post("/api/v1/enroll", json={"code": "NOPE-NOPE", "public_key": pub}).status_code == 401
    code = world.code("HN-TTG", ttl_s=60)  # a site-wide code needs the room
    r = client.post("/api/v1/enroll", json={"code": code, "public_key": pub})
    assert r.status_code == 400 and "--room" in r.get_json()["message"]
    assert client.post("/api/v1/enroll", json={"code": code, "public_key": pub, "room": "P99"}).status_code == 404
    assert client.post("/api/v1/enroll", json={"code": code, "public_key": "AAAA", "room": "P01"}).status_code == 400
    world.now.advance(61)
    r = client.post("/api/v1/enroll", json={"code": code, "public_key": pub, "room": "P01"})
    assert r.status_code == 401 and "expired" in r.get_json()["message"]
    assert client.post("/api/v1/enroll", data=b"not json").status_code == 400


def test_replacing_a_station_revokes_the_old_one(world: World, db: Database) -> None:
    old = world.enroll("HN-TTG", "P01")
    new = world.enroll("HN-TTG", "P01")
    with db.session() as s:
        assert s.scalars(select(Station.status).where(Station.station_id == old.station_id)).one() == "revoked"
        assert s.scalars(select(Station.status).where(Station.station_id == new.station_id)).one() == "enrolled"


def test_heartbeat_accepted_and_witnessed(world: World, client: FlaskClient, db: Database) -> None:
    st = world.enroll("HN-TTG", "P01")
    head = "ab" * 32
    status, answer = beat(client, st, world.now(), recording={"session_id": "S1", "index": 4, "chain_head": head})
    assert status == 201 and answer["ok"] is True and answer["witnessed"] is True
    world.now.advance(60)
    beat(client, st, world.now(), recording={"session_id": "S1", "index": 9, "chain_head": "cd" * 32})
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Heartbeat)) == 2
        assert s.scalar(select(func.count()).select_from(WitnessedHead)) == 2
    # A session known only by witnessed heads is in the unit of its station's room (HN-TTG: Hà Nội).
    world.unit("VKS-HNI")
    world.unit("VKS-HUE")
    world.place("HN-TTG", "VKS-HNI")
    world.user("kiemsat", "prosecutor")
    world.assign("kiemsat", "VKS-HNI")
    login(client, "kiemsat")
    resp = client.get("/api/v1/sessions/S1/witness")
    assert resp.status_code == 200
    assert resp.get_json() == [{"index": 4, "chain": head}, {"index": 9, "chain": "cd" * 32}]
    assert client.get("/api/v1/sessions/unknown/witness").status_code == 404
    world.user("kiemsat-hue", "prosecutor")
    world.assign("kiemsat-hue", "VKS-HUE")
    other = client.application.test_client()
    login(other, "kiemsat-hue")
    assert other.get("/api/v1/sessions/S1/witness").status_code == 404
    world.assign("kiemsat-hue", "VN")  # national: every session, known or not
    assert other.get("/api/v1/sessions/S1/witness").status_code == 200
    assert other.get("/api/v1/sessions/unknown/witness").get_json() == []


def test_heartbeat_reports_failing_probe(world: World, client: FlaskClient) -> None:
    st = world.enroll("HN-TTG", "P01")
    status, answer = beat(client, st, world.now(), disk_free_bytes=2**30, clock_offset_ms=90_000)
    assert status == 201 and answer["ok"] is False
    assert [r["code"] for r in answer["reasons"]] == ["disk_low", "clock_off"]


def test_unknown_station_refused(world: World, client: FlaskClient) -> None:
    from tests.web.conftest import SimStation
    ghost = SimStation("st-ghost", Ed25519PrivateKey.generate())
    raw = json.dumps(ghost.body(world.now())).encode()
    status, answer = post_hb(client, raw, ghost.headers(raw, world.now()))
    assert status == 401 and "unknown station" in str(answer["message"])


def test_unsigned_request_refused(world: World, client: FlaskClient) -> None:
    status, answer = post_hb(client, b"{}", {})
    assert status == 401 and answer["error"] == "Unauthenticated"


def test_revoked_station_refused_at_once(world: World, client: FlaskClient, db: Database) -> None:
    st = world.enroll("HN-TTG", "P01")
    assert beat(client, st, world.now())[0] == 201
    world.user("boss", "admin")
    login(client, "boss")
    from tests.web.conftest import csrf_token
    token = csrf_token(client, "/admin/stations")
    r = client.post(f"/admin/stations/{st.station_id}/revoke", data={"reason": "stolen", "csrf_token": token})
    assert r.status_code == 302
    status, answer = beat(client, st, world.now() + 1)
    assert status == 403 and "revoked" in str(answer["message"])


def test_stale_and_future_timestamps_refused(world: World, client: FlaskClient) -> None:
    st = world.enroll("HN-TTG", "P01")
    for skew in (-301, 301):
        raw = json.dumps(st.body(world.now())).encode()
        status, answer = post_hb(client, raw, st.headers(raw, world.now() + skew * 1_000_000))
        assert status == 401 and "stale" in str(answer["message"])
    raw = json.dumps(st.body(world.now())).encode()
    assert post_hb(client, raw, st.headers(raw, world.now() - 299 * 1_000_000))[0] == 201


def test_replayed_nonce_refused(world: World, client: FlaskClient, db: Database) -> None:
    st = world.enroll("HN-TTG", "P01")
    raw = json.dumps(st.body(world.now())).encode()
    headers = st.headers(raw, world.now())
    assert post_hb(client, raw, headers)[0] == 201
    status, answer = post_hb(client, raw, headers)
    assert status == 409 and "replay" in str(answer["message"])
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Heartbeat)) == 1


def test_forged_heartbeats_refused(world: World, client: FlaskClient) -> None:
    st = world.enroll("HN-TTG", "P01")
    other = world.enroll("HN-TTG", "P02")
    raw = json.dumps(st.body(world.now())).encode()
    # signed by another key
    status, answer = post_hb(client, raw, st.headers(raw, world.now(), key=Ed25519PrivateKey.generate()))
    assert status == 401 and "does not verify" in str(answer["message"])
    # body changed after signing
    headers = st.headers(raw, world.now())
    tampered = raw.replace(b'"ok": true', b'"ok": false', 1)
    assert post_hb(client, tampered, headers)[0] == 401
    # signature for another path
    assert post_hb(client, raw, st.headers(raw, world.now(), path="/api/v1/other"))[0] == 401
    # a station signing a heartbeat that names another station
    raw2 = json.dumps(st.body(world.now(), station_id=other.station_id)).encode()
    status, answer = post_hb(client, raw2, st.headers(raw2, world.now()))
    assert status == 400 and "signed by" in str(answer["message"])
    # malformed body, correctly signed
    bad = b'{"format": "irms.heartbeat/1"}'
    assert post_hb(client, bad, st.headers(bad, world.now()))[0] == 400


def test_coverage_json_and_metrics(world: World, client: FlaskClient) -> None:
    a = world.enroll("HN-TTG", "P01")
    b = world.enroll("HN-CQDT", "P01")
    beat(client, a, world.now())
    beat(client, b, world.now(), probes=[{"check": "camera.black", "device": "wide", "ok": False,
                                          "reason": "black"}])
    world.user("it", "it_staff")
    assert client.get("/api/v1/coverage").status_code == 401
    login(client, "it")
    cov = client.get("/api/v1/coverage").get_json()
    assert (cov["facilities_equipped"], cov["facilities_total"]) == (1, 3)
    assert (cov["rooms_working"], cov["rooms_total"]) == (1, 3)
    failing = {(f["site"], f["room"]): [r["code"] for r in f["reasons"]] for f in cov["failing_rooms"]}
    assert failing == {("HN-TTG", "P02"): ["no_station"], ("HN-CQDT", "P01"): ["probe_failed", "probe_missing"]}
    hue = next(p for p in cov["provinces"] if p["code"] == "HUE")
    assert hue["facilities_total"] == 1 and hue["rooms_total"] == 0 and hue["room_ratio"] is None
    # the station goes silent: after two intervals it is reported
    world.now.advance(121)
    cov = client.get("/api/v1/coverage").get_json()
    assert cov["rooms_working"] == 0 and set(cov["silent_stations"]) == {a.station_id, b.station_id}
    metrics = client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert metrics.status_code == 200
    text_ = metrics.get_data(as_text=True)
    assert "irms_facilities_total 3\n" in text_ and "irms_stations_silent 2\n" in text_
    assert 'irms_province_rooms_working{province="HNI"} 0' in text_
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 403


def test_heartbeat_history_makes_uptime_spans(world: World, client: FlaskClient, db: Database) -> None:
    from web.models import UptimeSpan
    st = world.enroll("HN-TTG", "P01")
    for _ in range(5):
        beat(client, st, world.now())
        world.now.advance(60)
    beat(client, st, world.now(), disk_free_bytes=1)
    with db.session() as s:
        spans = s.execute(select(UptimeSpan.start_us, UptimeSpan.end_us, UptimeSpan.closed)).all()
    # The run credits from its first heartbeat to its last ok one (never the time after); the failing one closes it.
    t0 = world.now() - 300 * 1_000_000
    assert spans == [(t0, world.now() - 60 * 1_000_000, True)]
