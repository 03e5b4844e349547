"""Replay start and seek: an 8-hour session against a 1-minute one, in headless Chromium.

Target (issue 6): pressing play to the first decoded frame, and a seek to the middle, for the
8-hour session within 1.2 times the 1-minute session, and under 2 s.

Both sessions are synthesized quickly at low resolution: ffmpeg makes one minute of picture
and tone (160x90, 10 fps, keyframe every 2 s), loops it with -c copy into 2-second MPEG-TS
segments with continuous timestamps, and the recorder's own sealer encrypts, chains and signs
each one into a file store with consistent records and a signed manifest (as in
bench/verify_throughput.py). The web app (SQLite) holds the custodian key, syncs and verifies
both sessions once (as `irms-web sessions sync --verify` does), then a prosecutor opens the
replay page: "play" is measured from the moment play() is called just after the page's HTML is
in (hls.js has only begun fetching the playlist) to the first presented frame
(requestVideoFrameCallback); "seek" from setting currentTime to the middle to the first frame
presented there. Median of --rounds.

    python bench/replay.py [--hours 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench_session import seal_session
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from results import result

from evidence.keys import b64, public_raw

CHROMIUM = os.environ.get("IRMS_CHROMIUM", "/usr/bin/chromium")
PASSPHRASE = "bench custodian passphrase"
T0 = 1_800_000_000_000_000


def put(root: Path, name: str, data: bytes) -> None:
    """Write one object in the file store's layout (no fsync: a benchmark fixture, not evidence)."""
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def make_clip(work: Path) -> Path:
    clip = work / "clip.ts"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=10",
                    "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=16000", "-t", "60",
                    "-c:v", "libx264", "-preset", "ultrafast", "-g", "20", "-keyint_min", "20", "-sc_threshold", "0",
                    "-b:v", "40k", "-c:a", "aac", "-b:a", "16k", "-ac", "1", "-f", "mpegts", str(clip)],
                   check=True, timeout=300)
    return clip


def make_segments(clip: Path, seconds: int, out: Path) -> list[tuple[Path, int, int]]:
    out.mkdir(parents=True)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(clip),
                    "-t", str(seconds), "-c", "copy", "-f", "segment", "-segment_time", "2",
                    "-segment_format", "mpegts", "-segment_list", str(out / "list.csv"), "-segment_list_type", "csv",
                    str(out / "seg%06d.ts")], check=True, timeout=1800)
    segs = []
    with open(out / "list.csv") as fh:
        for name, start, end in csv.reader(fh):
            segs.append((out / name, round(float(start) * 1e6), round((float(end) - float(start)) * 1e6)))
    return segs


def build_session(store: Path, segs: list[tuple[Path, int, int]], station: Ed25519PrivateKey,
                  custodian: X25519PrivateKey, case: str) -> str:
    return seal_session(lambda name, data: put(store, name, data),
                        ((path.read_bytes(), start, duration) for path, start, duration in segs),
                        station, custodian.public_key(), case)


PLAY_JS = """() => new Promise((done, fail) => {
  const v = document.getElementById('player');
  const t0 = performance.now();
  v.requestVideoFrameCallback(() => done(performance.now() - t0));
  v.play().catch(fail);
  setTimeout(() => fail('no frame in 30 s'), 30000);
})"""

SEEK_JS = """() => new Promise((done, fail) => {
  const v = document.getElementById('player');
  const target = v.duration / 2;
  const t0 = performance.now();
  v.addEventListener('seeked', () => {
    v.requestVideoFrameCallback(() => done([performance.now() - t0, v.currentTime, target]));
  }, {once: true});
  v.currentTime = target;
  setTimeout(() => fail('seek not done in 30 s'), 30000);
})"""


