"""The verifier's branch of the project error tree."""

from __future__ import annotations

from storage.errors import IrmsError, ObjectNotFound


class FormatError(IrmsError):
    """A document is not a well-formed IRMS evidence object."""

    exit_code = 2
    http_status = 400


class KeyError_(IrmsError):
    """A key file is missing, unreadable or of the wrong kind."""

    exit_code = 2


class DecryptionError(IrmsError):
    """Decryption failed. Deliberately opaque: it never says which byte was wrong."""

    exit_code = 1
    http_status = 403


class SignatureError(IrmsError):
    """A signature does not verify under the expected key."""

    exit_code = 1
    http_status = 401


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
