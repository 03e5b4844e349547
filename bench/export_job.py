"""Sealed copy of a long session: the first byte of the download, and the whole copy, against the old way.

Before issue 14 a sealed copy was built whole (verify, copy every object into a folder, zip it) before its
first byte was sent: 0.86 s for 3 minutes, about 140 s of a blank browser for 8 hours. Now the prosecutor's
request makes a job, a builder thread writes the zip append-only while verifying, and the download follows
the file as it grows.

Measured in the same run on the same synthesized session (as bench/replay.py makes it: ffmpeg loops one
minute of 160x90 picture and tone into 2-second segments, the recorder's sealer encrypts, chains and signs
them into a file store): the baseline is the old way (`export_session` into a folder, then zipped), whose
end is when its first byte could leave; then, per run, the web app (SQLite, real clock) is asked for a copy
through its routes (POST, then GET the download at once) and we time the first byte and the last byte of
the stream. Each run is printed, and the worst.

Targets, as ratios to the old way in the same run: the first byte within 5 % of the old way's wait (it does
not grow with the session's length the way the old wait did: 0.86 s for 3 minutes, about 140 s for 8 hours);
the whole copy within 1.2 times the old way's build (one pass over the store instead of two, no fsync per
object).

    python bench/export_job.py [--hours 8] [--runs 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import re
import tempfile
import time
import zipfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from replay import build_session, make_clip, make_segments, seed_prosecutor
from results import result

PASSWORD = "bench-password-1"


def old_way(store: object, sid: str, opts: object, work: Path) -> float:
    """The export as it was: verified and copied into a folder, then zipped; seconds until a byte could leave."""
    from verifier.export import export_session
    t = time.perf_counter()
    folder = work / f"old-{time.monotonic_ns()}" / f"irms-{sid}-case-file"
    export_session(store, sid, opts, folder, "case-file", dt.datetime.now(dt.UTC))  # type: ignore[arg-type]
    with zipfile.ZipFile(folder.parent / "copy.zip", "w", compression=zipfile.ZIP_STORED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, f"{folder.name}/{path.relative_to(folder).as_posix()}")
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, default=8.0)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    from sqlalchemy import select

    from web import recordings as R
    from web.app import create_app
    from web.config import load_config
    from web.db import Database, upgrade
    from web.models import RecordingSession
    with tempfile.TemporaryDirectory(prefix="irms-bench-export-") as tmp:
        work = Path(tmp)
        store = work / "store"
        station = Ed25519PrivateKey.generate()
        t = time.perf_counter()
        segs = make_segments(make_clip(work), int(args.hours * 3600), work / "long")
        sid = build_session(store, segs, station, X25519PrivateKey.generate(), "8H/BENCH")
        size = sum(p.stat().st_size for p in store.rglob("*") if p.is_file())
        print(f"synthesized {len(segs)} segments ({size / 2**20:.0f} MiB in the store) in "
              f"{time.perf_counter() - t:.1f} s", flush=True)
        db_url = f"sqlite:///{work / 'web.db'}"
        db = Database(db_url)
        upgrade(db)
        cfg = load_config(env={}, database_url=db_url, secret_key="bench", store_url=str(store),
                          totp_required_roles=(), export_dir=str(work / "exports"),
                          audit_key_path=str(work / "audit.key"))
        now = time.time_ns() // 1000
        with db.session() as s:
            seed_prosecutor(s, station, now, PASSWORD)
        with db.session() as s:
            R.sync_store(s, R.store_of(cfg), now)
            row = s.scalars(select(RecordingSession)).one()
            R.verify_now(s, R.store_of(cfg), row, now)
            assert row.verification == "verified", row.verification_findings
            opts = R.options_for(s, row)
        app = create_app(cfg)
        client = app.test_client()
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', client.get("/login").get_data(as_text=True))
        assert token
        assert client.post("/login", data={"username": "ksv", "password": PASSWORD,
                                           "csrf_token": token.group(1)}).status_code == 302
        page = client.get(f"/sessions/{sid}").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token and 'id="export-case-file"' in page

        baseline = old_way(R.store_of(cfg), sid, opts, work)
        print(f"baseline (the old way: built whole before the first byte): {baseline:.2f} s", flush=True)
        firsts, wholes = [], []
        for n in range(args.runs):
            t0 = time.perf_counter()
            resp = client.post(f"/sessions/{sid}/exports", data={"label": "case-file", "csrf_token": token.group(1)})
            assert resp.status_code == 302, resp.status_code
            job = int(resp.headers["Location"].rstrip("/").split("/")[-1])
            stream = client.get(f"/exports/{job}/download", buffered=False)
            assert stream.status_code == 200, stream.status_code
            digest, got, first = hashlib.sha256(), 0, None
            for chunk in stream.response:  # type: ignore[attr-defined]
                if chunk and first is None:
                    first = time.perf_counter() - t0
                digest.update(chunk)
                got += len(chunk)
            whole = time.perf_counter() - t0
            progress = client.get(f"/exports/{job}.json").get_json()
            assert progress["state"] == "done" and progress["sha256"] == digest.hexdigest(), progress
            assert first is not None
            firsts.append(first)
            wholes.append(whole)
            print(f"run {n + 1}: first byte {first:.2f} s, whole copy {whole:.2f} s ({got / 2**20:.0f} MiB), "
                  f"ratio to the old way {whole / baseline:.2f}", flush=True)
        worst_first, worst_whole = max(firsts), max(wholes)
        print(f"worst: first byte {worst_first:.2f} s (old way {baseline:.2f} s), whole copy {worst_whole:.2f} s, "
              f"ratio {worst_whole / baseline:.2f}", flush=True)
        result(f"sealed copy, first byte / old way's first byte ({args.hours:g} h session, worst of {args.runs})",
               worst_first / baseline, "<= 0.05", worst_first / baseline <= 0.05, "x")
        result(f"sealed copy, whole / old way's build ({args.hours:g} h, worst of {args.runs})",
               worst_whole / baseline, "<= 1.2", worst_whole / baseline <= 1.2, "x")
        db.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
