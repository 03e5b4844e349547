"""The chain heads a session's owner witnessed, read back (the `irms-verify --witness` file, V13)."""

from __future__ import annotations

from typing import TypedDict

from sqlalchemy import select
from sqlalchemy.orm import Session

from web.models import WitnessedHead
from web.ownership import owner_of


class WitnessedHeadClaim(TypedDict):
    """One line of the `irms-verify --witness` file."""

    index: int
    chain: str


def witnessed_heads(s: Session, session_id: str) -> list[WitnessedHeadClaim]:
    """Every head the session's owner witnessed, one per index, in order (the `irms-verify --witness` file).

    Only the owner's (web/ownership.py): heads other stations sent before the header named the owner
    are not the session's."""
    owner = owner_of(s, session_id)
    query = select(WitnessedHead.idx, WitnessedHead.chain_head).where(WitnessedHead.session_id == session_id)
    if owner is not None:
        query = query.where(WitnessedHead.station_pk == owner.pk)
    rows = s.execute(query.order_by(WitnessedHead.idx, WitnessedHead.id)).all()
    out: list[WitnessedHeadClaim] = []
    seen: set[tuple[int, str]] = set()
    for idx, head in rows:
        # Index -1 is the genesis (no segment sealed yet); a conflicting claim for an index is kept.
        if idx < 0 or (idx, head) in seen:
            continue
        seen.add((idx, head))
        out.append({"index": int(idx), "chain": head})
    return out


