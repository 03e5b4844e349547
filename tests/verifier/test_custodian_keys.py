"""The custodian key at rest (`irms.sealed-key/1`: argon2id + AES-256-GCM) and its use from `irms-verify`.

Keygen seals by default; a wrong passphrase, a flipped byte or a changed parameter is one line, the same
line; the old PBKDF2/AES-CBC PEM is refused except by `custodian-rewrap`; an offline key use is recorded
with the OS user and the prosecutor, and refused without a prosecutor.
"""

from __future__ import annotations

import base64
import json
import os
import pwd
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from evidence import sealed_key
from evidence.crypto import unwrap_key, wrap_key
from evidence.errors import FormatError, KeyError_
from evidence.keys import key_id, load_custodian_private, public_raw
from tests.plugins.recording import BIN, Recorded

PASSPHRASE = "mật khẩu người giữ khoá 2027"


def cli(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "irms-verify"), *args], input=stdin, capture_output=True, text=True,
                          timeout=300, env=env)


def test_keygen_seals_by_default_and_plain_only_when_asked(tmp_path: Path) -> None:
    proc = cli("custodian-keygen", "--private", str(tmp_path / "c.key"), "--public", str(tmp_path / "c.pub"),
               "--passphrase-stdin", stdin=PASSPHRASE + "\n")
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "c.key").read_text()
    doc = json.loads(text)
    assert doc["format"] == "irms.sealed-key/1" and "PRIVATE KEY" not in text
    assert {k: doc["kdf"][k] for k in ("alg", "t", "m_kib", "p")} == {"alg": "argon2id", "t": 3, "m_kib": 65536,
                                                                        "p": 4}
    assert doc["aead"]["alg"] == "AES-256-GCM" and len(base64.b64decode(doc["kdf"]["salt"])) == 16
    assert (tmp_path / "c.key").stat().st_mode & 0o777 == 0o600
    key = load_custodian_private(tmp_path / "c.key", lambda: PASSPHRASE.encode())
    assert key_id(public_raw(key.public_key())) == doc["key_id"]
    # no passphrase: no key file (stdin empty), and a short one is refused
    proc = cli("custodian-keygen", "--private", str(tmp_path / "d.key"), "--public", str(tmp_path / "d.pub"),
               "--passphrase-stdin", stdin="ngắn\n")
    assert proc.returncode == 2 and "at least 12 characters" in proc.stderr and not (tmp_path / "d.key").exists()
    proc = cli("custodian-keygen", "--private", str(tmp_path / "e.key"), "--public", str(tmp_path / "e.pub"),
               "--unencrypted")
    assert proc.returncode == 0 and "UNENCRYPTED" in proc.stdout
    assert (tmp_path / "e.key").read_text().startswith("-----BEGIN PRIVATE KEY-----")


def test_sealed_round_trip_and_every_tamper_is_one_line() -> None:
    key = X25519PrivateKey.generate()
    text = sealed_key.seal(key, PASSPHRASE.encode())
    opened = sealed_key.open_sealed(text, PASSPHRASE.encode())
    assert public_raw(opened.public_key()) == public_raw(key.public_key())
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    assert base64.b64encode(raw).decode() not in text

    def fails(t: str, secret: str = PASSPHRASE) -> str:
        with pytest.raises(KeyError_) as err:
            sealed_key.open_sealed(t, secret.encode(), "custodian.key")
        line = str(err.value)
        assert "\n" not in line
        return line

    assert fails(text, "sai mật khẩu hoàn toàn") == ("custodian.key does not open: wrong passphrase, or the sealed "
                                                     "key was altered")
    doc = json.loads(text)
    ct = bytearray(base64.b64decode(doc["ct"]))
    ct[5] ^= 0x01  # one flipped bit in the ciphertext
    assert "does not open" in fails(json.dumps({**doc, "ct": base64.b64encode(ct).decode()}))
    other = X25519PrivateKey.generate()  # another public key and id, the sealed bytes kept
    assert "does not open" in fails(json.dumps({**doc, "public": base64.b64encode(public_raw(other.public_key()))
                                               .decode(), "key_id": key_id(public_raw(other.public_key()))}))
    assert "does not open" in fails(json.dumps({**doc, "kdf": {**doc["kdf"], "t": 4}}))  # bound by the AAD
    with pytest.raises(FormatError, match="kdf.m_kib must be an integer from 65536"):  # no cheap downgrade
        sealed_key.open_sealed(json.dumps({**doc, "kdf": {**doc["kdf"], "m_kib": 8}}), PASSPHRASE.encode())
    with pytest.raises(FormatError, match="not a sealed key"):
        sealed_key.open_sealed(text.replace("irms.sealed-key/1", "irms.sealed-key/9"), PASSPHRASE.encode())


