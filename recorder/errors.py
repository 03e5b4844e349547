"""The recorder's branch of the project error tree."""

from __future__ import annotations

import errno
import sqlite3

from pydantic import ValidationError

from evidence.errors import IrmsError


def first_problem(err: ValidationError) -> str:
    """The first thing wrong in a strict model's input, as `field.path: message` for one error line."""
    first = err.errors()[0]
    return ".".join(str(p) for p in first["loc"]) + ": " + first["msg"]


class RecorderError(IrmsError):
    """Something the station cannot do; the message says what and where."""


class ProfileError(RecorderError):
    """A hardware profile is missing or invalid."""

    exit_code = 2


class ConfigError(RecorderError):
    """Station configuration or keys are missing or invalid."""

    exit_code = 2


class PreflightRefused(RecorderError):
    """A session was refused before it started (full disk, missing device...)."""

    exit_code = 5


class CaptureError(RecorderError):
    """ffmpeg could not be started or keeps failing."""

    exit_code = 6


class StationBusy(RecorderError):
    """Another irms-agent process owns this station home (its journal, spool and outbox)."""

    exit_code = 7


def disk_full(err: BaseException) -> bool:
    """Whether an OS or SQLite error means the station's disk (or its quota) is full."""
    if isinstance(err, OSError):
        return err.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(err, sqlite3.Error):
        return getattr(err, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(err)
    return False
