"""Canonical JSON: the only byte form IRMS ever hashes or signs.

Sorted keys, UTF-8 (not ASCII-escaped), no insignificant whitespace, and no
floats (every quantity is an integer: microseconds, bytes), so any language
produces the same bytes.
"""

from __future__ import annotations

import json
from typing import Any

from evidence.errors import FormatError

MAX_INT = 2**53  # integers n with -MAX_INT <= n <= MAX_INT (bounds inclusive)


def canonical_json(value: Any) -> bytes:
    """Encode `value` canonically; refuse floats, NaN and non-string keys."""
    check_canonical(value, "$")
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def check_canonical(value: Any, where: str) -> None:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise FormatError(f"string at {where} holds a lone surrogate, not UTF-8 text") from None
        return
    if isinstance(value, int):
        if abs(value) > MAX_INT:
            raise FormatError(f"integer at {where} is outside the exactly representable range")
        return
    if isinstance(value, float):
        raise FormatError(f"float at {where}: evidence formats use integers only")
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_canonical(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise FormatError(f"non-string key at {where}")
            check_canonical(item, f"{where}.{key}")
        return
    raise FormatError(f"value of type {type(value).__name__} at {where} cannot be canonical JSON")


def parse_json_object(data: bytes, what: str) -> dict[str, Any]:
    """Parse bytes that must hold one JSON object; one clear error otherwise."""
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FormatError(f"{what} is not valid JSON: {err}") from None
    if not isinstance(value, dict):
        raise FormatError(f"{what} is not a JSON object")
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise FormatError(f"member {key!r} appears twice")
        out[key] = value
    return out


def parse_canonical(data: bytes, what: str) -> dict[str, Any]:
    """Parse a stored evidence object, which must be exactly the canonical bytes of what it parses to.

    Duplicate members, whitespace, another key order, escapes that canonical JSON does not use, a
    byte order mark or a trailing newline all fail: two parsers could otherwise read two documents.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        raise FormatError(f"{what} is not stored as canonical JSON (it starts with a byte order mark)")
    try:
        value = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FormatError(f"{what} is not valid JSON: {err}") from None
    except FormatError as err:
        raise FormatError(f"{what} is not canonical JSON: {err}") from None
    if not isinstance(value, dict):
        raise FormatError(f"{what} is not a JSON object")
    try:
        canonical = canonical_json(value)
    except FormatError as err:
        raise FormatError(f"{what}: {err}") from None
    if canonical != data:
        raise FormatError(f"{what} is not stored as canonical JSON (whitespace, member order, escapes, "
                          "byte order mark or trailing newline)")
    return value
