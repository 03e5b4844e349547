"""Log in and out, the user's own password, language choice, and the role check every page and API call goes through.

A login is server-side (web/users.py): the signed cookie carries a random token (`sid`) and nothing
else of the account; each request looks the token up, so logout, disabling the user or a password
change refuse a copied cookie at once.

The client's address (login throttle, audit) is the connection's peer, unless the peer is one of
`trusted_proxies`: then X-Forwarded-For is read from the right, skipping the trusted proxies.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from functools import lru_cache, wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Blueprint, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import AnyOf, DataRequired, Length

from web import i18n
from web.context import db_session, now_us, state
from web.errors import BadRequest, Forbidden, TooManyAttempts, Unauthenticated
from web.models import Role
from web.users import Throttle, change_own_password, check_login, end_login, find_login, start_login

bp = Blueprint("auth", __name__)
F = TypeVar("F", bound=Callable[..., Any])

ALL_ROLES = tuple(r.value for r in Role)


class LoginForm(FlaskForm):
    username = StringField(validators=[DataRequired(), Length(max=100)])
    password = PasswordField(validators=[DataRequired(), Length(max=200)])


class PasswordForm(FlaskForm):
    current = PasswordField(validators=[DataRequired(), Length(max=200)])
    new = PasswordField(validators=[DataRequired(), Length(max=200)])
    again = PasswordField(validators=[DataRequired(), Length(max=200)])


class LanguageForm(FlaskForm):
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
    token = session.get("sid")
    if token is None:
        return
    found = find_login(db_session(), token, now_us()) if isinstance(token, str) else None
    if found is None:
        _keep_language(session.get("lang"))
        return
    g.user, g.login = found.user, found


def require_roles(*roles: str) -> Callable[[F], F]:
    """Refuse (401 without login, 403 with the wrong role) unless the user holds one of `roles`."""

    def deco(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            user = g.get("user")
            if user is None:
                raise Unauthenticated("log in first")
            if user.role not in roles:
                raise Forbidden(f"role {user.role} may not use {request.path}")
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

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
                               throttle=Throttle(cfg.login_max_failures, cfg.login_window_s, cfg.login_delay_s))
        except TooManyAttempts as err:
            error, status = str(err), err.http_status
        except Unauthenticated:
            error, status = i18n.translate("Wrong username or password.", lang_now()), 401
        else:
            token = start_login(s, user, ip=client_address(), now_us=now_us(), lifetime_s=cfg.session_lifetime_s)
            s.commit()
            _keep_language(session.get("lang"))
            session.permanent = True
            session["sid"] = token
            return redirect(_safe_next(request.args.get("next")))
    return render_template("login.html", form=form, error=error), status


def lang_now() -> str:
    from web.context import lang
    return lang()


@bp.route("/logout", methods=["POST"])
def logout() -> ResponseReturnValue:
    if g.get("login") is not None:
        s = db_session()
        end_login(s, g.login, now_us())
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
        if not form.validate_on_submit():
            field, messages = next(iter(form.errors.items()))
            raise BadRequest(f"{field}: {messages[0]}")
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
