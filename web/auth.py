"""Log in and out, the user's own password, language choice, and the role check every page and API call goes through.

A login is server-side (web/users.py): the signed cookie carries a random token (`sid`) and nothing
else of the account; each request looks the token up, so logout, disabling the user or a password
change refuse a copied cookie at once.

Two-factor (web/twofactor.py): after the right password a user who owes a TOTP code or an enrolment
gets a pending login (`g.pending`, no `g.user`) that opens only /login/code or /login/enrol; the
second factor turns it into a full login under a new token. Wrong codes count in the login throttle.

The client's address (login throttle, audit) is the connection's peer, unless the peer is one of
`trusted_proxies`: then X-Forwarded-For is read from the right, skipping the trusted proxies.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from functools import lru_cache, wraps
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlsplit

from flask import Blueprint, current_app, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from wtforms import PasswordField, StringField
from wtforms.validators import AnyOf, DataRequired, Length

from web import i18n, ldap_login
from web import twofactor as TF
from web.context import db_session, now_us, state
from web.errors import BadRequest, ConfigError, Forbidden, TooManyAttempts, Unauthenticated
from web.forms import CsrfForm
from web.models import Role
from web.users import (
    Login,
    Throttle,
    change_own_password,
    check_login,
    clear_failures,
    end_login,
    find_login,
    note_failure,
    refuse_if_throttled,
    start_login,
)

bp = Blueprint("auth", __name__)
P = ParamSpec("P")
R = TypeVar("R")

ALL_ROLES = tuple(r.value for r in Role)


class LoginForm(CsrfForm):
    username = StringField(validators=[DataRequired(), Length(max=100)])
    password = PasswordField(validators=[DataRequired(), Length(max=200)])


class PasswordForm(CsrfForm):
    current = PasswordField(validators=[DataRequired(), Length(max=200)])
    new = PasswordField(validators=[DataRequired(), Length(max=200)])
    again = PasswordField(validators=[DataRequired(), Length(max=200)])


class CodeForm(CsrfForm):
    code = StringField(validators=[DataRequired(), Length(max=40)])


class LanguageForm(CsrfForm):
    language = StringField(validators=[AnyOf(i18n.LANGUAGES)])


@lru_cache(maxsize=16)
def _networks(proxies: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def _trusted(addr: str, nets: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(addr.strip())
    except ValueError:
        return False
    return any(ip in n for n in nets)


def client_address() -> str:
    """The client's address: the peer, or (peer a trusted proxy) the nearest untrusted X-Forwarded-For hop."""
    peer = request.remote_addr or "?"
    nets = _networks(state().config.trusted_proxies)
    if not nets or not _trusted(peer, nets):
        return peer
    hops = [h.strip() for h in ",".join(request.headers.getlist("X-Forwarded-For")).split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, nets):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # a proxy we trust passed on garbage: the proxy is the best we know
    return hops[0] if hops else peer


def _keep_language(language: object) -> None:
    session.clear()
    if language:
        session["lang"] = language


def load_user() -> None:
    g.user = None
    g.login = None
    g.pending = None
    token = session.get("sid")
    if token is None:
        return
    found = find_login(db_session(), token, now_us()) if isinstance(token, str) else None
    if found is None:
        _keep_language(session.get("lang"))
        return
    if found.row.stage:
        g.pending = found  # the password was right; the second factor is owed
        return
    g.user, g.login = found.user, found


def pending_page() -> str | None:
    """Where a pending login must go next (its second-factor page), or None."""
    pending: Login | None = g.get("pending")
    if pending is None:
        return None
    return url_for("auth.enrol") if pending.row.stage == "enrol" else url_for("auth.second_factor")


