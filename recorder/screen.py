"""The investigator's screen, served by the agent on the station itself.

It works with the central server and the store unreachable: everything it needs (the kit, the
journal, the spool) is on the station. The flow follows the law (R01-R06):

  case form (all fields required) -> pre-flight check (blocks on a failing device, too little disk,
  a clock too far off; warns when the store is away) -> "ĐANG GHI / RECORDING" with elapsed time,
  live preview and audio level -> pause and resume, each with a reason -> end -> annex to print.

The recording itself is `Recorder.record` in a background thread; requests only set its events
(`pause`, `resume`, `stop_requested`) and read the journal, so the screen never waits on it.
One session at a time: a station serves one room.
"""

from __future__ import annotations

import base64
import hmac
import logging
import re
import secrets
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask, Response, abort, g, jsonify, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response as BaseResponse

from evidence import catalogue
from evidence.canonical import canonical_json, parse_json_object
from evidence.catalogue import N_
from evidence.errors import IrmsError
from evidence.formats import CaseInfo
from recorder.advice import CALL_IT, STOPPED, advise
from recorder.clock import Clock, SystemClock
from recorder.config import MARKER_LABELS
from recorder.errors import PreflightRefused, RecorderError
from recorder.events import EventSender, attach_event_sender
from recorder.journal import Journal
from recorder.preflight import Check, DeviceProbe, PreflightReport, log_refusal, probe_kit, run_preflight
from recorder.probe import AudioThresholds
from recorder.screen_login import PinRefused, ScreenLogins
from recorder.session import Recorder
from verifier.annex import build_annex, local_time, manifest_sha256, utc_offset_label

log = logging.getLogger(__name__)

RecorderFactory = Callable[[], Recorder]
LANGS = ("vi", "en")
SID_RE = re.compile(r"^[0-9a-f-]{36}$")
MAX_LEN = {"case_number": 64, "suspect": 200, "interrogators": 1000, "legal_basis": 500, "reason": 500}

TRANSLATIONS = Path(__file__).resolve().parent / "translations"
"""The screen's gettext catalogues (recorder/translations/<lang>/LC_MESSAGES/messages.po); ids are English."""
MISSES = catalogue.Misses("station screen")


def translate(message: str, lang: str, **params: object) -> str:
    """`message` (English) in `lang`, `{name}` parameters filled in."""
    return catalogue.translate(TRANSLATIONS, MISSES, message, lang, **params)


LABELS = {
    "case_number": N_("Case number"),
    "suspect": N_("Suspect"),
    "interrogators": N_("Interrogators"),
    "legal_basis": N_("Legal basis"),
    "expected_minutes": N_("Expected length (minutes)"),
}
"""The case form's fields as error messages name them."""

ERRORS = {
    "reason_required": N_("A reason is required (it is announced and written in the minutes)."),
    "bad_marker": N_("That marker label is not in the unit's list."),
}
"""Errors a session page shows after a refused action (the key travels in the URL)."""

CAUSES = {
    "pause": N_("Pause"),
    "device_lost": N_("Device lost"),
    "crash": N_("Station crash"),
    "power": N_("Power cut"),
    "store_full": N_("Storage full"),
    "encoder_stall": N_("Encoder stalled"),
}

STATUS_TEXT = {
    400: N_("The request is not valid."),
    401: N_("Log in with the station PIN."),
    403: N_("This is not allowed."),
    404: N_("Not found: the session may have ended, or the address is wrong."),
    409: N_("This cannot be done now."),
    500: N_("The station could not do this."),
}
"""What an error page says first when the error carries no words of the screen's own."""

EXPIRED = N_("The pre-flight result is stale or unknown: check again.")
BUSY = N_("A session is already recording on this station.")


class ScreenError(RecorderError):
    """A request the screen refuses; the message is shown to the investigator."""

    http_status = 400


