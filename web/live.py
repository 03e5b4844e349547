"""Live view of a session still recording, and markers added on the server.

Live view (`/replay/<id>/live`): a prosecutor in scope watches a session as it records. The live
playlist (`live.m3u8`) is an HLS EVENT playlist of the segments that reached the store: at most every
quarter second per session the server reads on from the last record it already checked (signed, chained,
witnessed heads: `web/recordings.refresh_recording`, `verifier/live.py`; the first look is the document
audit), and every segment is then served by replay's own route (web/replay.py): checked against its record,
decrypted through the custody holder, checked again. The end tag comes once the session has ended and
verifies. Watching is audited (`session.live`, one entry per view) and watermarked like a replay.

Each view is a row (`live_views`) kept open while the player asks for the playlist; after
`WATCH_GAP_S` without a request it has ended. The station learns who watches from the answer to
its session events (`watchers`, `watchers_for`), shows it on its screen and writes each viewer's
coming and going into the manifest (`witness_start`, `witness_stop`). Nothing here is ever waited
on by the station: capture and upload do not depend on the server.

Markers: the investigator's are `marker` events of the signed manifest (or, while recording, the
station's events); a prosecutor replaying or watching adds their own (`session_markers`):
annotations, attributed and audited (`session.marker`), never part of the evidence.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, g, jsonify, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.orm import Session

from web import audit, replay, scope
from web import recordings as R
from web.auth import require_roles
from web.context import db_session, now_us, state
from web.errors import BadRequest, Conflict
from web.models import (
    LiveView,
    RecordingSession,
    SessionEvent,
    SessionMarker,
    SessionOwner,
    SessionStatus,
    Unit,
    User,
    UserUnit,
)
from web.scope import Need
from web.sessions import CONTENT_ROLES

bp = Blueprint("live", __name__, url_prefix="/replay")
WATCH_GAP_S = 10
"""A live view with no playlist request for this long has ended (the player asks every segment length)."""
LABEL_MAX = 200


def refresh(s: Session, row: RecordingSession, t: int) -> RecordingSession:
    """The session's records as the store holds them now: a recording session read on incrementally at most
    every `R.LIVE_REFRESH_US` (web/recordings.py `refresh_recording`), an ended one verified in full."""
    if row.status != SessionStatus.RECORDING.value:
        return R.ensure_verified(s, state().config, row, t)
    R.check_not_disposed(row)
    return R.refresh_recording(s, R.store_of(state().config), row, t)


def live_segments(row: RecordingSession) -> list[R.Seg]:
    """The segments a live viewer may play: those before the first one with a finding (a record whose
    ciphertext is still on its way is only late); none when the session as a whole failed."""
    findings = R.findings_of(row)
    if any(f.get("segment") is None and f.get("rule") not in ("V09",) for f in findings):
        raise Conflict(f"session {row.session_id} fails verification ({', '.join(R.failed_rules(row))}): "
                       "not played")
    accepted = row.segment_count or 0
    first_bad = min((int(f["segment"]) for f in findings
                     if f.get("segment") is not None and not R.in_flight(f, accepted)), default=None)
    segs = replay._segs(row)
    return [x for x in segs if first_bad is None or x.idx < first_bad]


def _unit_name(s: Session, user: User) -> str:
    names = s.scalars(select(Unit.name).join(UserUnit, UserUnit.unit_id == Unit.id)
                      .where(UserUnit.user_id == user.id).order_by(Unit.name)).all()
    return ", ".join(names)


def open_view(s: Session, row: RecordingSession, user: User, t: int, via: str) -> LiveView:
    """The user's open live view of the session (a request keeps it open), or a new one, audited."""
    view = s.scalars(select(LiveView).where(LiveView.session_id == row.session_id,
                                            LiveView.username == user.username, LiveView.ended_us.is_(None))
                     .order_by(LiveView.id.desc())).first()
    if view is not None and t - view.last_seen_us > WATCH_GAP_S * 1_000_000:
        view.ended_us = view.last_seen_us
        view = None
    if view is not None:
        view.last_seen_us = t
        s.commit()
        return view
    view = LiveView(session_id=row.session_id, username=user.username, display_name=user.display_name,
                    unit_name=_unit_name(s, user), started_us=t, last_seen_us=t)
    s.add(view)
    s.flush()
    if via != "page":  # the page's own audit entry names the view
        audit.append(s, at_us=t, actor=user.username, action="session.live", target=row.session_id,
                     detail={"via": via, "view": view.id, "verification": row.verification})
    s.commit()
    return view


