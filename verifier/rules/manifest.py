"""V09-V12: the manifest that closes the session, and the data keys it counts."""

from __future__ import annotations

from verifier.rules import Finding
from verifier.rules.parsed import ParsedSession


def v09_manifest_present(s: ParsedSession) -> list[Finding]:
    """Without a manifest the session is unterminated (an open finding, exit 4), never complete."""
    if s.evidence.manifest is not None:
        return []
    return [Finding("V09", f"no manifest: unterminated, {len(s.ordered)} segments present so far", open=True)]


def v10_manifest(s: ParsedSession) -> list[Finding]:
    """Exact canonical bytes, closed members, signed, bound to this header (hash, session, start time)."""
    if s.evidence.manifest is None or s.header is None:
        return []
    return [Finding("V10", s.manifest_problem)] if s.manifest_problem else []


def v11_manifest_closes_chain(s: ParsedSession) -> list[Finding]:
    """segment_count is the store's count and chain_head its last chain value (nothing cut at the end)."""
    m = s.manifest
    if m is None:
        return []
    if m["segment_count"] != s.count:
        return [Finding("V11", f"manifest counts {m['segment_count']} segments, the store has {s.count}")]
    if m["chain_head"] != s.chain[2]:
        return [Finding("V11", "manifest chain head differs from the last segment's chain value"
                        if s.count else "manifest chain head is not the header's")]
    return []


def v12_data_keys(s: ParsedSession) -> list[Finding]:
    """Key objects 1..K exact, signed, of this session, with no hole; every key_index used has one;
    the manifest's key_count is 1 + K."""
    if s.header is None:
        return []
    out = [Finding("V12", problem) for k in sorted(s.evidence.keys) if (problem := s.key_problem(k))]
    stored = set(s.evidence.keys)
    out += [Finding("V12", f"key object {k} missing (key objects are numbered 1, 2, … without a hole)")
            for k in range(1, max(stored, default=0)) if k not in stored]
    for rec in s.ordered:
        k = rec["key_index"]
        if k != 0 and k not in s.key_objects:
            out.append(Finding("V12", f"key object {k} missing", rec["index"]))
    if s.manifest is not None and s.manifest["key_count"] != 1 + len(stored):
        out.append(Finding("V12", f"manifest says {s.manifest['key_count']} data keys, the store has "
                                  f"{1 + len(stored)}"))
    return out
