"""The prosecutor's sealed copies as background jobs (web/export_jobs.py builds them): ask, follow, download.

- `POST /sessions/<id>/exports` (form `label`: case-file | procuracy-file): a job for a verified session in
  the prosecutor's content scope; answered at once by a redirect to the job's page.
- `/exports/` the prosecutor's own jobs: progress, state, the seal (SHA-256 of the zip and of the manifest).
- `/exports/<n>` one job's page (progress follows itself, static/exports.js), `/exports/<n>.json` its progress.
- `/exports/<n>/download`: while it is built, the bytes written so far and then the rest as they come
  (no length known: no ranges); once sealed, the file with its length, ETag and HTTP ranges (resumable).

Only the prosecutor who asked for a copy sees its job, and only while the session is still in their
content scope (web/scope.py, asked at every request): another prosecutor, or one whose scope changed,
gets 404 as for a job that does not exist.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

from flask import Blueprint, Response, current_app, g, jsonify, redirect, render_template, request, send_file, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from web import audit, i18n, scope
from web import export_jobs as J
from web.auth import require_roles
from web.context import db_session, lang, now_us, state
from web.errors import BadRequest, Conflict, NotFound
from web.models import ExportJob, ExportJobState, RecordingSession
from web.scope import Need
from web.sessions import CONTENT_ROLES, EXPORT_LABELS

bp = Blueprint("exports", __name__)
STREAM_POLL_S = 0.2
"""While a copy is built, its download looks for new bytes this often."""


def export_dir() -> Path:
    return state().config.resolved_export_dir(Path(current_app.instance_path))


def builder() -> J.Builder:
    return J.builder_of(state(), Path(current_app.instance_path), current_app.extensions)


@bp.route("/sessions/<session_id>/exports", methods=["POST"])
@require_roles(*CONTENT_ROLES)
def create(session_id: str) -> ResponseReturnValue:
    label = request.form.get("label", "")
    if label not in EXPORT_LABELS:
        raise BadRequest(f"no export copy {label[:40]!r} (case-file or procuracy-file)")
    s = db_session()
    row = scope.session_for(s, session_id, Need.CONTENT).row
    from web import recordings as R
    R.check_not_disposed(row)
    R.ensure_verified(s, state().config, row, now_us())
    if row.verification != "verified":
        raise Conflict(f"session {session_id} is {row.verification or 'not verified yet'}: a sealed copy needs a "
                       "verified session")
    t = now_us()
    job = ExportJob(session_id=session_id, label=label, requested_by=g.user.username, created_us=t,
                    state=ExportJobState.QUEUED.value, step="", worker="", lease_us=0, objects_done=0,
                    objects_total=0, bytes_written=0, sha256="", manifest_sha256="", error="")
    s.add(job)
    s.flush()
    audit.append(s, at_us=t, actor=g.user.username, action="session.export_requested", target=session_id,
                 detail={"label": label, "job": job.id})
    s.commit()
    builder().wake()
    return redirect(url_for("exports.job", job_id=job.id))


def _job(job_id: int) -> tuple[ExportJob, RecordingSession, bool]:
    """The user's own job, its session in their content scope (404 otherwise), and whether personal data shows."""
    s = db_session()
    job = s.get(ExportJob, job_id)
    if job is None or job.requested_by != g.user.username:
        raise NotFound(f"no export job {job_id}")
    try:
        seen = scope.session_for(s, job.session_id, Need.CONTENT)
    except NotFound:
        raise NotFound(f"no export job {job_id}") from None
    if job.state in (ExportJobState.QUEUED.value, ExportJobState.RUNNING.value):
        builder().wake()  # a job whose builder died is taken over by this process's builder
    return job, seen.row, seen.personal


@bp.route("/exports/")
@require_roles(*CONTENT_ROLES)
def index() -> ResponseReturnValue:
    s = db_session()
    sc = scope.current(s)
    jobs = s.scalars(select(ExportJob).where(ExportJob.requested_by == g.user.username)
                     .order_by(ExportJob.id.desc()).limit(200)).all()
    rows = {r.session_id: r for r in s.scalars(select(RecordingSession).where(
        RecordingSession.session_id.in_({j.session_id for j in jobs}), scope.session_filter(sc, Need.CONTENT)))}
    units = scope.units_of(s, list(rows.values()))
    shown = [(j, rows[j.session_id], scope.shows_personal(sc, units.get(j.session_id), rows[j.session_id].case_number))
             for j in jobs if j.session_id in rows]
    if any(j.state in (ExportJobState.QUEUED.value, ExportJobState.RUNNING.value) for j, _, _ in shown):
        builder().wake()
    return render_template("sessions/exports.html", jobs=shown, percent=J.percent, words=_words())


