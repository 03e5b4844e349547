"""`irms-web serve` on PostgreSQL: heartbeats answered on the uvicorn workers' event loop.

The real server (gunicorn, uvicorn workers, the asyncio group commit) over HTTP on loopback: many
concurrent signed heartbeats, every refusal, the pages still served through the WSGI bridge, and
the database connection killed under it.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select, text

from evidence import keys as K
from tests.plugins.processes import Processes, free_port, wait_http
from tests.plugins.recording import BIN
from tests.web.conftest import SimStation
from web.db import Database
from web.models import Base, Heartbeat, Nonce, Station, UptimeSpan
from web.sites import ensure_province, ensure_room, ensure_site

pytestmark = pytest.mark.postgres


@dataclass
class Served:
    url: str
    port: int
    db: Database
    stations: list[SimStation]


@pytest.fixture
def served(pg_url: str, tmp_path: Path) -> Iterator[Served]:
    db = Database(pg_url)
    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(t.name for t in Base.metadata.sorted_tables)} "
                          "RESTART IDENTITY CASCADE"))
    stations = []
    with db.session() as s:
        prov = ensure_province(s, "HNI", "Thành phố Hà Nội")
        site, _ = ensure_site(s, prov, "HN-TTG", "Trại tạm giam", "detention_centre")
        for i in range(5):
            room, _ = ensure_room(s, site, f"P{i:02d}", f"Phòng {i}")
            key = Ed25519PrivateKey.generate()
            enrolled = time.time_ns() // 1000
            s.add(Station(station_id=f"st-serve-{i}", public_key=K.b64(K.public_raw(key.public_key())),
                          status="enrolled", hardware_profile="synthetic", room_id=room.id, enrolled_at_us=enrolled))
            stations.append(SimStation(f"st-serve-{i}", key, enrolled_at_us=enrolled))
    procs = Processes(tmp_path)
    port = free_port()
    env = {**os.environ, "IRMS_HOME": str(tmp_path), "IRMS_WEB_SECRET_KEY": "serve-test"}
    proc = procs.spawn("irms-web-serve", [str(BIN / "irms-web"), "--database", pg_url, "serve", "--host",
                                          "127.0.0.1", "--port", str(port), "--workers", "2"], env, tmp_path)
    try:
        wait_http(f"http://127.0.0.1:{port}/login", proc)
        yield Served(f"http://127.0.0.1:{port}", port, db, stations)
    finally:
        procs.stop_all()
        db.dispose()


def post(port: int, st: SimStation, *, method: str = "POST", raw: bytes | None = None,
         headers: dict[str, str] | None = None, **over: object) -> tuple[int, dict[str, object], dict[str, str]]:
    now = time.time_ns() // 1000
    raw = raw if raw is not None else json.dumps(st.body(now, **over)).encode()
    headers = headers if headers is not None else st.headers(raw, now)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, "/api/v1/heartbeat", body=raw, headers={**headers, "Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read()), {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


def count(db: Database, table: type[Base]) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(table)) or 0)


def test_concurrent_heartbeats_over_http_are_all_stored(served: Served) -> None:
    results: list[int] = []
    lock = threading.Lock()

    def station_daemon(st: SimStation) -> None:
        for k in range(12):
            status, _, _ = post(served.port, st, recording={"session_id": f"S-{st.station_id}", "index": k,
                                                            "chain_head": f"{k:064x}"})
            with lock:
                results.append(status)

    threads = [threading.Thread(target=station_daemon, args=(st,)) for st in served.stations for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert results == [201] * 120
    assert count(served.db, Heartbeat) == 120 and count(served.db, Nonce) == 120
    with served.db.session() as s:
        for st in served.stations:
            row = s.scalars(select(Station).where(Station.station_id == st.station_id)).one()
            newest = s.scalar(select(func.max(Heartbeat.received_us)).where(Heartbeat.station_pk == row.id))
            assert row.last_heartbeat_id is not None and row.span_end_us is not None
            assert s.get(Heartbeat, row.last_heartbeat_id) is not None
            assert abs(newest - s.get(Heartbeat, row.last_heartbeat_id).received_us) < 10_000_000  # type: ignore
            spans = s.execute(select(UptimeSpan.closed).where(UptimeSpan.station_pk == row.id)).scalars().all()
            assert spans.count(False) == 1


def test_every_refusal_over_http(served: Served) -> None:
    st = served.stations[0]
    now = time.time_ns() // 1000
    raw = json.dumps(st.body(now)).encode()
    headers = st.headers(raw, now)
    status, answer, resp_headers = post(served.port, st, raw=raw, headers=headers)
    assert status == 201 and answer["accepted"] is True and answer["ok"] is True
    assert resp_headers["x-content-type-options"] == "nosniff"
    status, answer, _ = post(served.port, st, raw=raw, headers=headers)
    assert (status, answer["error"]) == (409, "Conflict") and "replay" in str(answer["message"])
    ghost = SimStation("st-ghost", Ed25519PrivateKey.generate())
    status, answer, _ = post(served.port, ghost)
    assert status == 401 and "unknown station" in str(answer["message"])
    status, answer, _ = post(served.port, st, headers=st.headers(raw, now, key=Ed25519PrivateKey.generate()))
    assert status == 401 and "does not verify" in str(answer["message"])
    status, answer, _ = post(served.port, st, raw=b"{}", headers={})
    assert status == 401 and answer["error"] == "Unauthenticated"
    status, _, resp_headers = post(served.port, st, method="GET", raw=b"", headers={})
    assert status == 405 and resp_headers["allow"] == "POST"
    big = b"x" * (300 * 1024)
    status, answer, _ = post(served.port, st, raw=big, headers=st.headers(big, now))
    assert status == 413
    with served.db.session() as s:
        s.execute(text("UPDATE stations SET status = 'revoked' WHERE station_id = :sid"), {"sid": st.station_id})
    status, answer, _ = post(served.port, st)
    assert status == 403 and "revoked" in str(answer["message"])
    assert count(served.db, Heartbeat) == 1
    # the pages are the Flask app's, through the WSGI bridge
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
    conn.request("GET", "/login")
    resp = conn.getresponse()
    assert resp.status == 200 and "<form" in resp.read().decode()
    conn.close()


def test_database_connection_killed_under_the_server(served: Served) -> None:
    st = served.stations[1]
    assert post(served.port, st)[0] == 201
    name = served.db.engine.url.database
    with served.db.engine.connect() as conn:
        killed = conn.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                   "WHERE datname = :db AND pid <> pg_backend_pid()"), {"db": name}).scalar()
    assert killed and killed >= 1
    statuses = [post(served.port, st)[0] for _ in range(6)]
    # a batch on a killed connection is answered 503 (the station keeps it and sends it again); the next
    # batch reconnects
    assert set(statuses) <= {201, 503} and statuses[-1] == 201 and statuses.count(201) >= 4
    assert count(served.db, Heartbeat) == 1 + statuses.count(201)


# --- a station speaks only for its own room and sessions (issue 12 §1) ------------------------------------

EVENTS_PATH = "/api/v1/sessions/events"


def post_events(port: int, st: SimStation, events: list[dict[str, object]]) -> tuple[int, dict[str, object]]:
    now = time.time_ns() // 1000
    raw = json.dumps({"format": "irms.session-events/1", "station_id": st.station_id, "sent_at_us": now,
                      "events": events}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", EVENTS_PATH, body=raw,
                     headers={**st.headers(raw, now, path=EVENTS_PATH), "Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def start_event(session_id: str, room: str, seq: int = 1) -> dict[str, object]:
    return {"seq": seq, "session_id": session_id, "site": "HN-TTG", "room": room, "at_us": time.time_ns() // 1000,
            "kind": "start", "detail": ""}


def audit_rows(db: Database, action: str) -> list[tuple[str, str, dict[str, object]]]:
    with db.session() as s:
        return [(r.actor, r.target, json.loads(r.detail)) for r in s.execute(
            text("SELECT actor, target, detail FROM audit_log WHERE action = :a ORDER BY seq"), {"a": action})]


def heads_by_station(db: Database, session_id: str) -> list[str]:
    with db.session() as s:
        return list(s.execute(text("SELECT st.station_id FROM witnessed_heads w JOIN stations st "
                                   "ON st.id = w.station_pk WHERE w.session_id = :sid ORDER BY w.id"),
                              {"sid": session_id}).scalars())


def test_a_station_cannot_witness_a_session_of_another_room(served: Served) -> None:
    p00, p01 = served.stations[0], served.stations[1]
    sid = "6f1c2b1e-0000-4000-8000-00000000a001"
    assert post_events(served.port, p00, [start_event(sid, "P00")])[0] == 201
    status, answer, _ = post(served.port, p00, recording={"session_id": sid, "index": 0, "chain_head": "a" * 64})
    assert status == 201 and answer["witnessed"] is True
    before = (count(served.db, Heartbeat), count(served.db, Nonce))
    # the attack: room P01's station names P00's session with a made-up head
    status, answer, _ = post(served.port, p01, recording={"session_id": sid, "index": 1, "chain_head": "f" * 64})
    assert status == 403 and answer["error"] == "ForeignClaim", answer
    assert f"session {sid}" in str(answer["message"]) and "st-serve-0" in str(answer["message"])
    assert heads_by_station(served.db, sid) == ["st-serve-0"]
    assert (count(served.db, Heartbeat), count(served.db, Nonce)) == before  # nothing stored, not even the nonce
    [(actor, target, detail)] = audit_rows(served.db, "station.foreign_session")
    assert (actor, target) == ("station:st-serve-1", sid)
    assert detail["owner"] == "st-serve-0" and detail["chain_head"] == "f" * 64
    # the owner goes on being witnessed
    assert post(served.port, p00, recording={"session_id": sid, "index": 1, "chain_head": "b" * 64})[0] == 201
    assert heads_by_station(served.db, sid) == ["st-serve-0", "st-serve-0"]


def test_before_the_header_the_first_station_to_claim_a_session_owns_it(served: Served) -> None:
    first, other = served.stations[2], served.stations[3]
    sid = "6f1c2b1e-0000-4000-8000-00000000a002"
    assert post(served.port, first, recording={"session_id": sid, "index": -1, "chain_head": "0" * 64})[0] == 201
    status, answer, _ = post(served.port, other, recording={"session_id": sid, "index": 0, "chain_head": "e" * 64})
    assert status == 403 and "st-serve-2" in str(answer["message"])
    # and its events for that session are refused as well, though they name its own room
    status, answer = post_events(served.port, other, [start_event(sid, "P03")])
    assert status == 403 and "st-serve-2" in str(answer["message"])
    assert [a for a, _, _ in audit_rows(served.db, "station.foreign_session")] == ["station:st-serve-3"] * 2
    assert heads_by_station(served.db, sid) == ["st-serve-2"]
    with served.db.session() as s:
        assert s.execute(text("SELECT count(*) FROM sessions WHERE session_id = :sid"), {"sid": sid}).scalar() == 0
    assert post_events(served.port, first, [start_event(sid, "P02")])[0] == 201


def test_a_station_cannot_start_a_session_in_another_room(served: Served) -> None:
    p01 = served.stations[1]
    sid = "6f1c2b1e-0000-4000-8000-00000000a003"
    status, answer = post_events(served.port, p01, [start_event(sid, "P00")])
    assert status == 403 and answer["error"] == "ForeignClaim", answer
    assert "HN-TTG/P01" in str(answer["message"]) and "HN-TTG/P00" in str(answer["message"])
    with served.db.session() as s:
        assert s.execute(text("SELECT count(*) FROM sessions")).scalar() == 0
        assert s.execute(text("SELECT count(*) FROM session_events")).scalar() == 0
        assert s.execute(text("SELECT count(*) FROM nonces")).scalar() == 0
    [(actor, target, detail)] = audit_rows(served.db, "station.foreign_room")
    assert (actor, target) == ("station:st-serve-1", sid)
    assert detail == {"enrolled_for": "HN-TTG/P01", "named": "HN-TTG/P00", "kind": "start"}
    # its own room is fine
    assert post_events(served.port, p01, [start_event(sid, "P01")])[0] == 201
