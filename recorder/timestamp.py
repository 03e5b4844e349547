"""The station's RFC 3161 client: asks the configured time-stamping authority for a token over a
sealed manifest. A TSA that is away never blocks recording: the manifest waits for its token in
the journal and the request is made again at the next close or upload (`irms-agent upload`).
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request

from rfc3161_client import HashAlgorithm, PKIStatus, TimestampRequestBuilder, decode_timestamp_response

from recorder.errors import RecorderError

QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"


class TimestampUnavailable(RecorderError):
    """The TSA did not give a usable token; the manifest keeps waiting for one."""


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
