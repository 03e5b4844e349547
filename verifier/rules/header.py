"""V01-V03: the session header and the station key that signs everything."""

from __future__ import annotations

from evidence.errors import SignatureError
from evidence.keys import key_id, public_raw, verify_document
from verifier.rules import Finding
from verifier.rules.parsed import ParsedSession


def v01_header(s: ParsedSession) -> list[Finding]:
    """Header present, exact canonical bytes, closed members, names this session and its folder."""
    return [Finding("V01", s.header_problem)] if s.header_problem else []


def v02_station_key(s: ParsedSession) -> list[Finding]:
    """The header's key is the station's trusted key; no anchor known here contradicts another."""
    if s.header is None or s.header_key is None:
        return []
    station = s.header["station_id"]
    header_id = s.station_key_id
    local, carried = s.local_anchor, s.carried_anchor
    anchor = local or carried
    if anchor is None:
        return [Finding("V02", f"station {station} is not in the trust store {s.trust.origin or '(empty)'}")]
    if local is not None and carried is not None and public_raw(local) != public_raw(carried):
        return [Finding("V02", f"the folder carries key {key_id(public_raw(carried))} for station {station}, "
                               f"the local trust store holds {key_id(public_raw(local))}")]
    if public_raw(anchor) != public_raw(s.header_key):
        where = "trusted" if local is not None else "folder's"
        return [Finding("V02", f"header carries key {header_id}, the {where} key of station {station} is "
                               f"{key_id(public_raw(anchor))}")]
    return []


def v03_header_signature(s: ParsedSession) -> list[Finding]:
    """The header's signature verifies under the signing key."""
    if s.header is None or s.signing_key is None:
        return []
    try:
        verify_document(s.header, s.signing_key, "session header")
    except SignatureError as err:
        return [Finding("V03", str(err))]
    return []
