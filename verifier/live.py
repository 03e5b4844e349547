"""The records of a session still recording, read on from the last one already accepted (the live view).

A live viewer's server looks at a recording session's store every second or so. A full audit reads every
record each time, one GET per segment recorded so far; `read_on` starts after the last record the caller
already accepted (its index and chain value) and reads only the records after it, judging each as the full
audit does: exact canonical bytes, closed members, the station's signature, this session, the sizes (V04),
its index and its place in the chain (V07), and the chain head the server witnessed at that index, if any
(V13). It stops at the first record not in the store yet, or at the first that fails (one finding, for that
segment: write-once objects never heal, so nothing after it is read). What needs the whole session (V05
ciphertexts present, V08, the timeline, the manifest) is judged by the full audit once the session ends;
each ciphertext is checked against its record whenever it is served.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from evidence.chain import chain_next
from evidence.formats import RECORD_FORMAT, record_name
from storage.base import ObjectStore
from storage.errors import ObjectNotFound
from verifier.evidence import parse_object
from verifier.rules import Finding
from verifier.rules.parsed import record_problem


@dataclass
class ReadOn:
    """What `read_on` found: the records accepted, in index order; the finding that stopped it, if any;
    and how many objects it read from the store (the last one, when it found nothing, was a miss)."""

    records: list[dict[str, Any]] = field(default_factory=list)
    finding: Finding | None = None
    reads: int = 0

    @property
    def chain_head(self) -> str | None:
        return str(self.records[-1]["chain"]) if self.records else None


def read_on(store: ObjectStore, prefix: str, session_id: str, key: Ed25519PublicKey | None, *, next_index: int,
            prev_chain: str, witnessed: Iterable[tuple[int, str]], limit: int = 10_000) -> ReadOn:
    """Read records `next_index`, `next_index` + 1, ... of the session at `prefix` until one is missing or
    fails, each checked against `key` (the station's enrolled key) and continuing the chain from
    `prev_chain` (the last accepted record's chain value, or the header's genesis for segment 0)."""
    out = ReadOn()
    prev = prev_chain
    heads: dict[int, set[str]] = {}
    for idx, head in witnessed:
        heads.setdefault(idx, set()).add(head)
    for i in range(next_index, next_index + limit):
        try:
            data = store.get(record_name(prefix, i))
        except ObjectNotFound:
            out.reads += 1
            break
        out.reads += 1
        parsed = parse_object(data, RECORD_FORMAT, f"record {i}")
        problem = record_problem(parsed, key, session_id, i)
        if problem is not None:
            out.finding = Finding("V04", problem, i)
            break
        rec = parsed.doc
        if rec is None:  # record_problem accepts no record without a document; never an assert (python -O)
            out.finding = Finding("V04", "record has no document", i)
            break
        if rec["index"] != i:
            out.finding = Finding("V07", f"record says index {rec['index']} (reordered or duplicated)", i)
            break
        if rec["prev_chain"] != prev or rec["chain"] != chain_next(prev, i, rec["plain_sha256"], rec["cipher_sha256"]):
            out.finding = Finding("V07", "chain broken", i)
            break
        other = sorted(heads.get(i, set()) - {rec["chain"]})
        if other:
            head = other[0]
            out.finding = Finding("V13", f"the server witnessed chain head {head[:16]}… at segment {i}, the store "
                                         f"has {str(rec['chain'])[:16]}", i)
            break
        out.records.append(rec)
        prev = rec["chain"]
    return out
