"""Owner-only homes: what a station's home (IRMS_HOME) and the web's instance folder hold (journal,
events, web database, keys, outbox, station.toml with the camera password) is for their owner alone.

Two halves: a process that writes there first sets its umask to 077, so every file and folder it
creates (SQLite's -wal and -shm included) is 0600 / 0700 from the first moment; and at start it
checks what is already there (`secure_tree`): anything open to the group or to others is made
owner-only with one warning line naming the path and its old mode, or, when that cannot be done,
refused with one error line.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from evidence.errors import IrmsError

OWNER_ONLY_UMASK = 0o077
SHOWN_ONE_BY_ONE = 10  # paths named on their own line; the rest are counted in one more line


class NotPrivate(IrmsError):
    """A file or folder open to other users that this process cannot make owner-only."""

    exit_code = 2


def owner_only_umask() -> int:
    """From now on this process creates files 0600 and folders 0700; returns the old umask."""
    return os.umask(OWNER_ONLY_UMASK)


@dataclass(frozen=True)
class Widened:
    """A path that was open to other users, and its mode before it was made owner-only."""

    path: Path
    old_mode: int

    def line(self, program: str) -> str:
        kind = "folder" if stat.S_ISDIR(self.old_mode) else "file"
        return (f"{program}: warning: {kind} {self.path} was open to other users (mode "
                f"{stat.S_IMODE(self.old_mode):04o}); made owner-only ({0o700 if kind == 'folder' else 0o600:04o})")


def _restrict(path: Path, st: os.stat_result) -> Widened | None:
    mode = stat.S_IMODE(st.st_mode)
    if not mode & 0o077:
        return None
    try:
        os.chmod(path, mode & 0o700, follow_symlinks=False)
    except OSError as err:
        raise NotPrivate(f"{path} is open to other users (mode {mode:04o}) and cannot be made owner-only: "
                         f"{err.strerror}; fix it as its owner (chmod go= {path}) or run as that user") from None
    return Widened(path, st.st_mode)


def secure_tree(root: Path) -> list[Widened]:
    """Make `root` and everything under it owner-only (symbolic links are left alone, not followed).

    Returns what had to be changed; raises NotPrivate naming the first path that cannot be.
    """
    try:
        st = os.lstat(root)
    except FileNotFoundError:
        return []
    if stat.S_ISLNK(st.st_mode):
        st = os.stat(root)
    fixed = [w for w in [_restrict(root, st)] if w]
    if not stat.S_ISDIR(st.st_mode):
        return fixed
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            try:
                entry = os.lstat(path)
            except FileNotFoundError:
                continue  # gone meanwhile (a spool file sealed and removed)
            if stat.S_ISLNK(entry.st_mode):
                continue
            w = _restrict(path, entry)
            if w:
                fixed.append(w)
    return fixed


def secure_files(paths: list[Path]) -> list[Widened]:
    """`secure_tree` for single files that may be elsewhere (an SQLite database and its -wal, -shm)."""
    out: list[Widened] = []
    for path in paths:
        out += secure_tree(path)
    return out


def warning_lines(fixed: list[Widened], program: str) -> list[str]:
    """One line per changed path, the first SHOWN_ONE_BY_ONE of them, then one line counting the rest."""
    lines = [w.line(program) for w in fixed[:SHOWN_ONE_BY_ONE]]
    if len(fixed) > SHOWN_ONE_BY_ONE:
        lines.append(f"{program}: warning: {len(fixed) - SHOWN_ONE_BY_ONE} more files and folders were open "
                     "to other users; made owner-only")
    return lines


def write_private(path: Path, data: bytes) -> None:
    """Create `path` (it must not exist) readable and writable by its owner only, from the first moment."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def private_database(path: Path) -> Path:
    """Create an SQLite database file 0600 before SQLite opens it (its -wal and -shm take its mode).
    A missing folder is left for SQLite to report."""
    with contextlib.suppress(FileExistsError, FileNotFoundError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
    return path
