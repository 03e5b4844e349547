"""Live view, glass to glass: the time a frame was captured by the camera to the time a prosecutor's
browser shows it, against the segment length (issue 15: at most 3 segment lengths), and against the time
the frame's segment was sealed on the station.

The RTSP camera peer (scripts/camera-peer) codes in the top rows of every frame its number within the UTC
day (frames sit on a grid of the epoch, 25 fps): the frame's capture time, to 40 ms. The station records
it with `irms-agent record` (kit ip-camera-rtsp, pass-through, so the code is untouched) at each segment
length, uploading to the store the production server (`irms-web serve`) reads; the station's session
events tell the server the session records (bench/live_world.py). A prosecutor opens the live view in
headless Chromium (hls.js following the live edge); once the player settles, every half second the frame
being presented is drawn onto a canvas, its code read, and its capture time compared with the time the
frame was presented (requestVideoFrameCallback's expectedDisplayTime on the same machine's clock).

For the same frames: the time since its segment was sealed on the station (the agent logs, with --debug,
"segment N sealed at T" and "uploaded NAME at T"), how long after the segment's last frame it was sealed,
and how long the upload took after the seal (the agent uploads each sealed segment at once: a target).

Each run is a new session; every run is printed, then the worst per segment length.

    python bench/live_latency.py [--segments 1 2 4] [--runs 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from live_world import BIN, CODE_BITS, CODE_ROWS, FPS, PASSWORD, LiveWorld, build  # noqa: F401
from results import result

CHROMIUM = "/usr/bin/chromium"
DAY_MS = 86_400_000
UPLOAD_TARGET_MS = 250

SAMPLE_JS = """([n, gapMs, rows, bits]) => new Promise((done, fail) => {
  const v = document.getElementById('player');
  const w = v.videoWidth;
  const c = document.createElement('canvas');
  c.width = w; c.height = rows;
  const ctx = c.getContext('2d', {willReadFrequently: true});
  const block = Math.floor(w / bits);
  const out = [];
  function step(_now, meta) {
    ctx.drawImage(v, 0, 0, w, rows, 0, 0, w, rows);
    const d = ctx.getImageData(0, 0, w, rows).data;
    let code = '';
    for (let b = 0; b < bits; b++) {
      let sum = 0, k = 0;
      for (let y = 1; y < rows - 1; y++) {
        for (let x = b * block + 2; x < (b + 1) * block - 2; x++) {
          const i = (y * w + x) * 4;
          sum += 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2]; k++;
        }
      }
      code += sum / k > 128 ? '1' : '0';
    }
    out.push([code, performance.timeOrigin + meta.expectedDisplayTime]);
    if (out.length >= n) { done(out); return; }
    setTimeout(() => v.requestVideoFrameCallback(step), gapMs);
  }
  v.requestVideoFrameCallback(step);
  setTimeout(() => fail('only ' + out.length + ' frames presented'), n * gapMs + 60000);
})"""


def capture_ms(code: str, shown_ms: float) -> float | None:
    """The capture time (ms since the epoch) of the frame whose day-frame number is `code`."""
    number = int(code, 2)
    if number >= FPS * 86400:
        return None
    day = shown_ms // DAY_MS * DAY_MS
    t = day + number * 1000 / FPS
    return t - DAY_MS if t > shown_ms + 3_600_000 else t


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def one_run(world: LiveWorld, browser: object, segment_s: int, run: int) -> dict[str, float]:
    rec = world.record(segment_s, 900, f"agent-{segment_s}s-{run}")
    sid = rec.session_id
    try:
        world.wait_segments(sid, 2)
        context = browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
        page = context.new_page()
        page.goto(world.server_url + "/login")
        page.fill("input[name=username]", world.users[0])
        page.fill("input[name=password]", PASSWORD)
        page.click("#login-form button[type=submit]")
        page.wait_for_load_state()
        deadline = time.monotonic() + 30
        while (resp := page.goto(f"{world.server_url}/replay/{sid}/live")) is None or resp.status != 200:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the live view of {sid} never opened ({resp.status if resp else 'no answer'})")
            time.sleep(0.5)
        page.wait_for_function("() => window.irmsPlayer === 'hls.js'")
        page.evaluate("() => document.getElementById('player').play()")
        page.wait_for_function("() => document.getElementById('player').currentTime > 0.2", timeout=60_000)
        page.wait_for_timeout(int((2 * segment_s + 3) * 1000))  # the player settles at its live position
        window_s = max(12, 6 * segment_s)
        samples = page.evaluate(SAMPLE_JS, [int(window_s * 2), 500, CODE_ROWS, CODE_BITS])
        context.close()
    finally:
        world.end(rec)
    records = world.records(sid)
    sealed = rec.log_times("sealed")
    uploaded = rec.log_times("uploaded")
    g2g: list[float] = []
    since_seal: list[float] = []
    unread = 0
    for code, shown in samples:
        cap = capture_ms(code, shown)
        if cap is None or not 0 <= shown - cap < 120_000:
            unread += 1
            continue
        g2g.append((shown - cap) / 1000)
        seg = next((i for i, r in records.items()
                    if int(r["start_us"]) <= cap * 1000 < int(r["start_us"]) + int(r["duration_us"])), None)  # type: ignore[call-overload]
        if seg is not None and seg in sealed:
            since_seal.append((shown - sealed[seg] / 1000) / 1000)
    if len(g2g) < len(samples) // 2:
        raise RuntimeError(f"only {len(g2g)} of {len(samples)} frame codes read")
    captured = rec.log_times("captured")
    seal_after_end, capture_after_end, upload_after_seal = [], [], []
    for i, r in records.items():
        if i not in sealed:
            continue
        end_us = int(r["start_us"]) + int(r["duration_us"])  # type: ignore[call-overload]
        seal_after_end.append((sealed[i] - end_us) / 1000)
        if i in captured:
            capture_after_end.append((captured[i] - end_us) / 1000)
        names = [n for n in uploaded if isinstance(n, str) and n.endswith((f"seg/{i:08d}.json", f"seg/{i:08d}.bin"))]
        if len(names) == 2:
            upload_after_seal.append((max(uploaded[n] for n in names) - sealed[i]) / 1000)
    out = {
        "g2g_p50": statistics.median(g2g), "g2g_max": max(g2g),
        "seal_p50": statistics.median(since_seal) if since_seal else float("nan"),
        "seal_max": max(since_seal) if since_seal else float("nan"),
        "sealed_after_end_max_ms": max(seal_after_end) if seal_after_end else float("nan"),
        "sealed_after_end_p50_ms": statistics.median(seal_after_end) if seal_after_end else float("nan"),
        "captured_after_end_p50_ms": statistics.median(capture_after_end) if capture_after_end else float("nan"),
        "captured_after_end_max_ms": max(capture_after_end) if capture_after_end else float("nan"),
        "upload_p95_ms": pct(upload_after_seal, 0.95) if upload_after_seal else float("nan"),
        "upload_max_ms": max(upload_after_seal) if upload_after_seal else float("nan"),
        "frames": len(g2g), "unread": unread, "segments": len(records),
    }
    print(f"segment {segment_s} s, run {run}: glass to glass p50 {out['g2g_p50']:.2f} s, max {out['g2g_max']:.2f} s "
          f"= {out['g2g_max'] / segment_s:.2f} segment lengths ({len(g2g)} frames read, {unread} unreadable); "
          f"since its segment was sealed p50 {out['seal_p50']:.2f} s, max {out['seal_max']:.2f} s; "
          f"after the segment's last frame: ffmpeg's list read p50 {out['captured_after_end_p50_ms']:.0f} ms, "
          f"max {out['captured_after_end_max_ms']:.0f} ms, sealed p50 {out['sealed_after_end_p50_ms']:.0f} ms, "
          f"max {out['sealed_after_end_max_ms']:.0f} ms; "
          f"uploaded (ciphertext and record) after the seal p95 {out['upload_p95_ms']:.0f} ms, "
          f"max {out['upload_max_ms']:.0f} ms over {len(upload_after_seal)} segments", flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--segments", type=int, nargs="+", default=[1, 2, 4], help="segment lengths in seconds")
    ap.add_argument("--runs", type=int, default=2, help="sessions per segment length")
    args = ap.parse_args()
    if args.runs < 1 or any(not 1 <= s <= 10 for s in args.segments):
        ap.error("--runs must be at least 1 and each segment length 1 to 10 s")
    from playwright.sync_api import sync_playwright

    worst: dict[int, list[dict[str, float]]] = {s: [] for s in args.segments}
    with tempfile.TemporaryDirectory(prefix="irms-bench-live-") as tmp:
        world = build(Path(tmp))
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
                    "--no-sandbox", "--disable-gpu", "--disable-quic", "--autoplay-policy=no-user-gesture-required"])
                for run in range(1, args.runs + 1):
                    for segment_s in args.segments:
                        worst[segment_s].append(one_run(world, browser, segment_s, run))
                browser.close()
        finally:
            world.close()
    print("\nworst of the runs (latency in segment lengths; target: at most 3):")
    upload_worst = 0.0
    for segment_s, runs in worst.items():
        g2g = max(r["g2g_max"] for r in runs)
        seal = max(r["seal_max"] for r in runs)
        upload = max(r["upload_max_ms"] for r in runs)
        upload_worst = max(upload_worst, upload)
        ok = g2g <= 3 * segment_s
        print(f"  segment {segment_s} s: glass to glass {g2g:.2f} s = {g2g / segment_s:.2f} segment lengths, "
              f"{seal:.2f} s after its segment was sealed; upload after seal at most {upload:.0f} ms "
              f"{'PASS' if ok else 'FAIL'}")
        result(f"live_latency_{segment_s}s_segments", g2g / segment_s, "<= 3 segment lengths (glass to glass, worst)",
               ok, "segment lengths")
        result(f"live_since_seal_{segment_s}s_segments", seal / segment_s,
               "reported (frame shown after its segment was sealed, worst)", True, "segment lengths")
    result("live_upload_after_seal", upload_worst, f"<= {UPLOAD_TARGET_MS} ms (each sealed segment uploaded at once)",
           upload_worst <= UPLOAD_TARGET_MS, "ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
