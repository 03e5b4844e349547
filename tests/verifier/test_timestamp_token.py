"""The offline check of an RFC 3161 token over a manifest: every way a token can fail to prove time."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from recorder.timestamp import request_token
from tests.plugins.tsa import Tsa, running_tsa
from verifier.errors import FormatError
from verifier.timestamp import check_token, load_tsa_roots

MANIFEST = b'{"format":"irms.manifest/1","session_id":"x"}'


@pytest.fixture
def token(tsa: Tsa) -> bytes:
    return request_token(tsa.url, MANIFEST)


def test_a_token_proves_when_the_manifest_existed(tsa: Tsa, token: bytes, tmp_path: Path) -> None:
    (tmp_path / "tsa").mkdir()
    (tmp_path / "tsa" / "loopback.pem").write_bytes(tsa.root_pem.read_bytes())
    proof = check_token(token, MANIFEST, load_tsa_roots(tmp_path))
    assert proof.tsa.startswith("CN=IRMS loopback TSA,") and proof.accuracy_us == 1_000_000


def test_a_token_over_other_bytes_fails(tsa: Tsa, token: bytes) -> None:
    with pytest.raises(FormatError, match="does not verify: Mismatch between messages"):
        check_token(token, MANIFEST + b" ", load_tsa_roots_of(tsa))


def test_a_token_whose_signature_was_altered_fails(tsa: Tsa, token: bytes) -> None:
    bad = bytearray(token)
    bad[-5] ^= 0x01  # inside the TSA's signature value, the last member of the token
    with pytest.raises(FormatError):
        check_token(bytes(bad), MANIFEST, load_tsa_roots_of(tsa))


def test_a_token_from_a_tsa_the_trust_store_does_not_hold_fails(token: bytes, tmp_path: Path) -> None:
    with running_tsa(tmp_path / "other") as other, pytest.raises(FormatError, match="certificate verify error"):
        check_token(token, MANIFEST, load_tsa_roots_of(other))


def test_without_tsa_roots_a_token_is_not_taken_on_its_word(token: bytes, tmp_path: Path) -> None:
    assert load_tsa_roots(tmp_path) == []
    with pytest.raises(FormatError, match="no TSA root certificate"):
        check_token(token, MANIFEST, [])


def test_bytes_that_are_no_token_fail(tsa: Tsa) -> None:
    with pytest.raises(FormatError, match="not an RFC 3161 time-stamp response"):
        check_token(b"\x30\x03\x02\x01\x00" + b"junk", MANIFEST, load_tsa_roots_of(tsa))


def load_tsa_roots_of(tsa: Tsa) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(tsa.root_pem.read_bytes())