def measure(page: object, url: str, rounds: int) -> tuple[float, float, float, float]:
    """Median play and seek times (ms), the worst seek landing error (s), and the first (cold) play."""
    plays, seeks, landed_err = [], [], 0.0
    for _ in range(rounds):
        page.goto(url, wait_until="domcontentloaded")  # type: ignore[attr-defined]
        plays.append(page.evaluate(PLAY_JS))  # type: ignore[attr-defined]
        page.wait_for_function("() => document.getElementById('player').duration > 0")  # type: ignore[attr-defined]
        ms, at, target = page.evaluate(SEEK_JS)  # type: ignore[attr-defined]
        seeks.append(ms)
        landed_err = max(landed_err, abs(at - target))
    return statistics.median(plays), statistics.median(seeks), landed_err, plays[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, default=8.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    import logging

    from playwright.sync_api import sync_playwright
    from sqlalchemy import select
    from werkzeug.serving import make_server

    from web import custody
    from web import recordings as R
    from web.app import create_app
    from web.config import load_config
    from web.db import Database, upgrade
    from web.models import RecordingSession, Station
    from web.sites import ensure_province, ensure_room, ensure_site
    from web.units import add_unit, assign_user
    from web.users import add_user
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="irms-bench-replay-") as tmp:
        work = Path(tmp)
        store = work / "store"
        station = Ed25519PrivateKey.generate()
        custodian = X25519PrivateKey.generate()
        t = time.perf_counter()
        clip = make_clip(work)
        long_segs = make_segments(clip, int(args.hours * 3600), work / "long")
        short_segs = make_segments(clip, 60, work / "short")
        long_sid = build_session(store, long_segs, station, custodian, "8H/BENCH")
        short_sid = build_session(store, short_segs, station, custodian, "1M/BENCH")
        print(f"synthesized {len(long_segs)} + {len(short_segs)} segments in {time.perf_counter() - t:.1f} s",
              flush=True)

        db_url = f"sqlite:///{work / 'web.db'}"
        db = Database(db_url)
        upgrade(db)
        cfg = load_config(env={}, database_url=db_url, secret_key="bench", store_url=str(store))
        now = time.time_ns() // 1000
        with db.session() as s:
            prov = ensure_province(s, "BEN", "Bench")
            site, _ = ensure_site(s, prov, "BENCH", "Bench", "investigation_office")
            room, _ = ensure_room(s, site, "P1", "P1")
            s.flush()
            s.add(Station(station_id="st-bench", public_key=b64(public_raw(station.public_key())), status="enrolled",
                          hardware_profile="bench", room_id=room.id, enrolled_at_us=now))
            add_user(s, username="ksv", display_name="Kiểm sát viên", role="prosecutor", password="bench-password-1",
                     actor="bench", now_us=now)
            add_unit(s, code="VN", name="Toàn quốc", kind="national", parent=None, actor="bench", now_us=now)
            assign_user(s, username="ksv", unit="VN", personal_data=False, actor="bench", now_us=now)
            custody.import_key(s, custodian, PASSPHRASE.encode(), actor="bench", now_us=now, os_user="bench")
        t = time.perf_counter()
        with db.session() as s:
            R.sync_store(s, R.store_of(cfg), now)
            for row in s.scalars(select(RecordingSession)).all():
                R.verify_now(s, R.store_of(cfg), row, now)
                assert row.verification == "verified", row.verification_findings
        print(f"synced and verified both once in {time.perf_counter() - t:.1f} s (cached for replay)", flush=True)

        from web.custody_holder import Holder, HolderServer
        sock = work / "custody" / "holder.sock"
        cfg = cfg.model_copy(update={"custody_socket": str(sock)})
        holder = HolderServer(Holder(db, "", cfg.data_key_cache_s), sock).start()
        holder.holder.unlock(PASSPHRASE, "bench", "bench")
        app = create_app(cfg)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        base = f"http://127.0.0.1:{server.server_port}"
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--autoplay-policy=no-user-gesture-required"])
                page = browser.new_context().new_page()
                page.goto(base + "/login")
                page.fill("input[name=username]", "ksv")
                page.fill("input[name=password]", "bench-password-1")
                page.click("#login-form button[type=submit]")
                page.wait_for_load_state()
                measure(page, f"{base}/replay/{short_sid}", 1)  # warm: browser caches of hls.js and the page
                short = measure(page, f"{base}/replay/{short_sid}", args.rounds)
                long = measure(page, f"{base}/replay/{long_sid}", args.rounds)
                browser.close()
        finally:
            server.shutdown()
            server.server_close()
            db.dispose()
    hours = f"{args.hours:g} h"
    print(f"play to first frame: 1 min {short[0]:.0f} ms, {hours} {long[0]:.0f} ms, "
          f"ratio {long[0] / short[0]:.2f} (first, cold server cache: 1 min {short[3]:.0f} ms, "
          f"{hours} {long[3]:.0f} ms)")
    print(f"seek to the middle:  1 min {short[1]:.0f} ms, {hours} {long[1]:.0f} ms, "
          f"ratio {long[1] / short[1]:.2f} (landed within {max(short[2], long[2]):.2f} s of the target)")
    ok = long[0] <= 1.2 * short[0] and long[1] <= 1.2 * short[1] and max(long[:2]) < 2000
    print(f"replay_8h_vs_1min {'PASS' if ok else 'FAIL'} (target: within 1.2x, and under 2 s)")
    result("replay_8h_vs_1min", max(long[0] / short[0], long[1] / short[1]),
           "<= 1.2 for play and seek, each under 2 s", ok)
    return 0


if __name__ == "__main__":
    sys.exit(main())
