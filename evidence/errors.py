"""The project's one error root, and the errors of reading evidence formats.

`IrmsError` lives here because `evidence` is the bottom package every other package imports;
each package derives its own branch from it (storage.errors, verifier.errors, recorder.errors, web.errors).
"""

from __future__ import annotations


class IrmsError(Exception):
    """Root of every error IRMS raises on purpose. `str(err)` is one clear line."""

    exit_code = 1
    http_status = 500


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
