"""V13: chain heads the server witnessed while the session was recorded."""

from __future__ import annotations

from verifier.rules import Finding
from verifier.rules.parsed import ParsedSession


def v13_witnessed(s: ParsedSession) -> list[Finding]:
    """Every witnessed (index, chain) is in the store's chain; a witness past the end fails here too."""
    out = []
    values = s.chain[1] if s.header else {}
    for idx, head in sorted(s.witnessed):
        if idx >= s.count:
            out.append(Finding("V13", f"the server witnessed segment {idx}, the store ends at segment "
                                      f"{s.count - 1} (cut at the end)", idx))
        elif values.get(idx) != head:
            out.append(Finding("V13", f"the server witnessed chain head {head[:16]}… at segment {idx}, the store "
                                      f"has {(values.get(idx) or 'nothing')[:16]}", idx))
    return out
