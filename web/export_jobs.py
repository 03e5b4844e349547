"""Sealed copies built in the background: one job per request, its progress, its file, its seal.

Today's export was built whole before its first byte (0.86 s for 3 minutes of recording, so about 140 s
of a blank browser for 8 hours). Now asking for a copy makes a job (`export_jobs`) and returns at once;
a builder thread in the web process claims queued jobs from the database and writes each as a zip
(`verifier.export.export_zip`: one pass over the store, the documents verified in a thread meanwhile,
every segment's ciphertext checked against its record as it is copied) to `<export_dir>/<job>.zip.part`, appended
only, then fsyncs it and renames it `<job>.zip`. The download streams the part file as it grows, so
the first bytes leave while the rest is built; the finished file is served with HTTP ranges (an
interrupted download resumes where it stopped).

A job is claimed with a lease (`LEASE_S`, renewed with every progress write); a job whose builder
died (its process killed) is taken over by the next builder that looks, and built again from the
start. Finished files are removed `export_keep_s` after they were sealed (`expired`); the job rows and
the audit entries (`session.export` when sealed, `session.export_failed`, `session.export_download`)
stay. The builder exits after `IDLE_S` without work and is started again by the next request.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
from pathlib import Path

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session

from evidence.errors import IrmsError
from verifier.export import export_zip
from web import audit
from web import recordings as R
from web.context import IrmsState
from web.db import rows_changed
from web.models import ExportJob, ExportJobState, RecordingSession

log = logging.getLogger(__name__)

LEASE_S = 60
"""A builder's claim on a job lasts this long past its last progress write."""
PROGRESS_EVERY_S = 0.5
"""Progress is written to the database at most this often (and at every step change)."""
IDLE_S = 10.0
"""The builder thread ends after this long without a job (the next request starts it again)."""

STEPS = ("checking", "copying", "sealing")

WORKER = f"{socket.gethostname()}:{os.getpid()}"


def part_path(export_dir: Path, job_id: int) -> Path:
    return export_dir / f"{job_id}.zip.part"


def final_path(export_dir: Path, job_id: int) -> Path:
    return export_dir / f"{job_id}.zip"


def archive_name(job: ExportJob) -> str:
    return f"irms-{job.session_id}-{job.label}.zip"


