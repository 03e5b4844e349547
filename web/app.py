"""The Flask application factory."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask, g, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy.exc import DataError, SQLAlchemyError
from werkzeug.exceptions import HTTPException

from evidence.errors import IrmsError
from web import i18n
from web.config import WebConfig, load_config
from web.context import IrmsState, lang, system_now_us
from web.db import Database
from web.errors import BadRequest, DatabaseError, Unauthenticated, WebError

if TYPE_CHECKING:
    pass


MAX_BODY = 256 * 1024
"""The largest request body the server reads (heartbeats, events, forms)."""


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/metrics" or (
        request.accept_mimetypes.best == "application/json")


class _HttpError(WebError):
    """A werkzeug HTTP error (404, 405...) carried through the one error handler."""


def render_error(err: IrmsError) -> ResponseReturnValue:
    """The one error handler: every IrmsError becomes its http_status, as JSON or a page."""
    status = err.http_status
    s = g.get("db_session")
    if s is not None:
        s.rollback()  # a failed flush leaves the request's session unusable: the page below reads g.user
    if wants_json():
        return jsonify({"error": type(err).__name__, "status": status, "message": str(err)}), status
    if isinstance(err, Unauthenticated) and request.endpoint != "auth.login":
        from web.auth import pending_page
        owed = pending_page()  # a login owing its second factor goes to that page
        if owed is not None and owed != request.path:
            return redirect(owed)
        return redirect(url_for("auth.login", next=request.path))
    return render_template("error.html", status=status, message=str(err),
                           status_text=i18n.status_text(status)), status


def create_app(config: WebConfig | None = None, *, clock: Callable[[], int] | None = None,
               database: Database | None = None, instance_path: str | None = None) -> Flask:
    """Build the app: config (TOML + env when not given), database, CSRF, blueprints, error handler."""
    config = config or load_config()
    app = Flask(__name__, instance_path=instance_path, instance_relative_config=False)
    db = database or Database(config.resolved_database_url(Path(app.instance_path)))
    from web.audit_anchor import AuditSigner
    from web.evidence import policy_of
    from web.heartbeat.http import HeartbeatDoor
    from web.heartbeat.ingest import HeartbeatIngest
    ingest = HeartbeatIngest(db, policy_of(config), config.request_window_s)
    if config.testing and not config.audit_key_path:
        signer = AuditSigner(Ed25519PrivateKey.generate())
    else:
        signer = AuditSigner.from_file(config.resolved_audit_key(Path(app.instance_path)))
    app.extensions["irms"] = st = IrmsState(config, db, clock or system_now_us, ingest, signer)
    door = HeartbeatDoor(lambda: st.clock(), config.heartbeat_interval_s, MAX_BODY, signer,
                         ingest.policy.as_json())
    app.extensions["irms.heartbeat_door"] = door
    app.wsgi_app = door.wsgi(app.wsgi_app, ingest)  # type: ignore[method-assign]
    app.config.update(
        SECRET_KEY=config.resolved_secret(Path(app.instance_path)),
        TESTING=config.testing,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.cookie_secure,
        PERMANENT_SESSION_LIFETIME=dt.timedelta(seconds=config.session_lifetime_s),
        WTF_CSRF_TIME_LIMIT=None,
        MAX_CONTENT_LENGTH=MAX_BODY,
    )
    csrf = CSRFProtect(app)
    # Gettext catalogues (web/translations): Flask-Babel picks the page's language for its gettext and the
    # Jinja i18n extension; `_` in templates stays web.i18n.translate (English ids, {name} parameters).
    from flask_babel import Babel

    from evidence import catalogue
    catalogue.ensure_compiled(i18n.TRANSLATIONS)
    Babel(app, locale_selector=lang, default_translation_directories=str(i18n.TRANSLATIONS))
    app.jinja_env.globals["_"] = lambda message, **p: i18n.translate(message, lang(), **p)

    from web.admin import bp as admin_bp
    from web.alerts import bp as alerts_bp
    from web.api import bp as api_bp
    from web.auth import bp as auth_bp
    from web.auth import load_user
    from web.dashboard import bp as coverage_bp
    from web.exports import bp as exports_bp
    from web.live import bp as live_bp
    from web.replay import bp as replay_bp
    from web.retention_pages import bp as retention_bp
    from web.rooms import bp as rooms_bp
    from web.sessions import bp as sessions_bp
    from web.shares import bp as shares_bp

    csrf.exempt(api_bp)  # stations sign their requests; people only GET here
    app.register_blueprint(auth_bp)
    app.register_blueprint(coverage_bp)
    app.register_blueprint(rooms_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(alerts_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(sessions_bp)
    app.register_blueprint(exports_bp)
    app.register_blueprint(replay_bp)
    app.register_blueprint(live_bp)
    app.register_blueprint(shares_bp)
    app.register_blueprint(retention_bp)

    @app.before_request
    def _load_user() -> None:
        load_user()

    @app.teardown_request
    def _close_session(_exc: BaseException | None) -> None:
        s = g.pop("db_session", None)
        if s is not None:
            s.close()

    @app.errorhandler(IrmsError)
    def _irms_error(err: IrmsError) -> ResponseReturnValue:
        return render_error(err)

    @app.errorhandler(CSRFError)
    def _csrf_error(err: CSRFError) -> ResponseReturnValue:
        return render_error(BadRequest(f"form refused: {err.description}"))

    @app.errorhandler(DataError)
    @app.errorhandler(OverflowError)
    def _unstorable(err: Exception) -> ResponseReturnValue:
        # A value from the request the database cannot hold (past 64 bits, NUL in text); checks where the
        # values are parsed come first (test_hostile_input fuzzes every page and body for what slips through).
        app.logger.warning("request value not storable: %s", str(err).splitlines()[0] if str(err) else type(err))
        return render_error(BadRequest("a value in the request is out of range or cannot be stored"))

    @app.errorhandler(SQLAlchemyError)
    def _db_error(err: SQLAlchemyError) -> ResponseReturnValue:
        app.logger.error("database error: %s", err)
        return render_error(DatabaseError("the database failed; the request was not stored"))

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException) -> ResponseReturnValue:
        e = _HttpError(err.description or err.name)
        e.http_status = err.code or 500
        return render_error(e)

    @app.context_processor
    def _template_helpers() -> dict[str, Any]:
        language = lang()
        tz = config.timezone
        return {
            "_": lambda message, **p: i18n.translate(message, language, **p),
            "lang": language,
            "fmt_time": lambda us, seconds=False: i18n.local_time(us, tz, seconds),
            "fmt_duration": i18n.duration,
            "event_text": lambda kind: i18n.event_text(kind, language),
            "end_reason_text": lambda reason: i18n.end_reason_text(reason, language),
            "cause_text": lambda cause: i18n.cause_text(cause, language),
            "rule_text": lambda rule: i18n.rule_text(rule, language),
            "action_text": lambda action: i18n.action_text(action, language),
            "event_detail_text": lambda kind, detail: i18n.event_detail_text(kind, detail, language),
            "percent": i18n.percent,
            "reason_text": lambda r: i18n.reason_text(r, language),
            "timezone": tz,
            "user": g.get("user"),
        }

    @app.after_request
    def _security_headers(resp: Any) -> Any:
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        resp.headers.setdefault("Content-Security-Policy",
                                "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                                "frame-ancestors 'none'; form-action 'self'")
        return resp

    return app
