"""The web's branch of the project error tree; each error carries its HTTP status."""

from __future__ import annotations

from evidence.errors import IrmsError


class WebError(IrmsError):
    """Something the web server refuses or cannot do; `str(err)` is shown to the user."""


class ConfigError(WebError):
    """The server configuration is missing or invalid."""

    exit_code = 2


class BadRequest(WebError):
    http_status = 400
    exit_code = 2


class Unauthenticated(WebError):
    """No valid credentials (login, or a station signature)."""

    http_status = 401


class Forbidden(WebError):
    """Authenticated, but not allowed (role, revoked station)."""

    http_status = 403


class ForeignClaim(Forbidden):
    """A station named a session or a room that is not its own: refused, and the refusal is audited.

    `action`, `actor`, `target` and `detail` are the audit entry the refusal is recorded with.
    """

    def __init__(self, message: str, *, action: str, actor: str, target: str, detail: dict[str, object]) -> None:
        super().__init__(message)
        self.action = action
        self.actor = actor
        self.target = target
        self.detail = detail


class NotFound(WebError):
    http_status = 404


class Conflict(WebError):
    """The request collides with what exists (a replayed nonce, a used code, a duplicate)."""

    http_status = 409


class TooManyAttempts(WebError):
    """Login throttling."""

    http_status = 429


class DatabaseError(WebError):
    """The database failed or is not at the expected schema."""

    http_status = 503
    exit_code = 4


class AuditBroken(WebError):
    """The audit log's hash chain does not verify."""

    exit_code = 1


class CustodyError(WebError):
    """No custodian key for a session, or the passphrase does not open it."""

    http_status = 503
    exit_code = 2


class StoreMissing(WebError):
    """No object store is configured (store_url), or it cannot be opened."""

    http_status = 503
    exit_code = 2
