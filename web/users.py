"""Users and their logins: argon2 password hashes, roles, server-side login sessions, the login throttle.

A login is a row in `login_sessions`; the cookie carries only a random token whose SHA-256 the row
keeps (nothing of the password hash). Logout, disabling a user and a password change or reset end
the user's logins at once; every change to a user is an audit entry.

The throttle counts failed logins per (username, client address) in the database, so every server
node sees the same count: after `free` failures within the window each further attempt from that
address must wait a delay that doubles with each failure (up to the window). The right password
from another address is never held back by someone else's failures.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from web import audit
from web.db import rows_changed
from web.errors import BadRequest, Conflict, NotFound, TooManyAttempts, Unauthenticated
from web.models import LoginFailure, LoginRefusal, LoginSession, Role, User

_hasher = PasswordHasher()
# Spent on unknown users too, so timing does not reveal which usernames exist.
_DUMMY_HASH = _hasher.hash("irms-not-a-password")
MIN_PASSWORD = 10
ROLES = tuple(r.value for r in Role)
LDAP = "ldap"
"""auth_source of users whose password the unit's LDAP directory checks (web/ldap_login.py)."""
AUTH_SOURCES = ("local", LDAP)
NO_PASSWORD = "!ldap"
"""password_hash of a directory user: no password opens it (argon2 refuses it as a hash)."""
SEEN_EVERY_US = 60_000_000
"""A login's last_seen_us is written at most this often (not on every request)."""


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise BadRequest(f"password must have at least {MIN_PASSWORD} characters")
    if len(password) > 200:
        raise BadRequest("password must have at most 200 characters")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise BadRequest(f"role {role!r} is not one of {', '.join(ROLES)}")


def add_user(s: Session, *, username: str, display_name: str, role: str, password: str, actor: str,
             now_us: int, os_user: str | None = None, auth_source: str = "local") -> User:
    """Add a user; from the command line `os_user` (who ran it) goes into the audit entry. A directory user
    (`auth_source` ldap) has no password here."""
    _check_role(role)
    if auth_source not in AUTH_SOURCES:
        raise BadRequest(f"auth_source {auth_source!r} is not one of {', '.join(AUTH_SOURCES)}")
    if not username or len(username) > 100 or not username.replace(".", "").replace("_", "").replace(
            "-", "").isalnum():
        raise BadRequest("username must be letters, digits, '.', '_' or '-'")
    if auth_source != LDAP:
        _check_password(password)
    if s.scalars(select(User).where(User.username == username)).first() is not None:
        raise Conflict(f"user {username} already exists")
    user = User(username=username, display_name=display_name or username, role=role, auth_source=auth_source,
                password_hash=NO_PASSWORD if auth_source == LDAP else hash_password(password), active=True,
                created_at_us=now_us)
    s.add(user)
    audit.append(s, at_us=now_us, actor=actor, action="user.add", target=username,
                 detail={"role": role, **({"source": LDAP} if auth_source == LDAP else {}),
                         **({"os_user": os_user} if os_user else {})})
    s.flush()
    return user


def find_user(s: Session, username: str) -> User:
    user = s.scalars(select(User).where(User.username == username)).first()
    if user is None:
        raise NotFound(f"no user {username}")
    return user


def end_logins(s: Session, user: User, reason: str, now_us: int, keep: LoginSession | None = None) -> int:
    """End every open login of `user` (but `keep`) at once; returns how many."""
    q = update(LoginSession).where(LoginSession.user_id == user.id, LoginSession.ended_at_us.is_(None))
    if keep is not None:
        q = q.where(LoginSession.id != keep.id)
    return rows_changed(s, q.values(ended_at_us=now_us, end_reason=reason[:32]))


def set_active(s: Session, user: User, active: bool, *, actor: str, now_us: int) -> None:
    """Disable (ending every login at once) or enable a user."""
    if user.active == active:
        raise Conflict(f"user {user.username} is already {'enabled' if active else 'disabled'}")
    user.active = active
    ended = 0 if active else end_logins(s, user, "disabled", now_us)
    audit.append(s, at_us=now_us, actor=actor, action="user.enable" if active else "user.disable",
                 target=user.username, detail={} if active else {"logins_ended": ended})


