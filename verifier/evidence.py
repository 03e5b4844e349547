"""A session's evidence as read from a store: every small object parsed, nothing judged yet.

`load_evidence` reads the header, manifest, key objects and segment records (never the
ciphertexts, which the byte rules stream one at a time) and keeps, for each, either the
well-formed document or why it is not one. The rules in `verifier/rules/` judge it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from evidence.canonical import parse_canonical, parse_json_object
from evidence.errors import FormatError
from evidence.formats import (
    HEADER_FORMAT,
    KEY_FORMAT,
    MANIFEST_FORMAT,
    RECORD_FORMAT,
    TOKEN_SUFFIX,
    check_document,
    header_name,
    locator_name,
    manifest_name,
)
from storage.base import ObjectStore
from storage.errors import ObjectNotFound
from verifier.errors import SessionNotFound

SESSION_ID_RE = re.compile(r"^[0-9a-fA-F-]{8,64}$")
SEG_RE = re.compile(r"seg/([0-9]{8})\.(bin|json|tsr)$")
KEY_RE = re.compile(r"keys/([0-9]{4})\.json$")
# Objects a session folder may hold besides seg/ and keys/; the time-stamp token is judged by V18.
SESSION_OBJECTS = ("session.json", "manifest.json", TOKEN_SUFFIX)


@dataclass(frozen=True)
class Parsed:
    """One stored evidence object: the well-formed document, or the reason it is not one."""

    doc: dict[str, Any] | None
    error: str = ""


@dataclass
class SessionEvidence:
    session_id: str
    prefix: str
    header: Parsed | None = None          # None: no session.json
    manifest: Parsed | None = None        # None: no manifest.json
    records: dict[int, Parsed] = field(default_factory=dict)
    keys: dict[int, Parsed] = field(default_factory=dict)
    ciphertexts: set[int] = field(default_factory=set)
    unexpected: list[str] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)  # relative name -> full object name
    other: dict[str, bytes] = field(default_factory=dict)  # SESSION_OBJECTS beyond header and manifest
    head_tokens: dict[int, bytes] = field(default_factory=dict)  # seg/N.tsr: time-stamp tokens over records (V19)


def parse_object(data: bytes, expected_format: str, what: str) -> Parsed:
    """Exact canonical bytes, then the closed member list of `expected_format`."""
    try:
        return Parsed(check_document(parse_canonical(data, what), expected_format, what))
    except FormatError as err:
        return Parsed(None, str(err))


def locate(store: ObjectStore, session_id: str) -> str:
    """The object prefix of a session: from its locator, else by listing; SessionNotFound otherwise."""
    if not SESSION_ID_RE.match(session_id):
        raise FormatError(f"{session_id!r} is not a session id")
    try:
        loc = parse_json_object(store.get(locator_name(session_id)), "session locator")
        prefix = loc.get("prefix")
        if isinstance(prefix, str) and prefix.endswith(f"/{session_id}/") and any(store.list(prefix)):
            return prefix
    except (ObjectNotFound, FormatError):
        pass
    for name in store.list(""):
        parts = name.split("/")
        if len(parts) >= 4 and parts[2] == session_id:
            return "/".join(parts[:3]) + "/"
    raise SessionNotFound(f"session {session_id} is not in {store.url}")


def load_evidence(store: ObjectStore, session_id: str) -> SessionEvidence:
    session_id = session_id.lower()  # session ids are lowercase UUIDs; accept one typed in capitals
    prefix = locate(store, session_id)
    ev = SessionEvidence(session_id, prefix)
    for name in store.list(prefix):
        rel = name[len(prefix):]
        ev.names[rel] = name
        if m := SEG_RE.fullmatch(rel):
            i = int(m.group(1))
            if m.group(2) == "bin":
                ev.ciphertexts.add(i)
            elif m.group(2) == "tsr":
                ev.head_tokens[i] = store.get(name)
            else:
                ev.records[i] = parse_object(store.get(name), RECORD_FORMAT, f"record {i}")
        elif km := KEY_RE.fullmatch(rel):
            k = int(km.group(1))
            ev.keys[k] = parse_object(store.get(name), KEY_FORMAT, f"key object {k}")
        elif rel == "session.json":
            ev.header = parse_object(store.get(header_name(prefix)), HEADER_FORMAT, "session header")
        elif rel == "manifest.json":
            ev.manifest = parse_object(store.get(manifest_name(prefix)), MANIFEST_FORMAT, "manifest")
        elif rel in SESSION_OBJECTS:
            ev.other[rel] = store.get(name)
        else:
            ev.unexpected.append(rel)
    return ev


