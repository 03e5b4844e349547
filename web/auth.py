"""Log in and out, language choice, and the role check every page and API call goes through."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Blueprint, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import AnyOf, DataRequired, Length

from web import i18n
from web.app import db_session, now_us, state
from web.errors import Forbidden, TooManyAttempts, Unauthenticated
from web.models import Role, User
from web.users import check_login

bp = Blueprint("auth", __name__)
F = TypeVar("F", bound=Callable[..., Any])

ALL_ROLES = tuple(r.value for r in Role)


class LoginForm(FlaskForm):
    username = StringField(validators=[DataRequired(), Length(max=100)])
    password = PasswordField(validators=[DataRequired(), Length(max=200)])


class LanguageForm(FlaskForm):
    language = StringField(validators=[AnyOf(i18n.LANGUAGES)])


def load_user() -> None:
    g.user = None
    uid = session.get("uid")
    if uid is None:
        return
    user = db_session().get(User, uid)
    if user is None or not user.active or session.get("pw") != user.password_hash[-16:]:
        session.clear()
        return
    g.user = user


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
                               ip=request.remote_addr or "?", now_us=now_us(),
                               max_failures=cfg.login_max_failures, window_s=cfg.login_window_s)
        except TooManyAttempts as err:
            error, status = str(err), err.http_status
        except Unauthenticated:
            error, status = i18n.translate("Wrong username or password.", lang_now()), 401
        else:
            s.commit()
            language = session.get("lang")
            session.clear()
            session.permanent = True
            session["uid"] = user.id
            session["pw"] = user.password_hash[-16:]
            if language:
                session["lang"] = language
            return redirect(_safe_next(request.args.get("next")))
    return render_template("login.html", form=form, error=error), status


def lang_now() -> str:
    from web.app import lang
    return lang()


@bp.route("/logout", methods=["POST"])
def logout() -> ResponseReturnValue:
    language = session.get("lang")
    session.clear()
    if language:
        session["lang"] = language
    return redirect(url_for("auth.login"))


@bp.route("/language", methods=["POST"])
def language() -> ResponseReturnValue:
    form = LanguageForm()
    if form.validate_on_submit():
        session["lang"] = form.language.data
    return redirect(_safe_next(request.referrer and urlsplit(request.referrer).path))