def watchers_for(s: Session, station_pk: int, t: int) -> dict[str, list[dict[str, str]]]:
    """Who watches the station's sessions live now (the `watchers` member of the events answer)."""
    rows = s.execute(select(LiveView.id, LiveView.session_id, LiveView.display_name, LiveView.unit_name)
                     .join(SessionOwner, SessionOwner.session_id == LiveView.session_id)
                     .where(LiveView.ended_us.is_(None), LiveView.last_seen_us >= t - WATCH_GAP_S * 1_000_000,
                            SessionOwner.station_pk == station_pk).order_by(LiveView.id)).all()
    out: dict[str, list[dict[str, str]]] = {}
    for vid, sid, name, unit in rows:
        out.setdefault(sid, []).append({"id": str(vid), "name": name, "unit": unit})
    return out


def _content(session_id: str) -> RecordingSession:
    return scope.session_for(db_session(), session_id, Need.CONTENT).row


@bp.route("/<session_id>/live")
@require_roles(*CONTENT_ROLES)
def page(session_id: str) -> ResponseReturnValue:
    s, t = db_session(), now_us()
    row = refresh(s, _content(session_id), t)
    view = open_view(s, row, g.user, t, "page")
    who = replay.Reader(g.user.username, "session.live", "", {"view": view.id})
    return replay.page_html(row, who, g.user.display_name, url_for("live.playlist", session_id=session_id),
                            url_for("sessions.detail", session_id=session_id), {"live": True})


@bp.route("/<session_id>/live.m3u8")
@require_roles(*CONTENT_ROLES)
def playlist(session_id: str) -> ResponseReturnValue:
    s, t = db_session(), now_us()
    row = refresh(s, _content(session_id), t)
    ended = row.status == SessionStatus.ENDED.value and row.verification == "verified"
    if not ended:
        open_view(s, row, g.user, t, "playlist")
    replay.grant(row, "playlist", replay.Reader.user())
    text = R.playlist(live_segments(row), live=True, ended=ended)
    return Response(text, mimetype="application/vnd.apple.mpegurl", headers=replay.NO_STORE)


# --- markers --------------------------------------------------------------------------------------------


def investigator_markers(s: Session, row: RecordingSession) -> list[dict[str, Any]]:
    """The investigator's markers: the signed manifest's, or while recording the station's events."""
    if row.manifest:
        events = json.loads(row.manifest).get("events", [])
        return [{"at_us": int(e["at_us"]), "label": str(e.get("detail", ""))} for e in events
                if e.get("kind") == "marker"]
    found = s.scalars(select(SessionEvent).where(SessionEvent.session_id == row.session_id,
                                                 SessionEvent.kind == "marker").order_by(SessionEvent.at_us))
    return [{"at_us": e.at_us, "label": e.detail} for e in found]


def server_markers(s: Session, session_id: str) -> list[SessionMarker]:
    return list(s.scalars(select(SessionMarker).where(SessionMarker.session_id == session_id)
                          .order_by(SessionMarker.at_us, SessionMarker.id)))


def marker_json(m: SessionMarker) -> dict[str, Any]:
    return {"id": m.id, "at_us": m.at_us, "label": m.label, "author": m.author_name, "unit": m.unit_name,
            "created_us": m.created_us}


@bp.route("/<session_id>/markers.json")
@require_roles(*CONTENT_ROLES)
def markers(session_id: str) -> ResponseReturnValue:
    s = db_session()
    row = _content(session_id)
    return jsonify({"investigator": investigator_markers(s, row),
                    "server": [marker_json(m) for m in server_markers(s, session_id)],
                    "interruptions": replay.interruptions_of(s, row, reasons=True),
                    "media_map": replay.media_map_of(row)}), 200, replay.NO_STORE


@bp.route("/<session_id>/markers", methods=["POST"])
@require_roles(*CONTENT_ROLES)
def add_marker(session_id: str) -> ResponseReturnValue:
    """A prosecutor's marker at a moment of the recording (form: at_us, label): attributed and audited."""
    s, t = db_session(), now_us()
    row = _content(session_id)
    label = " ".join(request.form.get("label", "").split())
    raw_at = request.form.get("at_us", "")
    if not raw_at.isdigit():
        raise BadRequest("marker: at_us must be the moment marked, in microseconds since the epoch")
    at = int(raw_at)
    start = row.started_at_us or 0
    end = row.ended_at_us or t
    if not start <= at <= end:
        raise BadRequest(f"marker: at_us {at} is outside the session ({start}..{end})")
    if not 1 <= len(label) <= LABEL_MAX:
        raise BadRequest(f"marker: a label of 1 to {LABEL_MAX} characters is required")
    m = SessionMarker(session_id=session_id, at_us=at, label=label, author=g.user.username,
                      author_name=g.user.display_name, unit_name=_unit_name(s, g.user), created_us=t)
    s.add(m)
    s.flush()
    audit.append(s, at_us=t, actor=g.user.username, action="session.marker", target=session_id,
                 detail={"marker": m.id, "at_us": at})
    s.commit()
    return jsonify(marker_json(m)), 201