def require_roles(*roles: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Refuse (401 without login, 403 with the wrong role) unless the user holds one of `roles`."""

    def deco(view: Callable[P, R]) -> Callable[P, R]:
        @wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            user = g.get("user")
            if user is None:
                raise Unauthenticated("log in first")
            if user.role not in roles:
                raise Forbidden(f"role {user.role} may not use {request.path}")
            return view(*args, **kwargs)

        return wrapper

    return deco


def _safe_next(target: str | None) -> str:
    if not target:
        return url_for("coverage.dashboard")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("coverage.dashboard")
    return target


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    form = LoginForm()
    error = None
    status = 200
    if form.validate_on_submit():
        cfg = state().config
        s = db_session()
        try:
            user = check_login(s, username=form.username.data or "", password=form.password.data or "",
                               ip=client_address(), now_us=now_us(),
                               throttle=Throttle(cfg.login_max_failures, cfg.login_window_s, cfg.login_delay_s),
                               directory=lambda name, pw: ldap_login.password_ok(cfg, name, pw))
        except (TooManyAttempts, ldap_login.DirectoryUnavailable, ConfigError) as err:
            if not isinstance(err, TooManyAttempts):
                current_app.logger.error("LDAP login of %r: %s", (form.username.data or "")[:100], err)
            error, status = str(err), (err.http_status if not isinstance(err, ConfigError) else 503)
        except Unauthenticated:
            error, status = i18n.translate("Wrong username or password.", lang_now()), 401
        else:
            stage = TF.stage_for(user, cfg.totp_required_roles)
            if not stage:
                clear_failures(s, user.username, client_address())
            token = start_login(s, user, ip=client_address(), now_us=now_us(), stage=stage,
                                lifetime_s=TF.PENDING_S if stage else cfg.session_lifetime_s)
            s.commit()
            _keep_language(session.get("lang"))
            session.permanent = True
            session["sid"] = token
            if stage:
                session["next"] = _safe_next(request.args.get("next"))
                return redirect(url_for("auth.enrol" if stage == "enrol" else "auth.second_factor"))
            return redirect(_safe_next(request.args.get("next")))
    return render_template("login.html", form=form, error=error), status


def _throttle() -> Throttle:
    cfg = state().config
    return Throttle(cfg.login_max_failures, cfg.login_window_s, cfg.login_delay_s)


def _finish(s: Any, pending: Login, method: str) -> ResponseReturnValue:
    """The second factor given: the full login, under a new token; on to the page first asked for."""
    t = now_us()
    token = TF.complete(s, pending.row, now_us=t, lifetime_s=state().config.session_lifetime_s)
    clear_failures(s, pending.user.username, client_address())
    from web import audit
    audit.append(s, at_us=t, actor=pending.user.username, action="login.second_factor", target=client_address()[:64],
                 detail={"method": method})
    s.commit()
    target = _safe_next(session.get("next"))
    _keep_language(session.get("lang"))
    session.permanent = True
    session["sid"] = token
    return redirect(target)


@bp.route("/login/code", methods=["GET", "POST"])
def second_factor() -> ResponseReturnValue:
    """The code from the authenticator app, or a recovery code, after the right password."""
    pending: Login | None = g.get("pending")
    if pending is None or pending.row.stage != "code":
        return redirect(pending_page() or url_for("auth.login"))
    form = CodeForm()
    error, status = None, 200
    if form.validate_on_submit():
        s = db_session()
        user, ip = pending.user, client_address()
        try:
            refuse_if_throttled(s, user.username, ip, now_us(), _throttle(), "wrong codes")
            method = TF.check_code(s, user, form.code.data or "", now_us=now_us(), ip=ip)
        except TooManyAttempts as err:
            error, status = str(err), err.http_status
        except Unauthenticated as err:
            s.rollback()
            note_failure(s, user.username, ip, now_us(), _throttle(), "login.code_failed")
            error, status = i18n.translate(str(err), lang_now()), 401
        else:
            return _finish(s, pending, method)
    elif request.method == "POST":
        error, status = i18n.translate("wrong code", lang_now()), 400
    return render_template("login_code.html", form=form, error=error), status


def _enrolling() -> tuple[Any, Login | None]:
    """The user enrolling: a pending login owing enrolment, or a full login (enrolling or renewing by choice)."""
    pending: Login | None = g.get("pending")
    if pending is not None and pending.row.stage == "enrol":
        return pending.user, pending
    if g.get("user") is not None:
        return g.user, None
    if pending is not None:
        raise Unauthenticated("give the code first")
    raise Unauthenticated("log in first")


@bp.route("/login/enrol", methods=["GET"])
def enrol() -> ResponseReturnValue:
    """Two-factor enrolment: the QR code (and the secret as text) for the authenticator app."""
    user, pending = _enrolling()
    return _enrol_page(user, pending, None, 200)


def _enrol_page(user: Any, pending: Login | None, error: str | None, status: int) -> ResponseReturnValue:
    s = db_session()
    secret = TF.pending_secret(s, user)
    s.commit()
    uri = TF.provisioning_uri(secret, user.username, state().config.totp_issuer)
    return render_template("enrol.html", form=CodeForm(), secret=secret, qr=TF.qr_data_uri(uri), error=error,
                           required=pending is not None, enrolled=bool(user.totp_secret)), status


@bp.route("/login/enrol", methods=["POST"])
def enrol_confirm() -> ResponseReturnValue:
    """The first code confirms the enrolment; the recovery codes are shown once."""
    user, pending = _enrolling()
    form = CodeForm()
    form.require_valid()
    s = db_session()
    ip = client_address()
    refuse_if_throttled(s, user.username, ip, now_us(), _throttle(), "wrong codes")
    try:
        codes = TF.confirm_enrolment(s, user, form.code.data or "", now_us=now_us(), ip=ip)
    except Unauthenticated as err:
        s.rollback()
        note_failure(s, user.username, ip, now_us(), _throttle(), "login.code_failed")
        return _enrol_page(user, pending, str(err), 400)
    if pending is not None:
        token = TF.complete(s, pending.row, now_us=now_us(), lifetime_s=state().config.session_lifetime_s)
        clear_failures(s, user.username, ip)
        target = _safe_next(session.get("next"))
        _keep_language(session.get("lang"))
        session.permanent = True
        session["sid"] = token
    else:
        target = url_for("auth.account")
    s.commit()
    return render_template("recovery_codes.html", codes=codes, target=target)


def lang_now() -> str:
    from web.context import lang
    return lang()


@bp.route("/logout", methods=["POST"])
def logout() -> ResponseReturnValue:
    current = g.get("login") or g.get("pending")
    if current is not None:
        s = db_session()
        end_login(s, current, now_us())
        s.commit()
    _keep_language(session.get("lang"))
    return redirect(url_for("auth.login"))


@bp.route("/account", methods=["GET", "POST"])
@require_roles(*ALL_ROLES)
def account() -> ResponseReturnValue:
    """The user's own password: the current one first; the user's other logins end."""
    form = PasswordForm()
    done = False
    if request.method == "POST":
        form.require_valid()
        if form.new.data != form.again.data:
            raise BadRequest("the new passwords differ")
        s = db_session()
        change_own_password(s, g.user, form.current.data or "", form.new.data or "", login=g.login.row,
                            now_us=now_us())
        s.commit()
        done = True
    return render_template("account.html", form=form, done=done)


@bp.route("/language", methods=["POST"])
def language() -> ResponseReturnValue:
    form = LanguageForm()
    if form.validate_on_submit():
        session["lang"] = form.language.data
    return redirect(_safe_next(request.referrer and urlsplit(request.referrer).path))
