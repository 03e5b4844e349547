"""A room's page for a country of 10,000 rooms with 30 days of history, against the login page in the same run.

Seeds a database (SQLite file by default, or --database URL for PostgreSQL) as bench/dashboard.py does
(provinces, 1,000 sites, 10,000 rooms, a station per room, its latest heartbeat, 30 days of uptime spans),
then 30 days of heartbeats: every `--interval` seconds (the station's real pace, 60 s: 43,200 heartbeats) for
`--full-rooms` rooms, and every 6 hours for every other station, so the heartbeats table holds millions of
rows of many stations. Then, logged in, each run renders the login page (baseline: template, session, no data)
and the 30-day page of a full-history room in turn, `--renders` times each, and prints both p95 and their
ratio; the worst run's ratio is the figure. Target: the room page's p95 under 5x the login page's.

    python bench/room_page.py [--rooms 10000] [--full-rooms 20] [--runs 3] [--renders 100] [--database URL]
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from dashboard import NOW, logged_in, seed, timer
from results import result
from sqlalchemy import insert, select, text

from web.app import create_app
from web.config import load_config
from web.coverage import DAY_US, US
from web.db import Database, upgrade
from web.health import SAMPLES
from web.models import Heartbeat, Room, Site, Station

BODY = ('{{"format":"irms.heartbeat/1","station_id":"{sid}","sent_at_us":{t},"probes":['
        '{{"check":"camera.black","device":"wide","ok":true,"reason":"mean luma {luma}","value":"{luma}",'
        '"unit":"luma"}},{{"check":"mic.silent","device":"room","ok":true,"reason":"level {db} dBFS",'
        '"value":"{db}","unit":"dBFS"}},{{"check":"store.reachable","device":"store","ok":true,'
        '"reason":"store answers"}}],"disk_free_bytes":{disk},"clock_offset_ms":{clock},"store_ok":true,'
        '"versions":{{"agent":"0.1.0","kit":"synthetic"}},"selftest":{{"at_us":{st},"ok":true}}}}')


def history(db: Database, full_rooms: int, interval_s: int, days: int, rng: random.Random) -> list[str]:
    """30 days of heartbeats before each station's latest; the room page paths of the full-history rooms."""
    with db.session() as s:
        rows = s.execute(select(Station.id, Station.station_id, Heartbeat.sent_us, Site.code, Room.code)
                         .join(Heartbeat, Heartbeat.id == Station.last_heartbeat_id)
                         .join(Room, Room.id == Station.room_id).join(Site, Site.id == Room.site_id)
                         .order_by(Station.id)).all()
        full = set(rng.sample(range(len(rows)), full_rooms))
        paths, batch, total = [], [], 0
        for i, (pk, sid, last, site, room) in enumerate(rows):
            step = interval_s * US if i in full else 6 * 3600 * US
            if i in full:
                paths.append(f"/coverage/sites/{site}/rooms/{room}?days={days}")
            t = last - days * DAY_US
            while t < last:
                disk = (150 + (t // DAY_US) % 40) * 2**30
                body = BODY.format(sid=sid, t=t, luma=f"{110 + (t // 60_000_000) % 17:.1f}",
                                   db=f"{-30 + (t // 60_000_000) % 9:.1f}", disk=disk, clock=(t // 1_000_000) % 23,
                                   st=t - t % DAY_US)
                batch.append({"station_pk": pk, "received_us": t, "sent_us": t, "ok": True, "reasons": "[]",
                              "disk_free_bytes": disk, "clock_offset_ms": (t // 1_000_000) % 23, "body": body})
                t += step
                if len(batch) >= 50_000:
                    s.execute(insert(Heartbeat), batch)
                    total += len(batch)
                    batch = []
        if batch:
            s.execute(insert(Heartbeat), batch)
            total += len(batch)
        s.commit()
    print(f"seeded {total} heartbeats of history ({full_rooms} rooms every {interval_s} s, the rest every 6 h)",
          flush=True)
    return paths


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rooms", type=int, default=10_000)
    ap.add_argument("--sites", type=int, default=1_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--full-rooms", type=int, default=20)
    ap.add_argument("--interval", type=int, default=60, help="heartbeat interval of the full-history rooms (s)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--renders", type=int, default=100)
    ap.add_argument("--database", help="database URL (default: a fresh SQLite file)")
    args = ap.parse_args()
    if args.days not in (1, 7, 30) or not 0 < args.full_rooms <= args.rooms or args.runs < 1 or args.renders < 20:
        sys.exit("bench/room_page.py: --days is 1, 7 or 30; 0 < --full-rooms <= --rooms; --runs >= 1; "
                 "--renders >= 20")
    with tempfile.TemporaryDirectory(prefix="irms-bench-") as tmp:
        url = args.database or f"sqlite:///{Path(tmp) / 'bench.db'}"
        db = Database(url)
        upgrade(db)
        if db.dialect == "postgresql":
            with db.engine.begin() as conn:
                if conn.execute(text("SELECT count(*) FROM rooms")).scalar():
                    sys.exit("bench/room_page.py: the PostgreSQL database is not empty; give it a fresh one")
        t0 = time.perf_counter()
        rng = random.Random(11)
        seed(db, args.rooms, args.sites, args.days, rng)
        paths = history(db, args.full_rooms, args.interval, args.days, rng)
        if db.dialect == "postgresql":
            with db.engine.begin() as conn:
                conn.execute(text("ANALYZE"))
        print(f"seeding took {time.perf_counter() - t0:.1f} s", flush=True)
        cfg = load_config(env={}, database_url=url, secret_key="bench", testing=True, heartbeat_interval_s=60)
        app = create_app(cfg, clock=lambda: NOW, database=db)
        client = logged_in(app)
        timed = timer(client)

        sample = client.get(paths[0]).get_data(as_text=True)
        beats = len(re.findall(r"<tr data-sent=", sample))
        points = sample.count(" L")
        print(f"room page: {len(sample) // 1024} KiB, {beats} last heartbeats, {points} line segments in its charts")
        # four probe charts, one point per sampled slice: a line of SAMPLES - 1 segments each
        assert beats == 20 and points >= 4 * (SAMPLES - 1) * 0.9, "the room page lacks its history"
        for p in paths[:3]:
            timed(p)
            timed("/login")
        worst = 0.0
        for run in range(1, args.runs + 1):
            base, room = [], []
            for i in range(args.renders):
                base.append(timed("/login"))
                room.append(timed(paths[i % len(paths)]))
            b, rp = p95(base), p95(room)
            worst = max(worst, rp / b)
            print(f"run {run}: login p95 {b:.1f} ms; room page p95 {rp:.1f} ms, median {statistics.median(room):.1f}"
                  f" ms; ratio {rp / b:.2f}x", flush=True)
        db.dispose()
    print(f"worst of {args.runs} runs: room page p95 / login page p95 = {worst:.2f}x (target < 5x)")
    result("room_page_p95_vs_login", worst, f"< 5x login page p95 ({args.rooms} rooms, {args.days} days, "
           f"worst of {args.runs} runs)", worst < 5, "x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
