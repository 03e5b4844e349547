"""The dangerous primitives, fenced into one module.

AES-256-GCM for segments (nonce from the segment index, associated data binding
session and index) and the custodian key wrap (X25519 + HKDF-SHA256 + AES-256-GCM).
Randomness is passed in so that known-answer vectors can pin every byte.
Every decryption failure is the same opaque DecryptionError.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from evidence.canonical import canonical_json
from evidence.errors import DecryptionError, FormatError
from evidence.keys import b64, key_id, public_raw, unb64

Random = Callable[[int], bytes]
WRAP_ALG = "X25519-HKDF-SHA256-A256GCM"
WRAP_INFO = b"irms-key-wrap/1"


def new_data_key(rng: Random = os.urandom) -> bytes:
    return rng(32)


def segment_nonce(index: int) -> bytes:
    """12-byte GCM nonce: b'IRMS' then the index as 8-byte big-endian. Unique per key."""
    return b"IRMS" + index.to_bytes(8, "big")


def segment_aad(session_id: str, index: int) -> bytes:
    return canonical_json({"format": "irms.segment/1", "index": index, "session_id": session_id})


def seal_segment(data_key: bytes, session_id: str, index: int, plain: bytes) -> bytes:
    return AESGCM(data_key).encrypt(segment_nonce(index), plain, segment_aad(session_id, index))


def open_segment(data_key: bytes, session_id: str, index: int, cipher: bytes) -> bytes:
    try:
        return AESGCM(data_key).decrypt(segment_nonce(index), cipher, segment_aad(session_id, index))
    except (InvalidTag, ValueError):
        raise DecryptionError("segment cannot be decrypted") from None


def _kek(shared: bytes, epk: bytes, recipient: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=epk + recipient, info=WRAP_INFO).derive(shared)


def wrap_aad(session_id: str, key_index: int, custodian_key_id: str) -> bytes:
    return canonical_json(
        {"format": "irms.wrap/1", "key_id": custodian_key_id, "key_index": key_index, "session_id": session_id}
    )


def wrap_key(
    data_key: bytes,
    custodian: X25519PublicKey,
    session_id: str,
    key_index: int,
    rng: Random = os.urandom,
) -> dict[str, Any]:
    """Wrap a session data key to the custodian; the station cannot unwrap it again."""
    eph = X25519PrivateKey.from_private_bytes(rng(32))
    epk = public_raw(eph.public_key())
    recipient = public_raw(custodian)
    kek = _kek(eph.exchange(custodian), epk, recipient)
    nonce = rng(12)
    kid = key_id(recipient)
    ct = AESGCM(kek).encrypt(nonce, data_key, wrap_aad(session_id, key_index, kid))
    return {"alg": WRAP_ALG, "key_id": kid, "epk": b64(epk), "nonce": b64(nonce), "ct": b64(ct)}


def unwrap_key(wrapped: dict[str, Any], custodian: X25519PrivateKey, session_id: str, key_index: int) -> bytes:
    return unwrap_with(wrapped, public_raw(custodian.public_key()), custodian_exchange(custodian), session_id,
                       key_index)


def custodian_exchange(custodian: X25519PrivateKey) -> Callable[[bytes], bytes]:
    """X25519 with a key in memory; a PKCS#11 token gives the same function as a token operation."""
    return lambda epk: custodian.exchange(X25519PublicKey.from_public_bytes(epk))


def unwrap_with(wrapped: dict[str, Any], recipient: bytes, exchange: Callable[[bytes], bytes], session_id: str,
                key_index: int) -> bytes:
    """Unwrap with the custodian key whose raw public key is `recipient`, through `exchange(epk) -> shared`."""
    if wrapped.get("alg") != WRAP_ALG:
        raise FormatError(f"unknown key wrap algorithm {wrapped.get('alg')!r}")
    if wrapped.get("key_id") != key_id(recipient):
        raise DecryptionError(f"data key is wrapped to custodian key {wrapped.get('key_id')}, not this one")
    epk = unb64(wrapped.get("epk"), "wrapped_key.epk")
    try:
        kek = _kek(exchange(epk), epk, recipient)
        return AESGCM(kek).decrypt(
            unb64(wrapped.get("nonce"), "wrapped_key.nonce"),
            unb64(wrapped.get("ct"), "wrapped_key.ct"),
            wrap_aad(session_id, key_index, key_id(recipient)),
        )
    except (InvalidTag, ValueError):
        raise DecryptionError("data key cannot be unwrapped") from None


class Unwrapper(Protocol):
    """Whatever can unwrap a session data key: a key in memory, the server's custody holder, a token."""

    def unwrap(self, wrapped: dict[str, Any], session_id: str, key_index: int) -> bytes: ...


@dataclass(frozen=True)
class KeyUnwrapper:
    """A custodian private key in this process's memory."""

    key: X25519PrivateKey

    def unwrap(self, wrapped: dict[str, Any], session_id: str, key_index: int) -> bytes:
        return unwrap_key(wrapped, self.key, session_id, key_index)
