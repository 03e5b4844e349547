"""Property: taking any heartbeats (ok or failing) out of a coverage bundle never raises the recomputed figure.

Stations build their runs with the station's own rule (`next_run`); an ok heartbeat credits only the run behind
it, so each heartbeat's credit depends on no other one. And the export's selection (the last heartbeat of each
run and every failing one) recomputes to the same figure as every heartbeat."""

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

from evidence.coverage import US, Policy, RoomIn, RunState, SiteIn, next_run
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


ENROLLED = T0 - 30 * 86400 * US


def body(sid: str, at_us: int, ok: bool) -> dict[str, Any]:
    return {"format": "irms.heartbeat/1", "station_id": sid, "sent_at_us": at_us,
            "probes": [{"check": "camera.black", "device": "wide", "ok": ok},
                       {"check": "mic.level", "device": "room", "ok": True}],
            "disk_free_bytes": 100 * 2**30, "clock_offset_ms": 0, "store_ok": True,
            "selftest": {"at_us": at_us - 3600 * US, "ok": True}}


def station_bodies(beats: list[tuple[str, int, bool]]) -> list[tuple[str, int, bool, bytes]]:
    """Each station's heartbeats in time order, with the run the station's own rule builds."""
    states: dict[str, RunState] = {}
    out = []
    for sid, at_us, ok in sorted(beats, key=lambda b: (b[1], b[0])):
        doc = body(sid, at_us, ok)
        run = next_run(states.get(sid), doc, POLICY, ENROLLED)
        raw = json.dumps({**doc, "run": run.as_json()}, separators=(",", ":")).encode()
        states[sid] = states.get(sid, RunState()).after(run, at_us, raw)
        out.append((sid, at_us, run.count > 0, raw))
    return out


def closers(beats: list[tuple[str, int, bool, bytes]]) -> list[tuple[str, int, bool, bytes]]:
    """What the export keeps: every heartbeat not in a run, and the last of each run."""
    keep = []
    for i, (sid, _, in_run, raw) in enumerate(beats):
        since = json.loads(raw)["run"].get("since_us")
        nxt = next((json.loads(b[3])["run"].get("since_us") for b in beats[i + 1:] if b[0] == sid), -1)
        if not in_run or nxt != since:
            keep.append(beats[i])
    return keep


def bundle(folder: Path, beats: list[tuple[str, int, bool, bytes]]) -> None:
    lines = []
    for sid, at_us, _, raw in beats:
        room, key = KEYS[sid]
        lines.append(heartbeat_line(sid, room, at_us, raw.decode(),
                                    sign_heartbeat(key, sid, raw, at_us // US, raw.hex()[-32:] + f"{at_us:x}")))
    stations = [{"station_id": sid, "public_key": b64(public_raw(key.public_key())), "room_id": room,
                 "enrolled_at_us": ENROLLED, "enrolled_by": "admin", "code_issued_at_us": ENROLLED - 86400 * US,
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


# Mostly ok, at about the interval, so that runs of several heartbeats form (and gaps of more than two intervals).
station_day = st.lists(st.tuples(st.integers(300, 1500), st.integers(0, 9)), min_size=1, max_size=25)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(days=st.fixed_dictionaries({sid: station_day for sid in KEYS}), data=st.data())
def test_removing_any_heartbeats_never_raises_the_figure(days: dict[str, list[tuple[int, int]]],
                                                         data: st.DataObject) -> None:
    raw_beats = []
    for sid, steps in days.items():
        t = 0
        for gap, roll in steps:
            t += gap
            if t < 6 * 3600:
                raw_beats.append((sid, T0 + t * US, roll != 0))
    full = station_bodies(raw_beats)
    removed = data.draw(st.sets(st.integers(0, len(full) - 1)))
    kept = [b for i, b in enumerate(full) if i not in removed]
    with tempfile.TemporaryDirectory() as tmp:
        bundle(Path(tmp) / "all", full)
        bundle(Path(tmp) / "closers", closers(full))
        bundle(Path(tmp) / "fewer", kept)
        every, selected, fewer = (recompute(Path(tmp) / name) for name in ("all", "closers", "fewer"))
    assert every.verified == len(full) and fewer.verified == len(kept)
    assert every.runs_refused == {} and fewer.runs_refused == {}
    a, s, b = ratios(every.figure), ratios(selected.figure), ratios(fewer.figure)
    assert s == a  # the export's selection loses nothing
    for name, value in b.items():
        assert value <= a[name] + 1e-12, (name, value, a[name], sorted(removed))
    # Runs are credited: the figure is not trivially zero.
    assert (every.runs_credited > 0) == any(json.loads(x[3])["run"]["count"] >= 1 for x in full)
