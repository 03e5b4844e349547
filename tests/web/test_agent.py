"""The station side against a live server: irms-agent enroll and run, queueing while the server is away."""

from __future__ import annotations

import hashlib
import json
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from recorder.cli import main as agent
from recorder.heartbeat import HeartbeatQueue
from recorder.journal import Journal, SessionRow
from tests.plugins.base import loopback_http
from tests.plugins.recording import Station as AgentStation
from tests.web.conftest import World
from web.app import create_app
from web.config import WebConfig
from web.db import Database
from web.models import Heartbeat, Station, UptimeSpan, WitnessedHead


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


def test_a_proxy_saying_403_is_the_server_away_not_a_revocation(
        world: World, server: str, irms_home: Path, db: Database, capsys: pytest.CaptureFixture[str]) -> None:
    """Only the IRMS server says a station is revoked (its JSON refusal). A proxy or captive portal in the
    way answering 403 with its own page must not stop the daemon: the heartbeat stays queued and goes
    through once the server is reached again. (Before, any 401/403 stopped the daemon with exit 2.)"""
    import http.server

    class Portal(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            page = b"<html><body><h1>403 Forbidden</h1>nginx</body></html>"
            self.send_response(403)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: object) -> None:
            pass

    with loopback_http(Portal) as portal:
        assert agent(["enroll", "--server", server, "--code", world.code("HN-TTG", "P01")]) == 0
        capsys.readouterr()
        assert agent(["run", "--once", "--server", portal]) == 3
        out = capsys.readouterr()
        assert "server away" in out.out and "not as the IRMS server answers" in out.out, out
        assert "revoked" not in out.err
    assert agent(["run", "--once"]) == 0  # the server itself: the queued heartbeat and this one delivered
    with db.session() as s:
        assert len(s.scalars(select(Heartbeat)).all()) == 2


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


