"""Known answers for the coverage evidence bundle (docs/evidence-format.md, "Coverage evidence bundle").

tests/verifier/vectors/coverage-bundle/ is a bundle made from fixed keys and inputs (Ed25519 signatures are
deterministic): a third party's checker must read it to the figures below, refusing the same two heartbeats and
the same two run claims.
Regenerating it must give the same bytes; if it does not, the format changed: bump its version.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from evidence.coverage import US, Policy, RoomIn, SiteIn, Span, facts_from_doc, judge_heartbeat, run_credit
from evidence.coverage_bundle import (
    FILES,
    MANIFEST,
    Registry,
    figure_json,
    figure_of,
    heartbeat_line,
    period_bounds,
    policy_json,
    recompute,
    registry_json,
    sign_heartbeat,
    stations_json,
    write_bundle,
)
from evidence.keys import b64, public_raw

VECTOR = Path(__file__).parent / "vectors" / "coverage-bundle"
TZ = "Asia/Ho_Chi_Minh"
DAY = dt.date(2027, 1, 15)
T0 = int(dt.datetime(2027, 1, 15, tzinfo=ZoneInfo(TZ)).timestamp()) * US  # 2027-01-14T17:00:00Z
CUT = T0 + 6 * 3600 * US
POLICY = Policy(interval_s=600)  # an ok heartbeat vouches for 1,200 s
SERVER = Ed25519PrivateKey.from_private_bytes(bytes(range(64, 96)))
KEYS = {"st-10": (10, Ed25519PrivateKey.from_private_bytes(bytes([10]) * 32)),
        "st-11": (11, Ed25519PrivateKey.from_private_bytes(bytes([11]) * 32)),
        "st-20": (20, Ed25519PrivateKey.from_private_bytes(bytes([20]) * 32))}
REGISTRY = Registry((("A", "Tỉnh A"), ("B", "Tỉnh B")),
                    (SiteIn(1, "A-TTG", "Trại tạm giam A", "A", "detention_centre"),
                     SiteIn(2, "B-VKS", "Viện kiểm sát B", "B", "procuracy")),
                    (RoomIn(10, 1, "P01", "Phòng 01"), RoomIn(11, 1, "P02", "Phòng 02"),
                     RoomIn(20, 2, "P01", "Phòng 01")))
SELFTEST_US = T0 - 3600 * US  # every station's daily self-test passed an hour before the day began
ENROLLED_US = T0 - 30 * 86400 * US
# (station, seconds after T0, ok, run since (seconds after T0), run count, room recorded, signing key).
BEATS = [("st-10", 2400, True, 0, 5, 10, "st-10"),
         ("st-11", 1200, True, 0, 3, 11, "st-11"), ("st-11", 1800, False, None, 0, 11, "st-11"),
         ("st-20", 7200, True, 3600, 7, 20, "st-20"),
         ("st-20", 9000, True, 7200, 4, 11, "st-20"),  # recorded for room 11: refused, wrong_room
         ("st-20", 10800, True, 9000, 4, 20, "st-10"),  # signed with st-10's key: refused, bad_signature
         ("st-20", 14400, True, 12000, 2, 20, "st-20"),  # 2,400 s over one gap: run refused, run_too_long
         ("st-11", 3600, True, 1200, 4, 11, "st-11")]  # the failing heartbeat at 1,800 s inside: run_contradicted


def body(sid: str, at_us: int, ok: bool, since_s: int | None, count: int) -> bytes:
    run: dict[str, object] = {"prev": None, "count": count}
    if count:
        run.update(since_us=T0 + (since_s or 0) * US, kinds=["camera", "mic"], min_disk_free_bytes=100 * 2**30,
                   max_clock_offset_ms=0, selftests=[[SELFTEST_US, True]], selftest_missing_until_us=None,
                   selftest_age_max_us=at_us - SELFTEST_US)
    return json.dumps({"format": "irms.heartbeat/1", "station_id": sid, "sent_at_us": at_us,
                       "probes": [{"check": "camera.black", "device": "wide", "ok": ok},
                                  {"check": "mic.level", "device": "room", "ok": True}],
                       "disk_free_bytes": 100 * 2**30, "clock_offset_ms": 0, "store_ok": True,
                       "selftest": {"at_us": SELFTEST_US, "ok": True}, "run": run},
                      separators=(",", ":"), sort_keys=True).encode()


def build(folder: Path) -> None:
    lines = []
    for n, (sid, s, ok, since, count, room, signer) in enumerate(BEATS):
        at = T0 + s * US
        raw = body(sid, at, ok, since, count)
        lines.append(heartbeat_line(sid, room, at, raw.decode(),
                                    sign_heartbeat(KEYS[signer][1], sid, raw, at // US, f"{n:032x}")))
    stations = [{"station_id": sid, "public_key": b64(public_raw(key.public_key())), "room_id": room,
                 "enrolled_at_us": ENROLLED_US, "enrolled_by": "admin",
                 "code_issued_at_us": T0 - 31 * 86400 * US, "revoked_at_us": None, "revoked_reason": ""}
                for sid, (room, key) in KEYS.items()]
    # The server's figure: its spans from the same credit rule, over what it accepted (not the two refused).
    accepted = [b for b in BEATS if b[5] == KEYS[b[0]][0] and b[6] == b[0]]
    spans = []
    for sid, (room, _) in KEYS.items():
        mine = [facts_from_doc(json.loads(body(sid, T0 + s * US, ok, since, count)), T0 + s * US, ENROLLED_US)
                for b_sid, s, ok, since, count, _, _ in accepted if b_sid == sid]
        fails = sorted(f.at_us for f in mine if judge_heartbeat(f, POLICY))
        for f in mine:
            credit = run_credit(f, not judge_heartbeat(f, POLICY), POLICY, ENROLLED_US, fails)
            if credit.span is not None:
                spans.append(Span(room, *credit.span))
    server = figure_of(REGISTRY, spans, period_bounds(DAY, DAY, ZoneInfo(TZ), CUT), CUT)
    write_bundle(folder, signer=SERVER, first=DAY, last=DAY, timezone=TZ, cut_us=CUT, created_at_us=CUT,
                 request_window_s=300, files={
                     "policy.json": policy_json(POLICY), "registry.json": registry_json(REGISTRY),
                     "stations.json": stations_json(stations), "heartbeats.jsonl": b"".join(lines),
                     "server-figure.json": figure_json(server)})


def test_the_vector_regenerates_byte_for_byte(tmp_path: Path) -> None:
    build(tmp_path / "b")
    for name in (MANIFEST, *FILES):
        assert (tmp_path / "b" / name).read_bytes() == (VECTOR / name).read_bytes(), name


def test_the_vector_recomputes_to_its_known_figure() -> None:
    res = recompute(VECTOR)
    assert (res.verified, res.stations, res.refused) == (6, 3, {"wrong_room": 1, "bad_signature": 1})
    assert res.runs_refused == {"run_contradicted": 1, "run_too_long": 1} and res.runs_credited == 3
    nat, a, b = res.figure["national"], res.figure["provinces"]["A"], res.figure["provinces"]["B"]
    # Working: room 10 [0, 2400 s), room 11 [0, 1200 s), room 20 [3600, 7200 s) of a 21,600 s day (cut at 6 h).
    assert nat["days"] == [{"day": "2027-01-15", "room_uptime": "0.111111111", "facility_equipped": "0.138888889"}]
    assert a["days"][0]["room_uptime"] == "0.083333333" and a["days"][0]["facility_equipped"] == "0.111111111"
    assert b["days"][0]["room_uptime"] == "0.166666667" and b["days"][0]["facility_equipped"] == "0.166666667"
    assert res.differences == []


def test_irms_verify_reads_the_vector() -> None:
    proc = subprocess.run([str(Path(sys.executable).parent / "irms-verify"), "coverage", str(VECTOR)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "rests on 6 heartbeats from 3 stations verified against their enrolled keys; 2 refused: " \
           "1 bad_signature, 1 wrong_room" in proc.stdout
    assert "3 run claims credited, 2 refused: 1 run_contradicted, 1 run_too_long" in proc.stdout
    assert re.search(r"2027-01-15 +11\.11 % +13\.89 %", proc.stdout), proc.stdout
