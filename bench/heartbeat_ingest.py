"""Signed heartbeat ingest: gunicorn + PostgreSQL, load from other processes on loopback.

Creates a fresh PostgreSQL database, enrolls --stations stations (one per room), starts
`irms-web serve` (gunicorn, --workers), and drives it from --clients separate processes
that each send signed heartbeats back to back for --seconds (closed loop, one request in
flight per client, each from a random station with a fresh nonce). Baseline, same run, same
client processes: the same gunicorn configuration serving a WSGI app that answers 201 without
doing anything. Workers and threads default to `irms-web serve`'s (2 x 4, gthread). Prints sustained
rate and p99 of both, and the ratios.
Target: 2,500 heartbeats/s with p99 under 50 ms on a 2-core machine.

    python bench/heartbeat_ingest.py [--seconds 15] [--clients 4] [--workers 2] [--threads 4] [--stations 1000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import insert, select, text

from verifier import keys as K
from verifier.request_auth import sign_request
from web.db import Database, upgrade
from web.models import Province, Room, Site, Station

ADMIN_URL = os.environ.get("IRMS_BENCH_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
BIN = Path(sys.executable).parent
PATH = "/api/v1/heartbeat"
HELLO = '''def app(environ, start_response):
    environ["wsgi.input"].read()
    start_response("201 Created", [("Content-Type", "application/json"), ("Content-Length", "15")])
    return [b'{"ok": "hello"}']
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("server did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def client(port: int, keys: list[tuple[str, bytes]], seconds: float, start_at: float,
           out: mp.Queue) -> None:  # type: ignore[type-arg]
    stations = [(sid, Ed25519PrivateKey.from_private_bytes(raw)) for sid, raw in keys]
    rng = random.Random(os.getpid())
    lat: list[float] = []
    errors = 0
    while time.time() < start_at:
        time.sleep(0.01)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sid, key = rng.choice(stations)
        now_us = time.time_ns() // 1000
        body = json.dumps({
            "format": "irms.heartbeat/1", "station_id": sid, "sent_at_us": now_us,
            "probes": [{"check": "camera.black", "device": "wide", "ok": True, "reason": "luma 120"},
                       {"check": "mic.level", "device": "room", "ok": True, "reason": "-20 dBFS"}],
            "disk_free_bytes": 100 * 2**30, "clock_offset_ms": 3, "store_ok": True,
            "versions": {"agent": "bench"},
            "recording": {"session_id": f"S-{sid}", "index": rng.randint(0, 10_000), "chain_head": "ab" * 32},
        }).encode()
        headers = {**sign_request(key, sid, "POST", PATH, body, now_us // 1_000_000),
                   "Content-Type": "application/json"}
        t = time.perf_counter()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST", PATH, body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            conn.close()
            if resp.status != 201:
                errors += 1
        except OSError:
            errors += 1
        lat.append(time.perf_counter() - t)
    out.put((lat, errors))


def drive(port: int, keys: list[tuple[str, bytes]], clients: int, seconds: float) -> tuple[float, float, int]:
    out: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    start_at = time.time() + 1.0
    procs = [mp.Process(target=client, args=(port, keys, seconds, start_at, out)) for _ in range(clients)]
    for p in procs:
        p.start()
    lat: list[float] = []
    errors = 0
    for _ in procs:
        got, err = out.get(timeout=seconds + 120)
        lat += got
        errors += err
    for p in procs:
        p.join(timeout=30)
    lat.sort()
    return len(lat) / seconds, lat[int(0.99 * (len(lat) - 1))] * 1000, errors


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=4, help="per worker; 4 as `irms-web serve` defaults")
    ap.add_argument("--stations", type=int, default=1000)
    args = ap.parse_args()
    admin = Database(ADMIN_URL)
    name = f"irms_bench_{os.getpid()}_{secrets.token_hex(3)}"
    with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        db = Database(url)
        upgrade(db)
        keys: list[tuple[str, bytes]] = []
        with db.session() as s:
            s.execute(insert(Province), [{"code": "B", "name": "Bench"}])
            pid = s.scalar(select(Province.id))
            s.execute(insert(Site), [{"code": "B-1", "name": "Bench site", "province_id": pid,
                                      "facility_type": "procuracy"}])
            site_id = s.scalar(select(Site.id))
            s.execute(insert(Room), [{"site_id": site_id, "code": f"P{i:05d}", "name": "r"}
                                     for i in range(args.stations)])
            rows = []
            for i, room_id in enumerate(s.scalars(select(Room.id).order_by(Room.id))):
                key = Ed25519PrivateKey.generate()
                sid = f"st-bench-{i:05d}"
                keys.append((sid, key.private_bytes_raw()))
                rows.append({"station_id": sid, "public_key": K.b64(K.public_raw(key.public_key())),
                             "status": "enrolled", "hardware_profile": "synthetic", "room_id": room_id,
                             "revoked_reason": "", "enrolled_at_us": time.time_ns() // 1000})
            s.execute(insert(Station), rows)
        db.dispose()
        with tempfile.TemporaryDirectory(prefix="irms-bench-") as tmp:
            (Path(tmp) / "hello.py").write_text(HELLO)
            port = free_port()
            from gunicorn.config import KNOWN_SETTINGS
            quiet = ["--no-control-socket"] if any(k.name == "control_socket_disable" for k in KNOWN_SETTINGS) else []
            hello = subprocess.Popen([str(BIN / "gunicorn"), *quiet, "--chdir", tmp, "-w", str(args.workers),
                                      "--threads", str(args.threads), "-b", f"127.0.0.1:{port}", "hello:app"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(hello)
            wait_port(port, hello)
            b_rate, b_p99, b_err = drive(port, keys, args.clients, args.seconds)
            stop(hello)
            procs.remove(hello)
            port = free_port()
            env = {**os.environ, "IRMS_HOME": tmp, "IRMS_WEB_SECRET_KEY": "bench"}
            web = subprocess.Popen([str(BIN / "irms-web"), "--database", url, "serve", "--port", str(port),
                                    "--workers", str(args.workers), "--threads", str(args.threads)],
                                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            procs.append(web)
            wait_port(port, web)
            h_rate, h_p99, h_err = drive(port, keys, args.clients, args.seconds)
            stop(web)
            procs.remove(web)
        db = Database(url)
        with db.engine.connect() as conn:
            stored = conn.execute(text("SELECT count(*) FROM heartbeats")).scalar()
        db.dispose()
    finally:
        for p in procs:
            stop(p)
        with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    print(f"baseline (gunicorn, empty WSGI app): {b_rate:.0f} req/s, p99 {b_p99:.1f} ms, {b_err} errors")
    print(f"heartbeats (signed, PostgreSQL):     {h_rate:.0f} req/s, p99 {h_p99:.1f} ms, {h_err} errors, "
          f"{stored} stored")
    print(f"heartbeat rate / baseline rate: {h_rate / b_rate:.2f}; p99 / baseline p99: {h_p99 / b_p99:.1f}")
    print(f"against the target: rate / 2500 = {h_rate / 2500:.2f}, p99 / 50 ms = {h_p99 / 50:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