@bp.route("/exports/<int:job_id>")
@require_roles(*CONTENT_ROLES)
def job(job_id: int) -> ResponseReturnValue:
    job, row, personal = _job(job_id)
    return render_template("sessions/export_job.html", job=job, row=row, personal=personal, percent=J.percent,
                           name=J.archive_name(job), words=_words())


def _words() -> str:
    """The job states and steps in the page's language, for static/exports.js."""
    language = lang()
    return json.dumps({w: i18n.translate(w, language) for w in (*[x.value for x in ExportJobState], *J.STEPS)},
                      ensure_ascii=False)


@bp.route("/exports/<int:job_id>.json")
@require_roles(*CONTENT_ROLES)
def progress(job_id: int) -> ResponseReturnValue:
    job, _, _ = _job(job_id)
    return jsonify(J.progress_json(job)), 200, {"Cache-Control": "no-store"}


@bp.route("/exports/<int:job_id>/download")
@require_roles(*CONTENT_ROLES)
def download(job_id: int) -> ResponseReturnValue:
    job, _, _ = _job(job_id)
    if job.state == ExportJobState.FAILED.value:
        raise Conflict(f"export job {job_id} failed: {job.error}")
    if job.state == ExportJobState.EXPIRED.value:
        raise NotFound(f"the sealed copy of export job {job_id} was removed after its keeping time: ask again")
    rng = request.range
    if rng is None or (rng.ranges and rng.ranges[0][0] == 0):  # a download begins (a resumed one is not another)
        s = db_session()
        audit.append(s, at_us=now_us(), actor=g.user.username, action="session.export_download",
                     target=job.session_id, detail={"label": job.label, "job": job.id, "sha256": job.sha256})
        s.commit()
    headers = {"Cache-Control": "no-store, private", "X-IRMS-Export-State": job.state}
    final = J.final_path(export_dir(), job.id)
    if job.state == ExportJobState.DONE.value:
        resp = send_file(final, mimetype="application/zip", as_attachment=True, download_name=J.archive_name(job),
                         conditional=True, etag=job.sha256, max_age=0)
        resp.headers.update(headers)
        resp.headers["X-IRMS-Export-SHA256"] = job.sha256
        return resp
    return Response(_follow(state(), builder(), export_dir(), job.id), mimetype="application/zip", headers={
        **headers, "Content-Disposition": f'attachment; filename="{J.archive_name(job)}"'})


def _follow(st: object, b: J.Builder, folder: Path, job_id: int, chunk: int = 1 << 20) -> Iterator[bytes]:
    """The copy's bytes as they are written: the part file followed to its end, then whatever the sealed file
    adds (the rename keeps the open file). A failed build ends the stream early: the client sees a cut download."""
    from web.context import IrmsState
    assert isinstance(st, IrmsState)
    part, final = J.part_path(folder, job_id), J.final_path(folder, job_id)
    f = None
    sent = 0
    try:
        while True:
            if f is None:
                for path in (part, final):
                    try:
                        f = open(path, "rb")  # noqa: SIM115 - kept open across yields, closed below
                        break
                    except FileNotFoundError:
                        continue
            data = f.read(chunk) if f is not None else b""
            if data:
                sent += len(data)
                yield data
                continue
            with st.db.session() as s:
                job = s.get(ExportJob, job_id)
                state_now, size = (job.state, job.size) if job is not None else (ExportJobState.FAILED.value, None)
            if state_now == ExportJobState.DONE.value and f is not None:
                rest = f.read()
                if rest:
                    sent += len(rest)
                    yield rest
                if size is not None and sent != size:
                    raise Conflict(f"export job {job_id}: {sent} bytes sent, the sealed copy has {size}")
                return
            if state_now in (ExportJobState.FAILED.value, ExportJobState.EXPIRED.value):
                raise Conflict(f"export job {job_id} did not complete: the download is cut short")
            b.wake()  # cheap when a builder runs; starts one if the last ended meanwhile
            time.sleep(STREAM_POLL_S)
    finally:
        if f is not None:
            f.close()
