"""The JSON API (stations and people) and Prometheus metrics.

POST /api/v1/enroll             one-time code + public key -> station id          (no login; the code is the secret)
POST /api/v1/heartbeat          signed per evidence.request_auth; answered by web/heartbeat/ (in front of Flask)
POST /api/v1/sessions/events    session events, signed the same way (web/events.py) (station signature)
GET  /api/v1/custodian.pub      the current custodian public key (PEM) for stations (anyone)
GET  /api/v1/coverage           coverage now, per province, failing rooms          (any role)
GET  /api/v1/sessions/<id>/witness  [{index, chain}] for `irms-verify --witness` (prosecutor, auditor in their
                                scope; admin: every session; web/scope.py)
GET  /metrics                   Prometheus text                                    (bearer token, or loopback)

Refusals are JSON {"error", "status", "message"}: 400 malformed, 401 unknown station,
bad signature or stale timestamp, 403 revoked station or wrong role, 409 replayed nonce or used code.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, jsonify, request
from flask.typing import ResponseReturnValue

from evidence.protocol import ENROLL_PATH, EVENTS_PATH
from web import scope
from web import stations as ST
from web.auth import ALL_ROLES, client_address, require_roles
from web.context import db_session, now_us, state
from web.coverage import Coverage
from web.errors import Forbidden, ForeignClaim, NotFound
from web.evidence import bulk_compute, current_coverage
from web.heartbeat.witness import witnessed_heads
from web.ownership import record_refusal
from web.station_auth import authenticate

bp = Blueprint("api", __name__)


def _signed_path() -> str:
    return (request.script_root or "") + request.path


@bp.route(ENROLL_PATH, methods=["POST"])
def enroll() -> ResponseReturnValue:
    body: ST.EnrollBody = ST.parse_body(ST.EnrollBody, request.get_data(), "enrollment request")
    s = db_session()
    t = now_us()
    station = ST.enroll(s, body, t)
    s.commit()
    cfg = state().config
    # The coverage policy and the enrolment time: the station judges its runs with them from its first
    # heartbeat on (docs/evidence-format.md, "Heartbeat runs"); each heartbeat answer carries them again.
    return jsonify({"station_id": station.station_id, "heartbeat_interval_s": cfg.heartbeat_interval_s,
                    "server_time_us": t, "policy": state().heartbeats.policy.as_json(),
                    "enrolled_at_us": station.enrolled_at_us}), 201


@bp.route(EVENTS_PATH, methods=["POST"])
def session_events() -> ResponseReturnValue:
    from web.events import ingest_events
    from web.live import watchers_for
    raw = request.get_data()
    cfg = state().config
    s = db_session()
    t = now_us()
    station = authenticate(s, request.headers, "POST", _signed_path(), raw, t, cfg.request_window_s)
    try:
        result = ingest_events(s, station, raw, t)
    except ForeignClaim as err:
        record_refusal(s, err, t)
        raise
    s.commit()
    # Who watches this station's sessions live: the screen shows it, the manifest records it (web/live.py).
    return jsonify({"accepted": result.accepted, "duplicates": result.duplicates, "sessions": result.sessions,
                    "server_time_us": t, "watchers": watchers_for(s, station.pk, t)}), 201


@bp.route("/api/v1/custodian.pub")
def custodian_public() -> ResponseReturnValue:
    from web.custody import current_key
    row = current_key(db_session())
    if row is None:
        raise NotFound("no custodian key yet (irms-web custodian new)")
    return Response(row.public_pem, mimetype="application/x-pem-file",
                    headers={"X-IRMS-Key-Id": row.key_id})


def coverage_json(cov: Coverage) -> dict[str, object]:
    return {
        "format": "irms.coverage/1",
        "as_of_us": cov.now_us,
        **cov.figures.as_json(),
        "provinces": [{"code": p.province.code, "name": p.province.name, **p.figures.as_json()}
                      for p in cov.provinces],
        "failing_rooms": [{"site": r.site.code, "room": r.room.code, "station": r.station_id,
                           "last_seen_us": r.last_seen_us, "reasons": [x.as_json() for x in r.reasons]}
                          for r in cov.failing],
        "silent_stations": list(cov.silent_stations),
    }


@bp.route("/api/v1/coverage")
@require_roles(*ALL_ROLES)
def coverage() -> ResponseReturnValue:
    with bulk_compute():
        _, cov = current_coverage(db_session(), state().config, now_us())
    return jsonify(coverage_json(cov))


@bp.route("/api/v1/sessions/<session_id>/witness")
@require_roles(*scope.ROLES[scope.Need.INTEGRITY])
def witness(session_id: str) -> ResponseReturnValue:
    s = db_session()
    if not scope.integrity_allowed(s, session_id):
        raise NotFound(f"no session {session_id}")
    return jsonify(witnessed_heads(s, session_id))


def _metrics_allowed() -> bool:
    token = state().config.metrics_token
    if token:
        given = request.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())
    return client_address() in ("127.0.0.1", "::1")  # behind a trusted proxy: the client it forwards for


def metrics_text(cov: Coverage) -> str:
    f = cov.figures
    lines = [
        "# HELP irms_facilities_total Registered facilities (sites).",
        "# TYPE irms_facilities_total gauge",
        f"irms_facilities_total {f.facilities_total}",
        "# HELP irms_facilities_equipped Facilities with at least one working interrogation room.",
        "# TYPE irms_facilities_equipped gauge",
        f"irms_facilities_equipped {f.facilities_equipped}",
        "# HELP irms_facility_coverage_ratio Equipped facilities / all facilities.",
        "# TYPE irms_facility_coverage_ratio gauge",
        f"irms_facility_coverage_ratio {f.facility_ratio if f.facility_ratio is not None else 'NaN'}",
        "# HELP irms_rooms_total Registered interrogation rooms.",
        "# TYPE irms_rooms_total gauge",
        f"irms_rooms_total {f.rooms_total}",
        "# HELP irms_rooms_working Rooms whose recording equipment works now.",
        "# TYPE irms_rooms_working gauge",
        f"irms_rooms_working {f.rooms_working}",
        "# HELP irms_room_coverage_ratio Working rooms / all rooms.",
        "# TYPE irms_room_coverage_ratio gauge",
        f"irms_room_coverage_ratio {f.room_ratio if f.room_ratio is not None else 'NaN'}",
        "# HELP irms_stations_silent Enrolled stations with no heartbeat for two intervals.",
        "# TYPE irms_stations_silent gauge",
        f"irms_stations_silent {len(cov.silent_stations)}",
        "# HELP irms_province_rooms_working Working rooms per province.",
        "# TYPE irms_province_rooms_working gauge",
    ]
    for p in cov.provinces:
        lines.append(f'irms_province_rooms_working{{province="{p.province.code}"}} {p.figures.rooms_working}')
    lines += ["# HELP irms_province_facilities_equipped Equipped facilities per province.",
              "# TYPE irms_province_facilities_equipped gauge"]
    for p in cov.provinces:
        lines.append(f'irms_province_facilities_equipped{{province="{p.province.code}"}} '
                     f"{p.figures.facilities_equipped}")
    # One series per equipped room (a room without a station is a coverage gap, not a failing room), for
    # the Alertmanager rules shipped in deploy/prometheus/irms-alerts.yml.
    lines += ["# HELP irms_room_working 1 if the room's recording equipment works now, else 0 (equipped rooms).",
              "# TYPE irms_room_working gauge"]
    for r in cov.rooms:
        if r.working or any(x.code != "no_station" for x in r.reasons):
            lines.append(f'irms_room_working{{province="{r.site.province_code}",site="{r.site.code}",'
                         f'room="{r.room.code}"}} {int(r.working)}')
    return "\n".join(lines) + "\n"


@bp.route("/metrics")
def metrics() -> ResponseReturnValue:
    if not _metrics_allowed():
        raise Forbidden("metrics need the bearer token (metrics_token)")
    with bulk_compute():
        _, cov = current_coverage(db_session(), state().config, now_us())
    return Response(metrics_text(cov), mimetype="text/plain; version=0.0.4")