@dataclass
class ScreenSettings:
    site: str
    room: str
    clock_reference: str | None = None
    clock_tolerance_s: float = 2.0
    preflight_valid_s: float = 300.0
    ffmpeg: str = "ffmpeg"
    live_cache_s: float = 1.5
    device_probe: DeviceProbe = probe_kit
    clock_offset: Callable[[], float] | None = None
    clock: Clock = field(default_factory=SystemClock)
    pin_hash: str = ""
    """The argon2 hash of the station's screen PIN (recorder/screen_login.py); the screen refuses to start
    without one."""
    marker_labels: tuple[str, ...] = MARKER_LABELS
    """The labels a marker may have (station.toml `marker_labels`, the unit's list); a marker may have none."""
    support_contact: str = ""
    """Whom the investigator calls when the screen says "call the IT desk" (station.toml `support_contact`)."""
    hosts: tuple[str, ...] = ("127.0.0.1", "localhost", "[::1]")
    """The names the screen answers to (the Host header, port aside); any other is refused 403, so a web
    page elsewhere cannot reach the screen through a name it points at this station (DNS rebinding)."""


def host_name(host: str) -> str:
    """The Host header without its port ("[::1]:8765" -> "[::1]")."""
    host = host.strip().lower()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


@dataclass
class CaseForm:
    case_number: str = ""
    suspect: str = ""
    interrogators: str = ""
    legal_basis: str = ""
    expected_minutes: str = "120"

    def case(self) -> CaseInfo:
        people = tuple(p.strip() for p in re.split(r"[\n;]", self.interrogators) if p.strip())
        return CaseInfo(self.case_number.strip(), self.suspect.strip(), people, self.legal_basis.strip())

    def validate(self, lang: str) -> dict[str, str]:
        errors: dict[str, str] = {}
        for name in ("case_number", "suspect", "interrogators", "legal_basis"):
            value = getattr(self, name).strip()
            label = translate(LABELS[name], lang)
            if not value:
                errors[name] = translate("{field} is required.", lang, field=label)
            elif len(value) > MAX_LEN[name]:
                errors[name] = translate("{field} is too long (at most {n} characters).", lang, field=label,
                                         n=MAX_LEN[name])
        if "interrogators" not in errors and not self.case().interrogators:
            errors["interrogators"] = translate("{field} is required.", lang,
                                               field=translate(LABELS["interrogators"], lang))
        try:
            minutes = int(self.expected_minutes)
        except ValueError:
            minutes = 0
        if not 1 <= minutes <= 720:
            errors["expected_minutes"] = translate("Expected length must be a number of minutes from 1 to 720.",
                                                   lang)
        return errors


@dataclass
class Pending:
    """A passed pre-flight, waiting for the investigator to press Start."""

    token: str
    form: CaseForm
    report: PreflightReport
    recorder: Recorder
    at: float


@dataclass
class Active:
    """The session being recorded (or just ended) on this station."""

    recorder: Recorder
    session_id: str
    started_us: int
    case: CaseInfo
    thread: threading.Thread | None = None
    state: str = "recording"  # recording | ending | ended | failed
    end_reason: str = ""
    error: str = ""
    manifest_bytes: bytes | None = None
    pending_uploads: int | None = None
    warnings: list[Check] = field(default_factory=list)
    """The pre-flight's warnings (recording went ahead): shown in plain words while recording."""
    paused_since_us: int | None = None
    """When the investigator paused (station clock), for "paused for mm:ss"."""
    watchers: dict[str, str] = field(default_factory=dict)
    """Who watches live now, as the server last answered (view id -> "name, unit")."""


@dataclass
class LiveCache:
    at: float = 0.0
    jpeg: bytes | None = None
    level: dict[str, Any] = field(default_factory=dict)
    level_at: float = 0.0


