"""A heartbeat between its checks and its batch's commit, and the answer it gets."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from evidence.coverage import HeartbeatFacts
from evidence.errors import IrmsError
from web.heartbeat.body import HeartbeatBody


def _held_lock() -> threading.Lock:
    lock = threading.Lock()
    lock.acquire()
    return lock


@dataclass(eq=False)
class Pending:
    """A heartbeat that passed every check not needing the database, waiting for its batch."""

    station_pk: int
    station_id: str
    nonce: str
    received_us: int
    at_us: int
    body: HeartbeatBody
    raw: str
    reasons: list[dict[str, object]]
    signed: str | None = None
    """The signature headers and path as received (`evidence.coverage_bundle.signed_envelope`), stored with it."""
    facts: HeartbeatFacts | None = None
    """What coverage reads of it (with its run claim and the station's enrolment), for its credit."""
    run_since_us: int | None = None
    """The start of the run it was credited for (None: no credit), stored so an export finds each run's last."""
    heartbeat_id: int | None = None
    error: IrmsError | None = None
    audit_head: tuple[int, str] | None = None
    """The audit chain's head (seq, hash) as the batch read it: the answer carries it, signed."""
    batch: list[Pending] | None = None
    """Set when this item's thread is to write a batch (the queue it took or was handed)."""
    wake: threading.Lock = field(default_factory=_held_lock)
    """Held until the item is answered or made leader (a bare lock wakes a thread cheaper than an Event)."""


@dataclass(frozen=True)
class Accepted:
    heartbeat_id: int
    ok: bool
    reasons: list[dict[str, object]]
    witnessed: bool
    audit_head: tuple[int, str] | None = None
    enrolled_at_us: int | None = None


def outcome(item: Pending) -> Accepted:
    """The answer of an item its batch is done with: accepted, or its refusal raised."""
    if item.error is not None:
        raise item.error
    assert item.heartbeat_id is not None
    return Accepted(item.heartbeat_id, not item.reasons, item.reasons, item.body.recording is not None,
                    item.audit_head, None if item.facts is None else item.facts.enrolled_at_us)


def fail(batch: list[Pending], err: IrmsError) -> None:
    """Answer every item of `batch` not yet refused with `err` (the batch was not stored)."""
    for item in batch:
        if item.error is None:
            item.heartbeat_id = None
            item.error = err
