"""Verification of one session: every rule, from the objects in a store.

`audit()` collects every finding; `verify()` stops at the first and raises
VerificationError naming the rule. Integrity rules need only public keys; the
media rules (V14, V15) also need the custodian's private key and are reported as
not checked without it.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from storage.base import ObjectStore
from storage.errors import ObjectNotFound
from verifier.canonical import parse_json_object
from verifier.chain import chain_genesis, chain_next
from verifier.crypto import open_segment, unwrap_key
from verifier.errors import DecryptionError, FormatError, SignatureError, VerificationError
from verifier.formats import (
    HEADER_FORMAT,
    KEY_FORMAT,
    MANIFEST_FORMAT,
    RECORD_FORMAT,
    check_document,
    header_name,
    key_name,
    locator_name,
    manifest_name,
    record_name,
    segment_name,
)
from verifier.keys import ed25519_public_from_raw, key_id, public_raw, unb64, verify_document
from verifier.media import probe_media
from verifier.rules import Finding
from verifier.trust import trusted_station_key

SEG_RE = re.compile(r"seg/(\d{8})\.(bin|json)$")
KEY_RE = re.compile(r"keys/(\d{4})\.json$")


@dataclass
class Options:
    trust: Path
    custodian: X25519PrivateKey | None = None
    witnessed: list[tuple[int, str]] = field(default_factory=list)
    gap_tolerance_us: int = 300_000
    duration_tolerance_us: int = 250_000
    media: bool = True


@dataclass
class Report:
    session_id: str
    prefix: str = ""
    status: str = "failed"  # verified | unterminated | failed
    findings: list[Finding] = field(default_factory=list)
    segments: int = 0
    proven_segments: int = 0
    duration_us: int = 0
    media_checked: bool = False
    station_id: str = ""
    station_key_id: str = ""
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
            "segments": self.segments,
            "proven_segments": self.proven_segments,
            "duration_s": round(self.duration_us / 1e6, 3),
            "media_checked": self.media_checked,
            "interruptions": m.get("interruptions", []),
            "events": m.get("events", []),
            "chain_head": m.get("chain_head") or (self.records[-1]["chain"] if self.records else None),
            "findings": [f.to_json() for f in self.findings],
        }

    def summary(self) -> str:
        if self.status == "verified":
            return (f"VERIFIED session {self.session_id}: {self.segments} segments, "
                    f"{self.duration_us / 1e6:.1f} s, {len(self.manifest['interruptions']) if self.manifest else 0}"
                    f" interruptions, station {self.station_id} (key {self.station_key_id})"
                    + ("" if self.media_checked else "; media not decoded (no custodian key)"))
        if self.status == "unterminated":
            return (f"UNTERMINATED session {self.session_id}: no manifest, "
                    f"{self.proven_segments} segments proven ({self.duration_us / 1e6:.1f} s); not complete")
        return f"FAILED session {self.session_id}: " + "; ".join(str(f) for f in self.findings[:5])


class _FailFast(Exception):
    pass


def locate(store: ObjectStore, session_id: str) -> str:
    """The object prefix of a session: from its locator, else by listing."""
    if not re.fullmatch(r"[0-9a-fA-F-]{8,64}", session_id):
        raise FormatError(f"{session_id!r} is not a session id")
    try:
        loc = parse_json_object(store.get(locator_name(session_id)), "session locator")
        prefix = loc.get("prefix")
        if isinstance(prefix, str) and prefix.endswith(f"/{session_id}/"):
            return prefix
    except ObjectNotFound:
        pass
    for name in store.list(""):
        if name.endswith(f"/{session_id}/session.json"):
            return name[: -len("session.json")]
    raise ObjectNotFound(f"session {session_id} not found in {store.url}")


def audit(store: ObjectStore, session_id: str, opts: Options, *, fail_fast: bool = False,
          progress: Callable[[int], None] | None = None) -> Report:
    report = Report(session_id=session_id)

    def fail(rule: str, message: str, segment: int | None = None) -> None:
        report.findings.append(Finding(rule, message, segment))
        if fail_fast:
            raise _FailFast

    with contextlib.suppress(_FailFast):
        _audit(store, session_id, opts, report, fail, progress)
    if report.findings:
        report.status = "failed"
    elif report.manifest is None:
        report.status = "unterminated"
    else:
        report.status = "verified"
    return report


def verify(store: ObjectStore, session_id: str, opts: Options) -> Report:
    """Return the report of a verified session, or raise VerificationError at the first failed rule."""
    report = audit(store, session_id, opts, fail_fast=True)
    if report.findings:
        raise VerificationError(str(report.findings[0]), list(report.findings))
    return report


def _load(store: ObjectStore, name: str, what: str) -> dict[str, Any] | None:
    try:
        return parse_json_object(store.get(name), what)
    except ObjectNotFound:
        return None


def _audit(store: ObjectStore, session_id: str, opts: Options, report: Report,
           fail: Callable[..., None], progress: Callable[[int], None] | None) -> None:
    prefix = locate(store, session_id)
    report.prefix = prefix
    names = set(store.list(prefix))

    # V01-V03: the header and the station key.
    try:
        header = _load(store, header_name(prefix), "session header")
        if header is None:
            fail("V01", "session.json is missing")
            return
        check_document(header, HEADER_FORMAT, "session header")
        if header["session_id"] != session_id:
            fail("V01", f"header names session {header['session_id']}")
            return
    except FormatError as err:
        fail("V01", str(err))
        return
    report.header = header
    report.station_id = header["station_id"]
    try:
        station_key = ed25519_public_from_raw(unb64(header["station_key"], "station_key"), "station_key")
    except FormatError as err:
        fail("V01", str(err))
        return
    report.station_key_id = key_id(public_raw(station_key))
    trusted = trusted_station_key(opts.trust, header["station_id"])
    if trusted is None:
        fail("V02", f"station {header['station_id']} is not in the trust store {opts.trust}")
    elif public_raw(trusted) != public_raw(station_key):
        fail("V02", f"header carries key {report.station_key_id}, the trusted key of station "
                    f"{header['station_id']} is {key_id(public_raw(trusted))}")
    key: Ed25519PublicKey = trusted if trusted is not None else station_key
    try:
        verify_document(header, key, "session header")
    except SignatureError as err:
        fail("V03", str(err))

    # Which segment and key objects exist.
    seg_objects: dict[int, set[str]] = {}
    key_objects: set[int] = set()
    for name in names:
        rel = name[len(prefix):]
        m = SEG_RE.fullmatch(rel)
        if m:
            seg_objects.setdefault(int(m.group(1)), set()).add(m.group(2))
        elif km := KEY_RE.fullmatch(rel):
            key_objects.add(int(km.group(1)))
        elif rel not in ("session.json", "manifest.json"):
            fail("V05", f"unexpected object {rel} in the session")

    # V12: data keys.
    data_keys: dict[int, bytes] = {}
    if opts.custodian is not None:
        try:
            data_keys[0] = unwrap_key(header["wrapped_key"], opts.custodian, session_id, 0)
        except (DecryptionError, FormatError) as err:
            fail("V14", f"data key 0 cannot be unwrapped: {err}")
    for k in sorted(key_objects):
        kdoc = _load(store, key_name(prefix, k), f"key object {k}")
        try:
            assert kdoc is not None
            check_document(kdoc, KEY_FORMAT, f"key object {k}")
            verify_document(kdoc, key, f"key object {k}")
            if kdoc["session_id"] != session_id or kdoc["key_index"] != k:
                fail("V12", f"key object {k} belongs to session {kdoc['session_id']} index {kdoc['key_index']}")
                continue
        except (FormatError, SignatureError) as err:
            fail("V12", str(err))
            continue
        if opts.custodian is not None:
            try:
                data_keys[k] = unwrap_key(kdoc["wrapped_key"], opts.custodian, session_id, k)
            except (DecryptionError, FormatError) as err:
                fail("V14", f"data key {k} cannot be unwrapped: {err}")

    # V04-V08, V14-V16: the segments in index order.
    prev = chain_genesis(header)
    count = max(seg_objects) + 1 if seg_objects else 0
    media = opts.media and opts.custodian is not None
    report.media_checked = media
    manifest = _load_manifest(store, prefix, session_id, header, key, fail)
    interruptions = manifest["interruptions"] if manifest else []
    chain_ok = True
    last_end: int | None = None
    for i in range(count):
        if progress:
            progress(i)
        kinds = seg_objects.get(i, set())
        if "json" not in kinds:
            fail("V08", "segment record missing (deleted or never uploaded)", i)
            chain_ok = False
            continue
        try:
            rec = parse_json_object(store.get(record_name(prefix, i)), f"record {i}")
            check_document(rec, RECORD_FORMAT, f"record {i}")
            verify_document(rec, key, f"record {i}")
        except (FormatError, SignatureError) as err:
            fail("V04", str(err), i)
            chain_ok = False
            continue
        if rec["session_id"] != session_id:
            fail("V04", f"record belongs to session {rec['session_id']}", i)
            chain_ok = False
            continue
        if rec["index"] != i:
            fail("V07", f"record says index {rec['index']} (reordered or duplicated)", i)
            chain_ok = False
            continue
        if rec["prev_chain"] != prev or rec["chain"] != chain_next(prev, i, rec["plain_sha256"], rec["cipher_sha256"]):
            fail("V07", "chain broken", i)
            chain_ok = False
        prev = rec["chain"]
        if "bin" not in kinds:
            fail("V05", "segment ciphertext missing", i)
            continue
        cipher = store.get(segment_name(prefix, i))
        if len(cipher) != rec["cipher_size"] or hashlib.sha256(cipher).hexdigest() != rec["cipher_sha256"]:
            fail("V06", "ciphertext differs from its record (altered or replaced)", i)
            continue
        if rec["key_index"] != 0 and rec["key_index"] not in key_objects:
            fail("V12", f"key object {rec['key_index']} missing", i)
        # V16: continuity of the timeline.
        if last_end is not None:
            gap = rec["start_us"] - last_end
            if gap < -opts.gap_tolerance_us:
                fail("V16", f"overlaps the previous segment by {-gap / 1e6:.3f} s", i)
            elif gap > opts.gap_tolerance_us and not _explained(last_end, rec["start_us"], interruptions, opts):
                fail("V16", f"unexplained gap of {gap / 1e6:.3f} s before this segment", i)
        last_end = rec["start_us"] + rec["duration_us"]
        if media:
            _check_media(cipher, rec, data_keys, session_id, i, opts, fail)
        report.records.append(rec)
        if chain_ok:
            report.proven_segments = i + 1
        report.duration_us += rec["duration_us"]
    report.segments = count

    # V13: witnessed chain heads.
    chains = {r["index"]: r["chain"] for r in report.records}
    for idx, head in opts.witnessed:
        if chains.get(idx) != head:
            fail("V13", f"the server witnessed chain head {head[:16]}… at segment {idx}, the store has "
                        f"{(chains.get(idx) or 'nothing')[:16]}", idx)

    # V09-V11: the manifest closes the chain.
    if manifest is None:
        if "manifest.json" in {n[len(prefix):] for n in names}:
            return  # already reported by _load_manifest
        if opts.witnessed and max(i for i, _ in opts.witnessed) >= count:
            fail("V11", f"segments up to {max(i for i, _ in opts.witnessed)} were witnessed, the store ends at "
                        f"{count - 1}")
        return
    report.manifest = manifest
    if manifest["segment_count"] != count:
        fail("V11", f"manifest counts {manifest['segment_count']} segments, the store has {count}")
    elif count and manifest["chain_head"] != prev:
        fail("V11", "manifest chain head differs from the last segment's chain value")
    elif not count and manifest["chain_head"] != chain_genesis(header):
        fail("V11", "manifest chain head is not the header's")
    if manifest["key_count"] != 1 + len(key_objects):
        fail("V12", f"manifest says {manifest['key_count']} data keys, the store has {1 + len(key_objects)}")


def _load_manifest(store: ObjectStore, prefix: str, session_id: str, header: dict[str, Any],
                   key: Ed25519PublicKey, fail: Callable[..., None]) -> dict[str, Any] | None:
    try:
        manifest = _load(store, manifest_name(prefix), "manifest")
        if manifest is None:
            return None
        check_document(manifest, MANIFEST_FORMAT, "manifest")
        verify_document(manifest, key, "manifest")
    except (FormatError, SignatureError) as err:
        fail("V10", str(err))
        return None
    if manifest["session_id"] != session_id or manifest["header_sha256"] != chain_genesis(header):
        fail("V10", "manifest belongs to another session or header")
        return None
    return manifest


def _explained(gap_start: int, gap_end: int, interruptions: Iterable[dict[str, Any]], opts: Options) -> bool:
    """A gap is explained when declared interruptions cover it (within the tolerance)."""
    for it in interruptions:
        start, end = it.get("start_us"), it.get("end_us")
        if not isinstance(start, int) or not isinstance(end, int):
            continue
        if start <= gap_start + opts.gap_tolerance_us and end >= gap_end - opts.gap_tolerance_us:
            return True
    return False


def _check_media(cipher: bytes, rec: dict[str, Any], data_keys: dict[int, bytes], session_id: str, i: int,
                 opts: Options, fail: Callable[..., None]) -> None:
    dk = data_keys.get(rec["key_index"])
    if dk is None:
        fail("V14", f"no data key {rec['key_index']}", i)
        return
    try:
        plain = open_segment(dk, session_id, i, cipher)
    except DecryptionError:
        fail("V14", "segment does not decrypt", i)
        return
    if hashlib.sha256(plain).hexdigest() != rec["plain_sha256"] or len(plain) != rec["plain_size"]:
        fail("V14", "decrypted bytes differ from the record's plain hash", i)
        return
    ok, duration, err = probe_media(plain)
    if not ok:
        fail("V15", f"does not decode: {err}", i)
    elif abs(duration - rec["duration_us"]) > opts.duration_tolerance_us:
        fail("V15", f"media lasts {duration / 1e6:.3f} s, the record says {rec['duration_us'] / 1e6:.3f} s", i)


def decrypt_segments(store: ObjectStore, report: Report, custodian: X25519PrivateKey) -> Iterable[bytes]:
    """Yield the plain segments of a verified session, in order."""
    keys: dict[int, bytes] = {0: unwrap_key(report.header["wrapped_key"], custodian, report.session_id, 0)}
    for rec in report.records:
        k = rec["key_index"]
        if k not in keys:
            kdoc = parse_json_object(store.get(key_name(report.prefix, k)), f"key object {k}")
            keys[k] = unwrap_key(kdoc["wrapped_key"], custodian, report.session_id, k)
        cipher = store.get(segment_name(report.prefix, rec["index"]))
        yield open_segment(keys[k], report.session_id, rec["index"], cipher)
