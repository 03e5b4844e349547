"""V18: the manifest's RFC 3161 time-stamp token, when the session has one (format 1.1).

The token is the time-stamping authority's answer over the manifest's exact bytes. A session
without a token verifies as before (its times are the station's own word, and the report says
so); a token that is there must prove what it claims, against a TSA root this verifier trusts.
"""

from __future__ import annotations

from evidence.canonical import canonical_json
from evidence.errors import FormatError
from evidence.formats import TOKEN_SUFFIX
from verifier.rules import Finding
from verifier.rules.parsed import ParsedSession
from verifier.timestamp import check_token


def v18_time_stamp(s: ParsedSession) -> list[Finding]:
    """A stored token verifies (TSA signature, chain to a trusted TSA root, imprint of the manifest bytes)."""
    token = s.evidence.other.get(TOKEN_SUFFIX)
    if token is None:
        s.time_note = "no time-stamp token: the session's times are the station clock's word"
        return []
    if s.evidence.manifest is None:
        return [Finding("V18", "a time-stamp token is stored but the manifest it stamps is not")]
    if s.manifest is None:
        return []  # V10 failed: there are no accepted manifest bytes to check the token against
    roots, carried = s.trust.tsa_roots, False
    if not roots and s.carried is not None:
        roots, carried = s.carried.tsa_roots, True
    if not roots:
        s.time_note = "time-stamp token not checked: no TSA root certificate in the trust store (trust/tsa/)"
        return []
    try:
        s.time_proof = check_token(token, canonical_json(s.manifest), list(roots))
    except FormatError as err:
        return [Finding("V18", str(err))]
    s.time_note = "TSA root carried by this folder" if carried else ""
    return []
