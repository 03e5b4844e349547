"""The embedded default store: a plain directory, written durably.

It enforces no retention and no legal hold: files are read-only (0440) but whoever has the directory
can delete them. It says so: `put` reports no lock, `set_retention` and `set_legal_hold` raise
RetentionUnsupported. Evidence that must be locked belongs in an S3 bucket with Object Lock.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

from evidence.durable import write_durable
from storage.base import LockMode, ObjectInfo, Retention
from storage.errors import (
    ObjectExists,
    ObjectNotFound,
    RetentionUnsupported,
    StoreConfigError,
    StoreError,
    StoreUnavailable,
)


def check_name(name: str) -> str:
    """Refuse object names that could escape the store or are not canonical."""
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise StoreConfigError(f"invalid object name {name!r}")
    return name


class FileStore:
    """Objects as files under `root`; `put` is create-once and fsynced. No retention, no legal hold."""

    enforces_retention = False

    def __init__(self, root: Path, *, create: bool = True) -> None:
        """`create=False` opens an existing directory only (readers such as the verifier create nothing)."""
        self.root = root.resolve()
        self.url = f"file://{self.root}"
        if not create and not self.root.is_dir():
            raise StoreUnavailable(f"store unreachable: {self.root} is not an existing directory")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreConfigError(f"cannot create file store at {self.root}: {err.strerror}") from err
        if not self.root.is_dir():
            raise StoreConfigError(f"file store {self.root} is not a directory")

    def _path(self, name: str) -> Path:
        return self.root / check_name(name)

    def put(self, name: str, data: bytes, *, retain_until: dt.datetime | None = None) -> ObjectInfo:
        path = self._path(name)
        try:
            write_durable(path, data, mode=0o440, replace=False)
        except FileExistsError:
            if path.read_bytes() != data:
                raise ObjectExists(f"object {name} already exists with other content") from None
        except OSError as err:
            raise StoreUnavailable(f"cannot write {name} to {self.root}: {err.strerror}") from err
        return ObjectInfo(name=name, size=len(data))  # retain_until: not applied, so not reported

    def get(self, name: str) -> bytes:
        try:
            return self._path(name).read_bytes()
        except FileNotFoundError:
            raise ObjectNotFound(f"object {name} not found in {self.url}") from None
        except OSError as err:
            raise StoreError(f"cannot read {name}: {err.strerror}") from err

    def stat(self, name: str) -> ObjectInfo:
        try:
            st = self._path(name).stat()
        except FileNotFoundError:
            raise ObjectNotFound(f"object {name} not found in {self.url}") from None
        return ObjectInfo(name=name, size=st.st_size)

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()

    def list(self, prefix: str = "") -> Iterator[str]:
        names: list[str] = []
        for dirpath, _dirs, files in os.walk(self.root):
            for f in files:
                if f.startswith("."):
                    continue
                rel = os.path.relpath(os.path.join(dirpath, f), self.root).replace(os.sep, "/")
                if rel.startswith(prefix):
                    names.append(rel)
        yield from sorted(names)

    def delete(self, name: str) -> None:
        try:
            self._path(name).unlink()
        except FileNotFoundError:
            raise ObjectNotFound(f"object {name} not found in {self.url}") from None

    def _unsupported(self, what: str) -> RetentionUnsupported:
        return RetentionUnsupported(f"file store {self.root} enforces no retention or legal hold: cannot {what}; "
                                    "use an S3 store with Object Lock")

    def retention(self, name: str) -> Retention | None:
        self.stat(name)
        return None

    def set_retention(self, name: str, until: dt.datetime, mode: LockMode) -> Retention:
        raise self._unsupported(f"retain {name}")

    def legal_hold(self, name: str) -> bool:
        self.stat(name)
        return False

    def set_legal_hold(self, name: str, on: bool) -> None:
        raise self._unsupported(f"{'place' if on else 'lift'} a legal hold on {name}")

    def ping(self) -> None:
        if not self.root.is_dir() or not os.access(self.root, os.W_OK):
            raise StoreUnavailable(f"file store {self.root} is not a writable directory")
