"""V18 and V19: RFC 3161 time-stamp tokens, when the session has them (format 1.1).

V18's token is the time-stamping authority's answer over the manifest's exact bytes; V19's
(`seg/NNNNNNNN.tsr`, asked for while the session records) over one segment record's exact bytes,
whose chain value commits to every segment before it. A session without tokens verifies as before
(its times are the station's own word, and the report says so); a token that is there must prove
what it claims, against a TSA root this verifier trusts.
"""

from __future__ import annotations

from cryptography import x509

from evidence.canonical import canonical_json
from evidence.errors import FormatError
from evidence.formats import TOKEN_SUFFIX
from verifier.rules import Finding
from verifier.rules.parsed import ParsedSession
from verifier.timestamp import check_token


def _tsa_roots(s: ParsedSession) -> tuple[list[x509.Certificate], bool]:
    """The TSA roots to check tokens against: this verifier's own, else those an export folder carries."""
    if s.trust.tsa_roots:
        return list(s.trust.tsa_roots), False
    if s.carried is not None and s.carried.tsa_roots:
        return list(s.carried.tsa_roots), True
    return [], False


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
    roots, carried = _tsa_roots(s)
    if not roots:
        s.time_note = "time-stamp token not checked: no TSA root certificate in the trust store (trust/tsa/)"
        return []
    try:
        s.time_proof = check_token(token, canonical_json(s.manifest), roots)
    except FormatError as err:
        return [Finding("V18", str(err))]
    s.time_note = "TSA root carried by this folder" if carried else ""
    return []


def v19_head_time_stamps(s: ParsedSession) -> list[Finding]:
    """Each stored `seg/N.tsr` verifies over record N's exact bytes (TSA signature, chain to a trusted
    TSA root, imprint); a token whose record is not stored fails. Proofs go to `s.head_proofs`."""
    if not s.evidence.head_tokens:
        return []
    roots, _ = _tsa_roots(s)
    out = []
    for i, token in sorted(s.evidence.head_tokens.items()):
        parsed = s.evidence.records.get(i)
        if parsed is None:
            out.append(Finding("V19", f"a time-stamp token is stored for segment {i} but its record is not", i))
            continue
        if parsed.doc is None or i not in s.records or not roots:
            continue  # V04 judged the record; without a TSA root the tokens are reported unchecked
        try:
            s.head_proofs[i] = check_token(token, canonical_json(parsed.doc), roots)
        except FormatError as err:
            out.append(Finding("V19", f"segment {i}'s record: {err}", i))
    if not roots:
        s.head_note = (f"{len(s.evidence.head_tokens)} time-stamp token(s) over chain heads not checked: "
                       "no TSA root certificate in the trust store (trust/tsa/)")
    return out
