"""A real RFC 3161 time-stamping authority on loopback: OpenSSL's `ts -reply` engine behind a small
HTTP endpoint (POST application/timestamp-query, answered application/timestamp-reply).

The TSA has its own root CA and a signing certificate with the critical timeStamping extended key
usage, as a national TSA's is; `root_pem` is what a verifier's trust store holds (trust/tsa/).
`away()` makes the endpoint answer 503 until `back()`, as a TSA that cannot be reached.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.server
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.plugins.base import loopback_http

POLICY = "1.3.6.1.4.1.99999.1.1"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "IRMS test TSA"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_tsa_files(folder: Path, cn: str = "IRMS loopback TSA") -> None:
    """Root CA, TSA certificate and key, and the OpenSSL configuration of the reply engine, in `folder`."""
    now = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = (x509.CertificateBuilder().subject_name(_name(cn + " root")).issuer_name(_name(cn + " root"))
            .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256()))
    tsa_key = ec.generate_private_key(ec.SECP256R1())
    tsa = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(root.subject)
           .public_key(tsa_key.public_key()).serial_number(x509.random_serial_number())
           .not_valid_before(now).not_valid_after(now + dt.timedelta(days=3650))
           .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
           .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                        data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                        crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
           .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
           .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
           .sign(root_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (folder / "root.pem").write_bytes(root.public_bytes(pem))
    (folder / "tsa.pem").write_bytes(tsa.public_bytes(pem))
    (folder / "tsa.key").write_bytes(tsa_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
    (folder / "serial").write_text("01\n")
    (folder / "ts.cnf").write_text(f"""\
[ tsa ]
default_tsa = tsa_config
[ tsa_config ]
dir = {folder}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.pem
certs = $dir/tsa.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = {POLICY}
other_policies = {POLICY}
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
""")


@dataclass
class Tsa:
    folder: Path
    url: str = ""
    answered: int = 0
    refused: int = 0  # queries answered 503 while away
    is_away: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def root_pem(self) -> Path:
        return self.folder / "root.pem"

    def reply(self, query: bytes) -> bytes:
        """OpenSSL's reply engine answers one time-stamp query."""
        with self.lock, tempfile.TemporaryDirectory() as tmp:
            q, r = Path(tmp) / "q.tsq", Path(tmp) / "r.tsr"
            q.write_bytes(query)
            subprocess.run(["openssl", "ts", "-reply", "-config", str(self.folder / "ts.cnf"), "-queryfile", str(q),
                            "-out", str(r)], check=True, capture_output=True, timeout=30)
            self.answered += 1
            return r.read_bytes()

    def away(self) -> None:
        self.is_away = True

    def back(self) -> None:
        self.is_away = False


@contextlib.contextmanager
def running_tsa(folder: Path) -> Iterator[Tsa]:
    """A TSA with fresh certificates in `folder`, serving on a free loopback port until the block ends."""
    folder.mkdir(parents=True, exist_ok=True)
    make_tsa_files(folder)
    tsa = Tsa(folder)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if tsa.is_away:
                tsa.refused += 1
                self.send_response(503)
                self.end_headers()
                return
            if self.headers.get("Content-Type") != "application/timestamp-query":
                self.send_response(415)
                self.end_headers()
                return
            try:
                answer = tsa.reply(body)
            except subprocess.CalledProcessError:
                self.send_response(400)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    with loopback_http(Handler) as base:
        tsa.url = base + "/tsa"
        yield tsa


@pytest.fixture(scope="session")
def tsa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tsa]:
    """The loopback TSA, shared by the test session (tests that make it `away()` must bring it `back()`)."""
    with running_tsa(tmp_path_factory.mktemp("tsa")) as server:
        yield server
        server.back()
