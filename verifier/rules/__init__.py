"""The verifier's rules, numbered and named; one function per rule in the modules of this package.

docs/verifier-rules.md explains each rule; tests/verifier/test_tamper.py has a test for each.
A rule takes the parsed session (`ParsedSession`) and returns its findings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

RULES: dict[str, str] = {
    "V01": "session header present, exact, well-formed, in its own folder",
    "V02": "station key trusted",
    "V03": "session header signature valid",
    "V04": "segment record exact, well-formed, signed by the station, for this session",
    "V05": "every recorded segment present, and nothing unrecorded in the session",
    "V06": "ciphertext hash and size match the record",
    "V07": "hash chain unbroken and in order",
    "V08": "segment indices contiguous from 0",
    "V09": "manifest present (session terminated)",
    "V10": "manifest exact, well-formed, signed, bound to the header",
    "V11": "manifest count and chain head match the segments (no cut at the end)",
    "V12": "data key objects present and signed for every key index used",
    "V13": "chain heads witnessed by the server are in the chain",
    "V14": "segment decrypts and its plain hash matches the record",
    "V15": "segment decodes and its media duration matches the record",
    "V16": "no unexplained gap or overlap between segments",
    "V17": "manifest span covered by media and declared interruptions",
    "V18": "time-stamp token over the manifest valid",
    "V19": "time-stamp tokens over chain heads valid",
}


@dataclass(frozen=True)
class Finding:
    """One rule not met, at one place. An `open` finding (V09) leaves a session unterminated, not failed."""

    rule: str
    message: str
    segment: int | None = None
    open: bool = False

    def __str__(self) -> str:
        where = f" at segment {self.segment}" if self.segment is not None else ""
        return f"{self.rule} {RULES[self.rule]}: {self.message}{where}"

    def sort_key(self) -> tuple[int, str]:
        return (-1 if self.segment is None else self.segment, self.rule)

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "name": RULES[self.rule], "message": self.message, "segment": self.segment}
