"""Custody: the custodian's X25519 keys live with the server, encrypted at rest (R13, R14).

Each key pair is a row of `custodian_keys`: its key id (evidence.keys.key_id of the raw public
key), the public key (PEM, for stations), and the private key as PKCS#8 PEM encrypted with the
passphrase in IRMS_CUSTODIAN_PASSPHRASE (never stored, never in the configuration file).
Rotation (`irms-web custodian new`) adds a key and makes it current; old keys are kept (the
table refuses DELETE), and a session's data key is unwrapped with the key its wrap names.

Every unwrap of a data key is a key use and an audit entry (`custodian.key_use`). Unwrapped
data keys stay in this process's memory for `data_key_cache_s` so a replay does not unwrap
(and audit) once per segment; they are never written anywhere.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from evidence.canonical import parse_json_object
from evidence.crypto import unwrap_key
from evidence.errors import DecryptionError, FormatError
from evidence.formats import header_name, key_name
from evidence.keys import key_id, public_raw
from storage.base import ObjectStore
from web import audit
from web.errors import BadRequest, Conflict, CustodyError
from web.models import CustodianKey

PASSPHRASE_ENV = "IRMS_CUSTODIAN_PASSPHRASE"
MIN_PASSPHRASE = 12


def passphrase() -> bytes:
    value = os.environ.get(PASSPHRASE_ENV, "")
    if not value:
        raise CustodyError(f"the custodian passphrase is not set ({PASSPHRASE_ENV})")
    return value.encode("utf-8")


def _public_pem(key: X25519PrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def _store_key(s: Session, key: X25519PrivateKey, *, actor: str, now_us: int, action: str) -> CustodianKey:
    secret = passphrase()
    if len(secret) < MIN_PASSPHRASE:
        raise BadRequest(f"the custodian passphrase must have at least {MIN_PASSPHRASE} characters")
    kid = key_id(public_raw(key.public_key()))
    if s.scalars(select(CustodianKey).where(CustodianKey.key_id == kid)).first() is not None:
        raise Conflict(f"custodian key {kid} is already held")
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.BestAvailableEncryption(secret)).decode("ascii")
    s.execute(update(CustodianKey).where(CustodianKey.current.is_(True)).values(current=False))
    row = CustodianKey(key_id=kid, public_pem=_public_pem(key), private_pem=pem, created_at_us=now_us,
                       created_by=actor, current=True)
    s.add(row)
    audit.append(s, at_us=now_us, actor=actor, action=action, target=kid, detail={})
    s.flush()
    return row


def new_key(s: Session, *, actor: str, now_us: int) -> CustodianKey:
    """Make a key pair, keep it encrypted, make it current (older keys stay for older sessions)."""
    return _store_key(s, X25519PrivateKey.generate(), actor=actor, now_us=now_us, action="custodian.new")


def import_key(s: Session, pem: bytes, source_passphrase: bytes | None, *, actor: str, now_us: int) -> CustodianKey:
    """Take over an existing custodian private key (e.g. from `irms-verify custodian-keygen`)."""
    try:
        key = serialization.load_pem_private_key(pem, password=source_passphrase)
    except (ValueError, TypeError) as err:
        raise BadRequest(f"not a readable PEM private key: {str(err).splitlines()[0]}") from None
    if not isinstance(key, X25519PrivateKey):
        raise BadRequest("not an X25519 custodian private key")
    return _store_key(s, key, actor=actor, now_us=now_us, action="custodian.import")


def current_key(s: Session) -> CustodianKey | None:
    return s.scalars(select(CustodianKey).where(CustodianKey.current.is_(True))).first()


def all_keys(s: Session) -> list[CustodianKey]:
    return list(s.scalars(select(CustodianKey).order_by(CustodianKey.created_at_us)))


# --- key use ------------------------------------------------------------------------------------------


_private_cache: dict[str, X25519PrivateKey] = {}
_data_keys: dict[tuple[str, int], tuple[bytes, float]] = {}
_lock = threading.Lock()


def _private(s: Session, kid: str) -> X25519PrivateKey:
    with _lock:
        cached = _private_cache.get(kid)
    if cached is not None:
        return cached
    row = s.scalars(select(CustodianKey).where(CustodianKey.key_id == kid)).first()
    if row is None:
        raise CustodyError(f"this server does not hold custodian key {kid}")
    try:
        key = serialization.load_pem_private_key(row.private_pem.encode("ascii"), password=passphrase())
    except (ValueError, TypeError):
        raise CustodyError(f"custodian key {kid} does not open with the passphrase in {PASSPHRASE_ENV}") from None
    if not isinstance(key, X25519PrivateKey):  # pragma: no cover - only X25519 keys are ever stored
        raise CustodyError(f"custodian key {kid} is not an X25519 key")
    with _lock:
        _private_cache[kid] = key
    return key


@dataclass(frozen=True)
class KeyUse:
    actor: str
    purpose: str
    now_us: int


def data_key(s: Session, store: ObjectStore, prefix: str, session_id: str, key_index: int, use: KeyUse,
             cache_s: float) -> bytes:
    """Session data key `key_index`, unwrapped with the custodian key its wrap names; each unwrap is audited."""
    now = time.monotonic()
    with _lock:
        hit = _data_keys.get((session_id, key_index))
        if hit is not None and hit[1] > now:
            return hit[0]
    try:
        if key_index == 0:
            doc = parse_json_object(store.get(header_name(prefix)), "session header")
        else:
            doc = parse_json_object(store.get(key_name(prefix, key_index)), f"key object {key_index}")
        wrapped = doc["wrapped_key"]
        kid = str(wrapped.get("key_id", ""))
    except (FormatError, KeyError, AttributeError):
        raise CustodyError(f"session {session_id} has no readable wrapped data key {key_index}") from None
    private = _private(s, kid)
    try:
        dk = unwrap_key(wrapped, private, session_id, key_index)
    except (DecryptionError, FormatError):
        raise CustodyError(f"data key {key_index} of session {session_id} does not unwrap") from None
    audit.append(s, at_us=use.now_us, actor=use.actor, action="custodian.key_use", target=session_id,
                 detail={"key_id": kid, "key_index": key_index, "purpose": use.purpose})
    s.commit()
    if cache_s > 0:
        with _lock:
            _data_keys[(session_id, key_index)] = (dk, now + cache_s)
    return dk


def forget_keys() -> None:
    """Drop every key held in memory (tests; a passphrase change)."""
    with _lock:
        _private_cache.clear()
        _data_keys.clear()
