"""One batch of heartbeats: the refusals its reads decide, its writes, and the steps run on a cursor.

`batch_steps` does no I/O of its own; `run_steps` runs it on a blocking DB-API cursor (the Flask app's
group commit), `run_steps_async` on a psycopg AsyncCursor (the event loop's).
"""

from __future__ import annotations

import logging
from typing import Any

from web import audit, ownership
from web.coverage import Policy
from web.errors import DatabaseError, ForeignClaim
from web.heartbeat.pending import Pending, fail
from web.heartbeat.plan import StationRow, plan_batch
from web.heartbeat.sql import Backend, Postgres, Steps
from web.station_auth import FORGET_NONCE_SQL, PRUNE_NONCES_SQL, refusal

log = logging.getLogger("irms.web.heartbeat")


def batch_steps(backend: Backend, batch: list[Pending], policy: Policy, prune_before_us: int | None) -> Steps:
    """One batch: lock and read its stations, nonces and session owners, refuse what must be refused
    (auditing a head for another station's session), write the rest, and (when due) delete nonces too
    old to matter."""
    got = yield from backend.read(batch)
    fresh, owners = got.fresh, got.owners
    found = {int(r[0]): r for r in got.stations}
    rows: dict[int, StationRow] = {}
    accepted: list[Pending] = []
    foreign: list[Pending] = []
    for item in batch:
        r = found.get(item.station_pk)
        key = (item.station_pk, item.nonce)
        rec = item.body.recording
        owner = owners.get(rec.session_id) if rec is not None else None
        refused = refusal(item.station_id, None if r is None else str(r[1]), key in fresh)
        if refused is not None:
            item.error = refused
        elif rec is not None and owner is None:  # cannot happen: the first fresh head of a session claims it
            item.error = DatabaseError(f"the owner of session {rec.session_id} was not found; send again")
        elif rec is not None and owner is not None and owner[0] != item.station_pk:
            fresh.discard(key)
            item.error = ownership.foreign_session(item.station_id, rec.session_id, owner[1], "witnessed head",
                                                   {"index": rec.index, "chain_head": rec.chain_head})
            foreign.append(item)
        else:
            assert r is not None  # refusal() refused an unknown station
            fresh.discard(key)
            rows.setdefault(item.station_pk, StationRow(*r))
            item.audit_head = got.audit_head
            accepted.append(item)
    if accepted:
        yield from backend.write(plan_batch(accepted, rows, policy))
    if foreign:  # a refused heartbeat keeps nothing, not even its nonce; its refusal is audited
        for item in foreign:
            yield backend.sql(FORGET_NONCE_SQL), {"pk": item.station_pk, "nonce": item.nonce}
        yield from audit.append_steps([ownership.audit_entry(i.error, i.received_us) for i in foreign
                                       if isinstance(i.error, ForeignClaim)], isinstance(backend, Postgres))
    if prune_before_us is not None:
        yield backend.sql(PRUNE_NONCES_SQL), {"before": prune_before_us}


def run_steps(cur: Any, steps: Steps) -> None:
    """Run a batch's steps on a blocking DB-API cursor."""
    try:
        stmt = next(steps)
        while True:
            cur.execute(*stmt)
            stmt = steps.send(list(cur.fetchall()) if cur.description is not None else [])
    except StopIteration:
        pass


async def run_steps_async(cur: Any, steps: Steps) -> None:
    """Run a batch's steps on a psycopg AsyncCursor."""
    try:
        stmt = next(steps)
        while True:
            await cur.execute(*stmt)
            stmt = steps.send(list(await cur.fetchall()) if cur.description is not None else [])
    except StopIteration:
        pass


def db_failure(batch: list[Pending], err: BaseException) -> None:
    """Answer a batch the database refused: 503 for every request in it (nothing of it was kept)."""
    log.error("heartbeat batch of %d not stored: %s: %s", len(batch), type(err).__name__,
              str(err).splitlines()[0] if str(err) else "")
    fail(batch, DatabaseError(f"the database failed; the heartbeat was not stored ({type(err).__name__})"))
