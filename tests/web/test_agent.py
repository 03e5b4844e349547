"""The station side against a live server: irms-agent enroll and run, queueing while the server is away."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from recorder.cli import main as agent
from recorder.heartbeat import HeartbeatQueue
from recorder.journal import Journal, SessionRow
from tests.web.conftest import World
from web.app import create_app
from web.config import WebConfig
from web.db import Database
from web.models import Heartbeat, Station, WitnessedHead


@pytest.fixture
def server(config: WebConfig, live_server: Callable[[Flask], str]) -> str:
    """The app on real time (the agent signs with the wall clock) on a loopback port."""
    app = create_app(config.model_copy(update={"min_disk_free_bytes": 0, "trend_cache_s": 0}))
    return live_server(app)


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_enroll_run_queue_and_catch_up(world: World, server: str, irms_home: Path, db: Database,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    code = world.code("HN-TTG", "P01")
    assert agent(["enroll", "--server", server, "--code", code]) == 0
    meta = json.loads((irms_home / "station.json").read_text())
    assert meta["server"] == server and meta["station_id"].startswith("st-")
    sid = meta["station_id"]

    assert agent(["run", "--once"]) == 0
    with db.session() as s:
        (hb,) = s.scalars(select(Heartbeat)).all()
        body = json.loads(hb.body)
    assert hb.ok, hb.reasons
    assert {p["check"] for p in body["probes"]} == {"camera.synthetic", "mic.synthetic"}
    assert abs(body["clock_offset_ms"]) < 2000 and body["disk_free_bytes"] > 0

    # the server is away: heartbeats wait in the queue, in order
    away = closed_port()
    assert agent(["run", "--once", "--server", away]) == 3
    assert agent(["run", "--once", "--server", away]) == 3
    q = HeartbeatQueue(irms_home / "heartbeats.db")
    queued = [json.loads(b)["sent_at_us"] for _, b in q.oldest()]
    q.close()
    assert len(queued) == 2 and queued == sorted(queued)
    assert "server away" in capsys.readouterr().out

    # while recording, the chain head goes along and the server witnesses it
    j = Journal(irms_home / "journal.db")
    j.add_session(SessionRow("S-0001", "HN-TTG/P01/S-0001", "{}", "recording", 1, None, 5, "ab" * 32, 1))
    j.close()
    assert agent(["run", "--once"]) == 0
    with db.session() as s:
        sent = [r.sent_us for r in s.scalars(select(Heartbeat).order_by(Heartbeat.id))]
        heads = s.execute(select(WitnessedHead.session_id, WitnessedHead.idx, WitnessedHead.chain_head)).all()
    assert len(sent) == 4 and sent == sorted(sent)  # delivered late, oldest first
    assert heads == [("S-0001", 4, "ab" * 32)]

    # revoked at once: the daemon stops with a clear error
    with db.session() as s:
        st = s.scalars(select(Station).where(Station.station_id == sid)).one()
        st.status = "revoked"
    assert agent(["run", "--once"]) == 2
    assert "revoked" in capsys.readouterr().err


def test_enroll_refused_with_a_bad_code(world: World, server: str, irms_home: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert agent(["enroll", "--server", server, "--code", "AAAA-BBBB-CCCC-DDDD"]) == 1
    assert "enrollment code is not valid" in capsys.readouterr().err


def test_queue_keeps_order_and_caps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import recorder.heartbeat as H
    monkeypatch.setattr(H, "QUEUE_CAP", 3)
    q = HeartbeatQueue(tmp_path / "q.db")
    for i in range(5):
        q.push(str(i).encode(), i)
    assert [b for _, b in q.oldest()] == [b"2", b"3", b"4"] and q.dropped() == 2
    q.close()
    q = HeartbeatQueue(tmp_path / "q.db")  # durable across restarts
    assert len(q) == 3
    q.close()


def test_demo_simulator_sends_signed_heartbeats(config: WebConfig, db: Database, tmp_path: Path,
                                                 live_server: Callable[[Flask], str]) -> None:
    import time

    from web.demo import PROVINCES, seed, simulate, stations_with_keys
    from web.evidence import policy_of
    with db.session() as s:
        seed(s, now_us=time.time_ns() // 1000, policy=policy_of(config), keys_dir=tmp_path / "keys",
             provinces=PROVINCES[:2], with_history=False)
    url = live_server(create_app(config))
    with db.session() as s:
        before = len(s.scalars(select(Heartbeat.id)).all())
        stations = stations_with_keys(s, tmp_path / "keys")
    simulate(url, stations, interval_s=0, rounds=1, log=False)
    with db.session() as s:
        after = len(s.scalars(select(Heartbeat.id)).all())
    assert after - before == sum(1 for _, _, state in stations if state != "silent") > 5
