"""The parsed session every rule takes: the evidence, the trust anchors, and what the rules before
have accepted. A rule uses only objects accepted by the rules listed before it in
docs/verifier-rules.md (a rejected record is never used for the timeline, for instance)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from evidence.chain import chain_genesis, chain_next
from evidence.crypto import Unwrapper
from evidence.errors import DecryptionError, FormatError, SignatureError
from evidence.keys import ed25519_public_from_raw, key_id, public_raw, unb64, verify_document
from verifier.evidence import Parsed, SessionEvidence
from verifier.timestamp import TimeProof
from verifier.trust import TrustStore

TAG_BYTES = 16  # AES-GCM tag appended to every ciphertext


def record_problem(parsed: Parsed, key: Ed25519PublicKey | None, session_id: str, i: int) -> str | None:
    """Why the record stored as segment `i` is not accepted (V04), or None: well formed (exact canonical
    bytes, closed members), signed by `key`, of this session, cipher_size = plain_size + 16."""
    if parsed.doc is None:
        return parsed.error
    rec = parsed.doc
    if key is None:
        return "no station key to check the record's signature"
    try:
        verify_document(rec, key, f"record {i}")
    except SignatureError as err:
        return str(err)
    if rec["session_id"] != session_id:
        return f"record belongs to session {rec['session_id']}"
    if rec["cipher_size"] != rec["plain_size"] + TAG_BYTES:
        return (f"record says cipher_size {rec['cipher_size']} for plain_size {rec['plain_size']}; "
                f"AES-256-GCM adds exactly {TAG_BYTES} bytes")
    return None


@dataclass(frozen=True)
class Tolerances:
    """The tolerances of the timeline rules (docs/verifier-rules.md); bounds are inclusive."""

    gap_us: int = 300_000          # V16: a gap or overlap up to this needs no explanation
    duration_us: int = 250_000     # V15: media duration against the record's duration_us
    span_us: int = 3_000_000       # V17: fixed part of the allowed uncovered span (capture start/stop)
    span_ppm: int = 10_000         # V17: plus this many millionths of the span (10 000 = 1 %)


@dataclass
class ParsedSession:
    evidence: SessionEvidence
    trust: TrustStore
    carried: TrustStore | None = None      # anchors carried by an export folder, if verifying one
    witnessed: list[tuple[int, str]] = field(default_factory=list)
    custodian: Unwrapper | None = None
    tolerances: Tolerances = field(default_factory=Tolerances)
    plain: dict[int, bytes] = field(default_factory=dict)  # decrypted by V14 for V15, dropped after
    time_proof: TimeProof | None = None   # set by V18 when the manifest's time-stamp token verifies
    time_note: str = ""                   # V18: why there is no proof of time, or where its root came from
    head_proofs: dict[int, TimeProof] = field(default_factory=dict)  # V19: segment index -> proof of its record
    head_note: str = ""                   # V19: why stored tokens over chain heads were not checked

    @property
    def session_id(self) -> str:
        return self.evidence.session_id

    # --- header and keys (V01-V03) ---------------------------------------------------------------

    @cached_property
    def header_problem(self) -> str | None:
        parsed = self.evidence.header
        if parsed is None:
            return "session.json is missing"
        if parsed.doc is None:
            return parsed.error
        h = parsed.doc
        if h["session_id"] != self.session_id:
            return f"header names session {h['session_id']}"
        folder = f"{h['site']}/{h['room']}/{self.session_id}/"
        if self.evidence.prefix != folder:
            return f"header names site/room folder {folder}, the session is stored in {self.evidence.prefix}"
        try:
            ed25519_public_from_raw(unb64(h["station_key"], "station_key"), "station_key")
        except (FormatError, ValueError) as err:
            return str(err)
        return None

    @cached_property
    def header(self) -> dict[str, Any] | None:
        """The header, when V01 holds."""
        return self.evidence.header.doc if self.header_problem is None and self.evidence.header else None

    @cached_property
    def header_key(self) -> Ed25519PublicKey | None:
        if self.header is None:
            return None
        return ed25519_public_from_raw(unb64(self.header["station_key"], "station_key"), "station_key")

    @cached_property
    def local_anchor(self) -> Ed25519PublicKey | None:
        return self.trust.station_key(self.header["station_id"]) if self.header else None

    @cached_property
    def carried_anchor(self) -> Ed25519PublicKey | None:
        return self.carried.station_key(self.header["station_id"]) if self.header and self.carried else None

    @cached_property
    def trust_basis(self) -> str:
        """`local` (this verifier's trust store), `carried` (only the export folder's own key) or `none`."""
        if self.local_anchor is not None:
            return "local"
        return "carried" if self.carried_anchor is not None else "none"

    @cached_property
    def signing_key(self) -> Ed25519PublicKey | None:
        """The key every signature is checked against: the local anchor, else the carried one, else the header's."""
        return self.local_anchor or self.carried_anchor or self.header_key

    @property
    def station_key_id(self) -> str:
        return key_id(public_raw(self.header_key)) if self.header_key else ""

    # --- records (V04, V07, V08) -----------------------------------------------------------------

    def record_problem(self, i: int) -> str | None:
        if i not in self._record_problems:
            self._record_problems[i] = self._check_record(i)
        return self._record_problems[i]

    @cached_property
    def _record_problems(self) -> dict[int, str | None]:
        return {}

    def _check_record(self, i: int) -> str | None:
        return record_problem(self.evidence.records[i], self.signing_key, self.session_id, i)

    @cached_property
    def records(self) -> dict[int, dict[str, Any]]:
        """Records accepted by V04, by the index of their object name."""
        return {i: p.doc for i, p in sorted(self.evidence.records.items())
                if p.doc is not None and self.record_problem(i) is None}

    @cached_property
    def count(self) -> int:
        """Segments in the store. Unterminated, a ciphertext after the last record is still in flight."""
        recs = set(self.evidence.records)
        if self.evidence.manifest is None:
            return max(recs) + 1 if recs else 0
        every = recs | self.evidence.ciphertexts
        return max(every) + 1 if every else 0

    @cached_property
    def chain(self) -> tuple[list[tuple[int, str]], dict[int, str], str]:
        """(V07 breaks as (segment, message), chain value by index, last chain value) over accepted records."""
        breaks: list[tuple[int, str]] = []
        values: dict[int, str] = {}
        prev = chain_genesis(self.header) if self.header else ""
        for i in range(self.count):
            rec = self.records.get(i)
            if rec is None:
                continue
            if rec["index"] != i:
                breaks.append((i, f"record says index {rec['index']} (reordered or duplicated)"))
                continue
            if rec["prev_chain"] != prev or rec["chain"] != chain_next(prev, i, rec["plain_sha256"],
                                                                       rec["cipher_sha256"]):
                breaks.append((i, "chain broken"))
            prev = rec["chain"]
            values[i] = prev
        return breaks, values, prev

    @cached_property
    def ordered(self) -> list[dict[str, Any]]:
        """Accepted records at their own index, in order: what the timeline rules and the report use."""
        return [r for i, r in self.records.items() if r["index"] == i and i < self.count]

    # --- keys and manifest (V10-V12) -------------------------------------------------------------

    @cached_property
    def key_objects(self) -> dict[int, dict[str, Any]]:
        """Key objects accepted by V12."""
        return {k: p.doc for k, p in self.evidence.keys.items() if p.doc is not None and self.key_problem(k) is None}

    def key_problem(self, k: int) -> str | None:
        parsed = self.evidence.keys[k]
        if parsed.doc is None:
            return parsed.error
        if self.signing_key is None:
            return "no station key to check the key object's signature"
        try:
            verify_document(parsed.doc, self.signing_key, f"key object {k}")
        except SignatureError as err:
            return str(err)
        if parsed.doc["session_id"] != self.session_id or parsed.doc["key_index"] != k:
            return f"key object {k} belongs to session {parsed.doc['session_id']} index {parsed.doc['key_index']}"
        return None

    @cached_property
    def manifest_problem(self) -> str | None:
        parsed = self.evidence.manifest
        if parsed is None:
            return None
        if parsed.doc is None:
            return parsed.error
        if self.header is None or self.signing_key is None:
            return "no valid header to bind the manifest to"
        m = parsed.doc
        try:
            verify_document(m, self.signing_key, "manifest")
        except SignatureError as err:
            return str(err)
        if m["session_id"] != self.session_id or m["header_sha256"] != chain_genesis(self.header):
            return "manifest belongs to another session or header"
        if m["started_at_us"] != self.header["started_at_us"]:
            return (f"manifest says the session started at {m['started_at_us']} µs, "
                    f"the header at {self.header['started_at_us']} µs")
        if m["ended_at_us"] < m["started_at_us"]:
            return "manifest ends before it starts"
        for n, it in enumerate(m["interruptions"]):
            if it["end_us"] < it["start_us"]:
                return f"interruption {n} ends before it starts"
        return None

    @cached_property
    def manifest(self) -> dict[str, Any] | None:
        """The manifest, when present and accepted by V10."""
        if self.evidence.manifest is None or self.manifest_problem is not None:
            return None
        return self.evidence.manifest.doc

    # --- data keys (V14) -------------------------------------------------------------------------

    @cached_property
    def data_keys(self) -> dict[int, bytes | str]:
        """Each data key unwrapped with the custodian key, or why it cannot be."""
        out: dict[int, bytes | str] = {}
        if self.custodian is None or self.header is None:
            return out
        wrapped = {0: self.header["wrapped_key"], **{k: d["wrapped_key"] for k, d in self.key_objects.items()}}
        for k, w in wrapped.items():
            try:
                out[k] = self.custodian.unwrap(w, self.session_id, k)
            except (DecryptionError, FormatError) as err:
                out[k] = str(err)
        return out
