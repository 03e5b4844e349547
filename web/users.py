"""Users: argon2 password hashes, roles, and login throttling."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from web import audit
from web.errors import BadRequest, Conflict, TooManyAttempts, Unauthenticated
from web.models import LoginFailure, Role, User

_hasher = PasswordHasher()
# Spent on unknown users too, so timing does not reveal which usernames exist.
_DUMMY_HASH = _hasher.hash("irms-not-a-password")
MIN_PASSWORD = 10


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def add_user(s: Session, *, username: str, display_name: str, role: str, password: str, actor: str,
             now_us: int, os_user: str | None = None) -> User:
    """Add a user; from the command line `os_user` (who ran it) goes into the audit entry."""
    if role not in {r.value for r in Role}:
        raise BadRequest(f"role {role!r} is not one of {', '.join(r.value for r in Role)}")
    if not username or len(username) > 100 or not username.replace(".", "").replace("_", "").replace(
            "-", "").isalnum():
        raise BadRequest("username must be letters, digits, '.', '_' or '-'")
    if len(password) < MIN_PASSWORD:
        raise BadRequest(f"password must have at least {MIN_PASSWORD} characters")
    if s.scalars(select(User).where(User.username == username)).first() is not None:
        raise Conflict(f"user {username} already exists")
    user = User(username=username, display_name=display_name or username, role=role,
                password_hash=hash_password(password), active=True, created_at_us=now_us)
    s.add(user)
    audit.append(s, at_us=now_us, actor=actor, action="user.add", target=username,
                 detail={"role": role, **({"os_user": os_user} if os_user else {})})
    s.flush()
    return user


def check_login(s: Session, *, username: str, password: str, ip: str, now_us: int, max_failures: int,
                window_s: int) -> User:
    """The user if the password is right; throttled per username and per address."""
    since = now_us - window_s * 1_000_000
    by_user = s.scalar(select(func.count()).select_from(LoginFailure).where(
        LoginFailure.username == username, LoginFailure.at_us >= since)) or 0
    by_ip = s.scalar(select(func.count()).select_from(LoginFailure).where(
        LoginFailure.ip == ip, LoginFailure.at_us >= since)) or 0
    if by_user >= max_failures or by_ip >= 4 * max_failures:
        raise TooManyAttempts(f"too many failed logins; try again in {window_s // 60} minutes")
    user = s.scalars(select(User).where(User.username == username)).first()
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
        ok = user is not None and user.active
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        ok = False
    if not ok or user is None:
        s.add(LoginFailure(username=username[:100], ip=ip[:64], at_us=now_us))
        audit.append(s, at_us=now_us, actor=username[:100] or "?", action="login.failed", target=ip[:64])
        s.commit()
        raise Unauthenticated("wrong username or password")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    audit.append(s, at_us=now_us, actor=user.username, action="login", target=ip[:64])
    return user
