"""The tombstone format (evidence/tombstone.py) and `irms-verify tombstone`: whole and signed, or refused in one
line naming what is wrong."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from evidence.errors import FormatError, SignatureError
from evidence.keys import save_public_key
from evidence.tombstone import build_tombstone, verify_tombstone

BIN = Path(sys.executable).parent
KEY = Ed25519PrivateKey.generate()


def tombstone(**over: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "session_id": str(uuid.uuid4()), "station_id": "st-01", "site": "HN-CA-01", "room": "P101",
        "manifest_sha256": "ab" * 32, "segment_count": 4, "objects": 11, "disposed_at_us": 1_900_000_000_000_000,
        "retain_until_us": 1_890_000_000_000_000,
        "policy": {"id": 1, "unit": "VKS-HNI", "category": "", "anchor": "final", "years": 10, "days": 0,
                   "mode": "COMPLIANCE"},
        "proposed": {"by": "admin", "at_us": 1_889_000_000_000_000},
        "approved": [{"by": "kiemsat-a", "at_us": 1_889_100_000_000_000},
                     {"by": "kiemsat-b", "at_us": 1_889_200_000_000_000}], "key": KEY}
    args.update(over)
    return build_tombstone(**args)


def test_verifies_with_its_own_and_the_given_key() -> None:
    doc = tombstone()
    assert verify_tombstone(doc) == verify_tombstone(doc, KEY.public_key())
    with pytest.raises(SignatureError, match="not the key given"):
        verify_tombstone(doc, Ed25519PrivateKey.generate().public_key())


def test_one_approver_twice_is_refused() -> None:
    with pytest.raises(FormatError, match="two different people"):
        tombstone(approved=[{"by": "a", "at_us": 1}, {"by": "a", "at_us": 2}])


@pytest.mark.parametrize("change", [{"objects": 12}, {"session_id": str(uuid.uuid4())},
                                    {"approved": [{"by": "x", "at_us": 1}, {"by": "y", "at_us": 2}]}])
def test_a_changed_tombstone_does_not_verify(change: dict[str, Any]) -> None:
    with pytest.raises(SignatureError, match="does not verify"):
        verify_tombstone({**tombstone(), **change})


def test_unknown_member_is_named() -> None:
    with pytest.raises(FormatError, match="unknown members"):
        verify_tombstone({**tombstone(), "note": "x"})


def test_cli(tmp_path: Path) -> None:
    doc = tombstone()
    path, pem = tmp_path / "t.json", tmp_path / "server.pub"
    path.write_text(json.dumps(doc))
    save_public_key(pem, KEY.public_key())
    run = subprocess.run([str(BIN / "irms-verify"), "tombstone", str(path), "--server-key", str(pem), "--json"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["ok"] and out["key_given"] and out["tombstone"]["session_id"] == doc["session_id"]
    other = tmp_path / "other.pub"
    save_public_key(other, Ed25519PrivateKey.generate().public_key())
    run = subprocess.run([str(BIN / "irms-verify"), "tombstone", str(path), "--server-key", str(other)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "not the key given" in run.stderr and run.stderr.count("\n") == 1
    (tmp_path / "junk.json").write_text("[]")
    run = subprocess.run([str(BIN / "irms-verify"), "tombstone", str(tmp_path / "junk.json")],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and run.stderr.startswith("irms-verify: FAILED: ")
