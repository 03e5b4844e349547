"""Property: taking heartbeats out of a coverage bundle never raises the recomputed figure beyond what the
span rule allows. An ok heartbeat vouches for two intervals after it, so removing ok heartbeats can only
lower the figure; a failing one ends its room's stretch, so removing it can add at most those two
intervals (the server can hide a failure for two intervals, never invent a working room)."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evidence.coverage import US, Policy, RoomIn, SiteIn
from evidence.coverage_bundle import (
    Registry,
    figure_json,
    heartbeat_line,
    policy_json,
    recompute,
    registry_json,
    sign_heartbeat,
    stations_json,
    write_bundle,
)
from evidence.keys import b64, public_raw

TZ = "Asia/Ho_Chi_Minh"
DAY = dt.date(2027, 1, 15)
T0 = int(dt.datetime(2027, 1, 15, tzinfo=ZoneInfo(TZ)).timestamp()) * US
CUT = T0 + 6 * 3600 * US
POLICY = Policy(interval_s=600)
REGISTRY = Registry((("A", "Tỉnh A"), ("B", "Tỉnh B")),
                    (SiteIn(1, "A-1", "Site A1", "A", "procuracy"), SiteIn(2, "B-1", "Site B1", "B", "procuracy")),
                    (RoomIn(10, 1, "P01", "r"), RoomIn(11, 1, "P02", "r"), RoomIn(20, 2, "P01", "r")))
KEYS = {f"st-{room}": (room, Ed25519PrivateKey.from_private_bytes(bytes([room]) * 32)) for room in (10, 11, 20)}
SERVER = Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)


def body(sid: str, at_us: int, ok: bool) -> bytes:
    return json.dumps({"format": "irms.heartbeat/1", "station_id": sid, "sent_at_us": at_us,
                       "probes": [{"check": "camera.black", "device": "wide", "ok": ok},
                                  {"check": "mic.level", "device": "room", "ok": True}],
                       "disk_free_bytes": 100 * 2**30, "clock_offset_ms": 0, "store_ok": True,
                       "selftest": {"at_us": at_us - 3600 * US, "ok": True}}, separators=(",", ":")).encode()


def bundle(folder: Path, beats: list[tuple[str, int, bool]]) -> None:
    lines = []
    for n, (sid, at_us, ok) in enumerate(beats):
        room, key = KEYS[sid]
        raw = body(sid, at_us, ok)
        lines.append(heartbeat_line(sid, room, at_us, raw.decode(),
                                    sign_heartbeat(key, sid, raw, at_us // US, f"{n:032x}")))
    stations = [{"station_id": sid, "public_key": b64(public_raw(key.public_key())), "room_id": room,
                 "enrolled_at_us": T0 - 30 * 86400 * US, "enrolled_by": "admin",
                 "code_issued_at_us": T0 - 31 * 86400 * US,
                 "revoked_at_us": None, "revoked_reason": ""} for sid, (room, key) in KEYS.items()]
    write_bundle(folder, signer=SERVER, first=DAY, last=DAY, timezone=TZ, cut_us=CUT, created_at_us=CUT,
                 request_window_s=300, files={
                     "policy.json": policy_json(POLICY), "registry.json": registry_json(REGISTRY),
                     "stations.json": stations_json(stations), "heartbeats.jsonl": b"".join(lines),
                     "server-figure.json": figure_json({"national": {}, "provinces": {}})})


def ratios(fig: dict[str, Any]) -> dict[str, float]:
    out = {}
    for name, part in [("national", fig["national"]), *fig["provinces"].items()]:
        out[f"{name} uptime"] = float(part["room_uptime"])
        for d in part["days"]:
            out[f"{name} {d['day']} rooms"] = float(d["room_uptime"])
            out[f"{name} {d['day']} facilities"] = float(d["facility_equipped"])
    return out


beat = st.tuples(st.sampled_from(sorted(KEYS)), st.integers(0, 6 * 3600 - 1), st.booleans())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(beats=st.lists(beat, min_size=1, max_size=40, unique_by=lambda b: (b[0], b[1])), data=st.data())
def test_removing_heartbeats_never_raises_the_figure_beyond_the_span_rule(beats: list[tuple[str, int, bool]],
                                                                          data: st.DataObject) -> None:
    full = [(sid, T0 + s * US, ok) for sid, s, ok in beats]
    removed = data.draw(st.sets(st.integers(0, len(full) - 1)))
    kept = [b for i, b in enumerate(full) if i not in removed]
    failing_removed = sum(1 for i in removed if not full[i][2])
    with tempfile.TemporaryDirectory() as tmp:
        bundle(Path(tmp) / "all", full)
        bundle(Path(tmp) / "fewer", kept)
        before, after = recompute(Path(tmp) / "all"), recompute(Path(tmp) / "fewer")
    assert before.verified == len(full) and after.verified == len(kept)
    length = CUT - T0
    # Per room: one hidden failure can add at most two intervals of working time (a share of the day/window).
    slack = failing_removed * POLICY.fresh_us / length
    a, b = ratios(before.figure), ratios(after.figure)
    for name, value in b.items():
        assert value <= a[name] + slack + 1e-9, (name, value, a[name], failing_removed)
        if failing_removed == 0:
            assert value <= a[name] + 1e-9, (name, value, a[name])
