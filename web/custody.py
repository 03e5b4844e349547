"""Custody: the custodian's X25519 keys, kept by the server sealed at rest or on a token (R13, R14).

Each key pair is a row of `custodian_keys`: its key id (evidence.keys.key_id of the raw public
key), the public key (PEM, for stations), and in `private_pem` either the private key sealed with
the custodian passphrase (evidence.sealed_key: argon2id + AES-256-GCM, `irms.sealed-key/1`) or,
for hardware custody, only a reference to the PKCS#11 token that holds it (web.custody_pkcs11).
The passphrase (or token PIN) is never stored: no file, no configuration, no environment.
Rotation (`irms-web custodian new`) adds a key and makes it current; old keys are kept (the table
refuses DELETE), and a session's data key is unwrapped with the key its wrap names.

Key use: a web worker never holds a custodian key. It asks the custody holder (web.custody_holder,
started by `irms-web serve`, unlocked by a custodian officer) over the custody socket to unwrap a
data key for a prosecutor; the holder writes the `custodian.key_use` audit entry (prosecutor, OS
user of the caller, purpose) before it answers. Unwrapped data keys stay in the holder's memory for
`data_key_cache_s` so a replay does not unwrap (and audit) once per segment; they are never written.

Rows still in the old form (PKCS#8 PEM with PBKDF2-2048 and AES-CBC) are read only by `rewrap`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from evidence import sealed_key
from evidence.canonical import parse_json_object
from evidence.crypto import KeyUnwrapper, Unwrapper
from evidence.custody_link import CustodyLinkError, SocketUnwrapper
from evidence.errors import DecryptionError, FormatError, KeyError_
from evidence.formats import header_name, key_name
from evidence.keys import key_id, public_raw
from storage.base import ObjectStore
from web import audit, custody_pkcs11
from web.errors import BadRequest, Conflict, CustodyError
from web.models import CustodianKey

REWRAP_HOW = "run `irms-web custody rewrap` once (it asks the old passphrase and the new one)"


def _public_pem(key: X25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def _add_row(s: Session, public: X25519PublicKey, private_text: str, *, actor: str, now_us: int, action: str,
             detail: dict[str, str]) -> CustodianKey:
    kid = key_id(public_raw(public))
    if s.scalars(select(CustodianKey).where(CustodianKey.key_id == kid)).first() is not None:
        raise Conflict(f"custodian key {kid} is already held")
    s.execute(update(CustodianKey).where(CustodianKey.current.is_(True)).values(current=False))
    row = CustodianKey(key_id=kid, public_pem=_public_pem(public), private_pem=private_text, created_at_us=now_us,
                       created_by=actor, current=True)
    s.add(row)
    audit.append(s, at_us=now_us, actor=actor, action=action, target=kid, detail=detail)
    s.flush()
    return row


def _seal(key: X25519PrivateKey, passphrase: bytes) -> str:
    try:
        return sealed_key.seal(key, passphrase)
    except KeyError_ as err:
        raise BadRequest(str(err)) from None


def new_key(s: Session, passphrase: bytes, *, actor: str, now_us: int, os_user: str) -> CustodianKey:
    """Make a key pair, keep it sealed with `passphrase`, make it current (older keys stay for older sessions)."""
    key = X25519PrivateKey.generate()
    return _add_row(s, key.public_key(), _seal(key, passphrase), actor=actor, now_us=now_us, action="custodian.new",
                    detail={"os_user": os_user, "at_rest": sealed_key.FORMAT})


def new_token_key(s: Session, module: str, token: str, pin: str, *, actor: str, now_us: int,
                  os_user: str) -> CustodianKey:
    """Make the key pair on a PKCS#11 token (it never leaves it); the row keeps where it is."""
    kid, raw = custody_pkcs11.generate(custody_pkcs11.require_module(module), token, pin)
    return _add_row(s, X25519PublicKey.from_public_bytes(raw), custody_pkcs11.reference(token, kid), actor=actor,
                    now_us=now_us, action="custodian.new", detail={"os_user": os_user, "at_rest": f"pkcs11:{token}"})


