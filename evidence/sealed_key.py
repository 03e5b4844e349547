"""A custodian private key at rest: `irms.sealed-key/1`, argon2id + AES-256-GCM.

One JSON object (canonical JSON, one line):

    {"format": "irms.sealed-key/1", "kind": "x25519-private", "key_id": <evidence.keys.key_id>,
     "public": <base64 raw X25519 public key>,
     "kdf": {"alg": "argon2id", "t": 3, "m_kib": 65536, "p": 4, "salt": <base64, 16 bytes>},
     "aead": {"alg": "AES-256-GCM", "nonce": <base64, 12 bytes>},
     "ct": <base64: the 32 raw private bytes encrypted, with the 16-byte tag>}

The 32-byte key-encryption key is argon2id(passphrase, salt) with the parameters written beside it
(RFC 9106's second recommended set: 3 passes over 64 MiB, 4 lanes). The associated data is the
canonical JSON of every member but `ct`, so a changed parameter, key id or public key fails exactly
as a wrong passphrase does: one line, "does not open". Opening also checks that the private key
matches `public`. Reading refuses parameters below the ones written here or absurdly large ones.

The old at-rest form (PKCS#8 PEM, PBKDF2-SHA256 with 2,048 iterations and AES-256-CBC, as
`cryptography`'s BestAvailableEncryption wrote it) is read only by `open_legacy_pem`, only to be
sealed again (`irms-web custody rewrap`, `irms-verify custodian-rewrap`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from evidence.canonical import canonical_json
from evidence.errors import FormatError, KeyError_
from evidence.keys import RAW, RAW_PUB, b64, key_id, public_raw, unb64

FORMAT = "irms.sealed-key/1"
KIND = "x25519-private"
KDF_PARAMS = {"alg": "argon2id", "t": 3, "m_kib": 65536, "p": 4}
MIN_PASSPHRASE = 12
_FLOOR = {"t": 3, "m_kib": 65536, "p": 1}
_CEILING = {"t": 64, "m_kib": 4 * 1024 * 1024, "p": 64}
LEGACY_MARK = b"-----BEGIN ENCRYPTED PRIVATE KEY-----"

Random = Callable[[int], bytes]


def is_sealed(data: bytes | str) -> bool:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return text.lstrip().startswith("{") and FORMAT in text[:200]


def is_legacy(data: bytes | str) -> bool:
    raw = data.encode("ascii", "replace") if isinstance(data, str) else data
    return LEGACY_MARK in raw


def _kek(passphrase: bytes, kdf: dict[str, Any], salt: bytes) -> bytes:
    return hash_secret_raw(passphrase, salt, time_cost=kdf["t"], memory_cost=kdf["m_kib"], parallelism=kdf["p"],
                           hash_len=32, type=Type.ID)


def _aad(doc: dict[str, Any]) -> bytes:
    return canonical_json({k: v for k, v in doc.items() if k != "ct"})


def seal(key: X25519PrivateKey, passphrase: bytes, rng: Random = os.urandom,
         kdf_params: dict[str, Any] | None = None) -> str:
    """The sealed form of `key` (one line of canonical JSON)."""
    if len(passphrase) < MIN_PASSPHRASE:
        raise KeyError_(f"the custodian passphrase must have at least {MIN_PASSPHRASE} characters")
    params = dict(kdf_params or KDF_PARAMS)
    salt, nonce = rng(16), rng(12)
    pub = public_raw(key.public_key())
    doc: dict[str, Any] = {"format": FORMAT, "kind": KIND, "key_id": key_id(pub), "public": b64(pub),
                           "kdf": {**params, "salt": b64(salt)}, "aead": {"alg": "AES-256-GCM", "nonce": b64(nonce)}}
    raw = key.private_bytes(RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    doc["ct"] = b64(AESGCM(_kek(passphrase, params, salt)).encrypt(nonce, raw, _aad(doc)))
    return canonical_json(doc).decode("utf-8")


def _parse(data: bytes | str, where: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise FormatError(f"{where} is not a sealed key ({FORMAT}): not JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise FormatError(f"{where} is not a sealed key: format is not {FORMAT}")
    if doc.get("kind") != KIND:
        raise FormatError(f"{where} holds a {doc.get('kind')!r} key, not {KIND}")
    kdf, aead = doc.get("kdf"), doc.get("aead")
    if not isinstance(kdf, dict) or kdf.get("alg") != "argon2id":
        raise FormatError(f"{where}: kdf.alg must be argon2id")
    for name in ("t", "m_kib", "p"):
        value = kdf.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or not _FLOOR[name] <= value <= _CEILING[name]:
            raise FormatError(f"{where}: kdf.{name} must be an integer from {_FLOOR[name]} to {_CEILING[name]}")
    if not isinstance(aead, dict) or aead.get("alg") != "AES-256-GCM":
        raise FormatError(f"{where}: aead.alg must be AES-256-GCM")
    return doc


def sealed_key_id(data: bytes | str, where: str = "sealed key") -> str:
    return str(_parse(data, where)["key_id"])


def open_sealed(data: bytes | str, passphrase: bytes, where: str = "sealed key") -> X25519PrivateKey:
    """The private key, or one KeyError_ line: wrong passphrase and any altered byte read the same."""
    doc = _parse(data, where)
    kdf = doc["kdf"]
    salt = unb64(kdf.get("salt"), f"{where} kdf.salt")
    nonce = unb64(doc["aead"].get("nonce"), f"{where} aead.nonce")
    ct = unb64(doc.get("ct"), f"{where} ct")
    try:
        raw = AESGCM(_kek(passphrase, kdf, salt)).decrypt(nonce, ct, _aad(doc))
        key = X25519PrivateKey.from_private_bytes(raw)
    except (InvalidTag, ValueError):
        raise KeyError_(f"{where} does not open: wrong passphrase, or the sealed key was altered") from None
    if b64(public_raw(key.public_key())) != doc.get("public") or key_id(key.public_key().public_bytes(
            RAW, RAW_PUB)) != doc.get("key_id"):  # pragma: no cover - the AAD binds both; kept as a second look
        raise KeyError_(f"{where} does not open: its public key does not match")
    return key


def open_legacy_pem(pem: bytes, passphrase: bytes, where: str) -> X25519PrivateKey:
    """The old PBKDF2/AES-CBC PKCS#8 PEM, read only to seal it again."""
    try:
        key = serialization.load_pem_private_key(pem, password=passphrase)
    except (ValueError, TypeError):
        raise KeyError_(f"{where} does not open: wrong passphrase, or not a PEM private key") from None
    if not isinstance(key, X25519PrivateKey):
        raise KeyError_(f"{where} is not an X25519 custodian private key")
    return key


def legacy_refusal(where: str, how: str) -> KeyError_:
    return KeyError_(f"{where} is in the old PBKDF2-2048/AES-CBC form, read only to re-wrap it: {how}")
