"""The verifier's branch of the project error tree."""

from __future__ import annotations

from evidence.errors import IrmsError
from storage.errors import ObjectNotFound


class VerificationError(IrmsError):
    """A recording failed verification; `findings` names every rule that failed."""

    exit_code = 1
    http_status = 422

    def __init__(self, message: str, findings: list[object] | None = None) -> None:
        super().__init__(message)
        self.findings = findings or []


class SessionNotFound(ObjectNotFound):
    """The store answers, but holds no object of the session asked for."""

    exit_code = 5
