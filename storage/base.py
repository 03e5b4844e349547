"""The object-store contract that every backend (file, s3) satisfies."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class ObjectInfo:
    """What a store knows about one stored object."""

    name: str
    size: int
    retain_until: dt.datetime | None = None


@runtime_checkable
class ObjectStore(Protocol):
    """A flat namespace of immutable objects named by '/'-separated keys.

    Writes are idempotent: putting the same bytes under the same name again
    succeeds; putting different bytes under an existing name raises ObjectExists
    (evidence is write-once). `retain_until` asks the backend to lock the object
    (S3 Object Lock COMPLIANCE where the bucket has it).
    """

    url: str

    def put(self, name: str, data: bytes, *, retain_until: dt.datetime | None = None) -> ObjectInfo: ...

    def get(self, name: str) -> bytes: ...

    def stat(self, name: str) -> ObjectInfo: ...

    def exists(self, name: str) -> bool: ...

    def list(self, prefix: str = "") -> Iterator[str]: ...

    def delete(self, name: str) -> None: ...

    def ping(self) -> None:
        """Raise StoreUnavailable unless the store answers now."""
        ...