def _daemon_until(proc: subprocess.Popen[str], done: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _selftest_config(home: Path, at_s: float, store: Path) -> None:
    at = time.strftime("%H:%M:%S", time.localtime(at_s))
    (home / "station.toml").write_text(
        f'selftest_at = "{at}"\nselftest_store = "{store}"\nselftest_site = "HN-TTG"\nselftest_room = "P01"\n'
        "selftest_seconds = 3\nselftest_jitter_s = 0\nselftest_retry_s = 1\n")


@pytest.mark.slow
def test_daemon_runs_the_selftest_at_its_time_and_not_during_a_recording(world: World, server: str,
                                                                         station: AgentStation, db: Database,
                                                                         tmp_path: Path) -> None:
    """R19 scheduled: `irms-agent run` starts the self-test at `selftest_at` (local time), waits while a session
    records, and the next heartbeat carries the result."""
    station.agent("enroll", "--server", server, "--code", world.code("HN-TTG", "P01"))
    store = tmp_path / "store"
    latest = station.home / "selftest" / "latest.json"

    def stored_at() -> int | None:
        return json.loads(latest.read_text())["at_us"] if latest.exists() else None

    # 1. At the set time, a few seconds ahead: the self-test runs then, and not before.
    set_s = time.time() + 10  # the daemon must be up before it (a late start would wait for tomorrow)
    _selftest_config(station.home, set_s, store)
    daemon = station.popen_agent("run", "--interval", "1")
    try:
        time.sleep(2)
        assert stored_at() is None  # not yet
        _daemon_until(daemon, lambda: stored_at() is not None, 120)
        first = json.loads(latest.read_text())
        assert first["ok"] is True, [c for c in first["checks"] if not c["ok"]]
        assert int(set_s) * 1_000_000 <= first["at_us"] < (int(set_s) + 8) * 1_000_000

        def carried() -> bool:
            with db.session() as s:
                hb = s.scalars(select(Heartbeat).order_by(Heartbeat.id.desc()).limit(1)).one()
            return (json.loads(hb.body).get("selftest") or {}).get("at_us") == first["at_us"]

        _daemon_until(daemon, carried, 30)  # the next heartbeat carries the result
    finally:
        daemon.send_signal(signal.SIGTERM)
        out, _ = daemon.communicate(timeout=60)
    assert "daily self-test started" in out and "self-test passed" in out

    # 2. A recording runs over the set time: the self-test waits for its end, then runs.
    recording = station.popen_agent("record", "--kit", "synthetic", "--seconds", "8", "--store", str(store),
                                    "--site", "HN-TTG", "--room", "P01", "--case", "1/2026/HS", "--json")
    ended_us: list[int] = []
    try:
        _daemon_until(recording, lambda: (station.home / "journal.db").exists() and _recording_open(station.home),
                      60)
        set_s = time.time() + 2
        _selftest_config(station.home, set_s, store)
        daemon = station.popen_agent("run", "--interval", "1")
        try:
            assert recording.wait(timeout=120) == 0, recording.communicate()
            ended_us.append(time.time_ns() // 1000)
            _daemon_until(daemon, lambda: stored_at() != first["at_us"], 120)
        finally:
            daemon.send_signal(signal.SIGTERM)
            out, _ = daemon.communicate(timeout=60)
    finally:
        if recording.poll() is None:
            recording.kill()
            recording.wait()
    second = json.loads(latest.read_text())
    assert "waiting" in out and "is recording" in out, out
    assert second["at_us"] >= ended_us[0] - 1_000_000 > int(set_s) * 1_000_000, (second["at_us"], ended_us, set_s)
    assert second["ok"] is True


def _recording_open(home: Path) -> bool:
    from recorder.daemon_cli import current_recording
    return current_recording(home) is not None


def test_daemon_restart_continues_its_run_within_two_intervals_and_starts_one_after(
        world: World, config: WebConfig, live_server: Callable[[Flask], str], station: AgentStation,
        db: Database) -> None:
    """`irms-agent run` keeps its run in the heartbeat queue database: stopped and started again within two of
    the server's intervals it continues the run (same start, count on, `prev` the last body's SHA-256); started
    after a longer pause it starts a new run. The server credits the continued run as one stretch."""
    interval_s = 5  # the server's: a run survives a gap of up to 10 s
    server = live_server(create_app(config.model_copy(update={"min_disk_free_bytes": 0, "trend_cache_s": 0,
                                                              "heartbeat_interval_s": interval_s})))
    station.agent("enroll", "--server", server, "--code", world.code("HN-TTG", "P01"))

    def bodies() -> list[tuple[str, dict[str, Any], bool]]:
        with db.session() as s:
            rows = s.execute(select(Heartbeat.body, Heartbeat.ok).order_by(Heartbeat.sent_us)).all()
        return [(b, json.loads(b), ok) for b, ok in rows]

    def live(until: int) -> None:
        """Run the daemon until the server holds `until` heartbeats, then stop it as systemd would."""
        daemon = station.popen_agent("run", "--interval", "1")
        try:
            _daemon_until(daemon, lambda: len(bodies()) >= until, 120)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.communicate(timeout=60)

    live(3)
    before = bodies()
    live(len(before) + 2)  # restarted at once: well within 10 s
    after = bodies()
    assert all(ok for _, _, ok in after), [d.get("probes") for _, d, ok in after if not ok]
    runs = [d["run"] for _, d, _ in after]
    assert {r["since_us"] for r in runs} == {after[0][1]["sent_at_us"]}  # one run over both lives of the daemon
    assert [r["count"] for r in runs] == list(range(1, len(after) + 1))
    k = len(before)
    assert runs[k]["prev"] == hashlib.sha256(after[k - 1][0].encode()).hexdigest()
    with db.session() as s:
        spans = s.execute(select(UptimeSpan.start_us, UptimeSpan.end_us)).all()
        last = s.scalars(select(Heartbeat).order_by(Heartbeat.sent_us.desc()).limit(1)).one()
    assert spans == [(runs[0]["since_us"], min(last.sent_us, last.received_us))]  # one stretch, to the last

    time.sleep(2 * interval_s + 1)  # longer than two intervals: the run is over
    live(len(after) + 1)
    latest = bodies()[len(after)]
    assert latest[1]["run"]["since_us"] == latest[1]["sent_at_us"] and latest[1]["run"]["count"] == 1
    assert latest[1]["run"]["prev"] == hashlib.sha256(after[-1][0].encode()).hexdigest()
