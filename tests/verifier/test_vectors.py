"""Known-answer vectors: fixed keys and inputs, expected bytes and hashes.

These pin the evidence format of docs/evidence-format.md. If one of them changes,
old recordings stop verifying: bump the format version instead.
"""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from verifier.canonical import canonical_json
from verifier.chain import chain_genesis, chain_next
from verifier.crypto import open_segment, seal_segment, segment_aad, segment_nonce, unwrap_key, wrap_key
from verifier.errors import DecryptionError, FormatError
from verifier.formats import CaseInfo, build_header
from verifier.keys import b64, key_id, public_raw, sign_document, verify_document

STATION = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
CUSTODIAN = X25519PrivateKey.from_private_bytes(bytes(range(32, 64)))
DATA_KEY = bytes([0x11] * 32)
SID = "00000000-0000-4000-8000-000000000001"
PLAIN = b"IRMS known-answer segment 0\n" * 10


def counting_rng() -> object:
    state = [0]

    def rng(n: int) -> bytes:
        out = bytes((state[0] + i) % 256 for i in range(n))
        state[0] += n
        return out

    return rng


def kat_header() -> dict[str, object]:
    wrapped = wrap_key(DATA_KEY, CUSTODIAN.public_key(), SID, 0, rng=counting_rng())  # type: ignore[arg-type]
    return sign_document(build_header(
        session_id=SID, station_id="st-kat-01", station_key_b64=b64(public_raw(STATION.public_key())),
        site="HN-CA-01", room="P101",
        case=CaseInfo("1/2026/HS", "Nguyễn Văn A", ("Trần Thị B",), "Điều 183 BLTTHS 2015"),
        kit={"profile": "synthetic", "devices": []}, started_at_us=1_800_000_000_000_000,
        segment_target_us=2_000_000, wrapped_key=wrapped,
    ), STATION)


def test_canonical_json_bytes() -> None:
    assert canonical_json({"b": 1, "a": [True, None, "ố"], "c": {"z": -2, "y": ""}}) == (
        '{"a":[true,null,"ố"],"b":1,"c":{"y":"","z":-2}}'.encode()
    )
    with pytest.raises(FormatError, match="float"):
        canonical_json({"duration": 2.0})
    with pytest.raises(FormatError, match="range"):
        canonical_json({"n": 2**60})


def test_key_ids() -> None:
    assert b64(public_raw(STATION.public_key())) == "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="
    assert key_id(public_raw(STATION.public_key())) == "56475aa75463474c0285df5dbf2bcab7"
    assert key_id(public_raw(CUSTODIAN.public_key())) == "a0289810032eb417274eebc4a38e6899"
    assert key_id(b"\x00" * 32) == hashlib.sha256(b"\x00" * 32).hexdigest()[:32]


def test_key_wrap_vector() -> None:
    wrapped = wrap_key(DATA_KEY, CUSTODIAN.public_key(), SID, 0, rng=counting_rng())  # type: ignore[arg-type]
    assert wrapped == {
        "alg": "X25519-HKDF-SHA256-A256GCM",
        "key_id": "a0289810032eb417274eebc4a38e6899",
        "epk": "j0DFrbaPJWJK5bIU6nZ6bslNgp09e14a0bpvPiE4KF8=",
        "nonce": "ICEiIyQlJicoKSor",
        "ct": "IGv17a9Y+SElni6AT5goa34XA635JVW6Pv5QStGhwYBs6zH75OQxsjRtZE/zGi4D",
    }
    assert unwrap_key(wrapped, CUSTODIAN, SID, 0) == DATA_KEY
    with pytest.raises(DecryptionError):
        unwrap_key(wrapped, CUSTODIAN, SID, 1)  # bound to the key index
    with pytest.raises(DecryptionError):
        unwrap_key(wrapped, X25519PrivateKey.generate(), SID, 0)


def test_header_signature_and_genesis_vector() -> None:
    header = kat_header()
    assert hashlib.sha256(canonical_json(header)).hexdigest() == (
        "242874b01c8864a0728d1db730e2075269cb4c1ad862b93599a49741428bd6a2"
    )
    assert header["signature"] == {  # Ed25519 is deterministic
        "alg": "ed25519",
        "key_id": "56475aa75463474c0285df5dbf2bcab7",
        "value": "6kRPPjelMEapTRy3AJeVAqPYhYq5MrjuDmmro9bO5pSqgr0UGMiGfcCGQtJHatfSU6ibbyC3b5ly8qUNzE2iDA==",
    }
    verify_document(header, STATION.public_key(), "header")
    assert chain_genesis(header) == "242874b01c8864a0728d1db730e2075269cb4c1ad862b93599a49741428bd6a2"


def test_segment_encryption_vector() -> None:
    assert segment_nonce(0) == b"IRMS" + bytes(8)
    assert segment_nonce(258) == b"IRMS\x00\x00\x00\x00\x00\x00\x01\x02"
    assert segment_aad(SID, 7) == (
        b'{"format":"irms.segment/1","index":7,"session_id":"00000000-0000-4000-8000-000000000001"}'
    )
    cipher = seal_segment(DATA_KEY, SID, 0, PLAIN)
    assert len(cipher) == len(PLAIN) + 16
    assert hashlib.sha256(cipher).hexdigest() == "270a85a87932906391bcc6db077cc4859d8e34ee63f4ac1801f610750e8912f3"
    assert open_segment(DATA_KEY, SID, 0, cipher) == PLAIN
    with pytest.raises(DecryptionError):
        open_segment(DATA_KEY, SID, 1, cipher)  # moved to another index
    with pytest.raises(DecryptionError):
        open_segment(DATA_KEY, "00000000-0000-4000-8000-000000000002", 0, cipher)  # moved to another session


def test_chain_vector() -> None:
    genesis = "242874b01c8864a0728d1db730e2075269cb4c1ad862b93599a49741428bd6a2"
    plain_sha = hashlib.sha256(PLAIN).hexdigest()
    cipher_sha = "270a85a87932906391bcc6db077cc4859d8e34ee63f4ac1801f610750e8912f3"
    expected = hashlib.sha256(
        bytes.fromhex(genesis) + (0).to_bytes(8, "big") + bytes.fromhex(plain_sha) + bytes.fromhex(cipher_sha)
    ).hexdigest()
    assert chain_next(genesis, 0, plain_sha, cipher_sha) == expected
    assert expected == "3cd2c9db109757eca05fccbd950fec8f2c32ccf5c20ba195536211dd36dd1a30"
