"""Station signing keys (Ed25519) and custodian keys (X25519): files, ids, signatures."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from evidence.canonical import canonical_json
from evidence.durable import write_durable
from evidence.errors import FormatError, KeyError_, SignatureError

RAW = serialization.Encoding.Raw
RAW_PUB = serialization.PublicFormat.Raw


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: object, where: str) -> bytes:
    if not isinstance(text, str):
        raise FormatError(f"{where} must be a base64 string")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise FormatError(f"{where} is not valid base64") from None


def key_id(raw_public: bytes) -> str:
    """A key's id: the first 16 bytes of SHA-256 of its raw public bytes, in hex."""
    return hashlib.sha256(raw_public).hexdigest()[:32]


def public_raw(key: Ed25519PublicKey | X25519PublicKey) -> bytes:
    return key.public_bytes(RAW, RAW_PUB)


def ed25519_public_from_raw(raw: bytes, where: str) -> Ed25519PublicKey:
    if len(raw) != 32:
        raise FormatError(f"{where} is not a 32-byte Ed25519 public key")
    return Ed25519PublicKey.from_public_bytes(raw)


# --- key files --------------------------------------------------------------


def save_private_key(path: Path, key: Ed25519PrivateKey | X25519PrivateKey, passphrase: bytes | None = None) -> None:
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
    write_durable(path, pem, mode=0o600, replace=False)


def save_public_key(path: Path, key: Ed25519PublicKey | X25519PublicKey) -> None:
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    write_durable(path, pem, mode=0o644, replace=True)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise KeyError_(f"{what} not found: {path}") from None
    except OSError as err:
        raise KeyError_(f"cannot read {what} {path}: {err.strerror}") from None


def load_private_key(path: Path, passphrase: bytes | None = None) -> Ed25519PrivateKey | X25519PrivateKey:
    data = _read(path, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except (ValueError, TypeError) as err:
        reason = "wrong passphrase or not a PEM private key" if "password" in str(err).lower() else str(err)
        raise KeyError_(f"private key {path} cannot be loaded: {reason.splitlines()[0]}") from None
    if not isinstance(key, Ed25519PrivateKey | X25519PrivateKey):
        raise KeyError_(f"private key {path} is not an Ed25519 or X25519 key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey | X25519PublicKey:
    data = _read(path, "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as err:
        raise KeyError_(f"public key {path} cannot be loaded: {str(err).splitlines()[0]}") from None
    if not isinstance(key, Ed25519PublicKey | X25519PublicKey):
        raise KeyError_(f"public key {path} is not an Ed25519 or X25519 key")
    return key


def load_station_private(path: Path) -> Ed25519PrivateKey:
    key = load_private_key(path)
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyError_(f"{path} is not an Ed25519 station key")
    return key


def load_custodian_public(path: Path) -> X25519PublicKey:
    key = load_public_key(path)
    if not isinstance(key, X25519PublicKey):
        raise KeyError_(f"{path} is not an X25519 custodian public key")
    return key


def load_custodian_private(path: Path, passphrase: Callable[[], bytes] | None = None) -> X25519PrivateKey:
    """A custodian private key file: sealed (irms.sealed-key/1, `passphrase()` asked only then) or plain PEM.

    The old PBKDF2/AES-CBC PEM is refused with the command that re-wraps it.
    """
    from evidence import sealed_key
    data = _read(path, "private key")
    if sealed_key.is_sealed(data):
        if passphrase is None:
            raise KeyError_(f"custodian key {path} is sealed and no passphrase can be asked here")
        return sealed_key.open_sealed(data, passphrase(), f"custodian key {path}")
    if sealed_key.is_legacy(data):
        raise sealed_key.legacy_refusal(f"custodian key {path}",
                                        "irms-verify custodian-rewrap OLD NEW (asks both passphrases)")
    key = load_private_key(path)
    if not isinstance(key, X25519PrivateKey):
        raise KeyError_(f"{path} is not an X25519 custodian private key")
    return key


# --- signed documents -------------------------------------------------------


def signed_bytes(doc: dict[str, Any]) -> bytes:
    """The bytes a document's signature covers: canonical JSON without `signature`."""
    return canonical_json({k: v for k, v in doc.items() if k != "signature"})


def sign_document(doc: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """Return `doc` with an Ed25519 `signature` over its canonical form."""
    body = {k: v for k, v in doc.items() if k != "signature"}
    sig = key.sign(canonical_json(body))
    return {
        **body,
        "signature": {"alg": "ed25519", "key_id": key_id(public_raw(key.public_key())), "value": b64(sig)},
    }


def verify_document(doc: dict[str, Any], key: Ed25519PublicKey, what: str) -> None:
    """Raise SignatureError unless `doc` carries a valid signature by `key`."""
    sig = doc.get("signature")
    if not isinstance(sig, dict) or sig.get("alg") != "ed25519":
        raise SignatureError(f"{what} has no ed25519 signature")
    if sig.get("key_id") != key_id(public_raw(key)):
        raise SignatureError(f"{what} is signed by key {sig.get('key_id')}, not the station's key")
    try:
        key.verify(unb64(sig.get("value"), f"{what} signature"), signed_bytes(doc))
    except (InvalidSignature, FormatError):
        raise SignatureError(f"{what} signature does not verify") from None
