"""The tombstone a disposal leaves: `irms.tombstone/1` (docs/evidence-format.md, "Tombstone").

What was destroyed (the session, its manifest's SHA-256, its segment and object counts), when, under which
retention policy, who proposed and which two people approved, signed with the server's Ed25519 audit key.
It carries the key's public half, so it verifies on its own; `irms-verify tombstone --server-key PEM` also
checks that the key is the server's published one. Kept for ever (the server's `tombstones` table, and the
store's `tombstones/<session_id>.json`).
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from evidence import keys as K
from evidence.errors import FormatError, SignatureError
from evidence.formats import (
    _HEX64,
    _TIME,
    SIGNATURE_MEMBERS,
    UUID_RE,
    Check,
    _b64,
    _int,
    _list,
    _members,
    _object,
    _one_of,
    _str,
)

TOMBSTONE_FORMAT = "irms.tombstone/1"
ANCHORS = ("final", "recorded")
MODES = ("GOVERNANCE", "COMPLIANCE")


def tombstone_name(session_id: str) -> str:
    """Where the store keeps a disposed session's tombstone."""
    return f"tombstones/{session_id}.json"


def _manifest_hash(value: Any, where: str) -> None:
    if value != "":  # a session that never had a verified manifest
        _HEX64(value, where)


POLICY_MEMBERS: dict[str, Check] = {
    "id": _int(1), "unit": _str(), "category": _str(), "anchor": _one_of(ANCHORS), "years": _int(0, 1000),
    "days": _int(0, 1_000_000), "mode": _one_of(MODES),
}
WHO_MEMBERS: dict[str, Check] = {"by": _str(), "at_us": _TIME}
FIELDS: dict[str, Check] = {
    "format": _one_of((TOMBSTONE_FORMAT,)), "session_id": _str(UUID_RE, "a lowercase UUID"),
    "station_id": _str(), "site": _str(), "room": _str(), "manifest_sha256": _manifest_hash,
    "segment_count": _int(0, 100_000_000), "objects": _int(0, 1_000_000_000), "disposed_at_us": _TIME,
    "retain_until_us": _TIME, "policy": _object(POLICY_MEMBERS), "proposed": _object(WHO_MEMBERS),
    "approved": _list(_object(WHO_MEMBERS), min_len=2), "server_key": _b64(32),
    "signature": _object(SIGNATURE_MEMBERS),
}


def build_tombstone(*, session_id: str, station_id: str, site: str, room: str, manifest_sha256: str,
                    segment_count: int, objects: int, disposed_at_us: int, retain_until_us: int,
                    policy: dict[str, Any], proposed: dict[str, Any], approved: list[dict[str, Any]],
                    key: Ed25519PrivateKey) -> dict[str, Any]:
    """The signed tombstone; checked before it is returned."""
    doc = {"format": TOMBSTONE_FORMAT, "session_id": session_id, "station_id": station_id, "site": site,
           "room": room, "manifest_sha256": manifest_sha256, "segment_count": segment_count, "objects": objects,
           "disposed_at_us": disposed_at_us, "retain_until_us": retain_until_us, "policy": policy,
           "proposed": proposed, "approved": approved, "server_key": K.b64(K.public_raw(key.public_key()))}
    return check_tombstone(K.sign_document(doc, key))


def check_tombstone(doc: dict[str, Any], what: str = "tombstone") -> dict[str, Any]:
    """Check the members (closed list); FormatError names the first that is wrong."""
    if doc.get("format") != TOMBSTONE_FORMAT:
        raise FormatError(f"{what} has format {doc.get('format')!r}, expected {TOMBSTONE_FORMAT!r}")
    _members(doc, FIELDS, what)
    approvers = [a["by"] for a in doc["approved"]]
    if len(set(approvers)) != len(approvers) or len(approvers) < 2:
        raise FormatError(f"{what}.approved must name two different people, got {approvers}")
    return doc


def verify_tombstone(doc: dict[str, Any], server_key: Ed25519PublicKey | None = None,
                     what: str = "tombstone") -> str:
    """Check the tombstone and its signature by the key it carries (and, given, the server's key);
    return the signing key's id. FormatError or SignatureError otherwise."""
    check_tombstone(doc, what)
    carried = K.ed25519_public_from_raw(K.unb64(doc["server_key"], f"{what}.server_key"), f"{what}.server_key")
    carried_id = K.key_id(K.public_raw(carried))
    if server_key is not None and K.key_id(K.public_raw(server_key)) != carried_id:
        raise SignatureError(f"{what} is signed by server key {carried_id}, not the key given "
                             f"({K.key_id(K.public_raw(server_key))})")
    K.verify_document(doc, carried, what)
    return carried_id
