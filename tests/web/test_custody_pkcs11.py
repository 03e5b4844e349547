"""Hardware custody: the custodian key made on a PKCS#11 token (Debian's SoftHSM2, through python-pkcs11).

The key is made on the token, sensitive and not extractable; the database keeps only where it is; the
custody holder, unlocked with the token PIN, unwraps a data key a station wrapped (evidence.crypto.wrap_key)
with the X25519 exchange done by the token (CKM_ECDH1_DERIVE), and audits it like any other unwrap.
A missing SoftHSM2 fails the test under IRMS_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from sqlalchemy import select

from evidence.crypto import wrap_key
from evidence.custody_link import CustodyRefused, SocketUnwrapper
from tests.plugins.base import missing_service
from tests.plugins.recording import BIN
from web import custody
from web.custody_holder import Holder, HolderServer
from web.db import Database
from web.errors import CustodyError
from web.models import AuditEntry, CustodianKey
from web.users import add_user

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
TOKEN = "irms-custody"
PIN = "mã PIN token 2027"


@dataclass(frozen=True)
class SoftHsm:
    conf: Path
    env: dict[str, str]


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsm]:
    """A SoftHSM2 token in a temporary folder (SOFTHSM2_CONF), one per test session: the module reads its
    configuration once per process."""
    if shutil.which("softhsm2-util") is None or not Path(MODULE).exists():
        missing_service(f"SoftHSM2 is not installed (softhsm2-util, {MODULE}): apt-get install softhsm2")
    base = tmp_path_factory.mktemp("softhsm")
    (base / "tokens").mkdir()
    conf = base / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {base / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    old = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", TOKEN, "--so-pin", "so-pin-2027",
                    "--pin", PIN], check=True, capture_output=True, timeout=60)
    try:
        yield SoftHsm(conf, {**os.environ, "SOFTHSM2_CONF": str(conf), "IRMS_WEB_PKCS11_MODULE": MODULE})
    finally:
        if old is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = old


def test_token_key_never_leaves_and_unwraps_on_the_token(softhsm: SoftHsm, db: Database, db_url: str,
                                                          tmp_path: Path) -> None:
    import pkcs11
    from pkcs11 import Attribute, ObjectClass

    # made on the token from the command line (the PIN from stdin, never argv)
    proc = subprocess.run([str(BIN / "irms-web"), "--database", db_url, "custodian", "new", "--pkcs11", "--token",
                           TOKEN, "--passphrase-stdin", "--out", str(tmp_path / "c.pub")], input=PIN + "\n",
                          capture_output=True, text=True, timeout=120, env=softhsm.env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    with db.session() as s:
        row = s.scalars(select(CustodianKey)).one()
        kid, reference = row.key_id, json.loads(row.private_pem)
        add_user(s, username="kiemsat.a", display_name="A", role="prosecutor", password="mật-khẩu-đủ-dài",
                 actor="test", now_us=1)
        s.commit()
    assert reference == {"format": "irms.pkcs11-key/1", "token": TOKEN, "key_id": kid}  # where, never what
    assert custody.where_kept(row) == f"pkcs11:{TOKEN}"
    public = serialization.load_pem_public_key((tmp_path / "c.pub").read_bytes())
    assert isinstance(public, X25519PublicKey)

    # on the token: sensitive, not extractable, its value refused
    with pkcs11.lib(MODULE).get_token(token_label=TOKEN).open(user_pin=PIN) as session:
        priv = next(session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: kid}))
        assert priv[Attribute.SENSITIVE] is True and priv[Attribute.EXTRACTABLE] is False
        assert priv[Attribute.NEVER_EXTRACTABLE] is True
        with pytest.raises(pkcs11.AttributeSensitive):
            priv[Attribute.VALUE]

    # the holder: a wrong PIN opens nothing; the right one; a station's wrap unwrapped by the token
    sock = tmp_path / "custody" / "holder.sock"
    server = HolderServer(Holder(db, MODULE, 0), sock).start()
    try:
        with pytest.raises(CustodyError, match="PIN does not open"):
            server.holder.unlock("sai mã PIN", "custodian-officer", "test")
        server.holder.unlock(PIN, "custodian-officer", "test")
        assert server.holder.status()["held"] == [kid]
        data_key = os.urandom(32)
        wrapped = wrap_key(data_key, public, "S-token-1", 3)
        assert SocketUnwrapper(sock, "kiemsat.a", "test").unwrap(wrapped, "S-token-1", 3) == data_key
        with db.session() as s:
            use = s.scalars(select(AuditEntry).where(AuditEntry.action == "custodian.key_use")).one()
            assert (use.actor, use.target) == ("kiemsat.a", "S-token-1")
            assert json.loads(use.detail)["key_id"] == kid and json.loads(use.detail)["key_index"] == 3
        with pytest.raises(Exception, match="cannot be unwrapped"):  # the wrap bound to another key index
            SocketUnwrapper(sock, "kiemsat.a", "test").unwrap(wrapped, "S-token-1", 4)
        server.holder.lock_all("custodian-officer", "test")
        with pytest.raises(CustodyRefused, match="locked"):
            SocketUnwrapper(sock, "kiemsat.a", "test").unwrap(wrapped, "S-token-1", 3)
    finally:
        server.stop()