def set_password(s: Session, user: User, password: str, *, actor: str, now_us: int, action: str = "user.password_reset",
                 keep: LoginSession | None = None) -> None:
    """A new password; every login of the user but `keep` ends at once."""
    if user.auth_source == LDAP:
        raise BadRequest(f"user {user.username} logs in with the LDAP directory: change the password there")
    _check_password(password)
    user.password_hash = hash_password(password)
    ended = end_logins(s, user, "password", now_us, keep)
    audit.append(s, at_us=now_us, actor=actor, action=action, target=user.username, detail={"logins_ended": ended})


def change_own_password(s: Session, user: User, current: str, new: str, *, login: LoginSession, now_us: int) -> None:
    """The user's own change: the current password first; the user's other logins end."""
    if user.auth_source == LDAP:
        raise BadRequest("you log in with the LDAP directory: change your password there")
    try:
        _hasher.verify(user.password_hash, current)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        raise BadRequest("the current password is wrong") from None
    set_password(s, user, new, actor=user.username, now_us=now_us, action="user.password_change", keep=login)


def generated_password() -> str:
    """A new random password (shown once to the admin who reset it)."""
    return "-".join(secrets.token_urlsafe(6) for _ in range(3))


def set_role(s: Session, user: User, role: str, *, actor: str, now_us: int) -> None:
    """A new role, in force from the user's next request (the role is read at each request)."""
    _check_role(role)
    if user.role == role:
        raise Conflict(f"user {user.username} already has role {role}")
    old, user.role = user.role, role
    audit.append(s, at_us=now_us, actor=actor, action="user.role", target=user.username,
                 detail={"from": old, "to": role})


# --- logins -------------------------------------------------------------------------------------------------


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def start_login(s: Session, user: User, *, ip: str, now_us: int, lifetime_s: int, stage: str = "") -> str:
    """A new login for `user`; returns the token for the cookie (only its hash is stored). A `stage` other
    than '' is a login still owing its second factor (web/twofactor.py)."""
    token = secrets.token_urlsafe(32)
    s.add(LoginSession(token_hash=token_hash(token), user_id=user.id, ip=ip[:64], created_at_us=now_us,
                       last_seen_us=now_us, expires_at_us=now_us + lifetime_s * 1_000_000, stage=stage))
    return token


@dataclass(frozen=True)
class Login:
    row: LoginSession
    user: User


def find_login(s: Session, token: str, now_us: int) -> Login | None:
    """The open, unexpired login of an active user the token names (a full one if `row.stage` is ''); None
    otherwise."""
    if not token or len(token) > 100:
        return None
    found = s.execute(select(LoginSession, User).join(User, User.id == LoginSession.user_id)
                      .where(LoginSession.token_hash == token_hash(token))).first()
    if found is None:
        return None
    row, user = found
    if row.ended_at_us is not None or row.expires_at_us <= now_us or not user.active:
        return None
    if now_us - row.last_seen_us >= SEEN_EVERY_US:
        row.last_seen_us = now_us
        s.commit()
    return Login(row, user)


def end_login(s: Session, login: Login, now_us: int) -> None:
    login.row.ended_at_us = now_us
    login.row.end_reason = "logout"
    audit.append(s, at_us=now_us, actor=login.user.username, action="logout", target=login.row.ip)


def open_logins(s: Session, now_us: int) -> dict[int, int]:
    """User id -> how many logins are open now."""
    rows = s.execute(select(LoginSession.user_id, func.count()).where(
        LoginSession.ended_at_us.is_(None), LoginSession.expires_at_us > now_us).group_by(LoginSession.user_id))
    return {int(u): int(n) for u, n in rows}


# --- the throttle ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Throttle:
    free: int
    """Failures allowed (per username and address) before delays start."""
    window_s: int
    """Failures older than this are forgotten."""
    delay_s: int
    """The first delay; it doubles with each further failure, up to window_s."""


def _wait_s(count: int, last_us: int | None, free: int, t: Throttle, now_us: int) -> int:
    if count < free or last_us is None:
        return 0
    delay_us: int = min(t.delay_s * 2 ** min(count - free, 40), t.window_s) * 1_000_000  # int ** int: typed as Any
    return max(0, math.ceil((last_us + delay_us - now_us) / 1_000_000))


