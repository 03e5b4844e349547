"""The evidence formats: session header, key object, segment record, manifest.

Builders are pure (values in, dicts out); `check_*` validate a parsed document
field by field and raise FormatError naming the field. The byte-exact rules are
in docs/evidence-format.md; tests/verifier/test_vectors.py pins them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from verifier.errors import FormatError

HEADER_FORMAT = "irms.session/1"
KEY_FORMAT = "irms.key/1"
RECORD_FORMAT = "irms.record/1"
MANIFEST_FORMAT = "irms.manifest/1"

CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
HEX64_RE = re.compile(r"^[0-9a-f]{64}$")
INTERRUPTION_CAUSES = ("pause", "device_lost", "crash", "power", "store_full", "encoder_stall")
END_REASONS = ("stopped", "duration_reached", "recovered_after_crash", "device_failure")


def check_code(value: str, what: str) -> str:
    """Site, room and station codes appear in object names: keep them to a safe alphabet."""
    if not isinstance(value, str) or not CODE_RE.match(value):
        raise FormatError(f"{what} {value!r} must be 1-64 characters of letters, digits, '.', '_' or '-'")
    return value


@dataclass(frozen=True)
class CaseInfo:
    """The case metadata bound into the signed header (R02)."""

    case_number: str
    suspect: str
    interrogators: tuple[str, ...]
    legal_basis: str

    def to_json(self) -> dict[str, Any]:
        return {
            "case_number": self.case_number,
            "interrogators": list(self.interrogators),
            "legal_basis": self.legal_basis,
            "suspect": self.suspect,
        }


def session_prefix(site: str, room: str, session_id: str) -> str:
    return f"{site}/{room}/{session_id}/"


def header_name(prefix: str) -> str:
    return prefix + "session.json"


def manifest_name(prefix: str) -> str:
    return prefix + "manifest.json"


def segment_name(prefix: str, index: int) -> str:
    return f"{prefix}seg/{index:08d}.bin"


def record_name(prefix: str, index: int) -> str:
    return f"{prefix}seg/{index:08d}.json"


def key_name(prefix: str, key_index: int) -> str:
    return f"{prefix}keys/{key_index:04d}.json"


def locator_name(session_id: str) -> str:
    """An unsigned pointer from a session id to its prefix, so a session can be found by id."""
    return f"sessions/{session_id}.json"


def build_header(
    *,
    session_id: str,
    station_id: str,
    station_key_b64: str,
    site: str,
    room: str,
    case: CaseInfo,
    kit: dict[str, Any],
    started_at_us: int,
    segment_target_us: int,
    wrapped_key: dict[str, Any],
) -> dict[str, Any]:
    for value, what in ((site, "site"), (room, "room"), (station_id, "station id")):
        check_code(value, what)
    for value, what in (
        (case.case_number, "case number"),
        (case.suspect, "suspect"),
        (case.legal_basis, "legal basis"),
    ):
        if not value.strip():
            raise FormatError(f"{what} is required before recording")
    if not case.interrogators or not all(i.strip() for i in case.interrogators):
        raise FormatError("at least one interrogator is required before recording")
    return {
        "case": case.to_json(),
        "cipher": "AES-256-GCM",
        "container": "mpegts",
        "custodian_key_id": wrapped_key["key_id"],
        "format": HEADER_FORMAT,
        "kit": kit,
        "room": room,
        "segment_target_us": segment_target_us,
        "session_id": session_id,
        "site": site,
        "started_at_us": started_at_us,
        "station_id": station_id,
        "station_key": station_key_b64,
        "wrapped_key": wrapped_key,
    }


def build_key_object(
    *, session_id: str, key_index: int, created_at_us: int, cause: str, wrapped_key: dict[str, Any]
) -> dict[str, Any]:
    """A further data key for the session, made when an agent resumes it after a crash."""
    return {
        "cause": cause,
        "created_at_us": created_at_us,
        "custodian_key_id": wrapped_key["key_id"],
        "format": KEY_FORMAT,
        "key_index": key_index,
        "session_id": session_id,
        "wrapped_key": wrapped_key,
    }


def build_record(
    *,
    session_id: str,
    index: int,
    key_index: int,
    run: int,
    start_us: int,
    duration_us: int,
    plain_sha256: str,
    plain_size: int,
    cipher_sha256: str,
    cipher_size: int,
    prev_chain: str,
    chain: str,
    clock_offset_us: int,
    salvaged: bool,
) -> dict[str, Any]:
    return {
        "chain": chain,
        "cipher_sha256": cipher_sha256,
        "cipher_size": cipher_size,
        "clock_offset_us": clock_offset_us,
        "duration_us": duration_us,
        "format": RECORD_FORMAT,
        "index": index,
        "key_index": key_index,
        "plain_sha256": plain_sha256,
        "plain_size": plain_size,
        "prev_chain": prev_chain,
        "run": run,
        "salvaged": salvaged,
        "session_id": session_id,
        "start_us": start_us,
    }


def build_manifest(
    *,
    session_id: str,
    header_sha256: str,
    segment_count: int,
    chain_head: str,
    started_at_us: int,
    ended_at_us: int,
    end_reason: str,
    key_count: int,
    interruptions: list[dict[str, Any]],
    events: list[dict[str, Any]],
    devices: list[dict[str, Any]],
) -> dict[str, Any]:
    if end_reason not in END_REASONS:
        raise FormatError(f"unknown end reason {end_reason!r}")
    return {
        "chain_head": chain_head,
        "devices": devices,
        "end_reason": end_reason,
        "ended_at_us": ended_at_us,
        "events": events,
        "format": MANIFEST_FORMAT,
        "header_sha256": header_sha256,
        "interruptions": interruptions,
        "key_count": key_count,
        "segment_count": segment_count,
        "session_id": session_id,
        "started_at_us": started_at_us,
    }


# --- validation -------------------------------------------------------------

_FIELDS: dict[str, dict[str, type | tuple[type, ...]]] = {
    HEADER_FORMAT: {
        "session_id": str, "station_id": str, "station_key": str, "site": str, "room": str,
        "case": dict, "kit": dict, "started_at_us": int, "segment_target_us": int,
        "custodian_key_id": str, "wrapped_key": dict, "cipher": str, "container": str,
    },
    KEY_FORMAT: {
        "session_id": str, "key_index": int, "created_at_us": int, "cause": str,
        "custodian_key_id": str, "wrapped_key": dict,
    },
    RECORD_FORMAT: {
        "session_id": str, "index": int, "key_index": int, "run": int, "start_us": int,
        "duration_us": int, "plain_sha256": str, "plain_size": int, "cipher_sha256": str,
        "cipher_size": int, "prev_chain": str, "chain": str, "clock_offset_us": int, "salvaged": bool,
    },
    MANIFEST_FORMAT: {
        "session_id": str, "header_sha256": str, "segment_count": int, "chain_head": str,
        "started_at_us": int, "ended_at_us": int, "end_reason": str, "key_count": int,
        "interruptions": list, "events": list, "devices": list,
    },
}


def check_document(doc: dict[str, Any], expected_format: str, what: str) -> dict[str, Any]:
    """Check a parsed document's format tag, fields and types; return it unchanged."""
    fmt = doc.get("format")
    if fmt != expected_format:
        raise FormatError(f"{what} has format {fmt!r}, expected {expected_format!r}")
    fields = _FIELDS[expected_format]
    for name, typ in fields.items():
        if name not in doc:
            raise FormatError(f"{what} lacks field {name!r}")
        value = doc[name]
        if typ is int and isinstance(value, bool):
            raise FormatError(f"{what} field {name!r} must be an integer")
        if not isinstance(value, typ):
            raise FormatError(f"{what} field {name!r} has the wrong type")
    extra = set(doc) - set(fields) - {"format", "signature"}
    if extra:
        raise FormatError(f"{what} has unknown fields {sorted(extra)}")
    for name in ("plain_sha256", "cipher_sha256", "prev_chain", "chain", "chain_head", "header_sha256"):
        if name in doc and not HEX64_RE.match(doc[name]):
            raise FormatError(f"{what} field {name!r} is not 64 lowercase hex digits")
    return doc
