"""`irms-web coverage export`: the coverage evidence bundle of a period (evidence/coverage_bundle.py).

Of the heartbeats the server received from the first day's start until now, as the stations signed them,
every failing one and the last of each run (an ok heartbeat credits the run behind it, never the time
after); every station with its key, enrolment
(room, time, who issued the code) and revocation; the registry; the policy; and the figure the
dashboard computes for those days from its uptime spans, so the checker can say whether the two agree.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from evidence.coverage_bundle import (
    Registry,
    figure_json,
    figure_of,
    heartbeat_line,
    period_bounds,
    policy_json,
    registry_json,
    stations_json,
    write_bundle,
)
from web.audit_anchor import AuditSigner
from web.config import WebConfig
from web.coverage import Span
from web.errors import BadRequest
from web.evidence import _fetch, policy_of, snapshot

_SELECTED = """SELECT st.station_id, st.room_id, x.received_us, x.body, x.signature FROM (
  SELECT hb.*, lead(hb.run_since_us) OVER (PARTITION BY hb.station_pk ORDER BY hb.sent_us, hb.id) AS next_since,
         lead(hb.id) OVER (PARTITION BY hb.station_pk ORDER BY hb.sent_us, hb.id) AS next_id
  FROM heartbeats hb WHERE hb.received_us >= ? AND hb.received_us <= ?) x
JOIN stations st ON st.id = x.station_pk
WHERE NOT x.ok OR x.run_since_us IS NULL OR x.next_id IS NULL OR x.next_since IS NULL
   OR x.next_since <> x.run_since_us
ORDER BY x.id"""
"""Of the period's heartbeats, per station in the order it sent them: every one not ok or not credited for a run,
and the last of each run (the next starts another run, or there is none): docs/evidence-format.md, format 2."""


def parse_day(text: str, what: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"{what} {text!r} is not a date YYYY-MM-DD") from None


def export_bundle(s: Session, config: WebConfig, signer: AuditSigner, first: dt.date, last: dt.date, out: Path,
                  now_us: int) -> dict[str, Any]:
    """Write the bundle of first..last (local days, cut at now) into `out` (a new folder); the manifest."""
    if last < first:
        raise BadRequest(f"--to {last} is before --from {first}")
    if out.exists():
        raise BadRequest(f"{out} exists: the bundle goes into a new folder")
    policy = policy_of(config)
    bounds = period_bounds(first, last, ZoneInfo(config.timezone), now_us)
    if not bounds:
        raise BadRequest(f"the period {first}..{last} has not begun")
    lo = bounds[0][1]
    snap = snapshot(s)
    registry = Registry(tuple((p.code, p.name) for p in snap.provinces), tuple(snap.sites), tuple(snap.rooms))
    stations = [{"station_id": sid, "public_key": key, "room_id": room, "enrolled_at_us": enrolled,
                 "enrolled_by": by, "code_issued_at_us": issued, "revoked_at_us": revoked,
                 "revoked_reason": reason or ""}
                for sid, key, room, enrolled, revoked, reason, by, issued in _fetch(
                    s, "SELECT st.station_id, st.public_key, st.room_id, st.enrolled_at_us, st.revoked_at_us, "
                       "st.revoked_reason, ec.created_by, ec.created_at_us FROM stations st "
                       "LEFT OUTER JOIN enrollment_codes ec ON ec.used_by_station = st.station_id "
                       "ORDER BY st.station_id")]
    lines = [heartbeat_line(sid, room, received, body, None if sig is None else json.loads(sig))
             for sid, room, received, body, sig in _fetch(s, _SELECTED, (lo, now_us))]
    spans = [Span._make(r) for r in _fetch(s, "SELECT room_id, start_us, end_us FROM uptime_spans "
                                              "WHERE end_us >= ? AND start_us < ?", (lo, now_us))]
    files = {"policy.json": policy_json(policy), "registry.json": registry_json(registry),
             "stations.json": stations_json(stations), "heartbeats.jsonl": b"".join(lines),
             "server-figure.json": figure_json(figure_of(registry, spans, bounds, now_us))}
    return write_bundle(out, signer=signer.key, first=first, last=last, timezone=config.timezone, cut_us=now_us,
                        created_at_us=now_us, request_window_s=config.request_window_s, files=files)
