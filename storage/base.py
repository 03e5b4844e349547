"""The object-store contract that every backend (file, s3) satisfies."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable


class LockMode(StrEnum):
    """S3 Object Lock retention modes: GOVERNANCE can be lifted by a user holding the bypass permission,
    COMPLIANCE by nobody, root included, before it ends."""

    GOVERNANCE = "GOVERNANCE"
    COMPLIANCE = "COMPLIANCE"


@dataclass(frozen=True)
class ObjectInfo:
    """What a store knows about one stored object; `retain_until` is a lock the store really applied
    (None on a store that enforces no retention)."""

    name: str
    size: int
    retain_until: dt.datetime | None = None


@dataclass(frozen=True)
class Retention:
    """An object's retention as the store enforces it."""

    until: dt.datetime
    mode: LockMode


@runtime_checkable
class ObjectStore(Protocol):
    """A flat namespace of immutable objects named by '/'-separated keys.

    Writes are idempotent: putting the same bytes under the same name again
    succeeds; putting different bytes under an existing name raises ObjectExists
    (evidence is write-once). `retain_until` asks the backend to lock the object
    (S3 Object Lock COMPLIANCE where the bucket has it).

    `enforces_retention` says whether the store can lock objects at all (an S3 bucket with Object Lock);
    where it cannot, `set_retention` and `set_legal_hold` raise RetentionUnsupported and nothing claims
    a lock that is not there. Retention is only ever extended: a shorter date is refused (RetentionRefused).
    """

    url: str

    @property
    def enforces_retention(self) -> bool:
        """Whether the store can lock objects at all (S3 with Object Lock)."""
        ...

    def put(self, name: str, data: bytes, *, retain_until: dt.datetime | None = None) -> ObjectInfo: ...

    def get(self, name: str) -> bytes: ...

    def stat(self, name: str) -> ObjectInfo: ...

    def exists(self, name: str) -> bool: ...

    def list(self, prefix: str = "") -> Iterator[str]: ...

    def delete(self, name: str) -> None: ...

    def retention(self, name: str) -> Retention | None:
        """The retention the store enforces on `name` now (None: none, or a store that enforces none)."""
        ...

    def set_retention(self, name: str, until: dt.datetime, mode: LockMode) -> Retention:
        """Extend `name`'s retention to `until` (never shorter; an equal or later one already there is kept)."""
        ...

    def legal_hold(self, name: str) -> bool: ...

    def set_legal_hold(self, name: str, on: bool) -> None: ...

    def ping(self) -> None:
        """Raise StoreUnavailable unless the store answers now."""
        ...