def test_old_pem_is_refused_except_to_rewrap_it(tmp_path: Path) -> None:
    key = X25519PrivateKey.generate()
    old = tmp_path / "old.key"
    old.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.BestAvailableEncryption(b"old passphrase 2026")))
    with pytest.raises(KeyError_, match="old PBKDF2-2048/AES-CBC form.*irms-verify custodian-rewrap"):
        load_custodian_private(old, lambda: b"old passphrase 2026")
    new = tmp_path / "new.key"
    proc = cli("custodian-rewrap", str(old), str(new), "--passphrase-stdin",
               stdin="sai mật khẩu cũ\n" + PASSPHRASE + "\n")
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1 and "does not open" in proc.stderr
    proc = cli("custodian-rewrap", str(old), str(new), "--passphrase-stdin",
               stdin="old passphrase 2026\n" + PASSPHRASE + "\n")
    assert proc.returncode == 0, proc.stderr
    opened = load_custodian_private(new, lambda: PASSPHRASE.encode())
    assert public_raw(opened.public_key()) == public_raw(key.public_key())
    session_key = os.urandom(32)
    wrapped = wrap_key(session_key, key.public_key(), "S-1", 0)
    assert unwrap_key(wrapped, opened, "S-1", 0) == session_key


def test_offline_key_use_needs_a_prosecutor_and_is_recorded(recorded: Recorded, tmp_path: Path) -> None:
    st = recorded.station
    sealed = tmp_path / "custodian.key"
    key = load_custodian_private(st.custodian_key)
    sealed.write_text(sealed_key.seal(key, PASSPHRASE.encode()) + "\n")
    env = st.env()
    sid = recorded.session_id
    log = tmp_path / "key-use.jsonl"
    proc = cli("rebuild", sid, "--store", str(recorded.store), "--custodian-key", str(sealed), "--force",
               "--out", str(tmp_path / "a.mp4"), env=env)
    assert proc.returncode == 2 and "--prosecutor" in proc.stderr and len(proc.stderr.splitlines()) == 1
    proc = cli("rebuild", sid, "--store", str(recorded.store), "--custodian-key", str(sealed), "--force",
               "--prosecutor", "kiemsat.a", "--key-use-log", str(log), "--passphrase-stdin",
               "--out", str(tmp_path / "a.mp4"), stdin="sai mật khẩu hoàn toàn\n", env=env)
    assert proc.returncode == 2 and "does not open" in proc.stderr and not log.exists()
    proc = cli("rebuild", sid, "--store", str(recorded.store), "--custodian-key", str(sealed), "--force",
               "--prosecutor", "kiemsat.a", "--key-use-log", str(log), "--passphrase-stdin",
               "--out", str(tmp_path / "a.mp4"), stdin=PASSPHRASE + "\n", env=env)
    assert proc.returncode == 0, proc.stderr
    assert f"custodian key use recorded in {log}" in proc.stderr and (tmp_path / "a.mp4").stat().st_size > 10_000
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert entries and log.stat().st_mode & 0o777 == 0o600
    me = pwd.getpwuid(os.getuid()).pw_name
    assert all(e["prosecutor"] == "kiemsat.a" and e["os_user"].startswith(me) and e["session_id"] == sid
               and e["purpose"] == "irms-verify rebuild" and e["key_file"] == str(sealed) for e in entries)
    assert sorted({e["key_index"] for e in entries}) == [e["key_index"] for e in entries]  # each data key once
