"""Sealing: a finished plain segment becomes ciphertext plus a signed record."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from evidence.chain import chain_next
from evidence.crypto import seal_segment
from evidence.formats import build_record
from evidence.keys import sign_document


@dataclass(frozen=True)
class Sealed:
    cipher: bytes
    record: dict[str, Any]


def seal(
    *,
    plain: bytes,
    session_id: str,
    index: int,
    key_index: int,
    run: int,
    data_key: bytes,
    station_key: Ed25519PrivateKey,
    prev_chain: str,
    start_us: int,
    duration_us: int,
    clock_offset_us: int,
    salvaged: bool,
) -> Sealed:
    """Encrypt, hash, chain and sign one segment. Pure apart from the signature itself."""
    cipher = seal_segment(data_key, session_id, index, plain)
    plain_sha = hashlib.sha256(plain).hexdigest()
    cipher_sha = hashlib.sha256(cipher).hexdigest()
    record = build_record(
        session_id=session_id, index=index, key_index=key_index, run=run,
        start_us=start_us, duration_us=duration_us,
        plain_sha256=plain_sha, plain_size=len(plain), cipher_sha256=cipher_sha, cipher_size=len(cipher),
        prev_chain=prev_chain, chain=chain_next(prev_chain, index, plain_sha, cipher_sha),
        clock_offset_us=clock_offset_us, salvaged=salvaged,
    )
    return Sealed(cipher=cipher, record=sign_document(record, station_key))
