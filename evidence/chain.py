"""The hash chain that proves order, completeness and no cut at the end."""

from __future__ import annotations

import hashlib
from typing import Any

from evidence.canonical import canonical_json


def chain_genesis(header: dict[str, Any]) -> str:
    """chain[-1] = SHA-256(canonical JSON of the signed session header)."""
    return hashlib.sha256(canonical_json(header)).hexdigest()


def chain_next(prev: str, index: int, plain_sha256: str, cipher_sha256: str) -> str:
    """chain[i] = SHA-256(chain[i-1] || uint64be(i) || plain_sha256 || cipher_sha256), raw bytes."""
    data = bytes.fromhex(prev) + index.to_bytes(8, "big") + bytes.fromhex(plain_sha256) + bytes.fromhex(cipher_sha256)
    return hashlib.sha256(data).hexdigest()
