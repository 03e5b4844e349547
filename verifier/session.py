"""Verification of one session: every rule of docs/verifier-rules.md, from the objects in a store.

`audit()` collects every finding; `verify()` raises VerificationError naming the first. Rules are
functions in `verifier/rules/`, one per rule, run in two passes: the document rules over the parsed
small objects, then the byte rules (V06, V14, V15) over each ciphertext in index order. The trust
store is an object the caller builds; nothing here reads a directory. Integrity rules need only
public keys; the media rules also need the custodian's private key.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from evidence.canonical import parse_json_object
from evidence.crypto import Unwrapper, open_segment
from evidence.formats import key_name, segment_name
from storage.base import ObjectStore
from verifier.errors import VerificationError
from verifier.evidence import load_evidence, locate
from verifier.rules import Finding
from verifier.rules.header import v01_header, v02_station_key, v03_header_signature
from verifier.rules.manifest import v09_manifest_present, v10_manifest, v11_manifest_closes_chain, v12_data_keys
from verifier.rules.media import v14_decrypts, v15_decodes
from verifier.rules.parsed import ParsedSession, Tolerances
from verifier.rules.segments import v04_records, v05_objects, v06_ciphertext, v07_chain, v08_indices
from verifier.rules.timeline import gaps, v16_continuity, v17_span
from verifier.rules.timestamp import v18_time_stamp, v19_head_time_stamps
from verifier.rules.witness import v13_witnessed
from verifier.timestamp import TimeProof
from verifier.trust import TrustStore

__all__ = ["Options", "Report", "audit", "decrypt_segments", "locate", "verify"]

DocumentRule = Callable[[ParsedSession], list[Finding]]
# In the order of docs/verifier-rules.md.
DOCUMENT_RULES: tuple[DocumentRule, ...] = (
    v01_header, v02_station_key, v03_header_signature, v04_records, v05_objects, v07_chain, v08_indices,
    v09_manifest_present, v10_manifest, v11_manifest_closes_chain, v12_data_keys, v13_witnessed,
    v16_continuity, v17_span, v18_time_stamp, v19_head_time_stamps,
)


@dataclass
class Options:
    trust: TrustStore
    carried: TrustStore | None = None  # the trust anchors an export folder carries for itself
    custodian: Unwrapper | None = None
    witnessed: list[tuple[int, str]] = field(default_factory=list)
    tolerances: Tolerances = field(default_factory=Tolerances)
    media: bool = True
    ciphertexts: bool = True
    """The byte rules (V06, V14, V15) over each ciphertext; off for the server's live refresh of a session
    still recording, whose every segment the web checks against its record as it serves it."""


@dataclass
class Report:
    session_id: str
    prefix: str = ""
    status: str = "failed"  # verified | unterminated | failed
    findings: list[Finding] = field(default_factory=list)
    open: list[Finding] = field(default_factory=list)  # V09 when unterminated
    segments: int = 0
    proven_segments: int = 0
    duration_us: int = 0
    media_checked: bool = False
    station_id: str = ""
    station_key_id: str = ""
    trust_basis: str = ""  # local | carried | none
    gaps: list[dict[str, int]] = field(default_factory=list)  # unterminated: gaps not judged yet
    time_proof: TimeProof | None = None  # V18: the manifest existed no later than the TSA's time
    time_note: str = ""
    head_proofs: dict[int, TimeProof] = field(default_factory=dict)  # V19: segment -> its record's time proof
    head_note: str = ""
    header: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] | None = None
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "verified"

    def to_json(self) -> dict[str, Any]:
        m = self.manifest or {}
        return {
            "ok": self.ok,
            "status": self.status,
            "session_id": self.session_id,
            "prefix": self.prefix,
            "station_id": self.station_id,
            "station_key_id": self.station_key_id,
            "trust_basis": self.trust_basis,
            "segments": self.segments,
            "proven_segments": self.proven_segments,
            "duration_s": round(self.duration_us / 1e6, 3),
            "media_checked": self.media_checked,
            "interruptions": m.get("interruptions", []),
            "events": m.get("events", []),
            "chain_head": m.get("chain_head") or (self.records[-1]["chain"] if self.records else None),
            "findings": [f.to_json() for f in self.findings],
            "open": [f.to_json() for f in self.open],
            "gaps": self.gaps,
            "time_stamp": self.time_proof.to_json() if self.time_proof else None,
            "time_note": self.time_note,
            "head_time_stamps": [{"segment": i, **p.to_json()} for i, p in sorted(self.head_proofs.items())],
            "head_note": self.head_note,
        }

    def time_line(self) -> str:
        """What the verdict says about time from outside the station (V18, then V19's latest proof)."""
        parts = [self._manifest_time()] if self.time_proof is not None or self.time_note else []
        if self.head_proofs:
            parts.append(self._head_time())
        elif self.head_note:
            parts.append(self.head_note)
        return "; ".join(p for p in parts if p)

    def _manifest_time(self) -> str:
        if self.time_proof is None:
            return self.time_note
        p = self.time_proof
        line = (f"time-stamped by {p.tsa} at {_utc(p.gen_time_us)} (±{p.accuracy_us / 1e6:g} s): "
                "the manifest existed no later")
        ahead = (self.manifest or {}).get("ended_at_us", 0) - (p.gen_time_us + p.accuracy_us)
        if ahead > 0:
            line += f"; the station clock was ahead of the TSA by at least {ahead / 1e6:.1f} s"
        return line + (f" ({self.time_note})" if self.time_note else "")

    def _head_time(self) -> str:
        """The latest chain head with a proof, and how far ahead of the TSA the station clock was at worst."""
        last = max(self.head_proofs)
        p = self.head_proofs[last]
        line = (f"{len(self.head_proofs)} chain head(s) time-stamped while recording, the latest: segments 0-{last} "
                f"existed no later than {_utc(p.gen_time_us)}")
        by_index = {r["index"]: r for r in self.records}
        ahead = max((by_index[i]["start_us"] + by_index[i]["duration_us"] - (q.gen_time_us + q.accuracy_us)
                     for i, q in self.head_proofs.items() if i in by_index), default=0)
        if ahead > 0:
            line += f"; the station clock was ahead of the TSA by at least {ahead / 1e6:.1f} s"
        return line

    def trust_line(self) -> str:
        """First line of a verdict that rests only on the key an export folder carries for itself."""
        if self.trust_basis != "carried":
            return ""
        verb = "verified" if self.status == "verified" else "checked"
        return f"{verb} against the key carried by this folder: {self.station_key_id}, compare with the annex"

    def summary(self) -> str:
        if self.status == "verified":
            return (f"VERIFIED session {self.session_id}: {self.segments} segments, "
                    f"{self.duration_us / 1e6:.1f} s, {len(self.manifest['interruptions']) if self.manifest else 0}"
                    f" interruptions, station {self.station_id} (key {self.station_key_id})"
                    + ("" if self.media_checked else "; media not decoded (no custodian key)")
                    + (f"; {self.time_line()}" if self.time_line() else ""))
        if self.status == "unterminated":
            return (f"UNTERMINATED session {self.session_id}: no manifest (V09), "
                    f"{self.proven_segments} segments proven ({self.duration_us / 1e6:.1f} s); not complete"
                    + (f"; {len(self.gaps)} gap(s) not yet declared" if self.gaps else "")
                    + (f"; {self.time_line()}" if self.time_line() else ""))
        return f"FAILED session {self.session_id}: " + "; ".join(str(f) for f in self.findings[:5])


def _utc(us: int) -> str:
    return dt.datetime.fromtimestamp(us / 1e6, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def audit(store: ObjectStore, session_id: str, opts: Options, *, fail_fast: bool = False,
          progress: Callable[[int], None] | None = None) -> Report:
    """Run every rule; with `fail_fast`, stop after the document rules if any failed, else at the
    first failing segment. Findings are ordered by segment (session-wide first), then rule."""
    ev = load_evidence(store, session_id)
    s = ParsedSession(ev, opts.trust, opts.carried, list(opts.witnessed),
                      opts.custodian if opts.media else None, opts.tolerances)
    report = Report(session_id=ev.session_id, prefix=ev.prefix)
    findings: list[Finding] = []
    for rule in DOCUMENT_RULES:
        found = rule(s)
        findings += [f for f in found if not f.open]
        report.open += [f for f in found if f.open]
    media = s.custodian is not None and s.header is not None
    report.media_checked = media
    if opts.ciphertexts and not (fail_fast and findings):
        for rec in s.ordered:
            i = rec["index"]
            if progress:
                progress(i)
            if i not in ev.ciphertexts:
                continue  # V05
            cipher = store.get(ev.names[f"seg/{i:08d}.bin"])
            found = v06_ciphertext(s, i, cipher)
            if not found and media:
                found = v14_decrypts(s, i, cipher) or v15_decodes(s, i)
            findings += found
            if fail_fast and found:
                break
    report.findings = sorted(findings, key=Finding.sort_key)
    _describe(report, s)
    return report


def _describe(report: Report, s: ParsedSession) -> None:
    report.segments = s.count
    report.records = s.ordered
    report.duration_us = sum(r["duration_us"] for r in s.ordered)
    if s.header is not None:
        report.header = s.header
        report.station_id = s.header["station_id"]
        report.station_key_id = s.station_key_id
        report.trust_basis = s.trust_basis
    report.manifest = s.manifest
    report.time_proof, report.time_note = s.time_proof, s.time_note
    report.head_proofs, report.head_note = s.head_proofs, s.head_note
    failing = [f.segment for f in report.findings if f.segment is not None]
    session_wide = any(f.segment is None for f in report.findings)
    limit = 0 if session_wide else min([*failing, s.count])
    proven = 0
    for rec in s.ordered:  # the unbroken run of segments from 0 before the first finding
        if rec["index"] != proven or proven >= limit:
            break
        proven += 1
    report.proven_segments = proven
    if s.manifest is None and s.evidence.manifest is None:
        report.gaps = [{"before_segment": i, "start_us": a, "end_us": b} for i, (a, b) in gaps(s)]
    if report.findings:
        report.status = "failed"
    elif report.open:
        report.status = "unterminated"
    else:
        report.status = "verified"


def verify(store: ObjectStore, session_id: str, opts: Options) -> Report:
    """Return the report of a verified session, or raise VerificationError at the first failed rule."""
    report = audit(store, session_id, opts, fail_fast=True)
    if report.findings:
        raise VerificationError(str(report.findings[0]), list(report.findings))
    return report


def decrypt_segments(store: ObjectStore, report: Report, custodian: Unwrapper) -> Iterable[bytes]:
    """Yield the plain segments of a verified session, in order."""
    keys: dict[int, bytes] = {0: custodian.unwrap(report.header["wrapped_key"], report.session_id, 0)}
    for rec in report.records:
        k = rec["key_index"]
        if k not in keys:
            kdoc = parse_json_object(store.get(key_name(report.prefix, k)), f"key object {k}")
            keys[k] = custodian.unwrap(kdoc["wrapped_key"], report.session_id, k)
        cipher = store.get(segment_name(report.prefix, rec["index"]))
        yield open_segment(keys[k], report.session_id, rec["index"], cipher)
