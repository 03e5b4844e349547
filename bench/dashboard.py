"""Dashboard render time for a country: 10,000 rooms in 1,000 sites with 30 days of history.

Seeds a database (SQLite file by default, or --database URL for PostgreSQL) with provinces,
sites, rooms, one enrolled station per room, its latest heartbeat and 30 days of uptime spans
with random outages, then logs in and renders GET / (the whole dashboard: coverage now, per
province, failing rooms, 30-day trend) --runs times. Baseline, same run and same client: the
login page (template, session, no data). Prints p95 of each and the ratio. Target: p95 < 300 ms.

    python bench/dashboard.py [--rooms 10000] [--sites 1000] [--runs 40] [--database URL]
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from results import result
from sqlalchemy import insert, select, text, update

from web.app import create_app
from web.config import load_config
from web.coverage import DAY_US, US, Policy
from web.db import Database, upgrade
from web.demo import PROVINCES, demo_heartbeat_row
from web.models import Heartbeat, Province, Room, Site, Station, UptimeSpan
from web.users import add_user

NOW = time.time_ns() // 1000
INTERVAL = 60


def seed(db: Database, rooms: int, sites: int, days: int, rng: random.Random) -> None:
    policy = Policy(interval_s=INTERVAL)
    with db.session() as s:
        s.execute(insert(Province), [{"code": c, "name": n} for c, n in PROVINCES])
        pid = {c: i for i, c in s.execute(select(Province.id, Province.code))}
        kinds = ("detention_centre", "temporary_detention", "investigation_office", "procuracy")
        s.execute(insert(Site), [{"code": f"S{i:05d}", "name": f"Cơ sở {i}", "facility_type": kinds[i % 4],
                                  "province_id": pid[PROVINCES[i % len(PROVINCES)][0]]} for i in range(sites)])
        site_ids = [i for (i,) in s.execute(select(Site.id).order_by(Site.id))]
        s.execute(insert(Room), [{"site_id": site_ids[i % sites], "code": f"P{i // sites:03d}",
                                  "name": f"Phòng {i}"} for i in range(rooms)])
        room_ids = [i for (i,) in s.execute(select(Room.id).order_by(Room.id))]
        s.execute(insert(Station), [{"station_id": f"st-{r}", "public_key": "A" * 43 + "=", "status": "enrolled",
                                     "hardware_profile": "synthetic", "room_id": r, "revoked_reason": "",
                                     "enrolled_at_us": NOW - days * DAY_US} for r in room_ids])
        st_ids = dict(s.execute(select(Station.room_id, Station.id)).all())
        states = ("working",) * 16 + ("silent", "camera_black", "disk_low", "clock_off", "mic_silent")
        hbs, spans = [], []
        for r in room_ids:
            state = rng.choice(states)
            last = NOW - (rng.randint(40, 400) * 60 * US if state == "silent" else rng.randint(0, INTERVAL) * US)
            row = demo_heartbeat_row(st_ids[r], f"st-{r}", state, last, policy)
            hbs.append({c: getattr(row, c) for c in ("station_pk", "received_us", "sent_us", "ok", "reasons",
                                                     "disk_free_bytes", "clock_offset_ms", "body")})
            t = NOW - days * DAY_US
            while t < last:
                end = min(t + int(rng.expovariate(1 / (5 * DAY_US))) + 3600 * US, last + 2 * INTERVAL * US)
                spans.append({"station_pk": st_ids[r], "room_id": r, "start_us": t, "end_us": end,
                              "closed": True})
                t = end + int(rng.uniform(0.5, 12) * 3600 * US)
        s.execute(insert(Heartbeat), hbs)
        s.execute(insert(UptimeSpan), spans)
        s.flush()
        s.execute(update(Station).values(last_heartbeat_id=select(Heartbeat.id).where(
            Heartbeat.station_pk == Station.id).scalar_subquery()))
        add_user(s, username="bench", display_name="Bench", role="auditor", password="bench-password-1",
                 actor="bench", now_us=NOW)
        print(f"seeded {sites} sites, {rooms} rooms, {len(hbs)} stations, {len(spans)} uptime spans", flush=True)


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1]



def logged_in(app: Any) -> Any:
    """A test client of `app` logged in as the bench user (seed() made it)."""
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert token
    r = client.post("/login", data={"username": "bench", "password": "bench-password-1",
                                    "csrf_token": token.group(1)})
    assert r.status_code == 302, r.status_code
    return client


def timer(client: Any) -> Callable[[str], float]:
    """GET a path through `client`, which must answer 200; the time it took in ms."""
    def timed(path: str) -> float:
        t = time.perf_counter()
        resp = client.get(path)
        dt = time.perf_counter() - t
        assert resp.status_code == 200, (path, resp.status_code)
        return dt * 1000
    return timed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rooms", type=int, default=10_000)
    ap.add_argument("--sites", type=int, default=1_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--database", help="database URL (default: a fresh SQLite file)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="irms-bench-") as tmp:
        url = args.database or f"sqlite:///{Path(tmp) / 'bench.db'}"
        db = Database(url)
        upgrade(db)
        if db.dialect == "postgresql":
            with db.engine.begin() as conn:
                n = conn.execute(text("SELECT count(*) FROM rooms")).scalar()
            if n:
                sys.exit("bench/dashboard.py: the PostgreSQL database is not empty; give it a fresh one")
        t0 = time.perf_counter()
        seed(db, args.rooms, args.sites, args.days, random.Random(7))
        print(f"seeding took {time.perf_counter() - t0:.1f} s", flush=True)
        cfg = load_config(env={}, database_url=url, secret_key="bench", testing=True,
                          heartbeat_interval_s=INTERVAL)
        app = create_app(cfg, database=db)
        client = logged_in(app)
        timed = timer(client)
        dash = client.get("/").get_data(as_text=True)
        working = re.search(r'id="rooms-working">(\d+)<', dash)
        print(f"dashboard: {len(dash) // 1024} KiB, rooms working {working.group(1) if working else '?'}")
        for _ in range(3):
            timed("/")
            timed("/login")
        base, dashboard = [], []
        for _ in range(args.runs):
            base.append(timed("/login"))
            dashboard.append(timed("/"))
        db.dispose()
    b, d = p95(base), p95(dashboard)
    med = statistics.median(dashboard)
    print(f"baseline (login page) p95 {b:.1f} ms; dashboard p95 {d:.1f} ms, median {med:.1f} ms")
    print(f"dashboard / baseline: {d / b:.1f}x; dashboard p95 / 300 ms target: {d / 300:.2f}")
    result("dashboard_p95_ms", d, f"< 300 ms ({args.rooms} rooms, {args.runs} renders)", d < 300, "ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
