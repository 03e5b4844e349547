"""Durable file writes: what the promise "nothing is lost" rests on.

create a temporary file with O_EXCL, write, fsync it, rename over the target,
fsync the directory. A crash at any point leaves either the old file or the new
one, never a torn one.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """fsync a directory so that a rename or create inside it survives a power cut."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durable(path: Path, data: bytes, *, mode: int = 0o600, replace: bool = True) -> None:
    """Write `data` to `path` atomically and durably.

    With `replace=False` an existing `path` is left alone and FileExistsError is raised.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    try:
        if replace:
            os.replace(tmp, path)
        else:
            # link() fails if the target exists: an atomic create-once.
            os.link(tmp, path)
            tmp.unlink()
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_file(path: Path) -> None:
    """fsync an existing file (a segment ffmpeg has just finished)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