def read_key_file(data: bytes, source_passphrase: bytes | None, where: str) -> X25519PrivateKey:
    """A custodian private key from `irms-verify custodian-keygen` (sealed, or plain with --unencrypted)."""
    if sealed_key.is_sealed(data):
        if source_passphrase is None:
            raise BadRequest(f"{where} is sealed: its passphrase is needed")
        return sealed_key.open_sealed(data, source_passphrase, where)
    if sealed_key.is_legacy(data):
        if source_passphrase is None:
            raise BadRequest(f"{where} is encrypted: its passphrase is needed")
        return sealed_key.open_legacy_pem(data, source_passphrase, where)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as err:
        raise BadRequest(f"{where} is not a readable private key: {str(err).splitlines()[0]}") from None
    if not isinstance(key, X25519PrivateKey):
        raise BadRequest(f"{where} is not an X25519 custodian private key")
    return key


def import_key(s: Session, key: X25519PrivateKey, passphrase: bytes, *, actor: str, now_us: int,
               os_user: str) -> CustodianKey:
    """Take over an existing custodian private key, sealed with the custodian passphrase."""
    return _add_row(s, key.public_key(), _seal(key, passphrase), actor=actor, now_us=now_us,
                    action="custodian.import", detail={"os_user": os_user, "at_rest": sealed_key.FORMAT})


def rewrap(s: Session, old_passphrase: bytes, new_passphrase: bytes, *, actor: str, now_us: int,
           os_user: str) -> list[str]:
    """Seal again every key still in the old PBKDF2/AES-CBC form; the key ids done."""
    done = []
    for row in all_keys(s):
        if not sealed_key.is_legacy(row.private_pem):
            continue
        key = sealed_key.open_legacy_pem(row.private_pem.encode("ascii"), old_passphrase, f"custodian key {row.key_id}")
        row.private_pem = _seal(key, new_passphrase)
        audit.append(s, at_us=now_us, actor=actor, action="custodian.rewrap", target=row.key_id,
                     detail={"os_user": os_user, "from": "pkcs8-pbkdf2-aes-cbc", "to": sealed_key.FORMAT})
        done.append(row.key_id)
    s.flush()
    return done


def current_key(s: Session) -> CustodianKey | None:
    return s.scalars(select(CustodianKey).where(CustodianKey.current.is_(True))).first()


def all_keys(s: Session) -> list[CustodianKey]:
    return list(s.scalars(select(CustodianKey).order_by(CustodianKey.created_at_us)))


def where_kept(row: CustodianKey) -> str:
    if sealed_key.is_legacy(row.private_pem):
        return "old-format"
    ref = custody_pkcs11.parse_reference(row.private_pem)
    return f"pkcs11:{ref['token']}" if ref else "sealed"


def open_row(row: CustodianKey, secret: str, module: str) -> Unwrapper:
    """The key of `row`, opened with the passphrase (or the token PIN): only the custody holder calls this."""
    ref = custody_pkcs11.parse_reference(row.private_pem)
    if ref is not None:
        return custody_pkcs11.open_key(custody_pkcs11.require_module(module), ref["token"], row.key_id, secret)
    if sealed_key.is_legacy(row.private_pem):
        raise CustodyError(str(sealed_key.legacy_refusal(f"custodian key {row.key_id}", REWRAP_HOW)))
    try:
        return KeyUnwrapper(sealed_key.open_sealed(row.private_pem, secret.encode("utf-8"),
                                                   f"custodian key {row.key_id}"))
    except (KeyError_, FormatError) as err:
        raise CustodyError(str(err)) from None


# --- key use (web workers) ----------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyUse:
    prosecutor: str
    purpose: str


def data_key(store: ObjectStore, prefix: str, session_id: str, key_index: int, use: KeyUse,
             socket_path: Path) -> bytes:
    """Session data key `key_index`, unwrapped by the custody holder (which audits it) for `use.prosecutor`.

    The worker keeps no data key past the request: the holder keeps them `data_key_cache_s` (one audit
    entry per prosecutor, session and key in that time), so `irms-web custody lock` takes effect at once.
    """
    try:
        if key_index == 0:
            doc = parse_json_object(store.get(header_name(prefix)), "session header")
        else:
            doc = parse_json_object(store.get(key_name(prefix, key_index)), f"key object {key_index}")
        wrapped = doc["wrapped_key"]
        if not isinstance(wrapped, dict):
            raise KeyError("wrapped_key")
    except (FormatError, KeyError):
        raise CustodyError(f"session {session_id} has no readable wrapped data key {key_index}") from None
    try:
        return SocketUnwrapper(socket_path, use.prosecutor, use.purpose).unwrap(wrapped, session_id, key_index)
    except DecryptionError:
        raise CustodyError(f"data key {key_index} of session {session_id} does not unwrap") from None
    except CustodyLinkError as err:
        raise CustodyError(str(err)) from None
