"""Two-factor login: TOTP codes (RFC 6238, 30 s steps) and one-time recovery codes.

After the right password a user with a TOTP secret owes a code (or a recovery code); a user whose role is
in `totp_required_roles` and has no secret owes an enrolment first. Until then the login row is
pending (`LoginSession.stage`), lives `PENDING_S` and opens nothing.

A code is accepted for the time steps now-1, now and now+1 (clock drift), and only if its step is later
than the last one accepted for the user (`users.totp_last_step`, moved by one conditional UPDATE): a code
seen on the wire cannot be used again, on this node or another. Recovery codes are 20 random letters and
digits (about 99 bits), shown once; the database keeps their SHA-256, and one UPDATE marks one used.
Every enrolment, use of a recovery code and reset by an admin is an audit entry.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

import pyotp
import segno
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from web import audit
from web.db import rows_changed
from web.errors import BadRequest, Conflict, Unauthenticated
from web.models import LoginSession, RecoveryCode, User
from web.users import end_logins, token_hash

STEP_S = 30
DRIFT_STEPS = 1
PENDING_S = 600
"""A login waiting for its second factor (or enrolment) ends after this long."""
RECOVERY_CODES = 10
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i
_RECOVERY_LEN = 20


def stage_for(user: User, required_roles: tuple[str, ...]) -> str:
    """What a user owes after the right password: '' nothing, `code` a code, `enrol` an enrolment."""
    if user.totp_secret:
        return "code"
    return "enrol" if user.role in required_roles else ""


def _step_of(secret: str, code: str, now_us: int) -> int | None:
    """The time step (within the drift) whose code `code` is, or None."""
    totp = pyotp.TOTP(secret, interval=STEP_S)
    now_step = (now_us // 1_000_000) // STEP_S
    for step in (now_step, now_step - DRIFT_STEPS, now_step + DRIFT_STEPS):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def _claim_step(s: Session, user: User, step: int) -> bool:
    """Mark `step` used for `user`, atomically across nodes; False if it (or a later one) was used already."""
    done = rows_changed(s, update(User).where(User.id == user.id, or_(User.totp_last_step.is_(None),
                                                                      User.totp_last_step < step))
                        .values(totp_last_step=step).execution_options(synchronize_session=False))
    if done != 1:
        return False
    user.totp_last_step = step
    return True


def _is_totp(code: str) -> bool:
    return len(code) == 6 and code.isdigit()


def normalise(code: str) -> str:
    return "".join(ch for ch in code.lower() if ch.isalnum())


def _code_hash(code: str) -> str:
    return hashlib.sha256(normalise(code).encode()).hexdigest()


def check_code(s: Session, user: User, code: str, *, now_us: int, ip: str) -> str:
    """The second factor: a TOTP code or a recovery code; returns which (`totp` or `recovery`).

    Raises Unauthenticated for a wrong, replayed or used code (the caller counts it in the throttle)."""
    code = code.strip().replace(" ", "")
    if not user.totp_secret:
        raise Unauthenticated("no second factor is enrolled")
    if _is_totp(code):
        step = _step_of(user.totp_secret, code, now_us)
        if step is None:
            raise Unauthenticated("wrong code")
        if not _claim_step(s, user, step):
            raise Unauthenticated("this code was used already; wait for the next one")
        return "totp"
    if len(normalise(code)) != _RECOVERY_LEN:
        raise Unauthenticated("wrong code")
    used = rows_changed(s, update(RecoveryCode).where(
        RecoveryCode.user_id == user.id, RecoveryCode.code_hash == _code_hash(code), RecoveryCode.used_at_us.is_(None))
        .values(used_at_us=now_us).execution_options(synchronize_session=False))
    if used != 1:
        raise Unauthenticated("wrong code")
    left = recovery_left(s, user)
    audit.append(s, at_us=now_us, actor=user.username, action="totp.recovery_used", target=ip[:64],
                 detail={"recovery_codes_left": left})
    return "recovery"


def recovery_left(s: Session, user: User) -> int:
    return int(s.scalar(select(func.count()).select_from(RecoveryCode).where(
        RecoveryCode.user_id == user.id, RecoveryCode.used_at_us.is_(None))) or 0)


# --- enrolment -------------------------------------------------------------------------------------------------


def pending_secret(s: Session, user: User) -> str:
    """The secret offered for enrolment (made once, kept until confirmed or reset)."""
    if not user.totp_pending:
        user.totp_pending = pyotp.random_base32(32)
        s.flush()
    return user.totp_pending


def provisioning_uri(secret: str, username: str, issuer: str) -> str:
    return pyotp.TOTP(secret, interval=STEP_S).provisioning_uri(name=username, issuer_name=issuer)


def qr_data_uri(uri: str) -> str:
    """The otpauth URI as an SVG QR code (a data: URI; the pages' CSP allows data: images)."""
    return str(segno.make(uri, error="m").svg_data_uri(scale=5, border=2))


def _new_recovery_codes(s: Session, user: User, now_us: int) -> list[str]:
    s.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(_ALPHABET) for _ in range(_RECOVERY_LEN))
        codes.append("-".join(raw[i:i + 5] for i in range(0, _RECOVERY_LEN, 5)))
        s.add(RecoveryCode(user_id=user.id, code_hash=_code_hash(raw), created_at_us=now_us))
    return codes


def confirm_enrolment(s: Session, user: User, code: str, *, now_us: int, ip: str) -> list[str]:
    """The first code from the user's app confirms the pending secret; returns the recovery codes (shown once)."""
    if not user.totp_pending:
        raise BadRequest("no enrolment is under way; open the enrolment page first")
    code = code.strip().replace(" ", "")
    if not _is_totp(code):
        raise BadRequest("code: six digits from the authenticator app")
    step = _step_of(user.totp_pending, code, now_us)
    if step is None:
        raise Unauthenticated("wrong code; check the phone's clock and scan the code again")
    replaced = user.totp_secret is not None
    user.totp_secret, user.totp_pending, user.totp_enrolled_at_us = user.totp_pending, None, now_us
    user.totp_last_step = step
    codes = _new_recovery_codes(s, user, now_us)
    audit.append(s, at_us=now_us, actor=user.username, action="totp.enrol", target=ip[:64],
                 detail={"recovery_codes": len(codes), "replaced": replaced})
    return codes


def reset(s: Session, user: User, *, actor: str, now_us: int, os_user: str | None = None) -> int:
    """An admin takes away the user's second factor (lost phone): secret and recovery codes go, their logins
    end; a user whose role requires it enrols again at the next login. Returns the logins ended."""
    if not user.totp_secret and not user.totp_pending:
        raise Conflict(f"user {user.username} has no second factor to reset")
    user.totp_secret = user.totp_pending = None
    user.totp_last_step = user.totp_enrolled_at_us = None
    s.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    ended = end_logins(s, user, "totp_reset", now_us)
    audit.append(s, at_us=now_us, actor=actor, action="totp.reset", target=user.username,
                 detail={"logins_ended": ended, **({"os_user": os_user} if os_user else {})})
    return ended


def complete(s: Session, login: LoginSession, *, now_us: int, lifetime_s: int) -> str:
    """The second factor given: the pending login becomes a full one under a new token (returned for the cookie)."""
    token = secrets.token_urlsafe(32)
    login.token_hash = token_hash(token)
    login.stage = ""
    login.expires_at_us = now_us + lifetime_s * 1_000_000
    return token
