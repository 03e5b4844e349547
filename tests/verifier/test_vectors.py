"""Known-answer vectors: fixed keys and inputs, expected bytes and hashes.

These pin the evidence format of docs/evidence-format.md. If one of them changes,
old recordings stop verifying: bump the format version instead.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from evidence.canonical import canonical_json, parse_canonical
from evidence.chain import chain_genesis, chain_next
from evidence.crypto import open_segment, seal_segment, segment_aad, segment_nonce, unwrap_key, wrap_key
from evidence.errors import DecryptionError, FormatError
from evidence.formats import (
    EVENT_KINDS,
    HEADER_FORMAT,
    INTERRUPTION_CAUSES,
    MANIFEST_FORMAT,
    CaseInfo,
    build_header,
    build_manifest,
    check_document,
)
from evidence.keys import b64, key_id, public_raw, sign_document, verify_document
from verifier.timestamp import TimeProof, check_token

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


KAT_HEADER = (
    '{"case":{"case_number":"1/2026/HS","interrogators":["Trần Thị B"],"legal_basis":"Điều 183 BLTTHS 2015",'
    '"suspect":"Nguyễn Văn A"},"cipher":"AES-256-GCM","container":"mpegts",'
    '"custodian_key_id":"a0289810032eb417274eebc4a38e6899","format":"irms.session/1",'
    '"kit":{"devices":[],"profile":"synthetic"},"room":"P101","segment_target_us":2000000,'
    '"session_id":"00000000-0000-4000-8000-000000000001","signature":{"alg":"ed25519",'
    '"key_id":"56475aa75463474c0285df5dbf2bcab7","value":"6kRPPjelMEapTRy3AJeVAqPYhYq5MrjuDmmro9bO5pSqgr0UGMi'
    'GfcCGQtJHatfSU6ibbyC3b5ly8qUNzE2iDA=="},"site":"HN-CA-01","started_at_us":1800000000000000,'
    '"station_id":"st-kat-01","station_key":"A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=",'
    '"wrapped_key":{"alg":"X25519-HKDF-SHA256-A256GCM","ct":"IGv17a9Y+SElni6AT5goa34XA635JVW6Pv5QStGhwYBs6zH75OQ'
    'xsjRtZE/zGi4D","epk":"j0DFrbaPJWJK5bIU6nZ6bslNgp09e14a0bpvPiE4KF8=","key_id":"a0289810032eb417274eebc4a38e6899",'
    '"nonce":"ICEiIyQlJicoKSor"}}'
).encode()


def test_header_vector_written_out_in_full() -> None:
    """The bytes docs/evidence-format.md prints; a second implementer can start from them."""
    assert canonical_json(kat_header()) == KAT_HEADER
    assert hashlib.sha256(KAT_HEADER).hexdigest() == "242874b01c8864a0728d1db730e2075269cb4c1ad862b93599a49741428bd6a2"
    header = check_document(parse_canonical(KAT_HEADER, "header"), HEADER_FORMAT, "header")
    verify_document(header, STATION.public_key(), "header")


@pytest.mark.parametrize(("data", "reason"), [
    (b'{"a":1,"a":2}', "appears twice"),
    (b'\xef\xbb\xbf{"a":1}', "byte order mark"),
    (b'{"a":1}\n', "canonical"),
    (b'{"a": 1}', "canonical"),
    (b'{"b":1,"a":2}', "canonical"),
    (b'{"a":"\\/"}', "canonical"),
    (b'{"a":"\\u00e9"}', "canonical"),
    (b'{"a":-0}', "canonical"),
    (b'{"a":1.0}', "float"),
    (b'{"a":1e3}', "float"),
    (b'{"a":9007199254740993}', "range"),
    (b'{"a":"\\ud800"}', "surrogate"),
    (b'[1]', "not a JSON object"),
])
def test_stored_objects_are_exactly_canonical(data: bytes, reason: str) -> None:
    with pytest.raises(FormatError, match=reason):
        parse_canonical(data, "object")


def test_canonical_bounds_and_escapes_accepted() -> None:
    assert parse_canonical(b'{"a":9007199254740992,"b":-9007199254740992}', "o")["a"] == 2**53  # inclusive
    assert parse_canonical('{"a":"é\\n\\u001f\\"\\\\\u2028\x7f"}'.encode(), "o")["a"] == 'é\n\x1f"\\\u2028\x7f'


def _manifest(**changes: object) -> dict[str, object]:
    body = build_manifest(
        session_id=SID, header_sha256="0" * 64, segment_count=0, chain_head="0" * 64, started_at_us=1,
        ended_at_us=2, end_reason="stopped", key_count=1,
        interruptions=[{"cause": "store_full", "end_us": 2, "reason": "", "start_us": 1}],
        events=[{"at_us": 1, "detail": "+1.2 s", "kind": "clock_step"}],
        devices=[{"kind": "camera", "role": "wide", "source": "lavfi", "size": "640x360", "fps": 25},
                 {"kind": "microphone", "role": "room", "source": "lavfi", "rate": 48000, "channels": 1}])
    return {**sign_document(body, STATION), **changes}


def test_closed_lists_accept_every_listed_value() -> None:
    check_document(_manifest(), MANIFEST_FORMAT, "manifest")
    for kind in EVENT_KINDS:
        check_document(_manifest(events=[{"at_us": 1, "detail": "", "kind": kind}]), MANIFEST_FORMAT, "manifest")
    for cause in INTERRUPTION_CAUSES:
        check_document(_manifest(interruptions=[{"cause": cause, "end_us": 2, "reason": "", "start_us": 1}]),
                       MANIFEST_FORMAT, "manifest")


@pytest.mark.parametrize(("changes", "reason"), [
    ({"events": [{"at_us": 1, "detail": "", "kind": "reboot"}]}, "kind"),
    ({"events": [{"at_us": 1, "detail": "", "kind": "start", "by": "x"}]}, "unknown members"),
    ({"interruptions": [{"cause": "lunch", "end_us": 2, "reason": "", "start_us": 1}]}, "cause"),
    ({"devices": [{"kind": "camera", "role": "w", "source": "lavfi", "size": "1x1", "fps": 1, "zoom": 2}]},
     "unknown members"),
    ({"devices": [{"kind": "printer"}]}, "kind"),
    ({"signature": {"alg": "ed25519", "key_id": "56475aa75463474c0285df5dbf2bcab7", "value": "A" * 86 + "==",
                    "note": "x"}}, "unknown members"),
    ({"signature": {"alg": "ed25519", "key_id": "56475aa75463474c0285df5dbf2bcab7", "value": "AA=="}}, "64 bytes"),
    ({"ended_at_us": -1}, "outside"),
    ({"ended_at_us": True}, "integer"),
    ({"key_count": 0}, "outside"),
    ({"extra": 1}, "unknown members"),
])
def test_closed_lists_refuse_anything_else(changes: dict[str, object], reason: str) -> None:
    with pytest.raises(FormatError, match=reason):
        check_document(_manifest(**changes), MANIFEST_FORMAT, "manifest")


def test_spec_prints_the_header_vector_byte_for_byte() -> None:
    from pathlib import Path

    spec = (Path(__file__).resolve().parents[2] / "docs" / "evidence-format.md").read_text(encoding="utf-8")
    block = spec.split("join the lines without anything between them):\n\n```\n", 1)[1].split("\n```", 1)[0]
    assert "".join(block.splitlines()).encode() == KAT_HEADER


VECTORS = Path(__file__).resolve().parent / "vectors"


def kat_manifest() -> bytes:
    header = kat_header()
    return canonical_json(sign_document(build_manifest(
        session_id=SID, header_sha256=chain_genesis(header), segment_count=0, chain_head=chain_genesis(header),
        started_at_us=1_800_000_000_000_000, ended_at_us=1_800_000_002_000_000, end_reason="stopped", key_count=1,
        interruptions=[], events=[], devices=[]), STATION))


def test_time_stamp_token_vector() -> None:
    """Format 1.1: a token from a fixed TSA over the vector's manifest, and what it proves (V18)."""
    manifest = kat_manifest()
    assert hashlib.sha256(manifest).hexdigest() == "bcfea7bcc58f5697fb02ef55b103a67d4f526719bc3ce06bfec1efc0ba933784"
    token = base64.decodebytes((VECTORS / "kat-manifest.tsr.b64").read_bytes())
    assert hashlib.sha256(token).hexdigest() == "cdcd53030a4d2d8d222c64ed7a7425bc6a6eb1506d06efe5e21c16b3ba30559e"
    roots = list(x509.load_pem_x509_certificates((VECTORS / "kat-tsa-root.pem").read_bytes()))
    proof = check_token(token, manifest, roots)
    assert proof == TimeProof(gen_time_us=1_796_006_075_000_000, accuracy_us=1_000_000,
                              tsa="CN=IRMS loopback TSA,O=IRMS test TSA,C=VN", serial=2)
    with pytest.raises(FormatError, match="Mismatch between messages"):
        check_token(token, manifest[:-1] + b" ", roots)
