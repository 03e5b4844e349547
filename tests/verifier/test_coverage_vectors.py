"""Known answers for the coverage evidence bundle (docs/evidence-format.md, "Coverage evidence bundle").

tests/verifier/vectors/coverage-bundle/ is a bundle made from fixed keys and inputs (Ed25519 signatures are
deterministic): a third party's checker must read it to the figures below, refusing the same two heartbeats.
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

from evidence.coverage import US, Policy, RoomIn, SiteIn
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
    spans_from_heartbeats,
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
# (station, seconds after T0, camera ok, room recorded, signing key): the last two are refused.
BEATS = [("st-10", 0, True, 10, "st-10"), ("st-10", 600, True, 10, "st-10"), ("st-10", 1200, True, 10, "st-10"),
         ("st-11", 0, True, 11, "st-11"), ("st-11", 600, False, 11, "st-11"), ("st-20", 3600, True, 20, "st-20"),
         ("st-20", 7200, True, 11, "st-20"),  # recorded for room 11: refused, wrong_room
         ("st-20", 9000, True, 20, "st-10")]  # signed with st-10's key: refused, bad_signature


def body(sid: str, at_us: int, ok: bool) -> bytes:
    return json.dumps({"format": "irms.heartbeat/1", "station_id": sid, "sent_at_us": at_us,
                       "probes": [{"check": "camera.black", "device": "wide", "ok": ok},
                                  {"check": "mic.level", "device": "room", "ok": True}],
                       "disk_free_bytes": 100 * 2**30, "clock_offset_ms": 0, "store_ok": True,
                       "selftest": {"at_us": at_us - 3600 * US, "ok": True}}, separators=(",", ":")).encode()


def build(folder: Path) -> None:
    lines = []
    for n, (sid, s, ok, room, signer) in enumerate(BEATS):
        at = T0 + s * US
        raw = body(sid, at, ok)
        lines.append(heartbeat_line(sid, room, at, raw.decode(),
                                    sign_heartbeat(KEYS[signer][1], sid, raw, at // US, f"{n:032x}")))
    stations = [{"station_id": sid, "public_key": b64(public_raw(key.public_key())), "room_id": room,
                 "enrolled_at_us": T0 - 30 * 86400 * US, "enrolled_by": "admin",
                 "code_issued_at_us": T0 - 31 * 86400 * US, "revoked_at_us": None, "revoked_reason": ""}
                for sid, (room, key) in KEYS.items()]
    good = BEATS[:6]
    spans = [sp for sid, (room, _) in KEYS.items()
             for sp in spans_from_heartbeats(room, [(T0 + s * US, ok) for b_sid, s, ok, _, _ in good if b_sid == sid],
                                             POLICY)]
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
    nat, a, b = res.figure["national"], res.figure["provinces"]["A"], res.figure["provinces"]["B"]
    # Working: room 10 [0, 2400 s), room 11 [0, 600 s), room 20 [3600, 4800 s) of a 21,600 s day (cut at 6 h).
    assert nat["days"] == [{"day": "2027-01-15", "room_uptime": "0.064814815", "facility_equipped": "0.083333333"}]
    assert a["days"][0]["room_uptime"] == "0.069444444" and a["days"][0]["facility_equipped"] == "0.111111111"
    assert b["days"][0]["room_uptime"] == "0.055555556" and b["days"][0]["facility_equipped"] == "0.055555556"
    assert res.differences == []


def test_irms_verify_reads_the_vector() -> None:
    proc = subprocess.run([str(Path(sys.executable).parent / "irms-verify"), "coverage", str(VECTOR)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "rests on 6 heartbeats from 3 stations verified against their enrolled keys; 2 refused: " \
           "1 bad_signature, 1 wrong_room" in proc.stdout
    assert re.search(r"2027-01-15 +6\.48 % +8\.33 %", proc.stdout), proc.stdout
