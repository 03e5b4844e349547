"""Time from outside the station: RFC 3161 time-stamp tokens over a session's manifest.

A station's clock is its own word. After it seals a manifest, the station asks a time-stamping
authority (TSA) for a token over the manifest's exact bytes and stores the TSA's answer, as
received (a DER `TimeStampResp`), as the object `<prefix>manifest.tsr`. Checked offline against
the TSA root certificates of the trust store (`trust/tsa/*.pem`, see verifier/trust.py), the token proves that the
manifest, and so every segment its chain head commits to, existed no later than the token's time,
whatever the station's clock said.

`request_token` is the one RFC 3161 client of the project: the station asks for a token over each
manifest (recorder/session.py), the server over its signed audit head (web/audit_anchor.py).

The checking is rfc3161-client's (status granted, CMS signature, certificate chain to a trusted
root valid at the token's time, critical id-kp-timeStamping usage, message imprint); this module
only adds what IRMS asks of a token: a SHA-256, SHA-384 or SHA-512 imprint of the manifest bytes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import urllib.error
import urllib.request
from dataclasses import dataclass

from cryptography import x509
from rfc3161_client import (
    HashAlgorithm,
    PKIStatus,
    TimestampRequestBuilder,
    VerifierBuilder,
    decode_timestamp_response,
)
from rfc3161_client.errors import VerificationError as TokenRefused

from evidence.errors import FormatError, IrmsError

QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"


class TimestampUnavailable(IrmsError):
    """The TSA gave no usable token; whoever asked keeps waiting for one and asks again later."""

    exit_code = 3
    http_status = 503


def request_token(url: str, data: bytes, timeout: float = 5.0) -> bytes:
    """The TSA's DER answer granting a token over SHA-256(`data`), checked to be the answer to this request."""
    query = TimestampRequestBuilder().data(data).hash_algorithm(HashAlgorithm.SHA256).nonce(nonce=True) \
        .cert_request(cert_request=True).build()
    request = urllib.request.Request(url, data=query.as_bytes(), method="POST",
                                     headers={"Content-Type": QUERY_TYPE, "Accept": REPLY_TYPE})
    where = url.split("?", 1)[0]
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310 - the configured TSA
            body: bytes = answer.read(1 << 20)
    except urllib.error.HTTPError as err:
        raise TimestampUnavailable(f"time-stamping authority {where} answered HTTP {err.code}") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise TimestampUnavailable(f"time-stamping authority {where} unreachable: {reason}") from None
    try:
        response = decode_timestamp_response(body)
    except ValueError:
        raise TimestampUnavailable(f"time-stamping authority {where} answered with no time-stamp response") from None
    if response.status not in (PKIStatus.GRANTED, PKIStatus.GRANTED_WITH_MODS):
        raise TimestampUnavailable(f"time-stamping authority {where} refused the request (PKIStatus "
                                   f"{response.status}: {' '.join(response.status_string) or 'no reason'})")
    info = response.tst_info
    if info.message_imprint.message != hashlib.sha256(data).digest() or info.nonce != query.nonce:
        raise TimestampUnavailable(f"time-stamping authority {where} answered another request")
    return body


@dataclass(frozen=True)
class TimeProof:
    """What a valid token proves: the manifest existed no later than `gen_time_us` (± accuracy)."""

    gen_time_us: int
    accuracy_us: int
    tsa: str
    serial: int

    def to_json(self) -> dict[str, object]:
        return {"gen_time_us": self.gen_time_us, "accuracy_us": self.accuracy_us, "tsa": self.tsa,
                "serial": self.serial}


def check_token(token: bytes, manifest: bytes, roots: list[x509.Certificate]) -> TimeProof:
    """The proof a token gives over `manifest` (its exact stored bytes); FormatError when it gives none."""
    try:
        response = decode_timestamp_response(token)
    except ValueError as err:
        raise FormatError(f"not an RFC 3161 time-stamp response: {err}") from None
    if not roots:
        raise FormatError("no TSA root certificate in the trust store (trust/tsa/*.pem) to check it against")
    try:
        VerifierBuilder(roots=list(roots)).build().verify_message(response, manifest)
    except (TokenRefused, ValueError) as err:
        raise FormatError(f"time-stamp token does not verify: {err}") from None
    info = response.tst_info
    gen = info.gen_time
    if gen.tzinfo is None:
        gen = gen.replace(tzinfo=dt.UTC)
    acc = info.accuracy
    accuracy_us = 0
    if acc is not None:
        accuracy_us = acc.seconds * 1_000_000 + (acc.millis or 0) * 1000 + (acc.micros or 0)
    signer = next(iter(response.signed_data.signer_infos))
    certs = [x509.load_der_x509_certificate(c) for c in response.signed_data.certificates]
    leaf = next((c for c in certs if c.issuer == signer.issuer and c.serial_number == signer.serial_number), None)
    tsa = leaf.subject.rfc4514_string() if leaf is not None else signer.issuer.rfc4514_string()
    return TimeProof(gen_time_us=int(gen.timestamp() * 1_000_000), accuracy_us=accuracy_us, tsa=tsa,
                     serial=info.serial_number)
