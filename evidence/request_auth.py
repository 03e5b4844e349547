"""Signed station requests (heartbeats, session events): the format both sides share.

A station signs, with its Ed25519 key, the canonical JSON of
{"format": "irms.request/1", "method", "path", "station_id", "timestamp" (unix s),
"nonce" (32 hex), "body_sha256"}. The server checks the signature against the
enrolled key, refuses timestamps outside a window and nonces it has seen.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from evidence.canonical import canonical_json
from evidence.errors import FormatError, SignatureError
from evidence.keys import b64, unb64

H_STATION = "X-IRMS-Station"
H_TIMESTAMP = "X-IRMS-Timestamp"
H_NONCE = "X-IRMS-Nonce"
H_SIGNATURE = "X-IRMS-Signature"


def request_bytes(method: str, path: str, station_id: str, timestamp: int, nonce: str, body: bytes) -> bytes:
    return canonical_json({
        "body_sha256": hashlib.sha256(body).hexdigest(),
        "format": "irms.request/1",
        "method": method.upper(),
        "nonce": nonce,
        "path": path,
        "station_id": station_id,
        "timestamp": timestamp,
    })


def sign_request(key: Ed25519PrivateKey, station_id: str, method: str, path: str, body: bytes,
                 timestamp: int, nonce: str | None = None) -> dict[str, str]:
    """The headers that authenticate one request."""
    nonce = nonce or os.urandom(16).hex()
    sig = key.sign(request_bytes(method, path, station_id, timestamp, nonce, body))
    return {H_STATION: station_id, H_TIMESTAMP: str(timestamp), H_NONCE: nonce, H_SIGNATURE: b64(sig)}


class RequestHeaders(Protocol):
    """A request's headers by name, as a dict or the web framework's headers hold them; a missing one is a KeyError."""

    def __getitem__(self, name: str, /) -> str: ...


@dataclass(frozen=True)
class SignedRequest:
    station_id: str
    timestamp: int
    nonce: str


def parse_request_headers(headers: RequestHeaders) -> SignedRequest:
    try:
        station_id = headers[H_STATION]
        timestamp = int(headers[H_TIMESTAMP])
        nonce = headers[H_NONCE]
        _ = headers[H_SIGNATURE]
    except (KeyError, ValueError):
        raise FormatError("request lacks the station signature headers") from None
    if len(nonce) != 32 or any(c not in "0123456789abcdef" for c in nonce):
        raise FormatError("request nonce must be 32 lowercase hex digits")
    return SignedRequest(station_id, timestamp, nonce)


def verify_request(key: Ed25519PublicKey, headers: RequestHeaders, method: str, path: str, body: bytes,
                   now: int, window_s: int = 300) -> SignedRequest:
    """Check signature and freshness; the caller checks the nonce was not seen before."""
    req = parse_request_headers(headers)
    if abs(now - req.timestamp) > window_s:
        raise SignatureError(f"request timestamp is {req.timestamp - now:+d} s from server time (stale)")
    try:
        key.verify(unb64(headers[H_SIGNATURE], "signature"),
                   request_bytes(method, path, req.station_id, req.timestamp, req.nonce, body))
    except InvalidSignature:
        raise SignatureError("request signature does not verify") from None
    return req