def percent(job: ExportJob) -> int:
    if job.state in (ExportJobState.DONE.value, ExportJobState.EXPIRED.value):
        return 100
    if not job.objects_total:
        return 0
    return min(99, job.objects_done * 100 // job.objects_total)


def progress_json(job: ExportJob) -> dict[str, object]:
    return {"id": job.id, "session_id": job.session_id, "label": job.label, "state": job.state, "step": job.step,
            "percent": percent(job), "objects_done": job.objects_done, "objects_total": job.objects_total,
            "bytes_written": job.bytes_written, "size": job.size, "sha256": job.sha256,
            "manifest_sha256": job.manifest_sha256, "segments": job.segments, "error": job.error}


def _claimable(now_us: int) -> ColumnElement[bool]:
    return or_(ExportJob.state == ExportJobState.QUEUED.value,
               (ExportJob.state == ExportJobState.RUNNING.value) & (ExportJob.lease_us < now_us))


def claim(s: Session, now_us: int, worker: str = WORKER) -> int | None:
    """Take the oldest queued job (or one whose builder's lease ran out) for `worker`; its id, or None."""
    for job_id in s.scalars(select(ExportJob.id).where(_claimable(now_us)).order_by(ExportJob.id).limit(5)):
        done = rows_changed(s, update(ExportJob).where(ExportJob.id == job_id, _claimable(now_us)).values(
            state=ExportJobState.RUNNING.value, step="checking", worker=worker, lease_us=now_us + LEASE_S * 1_000_000,
            started_us=now_us, objects_done=0, objects_total=0, bytes_written=0, error=""))
        s.commit()
        if done == 1:
            return int(job_id)
    return None


class Builder:
    """The process's builder of export jobs for one app (one thread at a time, started on demand)."""

    def __init__(self, st: IrmsState, instance_dir: Path) -> None:
        self.st = st
        self.instance_dir = instance_dir
        self.wake_up = threading.Event()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    @property
    def export_dir(self) -> Path:
        return self.st.config.resolved_export_dir(self.instance_dir)

    def wake(self) -> None:
        """Make sure a thread looks for work now."""
        self.wake_up.set()
        with self.lock:
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._loop, name="irms-export-builder", daemon=True)
                self.thread.start()

    def _loop(self) -> None:
        idle_since = time.monotonic()
        while time.monotonic() - idle_since < IDLE_S:
            try:
                with self.st.db.session() as s:
                    job_id = claim(s, self.st.clock())
                if job_id is None:
                    self._expire()
                    self.wake_up.wait(1.0)
                    self.wake_up.clear()
                    continue
                self.build(job_id)
            except Exception:  # noqa: BLE001 - the thread's boundary: log, never die silently with a job claimed
                log.exception("export builder: unexpected error")
                self.wake_up.wait(1.0)
                continue  # not work done: a builder whose database is gone ends after IDLE_S
            idle_since = time.monotonic()
        with self.lock:
            self.thread = None
        if self.wake_up.is_set():  # a job queued while this thread was ending
            self.wake()

    def build(self, job_id: int) -> None:
        """Build job `job_id` (claimed by this process) into its file; done and audited, or failed and audited."""
        cfg = self.st.config
        folder = self.export_dir
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        part, final = part_path(folder, job_id), final_path(folder, job_id)
        with self.st.db.session() as s:
            job = s.get(ExportJob, job_id)
            assert job is not None
            sid, label, who = job.session_id, job.label, job.requested_by
            row = s.scalars(select(RecordingSession).where(RecordingSession.session_id == sid)).one()
            opts = R.options_for(s, row)
        last_at, last_step = 0.0, ""

        def progress(step: str, done: int, total: int, written: int) -> None:
            nonlocal last_at, last_step
            now = time.monotonic()
            if step == last_step and now - last_at < PROGRESS_EVERY_S and done < total:
                return
            last_at, last_step = now, step
            with self.st.db.session() as ps:
                ps.execute(update(ExportJob).where(ExportJob.id == job_id, ExportJob.worker == WORKER).values(
                    step=step, objects_done=done, objects_total=total, bytes_written=written,
                    lease_us=self.st.clock() + LEASE_S * 1_000_000))

        try:
            with open(part, "wb") as f:
                os.fchmod(f.fileno(), 0o600)
                info = export_zip(R.store_of(cfg), sid, opts, f, label,
                                  dt.datetime.fromtimestamp(self.st.clock() / 1e6, dt.UTC), progress)
                f.flush()
                os.fsync(f.fileno())
            os.rename(part, final)
            fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except (IrmsError, OSError) as err:
            part.unlink(missing_ok=True)
            message = str(err).splitlines()[0] if str(err) else type(err).__name__
            with self.st.db.session() as s:
                job = s.get(ExportJob, job_id)
                assert job is not None
                job.state, job.step, job.error, job.finished_us = ExportJobState.FAILED.value, "", message[:2000], \
                    self.st.clock()
                audit.append(s, at_us=self.st.clock(), actor=who, action="session.export_failed", target=sid,
                             detail={"label": label, "job": job_id, "error": message[:300]})
            log.warning("export job %s of session %s failed: %s", job_id, sid, message)
            return
        with self.st.db.session() as s:
            job = s.get(ExportJob, job_id)
            assert job is not None
            t = self.st.clock()
            job.state, job.step, job.finished_us = ExportJobState.DONE.value, "", t
            job.size, job.sha256 = int(info["archive_size"]), str(info["archive_sha256"])
            job.manifest_sha256, job.segments = str(info["manifest_sha256"]), int(info["segments"])
            job.bytes_written = job.size
            job.objects_done = job.objects_total
            audit.append(s, at_us=t, actor=who, action="session.export", target=sid,
                         detail={"label": label, "job": job_id, "manifest_sha256": job.manifest_sha256,
                                 "segments": job.segments, "sha256": job.sha256, "size": job.size})

    def _expire(self) -> None:
        """Remove the files of copies sealed longer ago than `export_keep_s`.

        The job is marked expired (committed) before its file goes, so a job that says "done" always
        has its file; a file left by a process that died in between is removed by the next pass."""
        cutoff = self.st.clock() - self.st.config.export_keep_s * 1_000_000
        with self.st.db.session() as s:
            old = s.scalars(select(ExportJob).where(ExportJob.state == ExportJobState.DONE.value,
                                                    ExportJob.finished_us < cutoff)).all()
            for job in old:
                job.state = ExportJobState.EXPIRED.value
            s.commit()
            kept = {int(p.name.split(".", 1)[0]): p for p in self.export_dir.glob("*.zip")
                    if p.name.split(".", 1)[0].isdigit()} if self.export_dir.is_dir() else {}
            if kept:
                expired = s.scalars(select(ExportJob.id).where(ExportJob.id.in_(list(kept)),
                                                               ExportJob.state == ExportJobState.EXPIRED.value)).all()
                for job_id in expired:
                    kept[job_id].unlink(missing_ok=True)


def builder_of(st: IrmsState, instance_dir: Path, extensions: dict[str, object]) -> Builder:
    """The app's builder (made once per app)."""
    b = extensions.get("irms.export_builder")
    if not isinstance(b, Builder):
        b = extensions["irms.export_builder"] = Builder(st, instance_dir)
    return b