def throttle_wait_s(s: Session, username: str, ip: str, now_us: int, t: Throttle) -> int:
    """Seconds this address must still wait before trying this username again (0: go ahead).

    Per (username, address) after `free` failures; per address alone (any username: password
    spraying) after 4 x `free`."""
    since = now_us - t.window_s * 1_000_000
    pair = s.execute(select(func.count(), func.max(LoginFailure.at_us)).where(
        LoginFailure.username == username, LoginFailure.ip == ip, LoginFailure.at_us >= since)).one()
    by_ip = s.execute(select(func.count(), func.max(LoginFailure.at_us)).where(
        LoginFailure.ip == ip, LoginFailure.at_us >= since)).one()
    return max(_wait_s(int(pair[0]), pair[1], t.free, t, now_us), _wait_s(int(by_ip[0]), by_ip[1], 4 * t.free, t,
                                                                          now_us))


def refuse_if_throttled(s: Session, username: str, ip: str, now_us: int, t: Throttle, what: str) -> None:
    """Raise TooManyAttempts if this address must still wait before trying `username` again.

    The refusal is audited (`login.throttled`: the name tried, the address, the wait), but only the first one
    from an address since its last counted failure: a guesser knocking while held back, with any names, adds
    one entry per failure it was allowed, so the audit shows the hammering without being flooded by it."""
    username, ip = username[:100], ip[:64]
    wait = throttle_wait_s(s, username, ip, now_us, t)
    if wait <= 0:
        return
    last_failure = s.execute(select(func.max(LoginFailure.at_us)).where(LoginFailure.ip == ip)).scalar() or 0
    audited = s.execute(select(LoginRefusal.id).where(LoginRefusal.ip == ip, LoginRefusal.at_us >= last_failure)
                        .limit(1)).first()
    if audited is None:
        s.add(LoginRefusal(username=username, ip=ip, at_us=now_us))
        audit.append(s, at_us=now_us, actor=username or "?", action="login.throttled", target=ip,
                     detail={"wait_s": wait})
        s.commit()
    raise TooManyAttempts(f"too many {what} from this address; try again in {wait} s")


def note_failure(s: Session, username: str, ip: str, now_us: int, throttle: Throttle, action: str) -> None:
    """A failed password or second-factor code: counted by the throttle, audited, committed at once."""
    s.add(LoginFailure(username=username[:100], ip=ip[:64], at_us=now_us))
    forgotten = now_us - throttle.window_s * 1_000_000
    s.execute(delete(LoginFailure).where(LoginFailure.at_us < forgotten))
    s.execute(delete(LoginRefusal).where(LoginRefusal.at_us < forgotten))
    audit.append(s, at_us=now_us, actor=username or "?", action=action, target=ip[:64])
    s.commit()


def clear_failures(s: Session, username: str, ip: str) -> None:
    """A login complete (password and any second factor): this address's failures for the user are forgotten."""
    s.execute(delete(LoginFailure).where(LoginFailure.username == username[:100], LoginFailure.ip == ip[:64]))


def check_login(s: Session, *, username: str, password: str, ip: str, now_us: int, throttle: Throttle,
                directory: Callable[[str, str], bool] | None = None) -> User:
    """The user if the password is right; throttled per (username, address) with a growing delay. The failures
    are forgotten (`clear_failures`) only once the login is complete: the right password does not reset the
    count a second-factor guesser runs up.

    A user whose auth_source is `ldap` is checked by `directory(username, password)` (web/ldap_login.py), and
    only if enabled here: a user disabled in IRMS is refused whatever the directory says."""
    username, ip = username[:100], ip[:64]
    refuse_if_throttled(s, username, ip, now_us, throttle, "failed logins")
    user = s.scalars(select(User).where(User.username == username)).first()
    if user is not None and user.auth_source == LDAP:
        ok = user.active and directory is not None and directory(username, password)
    else:
        try:
            _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
            ok = user is not None and user.active
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            ok = False
    if not ok or user is None:
        note_failure(s, username, ip, now_us, throttle, "login.failed")
        raise Unauthenticated("wrong username or password")
    if user.auth_source != LDAP and _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    audit.append(s, at_us=now_us, actor=user.username, action="login", target=ip,
                 detail={"source": LDAP} if user.auth_source == LDAP else None)
    return user
