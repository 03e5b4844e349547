"""The verifier's rules, numbered and named. docs/verifier-rules.md explains each one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

RULES: dict[str, str] = {
    "V01": "session header present and well-formed",
    "V02": "station key trusted",
    "V03": "session header signature valid",
    "V04": "segment record well-formed, signed by the station, for this session",
    "V05": "every recorded segment present, and nothing unrecorded in the session",
    "V06": "ciphertext hash and size match the record",
    "V07": "hash chain unbroken and in order",
    "V08": "segment indices contiguous from 0",
    "V09": "manifest present (session terminated)",
    "V10": "manifest well-formed, signed, bound to the header",
    "V11": "manifest count and chain head match the segments (no cut at the end)",
    "V12": "data key objects present and signed for every key index used",
    "V13": "chain heads witnessed by the server match the chain",
    "V14": "segment decrypts and its plain hash matches the record",
    "V15": "segment decodes and its media duration matches the record",
    "V16": "no unexplained gap or overlap between segments",
}


@dataclass(frozen=True)
class Finding:
    """One failed rule, at one place."""

    rule: str
    message: str
    segment: int | None = None

    def __str__(self) -> str:
        where = f" at segment {self.segment}" if self.segment is not None else ""
        return f"{self.rule} {RULES[self.rule]}: {self.message}{where}"

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "name": RULES[self.rule], "message": self.message, "segment": self.segment}
