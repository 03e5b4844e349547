"""Twenty live viewers of one session on one server, against one viewer in the same run (issue 15).

The production server (`irms-web serve`: gunicorn, 2 uvicorn workers, the custody holder beside it; SQLite,
a file store) serves a session the RTSP camera peer is recording through `irms-agent record` (2-second
segments, bench/live_world.py). Each viewer is a different prosecutor logged in over its own keep-alive
connection, doing what hls.js does on a live EVENT playlist: it opens the live page, then asks for
`live.m3u8` once a target duration and fetches every segment it has not fetched yet (from the live edge
on), each decrypted by the server and checked against its record. Viewers start at random moments within
a segment length, as people do.

A run is one viewer alone for 3 x --seconds, then twenty at once for --seconds, on the same session; the
figure is the 95th percentile of the request latency (playlist, and segment) with twenty over that with
one. Every run is printed, then the worst. Any answer other than 200 is counted and fails the run.

    python bench/live_viewers.py [--viewers 20] [--seconds 30] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

from live_world import Client, LiveWorld, build
from results import result

SEGMENT_S = 2
RATIO_TARGET = 3.0
SEGMENT_P95_TARGET_S = SEGMENT_S / 2  # a segment comes well within its own length: the player never waits


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


class Viewer(threading.Thread):
    """One prosecutor watching live, as hls.js does."""

    def __init__(self, client: Client, session_id: str, until: float, start_in: float) -> None:
        super().__init__(daemon=True)
        self.client, self.sid, self.until, self.start_in = client, session_id, until, start_in
        self.playlist: list[float] = []
        self.segment: list[float] = []
        self.errors: list[str] = []

    def timed(self, path: str, into: list[float]) -> bytes:
        t = time.perf_counter()
        status, body = self.client.get(path)
        into.append(time.perf_counter() - t)
        if status != 200 or not body:
            self.errors.append(f"{path}: {status}")
        return body

    def run(self) -> None:
        time.sleep(self.start_in)
        self.client.get(f"/replay/{self.sid}/live")  # the page: the view opens (audited, told to the station)
        seen: set[str] = set()
        first = True
        while (started := time.monotonic()) < self.until:
            text = self.timed(f"/replay/{self.sid}/live.m3u8", self.playlist).decode(errors="replace")
            uris = re.findall(r"^seg/\d{8}\.ts$", text, re.M)
            new = [u for u in uris if u not in seen]
            if first:  # start at the live edge (hls.js: one target duration behind it)
                seen.update(new[:-2])
                new = new[-2:]
                first = False
            for uri in new:
                self.timed(f"/replay/{self.sid}/{uri}", self.segment)
                seen.add(uri)
            time.sleep(max(0.0, SEGMENT_S - (time.monotonic() - started)))


def phase(world: LiveWorld, clients: list[Client], session_id: str, seconds: float) -> dict[str, object]:
    until = time.monotonic() + seconds
    viewers = [Viewer(c, session_id, until, random.uniform(0, SEGMENT_S)) for c in clients]
    for v in viewers:
        v.start()
    for v in viewers:
        v.join(seconds + 120)
    playlist = [x for v in viewers for x in v.playlist]
    segment = [x for v in viewers for x in v.segment]
    return {"playlist_p95": pct(playlist, 0.95), "segment_p95": pct(segment, 0.95), "playlists": len(playlist),
            "playlist_p50": pct(playlist, 0.5), "segment_p50": pct(segment, 0.5),
            "segments": len(segment), "errors": [e for v in viewers for e in v.errors]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--viewers", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=30.0, help="length of each phase")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if args.viewers < 2 or args.runs < 1 or args.seconds < 4 * SEGMENT_S:
        ap.error(f"--viewers at least 2, --runs at least 1, --seconds at least {4 * SEGMENT_S}")
    runs = []
    with tempfile.TemporaryDirectory(prefix="irms-bench-viewers-") as tmp:
        world = build(Path(tmp), viewers=args.viewers)
        rec = world.record(SEGMENT_S, 4 * args.runs * args.seconds + 600, "agent-viewers")
        try:
            world.wait_segments(rec.session_id, 3)
            clients = [Client(world.server_url, u) for u in world.users]
            for run in range(1, args.runs + 1):
                # the lone viewer makes 1/20 of the requests: three times as long for a p95 worth the name
                one = phase(world, clients[:1], rec.session_id, 3 * args.seconds)
                many = phase(world, clients, rec.session_id, args.seconds)
                pr = many["playlist_p95"] / one["playlist_p95"]  # type: ignore[operator]
                sr = many["segment_p95"] / one["segment_p95"]  # type: ignore[operator]
                errors = len(one["errors"]) + len(many["errors"])  # type: ignore[arg-type]
                runs.append((pr, sr, many, errors))
                def ms(d: dict[str, object], k: str) -> str:
                    return f"{d[k + '_p50'] * 1000:.1f}/{d[k + '_p95'] * 1000:.1f} ms"  # type: ignore[operator]

                print(f"run {run} (load average {os.getloadavg()[0]:.1f}): 1 viewer: playlist p50/p95 "
                      f"{ms(one, 'playlist')} ({one['playlists']} requests), segment {ms(one, 'segment')} "
                      f"({one['segments']}); {args.viewers} viewers: playlist {ms(many, 'playlist')} "
                      f"({many['playlists']}), segment {ms(many, 'segment')} ({many['segments']}); "
                      f"ratio playlist {pr:.2f}, segment {sr:.2f}; {errors} errors"
                      + (f" (first: {(one['errors'] or many['errors'])[0]})" if errors else ""),  # type: ignore[index]
                      flush=True)
            for c in clients:
                c.close()
        finally:
            world.end(rec)
            world.close()
    worst_p = max(r[0] for r in runs)
    worst_s = max(r[1] for r in runs)
    worst_abs = max(r[2]["segment_p95"] for r in runs)  # type: ignore[type-var]
    errors = sum(r[3] for r in runs)
    ok_p = worst_p <= RATIO_TARGET and errors == 0
    ok_s = worst_s <= RATIO_TARGET and worst_abs <= SEGMENT_P95_TARGET_S and errors == 0
    print(f"worst of {len(runs)} runs: playlist p95 ratio {worst_p:.2f}, segment p95 ratio {worst_s:.2f} "
          f"({args.viewers} viewers vs 1; target <= {RATIO_TARGET:g}), {args.viewers}-viewer segment p95 "
          f"{worst_abs * 1000:.0f} ms (target <= {SEGMENT_P95_TARGET_S * 1000:.0f} ms), {errors} errors "
          f"{'PASS' if ok_p and ok_s else 'FAIL'}")
    result(f"live_{args.viewers}_viewers_playlist_p95_ratio", worst_p,
           f"<= {RATIO_TARGET:g} ({args.viewers} live viewers vs 1, same run), no errors", ok_p)
    result(f"live_{args.viewers}_viewers_segment_p95_ratio", worst_s,
           f"<= {RATIO_TARGET:g} ({args.viewers} vs 1), p95 <= {SEGMENT_P95_TARGET_S:g} s, no errors", ok_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
