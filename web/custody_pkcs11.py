"""Hardware custody: the custodian's X25519 key made on a PKCS#11 token and never taken out of it.

The data-key wrap stations write (evidence.crypto: X25519, then HKDF-SHA256, then AES-256-GCM) needs
one private-key operation, the X25519 exchange with the wrap's ephemeral public key. That is the
token operation: CKM_ECDH1_DERIVE with the ephemeral key as public data and no KDF (CKD_NULL) gives
the 32-byte shared secret as a session object (never on the token, extractable), which the holder
reads to finish HKDF and AES-GCM in memory. The private key is made on the token sensitive and not
extractable; the shared secret opens only the one data key of that wrap. The wrap format is the same
as for a key held in memory, so stations and exports do not know the difference. (PKCS#11 3.0's
CKM_HKDF_DERIVE would keep the secret on the token too; SoftHSM2 2.6 does not have it.)

SoftHSM2 2.6 (Debian's softhsm2) makes X25519 keys with CKM_EC_EDWARDS_KEY_PAIR_GEN and the X25519
curve (OID 1.3.101.110) as CKK_EC_EDWARDS; a token with PKCS#11 3.0's CKM_EC_MONTGOMERY_KEY_PAIR_GEN
is not tried here. The key's CKA_LABEL and CKA_ID are its IRMS key id.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from evidence.crypto import unwrap_with
from evidence.keys import key_id
from web.errors import BadRequest, CustodyError

FORMAT = "irms.pkcs11-key/1"
X25519_OID = "1.3.101.110"


def reference(token: str, kid: str) -> str:
    """What the database keeps for a key on a token: where it is, never the key."""
    return json.dumps({"format": FORMAT, "token": token, "key_id": kid}, sort_keys=True)


def parse_reference(text: str) -> dict[str, str] | None:
    if FORMAT not in text[:200]:
        return None
    doc = json.loads(text)
    return {"token": str(doc["token"]), "key_id": str(doc["key_id"])}


_libs: dict[str, Any] = {}


def _lib(module: str) -> Any:
    """The module, loaded (C_Initialize) once per process."""
    try:
        import pkcs11
    except ImportError:  # pragma: no cover - python-pkcs11 is a dependency
        raise CustodyError("python-pkcs11 is not installed") from None
    if module not in _libs:
        try:
            _libs[module] = pkcs11.lib(module)
        except (RuntimeError, OSError, pkcs11.PKCS11Error) as err:
            raise CustodyError(f"PKCS#11 module {module} cannot be loaded: {err.__class__.__name__}") from None
    return _libs[module]


def _token(module: str, label: str) -> Any:
    import pkcs11
    try:
        return _lib(module).get_token(token_label=label)
    except (pkcs11.NoSuchToken, pkcs11.MultipleTokensReturned):
        raise CustodyError(f"no single PKCS#11 token labelled {label!r} in {module}") from None


def _open(module: str, label: str, pin: str, rw: bool = False) -> Any:
    import pkcs11
    try:
        return _token(module, label).open(user_pin=pin, rw=rw)
    except (pkcs11.PinIncorrect, pkcs11.PinLenRange):
        raise CustodyError(f"the PIN does not open PKCS#11 token {label!r}") from None
    except pkcs11.PKCS11Error as err:
        raise CustodyError(f"PKCS#11 token {label!r}: {err.__class__.__name__}") from None


def _raw_point(point: bytes) -> bytes:
    """CKA_EC_POINT is a DER OCTET STRING (04 20 <32 bytes>) on SoftHSM2; some tokens give the raw 32 bytes."""
    if len(point) == 34 and point[:2] == b"\x04\x20":
        return point[2:]
    if len(point) == 32:
        return point
    raise CustodyError("the token's public key is not a 32-byte X25519 point")


def generate(module: str, label: str, pin: str) -> tuple[str, bytes]:
    """Make an X25519 key pair on the token (sensitive, not extractable); its key id and raw public key."""
    import pkcs11
    from pkcs11 import Attribute, KeyType, Mechanism
    from pkcs11.util.ec import encode_named_curve_parameters
    with _open(module, label, pin, rw=True) as s:
        try:
            pub, priv = s.generate_keypair(
                KeyType.EC_EDWARDS, mechanism=Mechanism.EC_EDWARDS_KEY_PAIR_GEN,
                public_template={Attribute.EC_PARAMS: encode_named_curve_parameters(X25519_OID),
                                 Attribute.TOKEN: True},
                private_template={Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
                                  Attribute.EXTRACTABLE: False, Attribute.DERIVE: True, Attribute.SIGN: False})
        except pkcs11.PKCS11Error as err:
            raise CustodyError(f"token {label!r} cannot make an X25519 key: {err.__class__.__name__}") from None
        raw = _raw_point(pub[Attribute.EC_POINT])
        kid = key_id(raw)
        for obj in (pub, priv):
            obj[Attribute.LABEL] = kid
            obj[Attribute.ID] = bytes.fromhex(kid)
    return kid, raw


@dataclass
class TokenKey:
    """A custodian key on a token, with the logged-in session the holder keeps while unlocked."""

    token: str
    kid: str
    public: bytes
    session: Any
    private: Any
    lock: threading.Lock = field(default_factory=threading.Lock)

    def exchange(self, epk: bytes) -> bytes:
        import pkcs11
        from pkcs11 import KDF, Attribute, KeyType, Mechanism
        with self.lock:
            try:
                secret = self.private.derive_key(
                    KeyType.GENERIC_SECRET, 256, mechanism=Mechanism.ECDH1_DERIVE,
                    mechanism_param=(KDF.NULL, None, epk),
                    template={Attribute.TOKEN: False, Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True})
                value = bytes(secret[Attribute.VALUE])
                secret.destroy()
            except pkcs11.PKCS11Error as err:
                raise ValueError(f"token exchange failed: {err.__class__.__name__}") from None
        return value

    def unwrap(self, wrapped: dict[str, Any], session_id: str, key_index: int) -> bytes:
        return unwrap_with(wrapped, self.public, self.exchange, session_id, key_index)

    def close(self) -> None:
        with self.lock:
            self.session.close()


def open_key(module: str, token: str, kid: str, pin: str) -> TokenKey:
    """Log in to the token and find the key pair labelled `kid` (the private half stays on the token)."""
    from pkcs11 import Attribute, ObjectClass
    session = _open(module, token, pin)
    try:
        privs = list(session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: kid}))
        pubs = list(session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.LABEL: kid}))
        if len(privs) != 1 or len(pubs) != 1:
            raise CustodyError(f"token {token!r} holds no single key pair labelled {kid}")
        raw = _raw_point(pubs[0][Attribute.EC_POINT])
        if key_id(raw) != kid:
            raise CustodyError(f"the key labelled {kid} on token {token!r} has another public key")
        return TokenKey(token, kid, raw, session, privs[0])
    except BaseException:
        session.close()
        raise


def require_module(module: str) -> str:
    if not module:
        raise BadRequest("no PKCS#11 module: set pkcs11_module (e.g. /usr/lib/softhsm/libsofthsm2.so)")
    return module
