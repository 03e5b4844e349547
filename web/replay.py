"""Replay in the browser: an HLS playlist from the cached records, segments decrypted one at a time.

The web never rebuilds a recording before playing it. The playlist (`index.m3u8`) is made from
the segment records cached when the session was verified; each `seg/<index>.ts` is read from the
store, checked against its record's ciphertext hash, decrypted with the session's data key
(AES-256-GCM: authenticated) and checked against the plain hash, then sent; nothing plain is
written to disk, and the browser is told not to cache it. hls.js (vendored in static/vendor)
plays it; the page checks Hls.isSupported() first. A watermark with the viewer's name and the
current time lies over the picture (R15).

Only prosecutors (R14), for the sessions in their scope (web/scope.py); an outside party through a
share (web/shares.py serves the same playlist and segments). Opening the replay page is one audit
entry (`session.replay`, `share.replay`) and starts a replay grant (in the signed session cookie) that
the playlist and segments are served under; a segment fetched without a grant opens one, audited the
same way, so no batch goes unrecorded. The grant only spares audit entries: the right to read is
checked at every request.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urljoin

from flask import Blueprint, Response, current_app, g, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence.crypto import open_segment
from evidence.errors import DecryptionError
from evidence.formats import segment_name
from storage.base import ObjectStore
from web import audit, custody, scope
from web import recordings as R
from web.auth import require_roles
from web.context import db_session, now_us, state
from web.errors import BadRequest, Conflict, NotFound
from web.models import RecordingSession, SessionSegment, SessionStatus
from web.scope import Need
from web.sessions import CONTENT_ROLES

bp = Blueprint("replay", __name__, url_prefix="/replay")
GRANT_S = 4 * 3600
REPLAY_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; media-src 'self' blob:; "
              "worker-src 'self' blob:; frame-ancestors 'none'; form-action 'self'")
NO_STORE = {"Cache-Control": "no-store, private", "Pragma": "no-cache"}


@dataclass(frozen=True)
class Reader:
    """Who replays: a user, or an outside party through a share (audit actor, action, grant key)."""

    actor: str
    action: str
    grant_key: str
    detail: dict[str, object]

    @staticmethod
    def user() -> Reader:
        return Reader(g.user.username, "session.replay", "", {})


def grant(row: RecordingSession, via: str, who: Reader) -> None:
    """Audit one replay of `row` by `who` unless a grant for it is still open."""
    t = now_us()
    key = who.grant_key + row.session_id
    grants = dict(session.get("replay", {}))
    if grants.get(key, 0) > t:
        return
    s = db_session()
    audit.append(s, at_us=t, actor=who.actor, action=who.action, target=row.session_id,
                 detail={"via": via, "verification": row.verification, **who.detail})
    s.commit()
    grants = {k: v for k, v in grants.items() if v > t}
    grants[key] = t + GRANT_S * 1_000_000
    session["replay"] = grants


def end_grant(row: RecordingSession, who: Reader) -> None:
    session.get("replay", {}).pop(who.grant_key + row.session_id, None)


def playable(row: RecordingSession) -> RecordingSession:
    if row.status == SessionStatus.RECORDING.value and row.disposed_at_us is None:
        # still recording (a live viewer's segments): read on from the records already checked
        R.refresh_recording(db_session(), R.store_of(state().config), row, now_us())
    else:
        R.ensure_verified(db_session(), state().config, row, now_us())
    if not row.segment_count:
        raise NotFound(f"session {row.session_id} has no verified segments to play yet")
    return row


def _playable(session_id: str) -> RecordingSession:
    return playable(scope.session_for(db_session(), session_id, Need.CONTENT).row)


def page_html(row: RecordingSession, who: Reader, viewer: str, playlist_url: str, back_url: str | None,
              extra: dict[str, Any] | None = None) -> Response:
    """The player page. A replay (not a live view, whose playlist grows) carries its playlist, the text that
    `playlist_url` serves: the player asks for the first segment as its script runs, one round trip (and one
    request's login and scope checks) sooner than after fetching the playlist (bench/replay.py)."""
    end_grant(row, who)
    grant(row, "page", who)
    extra = extra or {}
    # Pauses and interruptions for the scrubber: causes and times; the free-text reasons only to users (an
    # outside party's page carries no personal data beyond what the share shows).
    gaps = interruptions_of(db_session(), row, reasons=not who.grant_key)
    text = b"" if extra.get("live") else playlist_of(row)[0]
    # asked for by static/replay-first.js from the page's head, while the player's scripts still load
    first = next((line.decode() for line in text.split(b"\n", 16) if line and not line.startswith(b"#")), "")
    html = render_template("sessions/replay.html", row=row, failed=R.failed_rules(row), player=True,
                           media_map=json.dumps(media_map_of(row)), viewer=viewer,
                           interruptions=json.dumps(gaps, ensure_ascii=False), playlist=text.decode(),
                           first_entry=urljoin(playlist_url, first) if first else "",
                           playlist_url=playlist_url, back_url=back_url, **extra)
    headers = {"Content-Security-Policy": REPLAY_CSP, **NO_STORE}
    if text and request.accept_encodings["gzip"]:
        # ~100 KB of playlist for 8 hours (~10 KB gzipped). The page echoes nothing a request sends, so a
        # compressed body tells an eavesdropper nothing of the CSRF token (BREACH needs chosen text in it).
        return Response(gzip.compress(html.encode(), 6), mimetype="text/html",
                        headers={**headers, "Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
    return Response(html, headers=headers)


def interruptions_of(s: Session, row: RecordingSession, *, reasons: bool) -> list[dict[str, Any]]:
    """The session's pauses and interruptions ({start_us, end_us, cause, reason}): the signed manifest's, or
    while it records the pauses the station's events tell (pause ... resume; still open: end_us None)."""
    if row.manifest:
        found = [{"start_us": int(i["start_us"]), "end_us": i.get("end_us"), "cause": str(i.get("cause", "")),
                  "reason": str(i.get("reason", ""))} for i in json.loads(row.manifest).get("interruptions", [])]
    else:
        found = []
        for e in R.events_of(s, row.session_id):
            if e.kind == "pause":
                found.append({"start_us": e.at_us, "end_us": None, "cause": "pause", "reason": e.detail})
            elif e.kind == "resume" and found and found[-1]["end_us"] is None:
                found[-1]["end_us"] = e.at_us
    if not reasons:
        found = [{**i, "reason": ""} for i in found]
    return found


@bp.route("/<session_id>")
@require_roles(*CONTENT_ROLES)
def page(session_id: str) -> ResponseReturnValue:
    row = _playable(session_id)
    return page_html(row, Reader.user(), g.user.display_name, url_for("replay.playlist", session_id=session_id),
                     url_for("sessions.detail", session_id=session_id))


@bp.route("/<session_id>/index.m3u8")
@require_roles(*CONTENT_ROLES)
def playlist(session_id: str) -> ResponseReturnValue:
    return playlist_response(_playable(session_id), Reader.user())


def playlist_response(row: RecordingSession, who: Reader) -> Response:
    grant(row, "playlist", who)
    cached = playlist_of(row)
    headers = {**NO_STORE, "Vary": "Accept-Encoding"}
    if request.accept_encodings["gzip"]:
        return Response(cached[1], mimetype="application/vnd.apple.mpegurl",
                        headers={**headers, "Content-Encoding": "gzip"})
    return Response(cached[0], mimetype="application/vnd.apple.mpegurl", headers=headers)


_playlists: dict[tuple[str, int | None], tuple[bytes, bytes]] = {}
_media_maps: dict[tuple[str, int | None], list[list[int]]] = {}
KEPT_SESSIONS = 32


Kept = TypeVar("Kept")


def _keep(cache: dict[tuple[str, int | None], Kept], row: RecordingSession, value: Kept) -> Kept:
    """Keep what was made from a verified session's segment rows (write-once objects: it never changes while
    the verification stands), for the last KEPT_SESSIONS sessions of this worker; return it."""
    if row.verification == "verified" and row.status != SessionStatus.RECORDING.value:  # a live one still grows
        if len(cache) >= KEPT_SESSIONS:
            cache.pop(next(iter(cache)))
        cache[(row.session_id, row.verified_at_us)] = value
    return value


def playlist_of(row: RecordingSession) -> tuple[bytes, bytes]:
    """The session's replay playlist, plain and gzipped."""
    return _playlists.get((row.session_id, row.verified_at_us)) or _shared_playlist(row)


SHARED_PLAYLISTS = 512
"""Playlist files kept in the instance folder (the oldest removed beyond it): ~10 KB for 8 hours."""


def _shared_playlist(row: RecordingSession) -> tuple[bytes, bytes]:
    """The playlist, plain and gzipped (~100 KB of text for 8 hours, ~10 KB on the wire), made once per verified
    session for every worker of the server: the first worker writes it to `replay-playlists/` of the server's data
folder (IRMS_HOME, else the instance folder), the others
    read that file instead of the session's segment rows (14,400 for 8 hours: 80-460 ms of PostgreSQL on a loaded
    machine, which a first play waited for on each worker; bench/replay.py)."""
    cfg = state().config
    # (Not under test configurations, whose instance folder is the source tree's: the test below gives it a home.)
    shared = row.verification == "verified" and row.status != SessionStatus.RECORDING.value and not cfg.testing
    folder = cfg.data_dir(Path(current_app.instance_path)) / "replay-playlists"
    path = folder / f"{row.session_id}-{row.verified_at_us}-{R.PLAYLIST_FORM}.m3u8.gz"
    if shared:
        try:
            packed = path.read_bytes()
            return _keep(_playlists, row, (gzip.decompress(packed), packed))
        except (OSError, EOFError, gzip.BadGzipFile, zlib.error):
            pass  # not made yet (or cut short): made again below
    text = R.playlist(_segs(row)).encode()
    packed = gzip.compress(text, 6)
    if shared:
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            part = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.part")
            part.write_bytes(packed)
            os.replace(part, path)  # whole or absent for the other workers
            kept = sorted(folder.glob("*.m3u8.gz"), key=lambda p: p.stat().st_mtime)
            for old in kept[:-SHARED_PLAYLISTS]:
                old.unlink(missing_ok=True)
        except OSError as err:  # a cache: the playlist is served all the same
            current_app.logger.warning("replay playlist not kept in %s: %s", folder, err)
    return _keep(_playlists, row, (text, packed))


def media_map_of(row: RecordingSession) -> list[list[int]]:
    """The session's media map (web/recordings.py): the replay page and every markers poll (every 3 s) show it;
    an 8-hour session's 14,400 segment rows were read for it each time."""
    cached = _media_maps.get((row.session_id, row.verified_at_us))
    if cached is None:
        cached = _keep(_media_maps, row, R.media_map(_segs(row)))
    return cached


def _segs(row: RecordingSession) -> list[R.Seg]:
    rows = db_session().execute(SessionSegment.__table__.select().with_only_columns(
        SessionSegment.idx, SessionSegment.run, SessionSegment.start_us, SessionSegment.duration_us)
        .where(SessionSegment.session_pk == row.id).order_by(SessionSegment.idx)).all()
    return [R.Seg(i, r, a, d) for i, r, a, d in rows]


@bp.route("/<session_id>/seg/<int:idx>.ts")
@require_roles(*CONTENT_ROLES)
def segment(session_id: str, idx: int) -> ResponseReturnValue:
    check_index(idx)  # a bad request is told as such before anything is looked up
    return serve(_playable(session_id), idx, idx, Reader.user())


@bp.route("/<session_id>/seg/<int:first>-<int:last>.ts")
@require_roles(*CONTENT_ROLES)
def segments(session_id: str, first: int, last: int) -> ResponseReturnValue:
    """Consecutive segments of one run as one playlist entry: each checked and decrypted on its own, the
    plain MPEG-TS bytes concatenated (timestamps run on across segments, so they play as one)."""
    check_group(first, last)
    return serve(_playable(session_id), first, last, Reader.user())


def check_group(first: int, last: int) -> None:
    check_index(last)
    if not first < last < first + R.PLAYLIST_GROUP:
        raise NotFound(f"no playlist entry {first}-{last} (at most {R.PLAYLIST_GROUP} segments)")


MAX_INDEX = 2**31 - 1
"""Segment indexes are 32-bit in the store's records and the database."""


def check_index(last: int) -> None:
    if last > MAX_INDEX:
        raise BadRequest(f"segment index {last} is out of range (at most {MAX_INDEX})")


def serve(row: RecordingSession, first: int, last: int, who: Reader) -> Response:
    check_index(last)
    cfg = state().config
    s = db_session()
    session_id = row.session_id
    segs = s.scalars(select(SessionSegment).where(
        SessionSegment.session_pk == row.id, SessionSegment.idx >= first, SessionSegment.idx <= last)
        .order_by(SessionSegment.idx)).all()
    if len(segs) != last - first + 1:
        missing = sorted(set(range(first, last + 1)) - {x.idx for x in segs})[0]
        raise NotFound(f"session {session_id} has no verified segment {missing}")
    if len({x.run for x in segs}) != 1:
        raise NotFound(f"segments {first}-{last} of session {session_id} are not one run")
    grant(row, "segment", who)
    store = R.store_of(cfg)
    return Response(b"".join(_plain(s, store, row, seg, who.actor) for seg in segs), mimetype="video/mp2t",
                    headers=NO_STORE)


def custody_socket() -> Path:
    return state().config.resolved_custody_socket(Path(current_app.instance_path))


def _plain(s: Session, store: ObjectStore, row: RecordingSession, seg: SessionSegment, actor: str) -> bytes:
    """One segment read from the store, checked against its record, decrypted and checked again."""
    idx, session_id = seg.idx, row.session_id
    cipher = store.get(segment_name(row.prefix, idx))
    if len(cipher) != seg.cipher_size or hashlib.sha256(cipher).hexdigest() != seg.cipher_sha256:
        raise Conflict(f"segment {idx} in the store differs from its verified record (V06): not played")
    key = custody.data_key(store, row.prefix, session_id, seg.key_index, custody.KeyUse(actor, "replay"),
                           custody_socket())
    try:
        plain = open_segment(key, session_id, idx, cipher)
    except DecryptionError:
        raise Conflict(f"segment {idx} does not decrypt (V14): not played") from None
    if hashlib.sha256(plain).hexdigest() != seg.plain_sha256:
        raise Conflict(f"segment {idx} decrypts to other bytes than its record (V14): not played")
    return plain
