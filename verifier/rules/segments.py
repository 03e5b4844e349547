"""V04-V08: segment records, their ciphertexts, the hash chain and the indices."""

from __future__ import annotations

import hashlib

from verifier.rules import Finding
from verifier.rules.parsed import ParsedSession


def v04_records(s: ParsedSession) -> list[Finding]:
    """Each record: exact canonical bytes, closed members, signed, this session, cipher_size = plain_size + 16."""
    if s.header is None:
        return []
    return [Finding("V04", problem, i) for i in sorted(s.evidence.records)
            if i < s.count and (problem := s.record_problem(i))]


def v05_objects(s: ParsedSession) -> list[Finding]:
    """Every record has its ciphertext; nothing else in the session folder."""
    out = [Finding("V05", f"unexpected object {rel} in the session") for rel in sorted(s.evidence.unexpected)]
    out += [Finding("V05", "segment ciphertext missing", i) for i in sorted(s.evidence.records)
            if i < s.count and i not in s.evidence.ciphertexts]
    return out


def v06_ciphertext(s: ParsedSession, i: int, cipher: bytes) -> list[Finding]:
    """The ciphertext's size and SHA-256 are the record's."""
    rec = s.records[i]
    if len(cipher) != rec["cipher_size"] or hashlib.sha256(cipher).hexdigest() != rec["cipher_sha256"]:
        return [Finding("V06", "ciphertext differs from its record (altered or replaced)", i)]
    return []


def v07_chain(s: ParsedSession) -> list[Finding]:
    """Record index = position; prev_chain = the previous chain value; chain recomputes."""
    if s.header is None:
        return []
    return [Finding("V07", message, i) for i, message in s.chain[0]]


def v08_indices(s: ParsedSession) -> list[Finding]:
    """A record for every index from 0 to the last segment."""
    return [Finding("V08", "segment record missing (deleted or never uploaded)", i)
            for i in range(s.count) if i not in s.evidence.records]