class Screen:
    """The state behind the pages: one pending pre-flight, one active session, a journal reader."""

    def __init__(self, factory: RecorderFactory, settings: ScreenSettings, home: Path) -> None:
        self.factory = factory
        self.settings = settings
        self.home = home
        self.lock = threading.Lock()
        self.pending: Pending | None = None
        self.active: Active | None = None
        self.live = LiveCache()
        self.live_lock = threading.Lock()
        self._journal: Journal | None = None
        self._events: EventSender | None = None

    def journal(self) -> Journal:
        if self._journal is None:
            self._journal = Journal(self.home / "journal.db")
        return self._journal

    def server_url(self) -> str:
        """The server this station reports to: server_url (station.toml, IRMS_SERVER_URL), else the one it
        enrolled with (station.json); empty when it has none."""
        from recorder.config import load_config
        from recorder.heartbeat import read_station_file

        url = load_config(self.home).server_url
        if not url:
            data = read_station_file(self.home)
            url = str(data.get("server") or "") if data.get("enrolled") else ""
        return url.rstrip("/")

    # --- pre-flight and start ---------------------------------------------------------------

    def preflight(self, form: CaseForm) -> Pending | PreflightReport:
        """Run the checks; a pass becomes the pending start, a refusal is logged and returned."""
        rec = self.factory()
        s = self.settings
        clock_offset = s.clock_offset
        # The reference time: --clock-ref, else the Date header of the server this station reports to.
        server = self.server_url() if clock_offset is None and not s.clock_reference else ""
        ref = s.clock_reference or (server + "/login" if server else None)
        if clock_offset is None and ref:
            from recorder.probe import clock_offset_from_http

            reference: str = ref

            def clock_offset() -> float:
                return clock_offset_from_http(reference, clock=rec.clock, timeout_s=5.0)

        report = run_preflight(
            home=rec.station.home, profile=rec.profile, store=rec.store, clock=rec.clock,
            expected_seconds=int(form.expected_minutes) * 60, min_free_bytes=rec.settings.min_free_bytes,
            clock_offset=clock_offset, clock_tolerance_s=s.clock_tolerance_s, credentials=rec.settings.credentials,
            device_probe=s.device_probe,
        )
        if not report.allowed:
            self._refuse(report, form)
            rec.journal.close()
            return report
        pending = Pending(secrets.token_urlsafe(16), form, report, rec, time.monotonic())
        with self.lock:
            if self.pending is not None:
                self.pending.recorder.journal.close()
            self.pending = pending
        return pending

    def _refuse(self, report: PreflightReport, form: CaseForm) -> None:
        log_refusal(self.home, report, {"site": self.settings.site, "room": self.settings.room,
                                        "case_number": form.case_number.strip()})

    def start(self, token: str) -> Active:
        with self.lock:
            p = self.pending
            if p is None or not hmac.compare_digest(p.token, token) or \
                    time.monotonic() - p.at > self.settings.preflight_valid_s:
                raise ScreenError(EXPIRED)
            if self.active is not None and self.active.state in ("recording", "ending"):
                raise ScreenError(BUSY)
            self.pending = None
        rec = p.recorder
        # Session events also go to the server this station is enrolled with (queued while it is away).
        if self._events is None:
            self._events = attach_event_sender(rec, self.server_url(), site=self.settings.site,
                                               room=self.settings.room)
        else:
            rec.event_sink = self._events.sink
        if p.report.clock_offset_s is not None:
            rec.clock_offset_us = -round(p.report.clock_offset_s * 1e6)  # records hold station - reference
        for old in rec.recover():
            rec.close(old, "recovered_after_crash")
            log.warning("closed session %s left open by a crash", old)
        try:
            sid = rec.start(p.form.case(), None)
        except PreflightRefused as err:
            refused = PreflightReport((*p.report.checks, Check("recorder.preflight", "station", "block", str(err))),
                                      p.report.required_bytes, p.report.clock_offset_s, rec.clock.now_us())
            self._refuse(refused, p.form)
            rec.journal.close()
            raise
        active = Active(rec, sid, rec.journal.session(sid).started_at_us, p.form.case(),
                        warnings=list(p.report.warnings))
        active.thread = threading.Thread(target=self._record, args=(active,), name=f"session-{sid[:8]}",
                                         daemon=True)
        with self.lock:
            self.active = active
            self.live = LiveCache()
        if self._events is not None:  # ask the server who watches, while this session records
            self._events.on_watchers = self._on_watchers
            self._events.watching = sid
        active.thread.start()
        return active

    def _on_watchers(self, found: dict[str, dict[str, str]]) -> None:
        """The server's answer named who watches (the event sender's thread): shown, and written as events."""
        a = self.active
        if a is None or a.state != "recording":
            return
        viewers = found.get(a.session_id, {})
        a.watchers = viewers
        a.recorder.watched_by(viewers)

    def _record(self, a: Active) -> None:
        """The background thread: record until told to stop, close (manifest), then drain uploads."""
        rec = a.recorder
        try:
            reason = rec.record(a.session_id, None)
            if reason == "device_failure":
                a.error = f"the kit's devices delivered nothing: {rec.capture_failure}"
        except (IrmsError, OSError) as err:
            log.exception("session %s: recording failed", a.session_id)
            a.error = str(err)
            reason = "device_failure"
        a.state = "ending"
        if self._events is not None and self._events.watching == a.session_id:
            self._events.watching = None
        a.watchers = {}
        try:
            a.manifest_bytes = canonical_json(rec.close(a.session_id, reason))
        except (IrmsError, OSError) as err:
            log.exception("session %s: closing failed", a.session_id)
            a.error = str(err)
            a.state = "failed"
            return
        a.end_reason = reason
        a.state = "ended"
        try:
            a.pending_uploads = rec.finish_uploads()
        finally:
            rec.journal.close()

    def session(self, sid: str) -> Active:
        a = self.active
        if a is None or a.session_id != sid:
            abort(404)
        return a

    def stop_all(self, timeout: float = 60.0) -> None:
        """Stop and close the active session (the agent is shutting down)."""
        a = self.active
        if a is not None and a.thread is not None and a.thread.is_alive():
            a.recorder.stop_requested.set()
            a.thread.join(timeout)
        if self.pending is not None:
            self.pending.recorder.journal.close()
            self.pending = None

    # --- live view --------------------------------------------------------------------------

    def _segments(self, a: Active) -> list[Path]:
        base = a.recorder.station.spool / a.session_id
        files = [p for p in base.glob("run*/seg*.ts")]
        return sorted(files, key=lambda p: (p.parent.name, p.name), reverse=True)

    def _ffmpeg(self, args: list[str], timeout: float = 5.0) -> subprocess.CompletedProcess[bytes] | None:
        try:
            return subprocess.run([self.settings.ffmpeg, "-hide_banner", "-nostdin", *args], capture_output=True,
                                  timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as err:
            log.info("live view: ffmpeg failed: %s", err)
            return None

    def preview(self, a: Active) -> bytes | None:
        """A JPEG of the newest plain segment's first frame (at most a segment old); cached briefly.

        Plain segments are deleted as soon as they are sealed, so just after a cut the newest file
        may hold no whole frame yet: the last good picture is served meanwhile.
        """
        with self.live_lock:
            if self.live.jpeg is not None and time.monotonic() - self.live.at < self.settings.live_cache_s:
                return self.live.jpeg
            for path in self._segments(a)[:3]:
                proc = self._ffmpeg(["-v", "error", "-i", str(path), "-frames:v", "1", "-vf", "scale=640:-2",
                                     "-q:v", "5", "-f", "image2pipe", "-c:v", "mjpeg", "-"])
                if proc is not None and proc.returncode == 0 and proc.stdout[:2] == b"\xff\xd8":
                    self.live.jpeg, self.live.at = proc.stdout, time.monotonic()
                    break
            return self.live.jpeg

    def level(self, a: Active) -> dict[str, Any]:
        """RMS and peak level (dBFS) of the newest segment's audio, from ffmpeg's volumedetect."""
        with self.live_lock:
            if self.live.level and time.monotonic() - self.live.level_at < self.settings.live_cache_s:
                return self.live.level
            result: dict[str, Any] | None = None
            for path in self._segments(a)[:3]:
                proc = self._ffmpeg(["-v", "info", "-nostats", "-i", str(path), "-vn", "-af", "volumedetect",
                                     "-f", "null", "-"])
                if proc is None or proc.returncode != 0:
                    continue
                text = proc.stderr.decode("utf-8", "replace")
                mean = re.search(r"mean_volume:\s*(-?[\d.]+|-inf) dB", text)
                peak = re.search(r"max_volume:\s*(-?[\d.]+|-inf) dB", text)
                if mean:
                    result = {"dbfs": _db(mean.group(1)), "peak_dbfs": _db(peak.group(1)) if peak else None,
                              "segment": path.name}
                    break
            if result is not None:
                self.live.level, self.live.level_at = result, time.monotonic()
            # Between two segments the newest file may hold no audio yet: show the last level meanwhile.
            return self.live.level or {"dbfs": None, "peak_dbfs": None, "segment": None}


def _db(text: str) -> float:
    return -150.0 if text == "-inf" else max(-150.0, float(text))


# --- the Flask app ---------------------------------------------------------------------------------


def create_screen_app(recorder_factory: RecorderFactory, settings: ScreenSettings, *, home: Path,
                      secret_key: bytes | None = None) -> Flask:
    """The station screen. `recorder_factory` makes a fresh Recorder for each pre-flight/session."""
    app = Flask(__name__, template_folder="templates")
    app.secret_key = secret_key or secrets.token_bytes(32)
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict")
    app.jinja_env.autoescape = True
    screen = Screen(recorder_factory, settings, home)
    logins = ScreenLogins(settings.pin_hash, settings.clock.monotonic)
    app.extensions["irms_screen"] = screen
    app.extensions["irms_screen_logins"] = logins

    def lang() -> str:
        return str(g.get("lang", "vi"))

    def _(message: str, **params: object) -> str:
        return translate(message, lang(), **params)

    def csrf_token() -> str:
        if "csrf" not in session:
            session["csrf"] = secrets.token_urlsafe(32)
        return str(session["csrf"])

    @app.before_request
    def before() -> BaseResponse | None:
        chosen = request.cookies.get("irms_lang", "vi")
        g.lang = chosen if chosen in LANGS else "vi"
        if host_name(request.host) not in settings.hosts:
            log.warning("refused a request for host %r (the screen answers to %s)", request.host[:100],
                        ", ".join(settings.hosts))
            refusal = _("The station screen does not answer to this host name.")
            abort(403, description=f"{refusal} ({request.host[:100]})")
        g.logged_in = logins.valid(session.get("login"))
        if not g.logged_in and request.endpoint not in ("login_page", "log_in", "set_lang", "static"):
            if request.method == "GET" and not request.path.endswith((".json", ".jpg", ".pdf")):
                return redirect(url_for("login_page"))
            abort(401, description=_("Log in with the station PIN."))
        if request.method == "POST":
            sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
            expected = session.get("csrf")
            if not expected or not hmac.compare_digest(str(sent), str(expected)):
                log.warning("refused a POST to %s without a valid CSRF token", request.path)
                abort(400, description=_("The form expired or is not valid (CSRF): reload the page."))
        return None

    @app.context_processor
    def inject() -> dict[str, Any]:
        return {"_": _, "lang": lang(), "csrf_token": csrf_token, "site": settings.site, "room": settings.room,
                "local_time": local_time, "utc_label": utc_offset_label, "logged_in": g.get("logged_in", False),
                "advise": advise, "support_contact": settings.support_contact, "CALL_IT": CALL_IT,
                "cause_of": CAUSES, "stopped": STOPPED}

    def render(template: str, code: int = 200, **ctx: Any) -> tuple[str, int]:
        return render_template(template, **ctx), code

    @app.errorhandler(400)
    @app.errorhandler(401)
    @app.errorhandler(403)
    @app.errorhandler(404)
    @app.errorhandler(409)
    def http_error(err: Any) -> tuple[str, int]:
        # The screen's own refusals carry their (translated) words; werkzeug's stock English text goes behind
        # "details", after what the status means in the page's language.
        if err.description != type(err).description:
            return render("screen/error.html", err.code, message=err.description)
        return render("screen/error.html", err.code, message=_(STATUS_TEXT.get(err.code, STATUS_TEXT[400])),
                      detail=err.description)

    @app.errorhandler(IrmsError)
    def irms_error(err: IrmsError) -> tuple[str, int]:
        if isinstance(err, ScreenError):
            return render("screen/error.html", err.http_status, message=_(str(err)))
        if isinstance(err, PreflightRefused):
            refused = advise(Check("recorder.preflight", "station", "block", str(err)))
            return render("screen/error.html", 409, message=_(refused.problem), action=_(refused.action),
                          call=refused.call, detail=str(err))
        log.warning("screen: %s", err)
        return render("screen/error.html", err.http_status, message=_(STATUS_TEXT[500]), call=CALL_IT,
                      detail=str(err))

    @app.get("/lang/<code>")
    def set_lang(code: str) -> BaseResponse:
        back = request.referrer if request.referrer and request.referrer.startswith(request.host_url) else "/"
        resp = redirect(back)
        if code in LANGS:
            resp.set_cookie("irms_lang", code, max_age=365 * 86400, samesite="Strict")
        return resp

    @app.get("/login")
    def login_page() -> tuple[str, int]:
        return render("screen/login.html", error=None)

    @app.post("/login")
    def log_in() -> BaseResponse | tuple[str, int]:
        try:
            token = logins.log_in(request.form.get("pin", ""))
        except PinRefused as err:
            log.warning("screen login refused from %s: %s", request.remote_addr, err)
            message = _("Too many wrong PINs; try again in {wait} s.", wait=err.wait_s) if err.wait_s else \
                _("Wrong PIN.")
            return render("screen/login.html", err.http_status, error=message)
        session.clear()  # a new session: the CSRF token too
        session["login"] = token
        log.info("screen login from %s", request.remote_addr)
        return redirect(url_for("index"), code=303)

    @app.post("/logout")
    def log_out() -> BaseResponse:
        logins.log_out(session.get("login"))
        session.clear()
        return redirect(url_for("login_page"), code=303)

    @app.get("/")
    def index() -> BaseResponse | tuple[str, int]:
        a = screen.active
        if a is not None and a.state in ("recording", "ending"):
            return redirect(url_for("session_page", sid=a.session_id))
        return render("screen/form.html", form=CaseForm(), errors={}, last=a)

    @app.post("/preflight")
    def preflight() -> tuple[str, int]:
        form = CaseForm(**{k: request.form.get(k, "") for k in
                           ("case_number", "suspect", "interrogators", "legal_basis", "expected_minutes")})
        errors = form.validate(lang())
        if errors:
            return render("screen/form.html", 400, form=form, errors=errors, last=None)
        a = screen.active
        if a is not None and a.state in ("recording", "ending"):
            raise ScreenError(BUSY)
        result = screen.preflight(form)
        if isinstance(result, PreflightReport):
            return render("screen/preflight.html", 409, form=form, report=result, token=None, **view_of(result))
        return render("screen/preflight.html", form=form, report=result.report, token=result.token,
                      **view_of(result.report))

    def view_of(report: PreflightReport) -> dict[str, Any]:
        """The camera stills (data: URIs, no second request) and the sound levels the pre-flight took."""
        view = report.view
        stills = [(name, "data:image/jpeg;base64," + base64.b64encode(view.stills[name]).decode("ascii")
                   if name in view.stills else None) for name in view.cameras] if view else []
        levels = [(name, dbfs) for name, dbfs in sorted(view.levels.items())] if view else []
        return {"stills": stills, "levels": levels, "silence_dbfs": AudioThresholds().silence_dbfs}

    @app.post("/start")
    def start() -> BaseResponse:
        active = screen.start(request.form.get("token", ""))
        return redirect(url_for("session_page", sid=active.session_id), code=303)

    @app.get("/session/<sid>")
    def session_page(sid: str) -> tuple[str, int]:
        a = screen.session(sid)
        error = request.args.get("error")
        return render("screen/session.html", a=a, case=a.case, status=status_of(a), labels=settings.marker_labels,
                      error=ERRORS.get(error or ""), confirm_end=request.args.get("confirm") == "end")

    def status_of(a: Active) -> dict[str, Any]:
        rec = a.recorder
        j = screen.journal()
        with screen.lock:
            segments = len(j.segments(a.session_id, "sealed"))
            interruptions = j.interruptions(a.session_id)
            pending = j.pending_count(a.session_id)
            markers = [e for e in j.events(a.session_id) if e["kind"] == "marker"]
        state = a.state
        if state == "recording" and rec.paused:
            state = "paused"
        manifest = parse_json_object(a.manifest_bytes, "manifest") if a.manifest_bytes else None
        return {
            "session_id": a.session_id,
            "state": state,
            "pause_reason": rec.pause_reason if state == "paused" else None,
            "started_us": a.started_us,
            "server_now_us": rec.clock.now_us(),
            "ended_us": manifest["ended_at_us"] if manifest else None,
            "end_reason": a.end_reason,
            "segments": segments,
            "interruptions": interruptions,
            "pending_uploads": pending,
            "manifest_sha256": manifest_sha256(a.manifest_bytes) if a.manifest_bytes else None,
            "error": a.error,
            "warnings": [c.message for c in a.warnings],
            "paused_since_us": a.paused_since_us if state == "paused" else None,
            "uploads_settled": a.pending_uploads is not None,
            "markers": [{"at_us": m["at_us"], "label": m["detail"]} for m in markers],
            "watchers": sorted(a.watchers.values()),
        }

    @app.get("/session/<sid>/status.json")
    def status(sid: str) -> Response:
        return jsonify(status_of(screen.session(sid)))

    def back_with_error(sid: str, key: str) -> BaseResponse:
        return redirect(url_for("session_page", sid=sid, error=key), code=303)

    @app.post("/session/<sid>/pause")
    def pause(sid: str) -> BaseResponse:
        a = screen.session(sid)
        reason = request.form.get("reason", "").strip()
        if not reason or len(reason) > MAX_LEN["reason"]:
            return back_with_error(sid, "reason_required")
        if a.state == "recording" and not a.recorder.paused:
            a.recorder.pause(reason)
            a.paused_since_us = a.recorder.clock.now_us()
        return redirect(url_for("session_page", sid=sid), code=303)

    @app.post("/session/<sid>/resume")
    def resume(sid: str) -> BaseResponse:
        a = screen.session(sid)
        reason = request.form.get("reason", "").strip()
        if not reason or len(reason) > MAX_LEN["reason"]:
            return back_with_error(sid, "reason_required")
        if a.state == "recording" and a.recorder.paused:
            a.recorder.resume(reason)
            a.paused_since_us = None
        return redirect(url_for("session_page", sid=sid), code=303)

    @app.post("/session/<sid>/marker")
    def marker(sid: str) -> BaseResponse:
        """One key or button: a marker now, with an optional label from the unit's list (a signed event)."""
        a = screen.session(sid)
        label = request.form.get("label", "").strip()
        if label and label not in settings.marker_labels:
            return back_with_error(sid, "bad_marker")
        if a.state == "recording":
            a.recorder.mark(label)
        return redirect(url_for("session_page", sid=sid), code=303)

    @app.post("/session/<sid>/end")
    def end(sid: str) -> BaseResponse:
        """Ending takes two steps, without script: End asks, and only "Yes, end" (confirm=yes) ends."""
        a = screen.session(sid)
        if request.form.get("confirm") != "yes":
            return redirect(url_for("session_page", sid=sid, confirm="end"), code=303)
        a.recorder.stop_requested.set()
        return redirect(url_for("session_page", sid=sid), code=303)

    @app.get("/session/<sid>/preview.jpg")
    def preview(sid: str) -> Response:
        a = screen.session(sid)
        jpeg = screen.preview(a) if a.state == "recording" else screen.live.jpeg
        if jpeg is None:
            return Response(status=204)
        return Response(jpeg, mimetype="image/jpeg", headers={"Cache-Control": "no-store"})

    @app.get("/session/<sid>/level.json")
    def level(sid: str) -> Response:
        a = screen.session(sid)
        return jsonify(screen.level(a) if a.state == "recording" else {"dbfs": None, "peak_dbfs": None})

    @app.get("/session/<sid>/annex.pdf")
    def annex(sid: str) -> Response:
        if not SID_RE.match(sid):
            abort(404)
        j = screen.journal()
        with screen.lock:
            try:
                row = j.session(sid)
            except RecorderError:
                abort(404)
            manifest = j.manifest(sid)
            records = len(j.segments(sid))
        if manifest is None:
            abort(409, description=_("The session is not closed yet: the annex is printed after the end."))
        header = parse_json_object(row.header.encode(), "session header")
        pdf = build_annex(header, manifest.encode("utf-8"), records, generated_at_us=settings.clock.now_us())
        return Response(pdf, mimetype="application/pdf",
                        headers={"Content-Disposition": f'inline; filename="phu-luc-{sid}.pdf"'})

    return app
