"""The evidence formats: session header, key object, segment record, manifest.

Builders are pure (values in, dicts out); `check_*` validate a parsed document
field by field and raise FormatError naming the field. The byte-exact rules are
in docs/evidence-format.md; tests/verifier/test_vectors.py pins them.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from evidence.canonical import MAX_INT
from evidence.errors import FormatError

HEADER_FORMAT = "irms.session/1"
KEY_FORMAT = "irms.key/1"
RECORD_FORMAT = "irms.record/1"
MANIFEST_FORMAT = "irms.manifest/1"
TOKEN_SUFFIX = "manifest.tsr"

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


def token_name(prefix: str) -> str:
    """The object holding the TSA's answer for the session's manifest."""
    return prefix + TOKEN_SUFFIX


def head_token_name(prefix: str, index: int) -> str:
    """The object holding the TSA's answer over segment `index`'s record: asked for while the session
    records, it proves the chain up to that segment existed no later than its time (format 1.1)."""
    return f"{prefix}seg/{index:08d}.tsr"


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
# Every object and every list of members is closed: an unknown member, a missing member, a value of
# another type or outside its bounds (inclusive, as written) makes the document malformed.

Check = Callable[[Any, str], None]

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
HEX32_RE = re.compile(r"^[0-9a-f]{32}$")
SIZE_RE = re.compile(r"^[1-9][0-9]{0,4}x[1-9][0-9]{0,4}$")
EVENT_KINDS = ("start", "capture_stop", "pause", "resume", "device_lost", "store_full", "health", "health_ok",
               "salvaged", "recovered", "clock_step", "clock_offset", "torn_segment", "partial_kept", "segment_lost",
               "object_kept", "object_damaged", "object_quarantined", "journal_rebuilt", "marker", "witness_start",
               "witness_stop", "end")
KEY_CAUSES = ("resume_after_crash",)
CAMERA_SOURCES = ("lavfi", "rtsp", "v4l2", "http")
MICROPHONE_SOURCES = ("lavfi", "pulse", "alsa", "camera")
WRAP_ALG = "X25519-HKDF-SHA256-A256GCM"
SIGNATURE_ALG = "ed25519"


def _int(low: int = 0, high: int = MAX_INT) -> Check:
    def check(value: Any, where: str) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            raise FormatError(f"{where} must be an integer")
        if not low <= value <= high:
            raise FormatError(f"{where} = {value} is outside {low}..{high}")
    return check


def _str(pattern: re.Pattern[str] | None = None, what: str = "") -> Check:
    def check(value: Any, where: str) -> None:
        if not isinstance(value, str):
            raise FormatError(f"{where} must be a string")
        if pattern is not None and not pattern.match(value):
            raise FormatError(f"{where} is not {what}")
    return check


def _one_of(values: tuple[str, ...]) -> Check:
    def check(value: Any, where: str) -> None:
        if value not in values:
            raise FormatError(f"{where} = {value!r} is not one of {', '.join(values)}")
    return check


def _bool(value: Any, where: str) -> None:
    if not isinstance(value, bool):
        raise FormatError(f"{where} must be true or false")


def _b64(size: int) -> Check:
    def check(value: Any, where: str) -> None:
        if not isinstance(value, str):
            raise FormatError(f"{where} must be a base64 string")
        try:
            raw = base64.b64decode(value.encode("ascii"), validate=True)
        except (ValueError, UnicodeEncodeError):
            raise FormatError(f"{where} is not valid base64") from None
        if len(raw) != size or base64.b64encode(raw).decode("ascii") != value:
            raise FormatError(f"{where} is not the padded base64 of {size} bytes")
    return check


def _list(item: Check, min_len: int = 0) -> Check:
    def check(value: Any, where: str) -> None:
        if not isinstance(value, list):
            raise FormatError(f"{where} must be a list")
        if len(value) < min_len:
            raise FormatError(f"{where} must hold at least {min_len} item(s)")
        for i, v in enumerate(value):
            item(v, f"{where}[{i}]")
    return check


def _object(fields: dict[str, Check]) -> Check:
    def check(value: Any, where: str) -> None:
        if not isinstance(value, dict):
            raise FormatError(f"{where} must be an object")
        _members(value, fields, where)
    return check


def _members(doc: dict[str, Any], fields: dict[str, Check], where: str) -> None:
    for name, check in fields.items():
        if name not in doc:
            raise FormatError(f"{where} lacks member {name!r}")
        check(doc[name], f"{where}.{name}")
    extra = sorted(set(doc) - set(fields))
    if extra:
        raise FormatError(f"{where} has unknown members {extra}")


def _device(value: Any, where: str) -> None:
    if not isinstance(value, dict):
        raise FormatError(f"{where} must be an object")
    kind = value.get("kind")
    if kind == "camera":
        _members(value, CAMERA_MEMBERS, where)
    elif kind == "microphone":
        _members(value, MICROPHONE_MEMBERS, where)
    else:
        raise FormatError(f"{where}.kind = {kind!r} is not one of camera, microphone")


_HEX64 = _str(HEX64_RE, "64 lowercase hex digits")
_KEY_ID = _str(HEX32_RE, "a key id (32 lowercase hex digits)")
_CODE = _str(CODE_RE, "a code (1-64 letters, digits, '.', '_' or '-')")
_TIME = _int()
CAMERA_MEMBERS: dict[str, Check] = {
    "kind": _one_of(("camera",)), "role": _str(), "source": _one_of(CAMERA_SOURCES),
    "size": _str(SIZE_RE, "WIDTHxHEIGHT"), "fps": _int(1, 1000),
}
MICROPHONE_MEMBERS: dict[str, Check] = {
    "kind": _one_of(("microphone",)), "role": _str(), "source": _one_of(MICROPHONE_SOURCES),
    "rate": _int(1, 1_000_000), "channels": _int(1, 64),
}
SIGNATURE_MEMBERS: dict[str, Check] = {
    "alg": _one_of((SIGNATURE_ALG,)), "key_id": _KEY_ID, "value": _b64(64),
}
WRAPPED_KEY_MEMBERS: dict[str, Check] = {
    "alg": _one_of((WRAP_ALG,)), "key_id": _KEY_ID, "epk": _b64(32), "nonce": _b64(12), "ct": _b64(48),
}
CASE_MEMBERS: dict[str, Check] = {
    "case_number": _str(), "suspect": _str(), "interrogators": _list(_str(), min_len=1), "legal_basis": _str(),
}
KIT_MEMBERS: dict[str, Check] = {"profile": _str(), "devices": _list(_device)}
INTERRUPTION_MEMBERS: dict[str, Check] = {
    "start_us": _TIME, "end_us": _TIME, "cause": _one_of(INTERRUPTION_CAUSES), "reason": _str(),
}
EVENT_MEMBERS: dict[str, Check] = {"at_us": _TIME, "kind": _one_of(EVENT_KINDS), "detail": _str()}

_FIELDS: dict[str, dict[str, Check]] = {
    HEADER_FORMAT: {
        "session_id": _str(UUID_RE, "a lowercase UUID"), "station_id": _CODE, "station_key": _b64(32),
        "site": _CODE, "room": _CODE, "case": _object(CASE_MEMBERS), "kit": _object(KIT_MEMBERS),
        "started_at_us": _TIME, "segment_target_us": _int(1), "custodian_key_id": _KEY_ID,
        "wrapped_key": _object(WRAPPED_KEY_MEMBERS), "cipher": _one_of(("AES-256-GCM",)),
        "container": _one_of(("mpegts",)),
    },
    KEY_FORMAT: {
        "session_id": _str(UUID_RE, "a lowercase UUID"), "key_index": _int(1), "created_at_us": _TIME,
        "cause": _one_of(KEY_CAUSES), "custodian_key_id": _KEY_ID, "wrapped_key": _object(WRAPPED_KEY_MEMBERS),
    },
    RECORD_FORMAT: {
        "session_id": _str(UUID_RE, "a lowercase UUID"), "index": _int(0, 99_999_999), "key_index": _int(0, 9999),
        "run": _int(), "start_us": _TIME, "duration_us": _int(), "plain_sha256": _HEX64, "plain_size": _int(),
        "cipher_sha256": _HEX64, "cipher_size": _int(), "prev_chain": _HEX64, "chain": _HEX64,
        "clock_offset_us": _int(-MAX_INT), "salvaged": _bool,
    },
    MANIFEST_FORMAT: {
        "session_id": _str(UUID_RE, "a lowercase UUID"), "header_sha256": _HEX64,
        "segment_count": _int(0, 100_000_000), "chain_head": _HEX64, "started_at_us": _TIME,
        "ended_at_us": _TIME, "end_reason": _one_of(END_REASONS), "key_count": _int(1, 10_000),
        "interruptions": _list(_object(INTERRUPTION_MEMBERS)), "events": _list(_object(EVENT_MEMBERS)),
        "devices": _list(_device),
    },
}


def check_document(doc: dict[str, Any], expected_format: str, what: str) -> dict[str, Any]:
    """Check a parsed signed document against its closed member list; return it unchanged.

    Members: `format`, `signature` (`alg`, `key_id`, `value`, nothing else) and the format's own.
    """
    fmt = doc.get("format")
    if fmt != expected_format:
        raise FormatError(f"{what} has format {fmt!r}, expected {expected_format!r}")
    fields = {"format": _one_of((expected_format,)), "signature": _object(SIGNATURE_MEMBERS),
              **_FIELDS[expected_format]}
    _members(doc, fields, what)
    if "custodian_key_id" in doc and doc["custodian_key_id"] != doc["wrapped_key"]["key_id"]:
        raise FormatError(f"{what}.custodian_key_id differs from wrapped_key.key_id")
    return doc
