"""Sealed export copies: a folder that verifies offline on its own (R12)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
import tempfile
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from evidence.canonical import canonical_json, parse_json_object
from evidence.crypto import Unwrapper
from evidence.durable import write_durable
from evidence.errors import FormatError
from evidence.formats import header_name, locator_name, manifest_name, record_name
from storage.base import ObjectStore
from storage.errors import StoreConfigError
from storage.file import FileStore
from verifier.errors import VerificationError
from verifier.evidence import locate
from verifier.media import rebuild_file
from verifier.session import Options, Report, decrypt_segments, verify
from verifier.trust import trust_station_key, trust_tsa_roots

EXPORT_FILE = "EXPORT.json"
EXPORT_FORMAT = "irms.export/2"  # canonical JSON, time in µs (irms.export/1 was indented, ISO time)


def is_export(path: Path) -> bool:
    return (path / EXPORT_FILE).is_file()


def export_session(store: ObjectStore, session_id: str, opts: Options, out: Path, label: str,
                   now: dt.datetime) -> dict[str, Any]:
    """Verify, then copy every object of the session and its trust anchor into `out`."""
    report = verify(store, session_id, opts)
    if report.status != "verified":
        raise VerificationError(f"session {session_id} is unterminated (no manifest): no sealed copy before "
                                "it is closed")
    if out.exists() and any(out.iterdir()):
        raise StoreConfigError(f"export folder {out} is not empty")
    target = FileStore(out / "objects")
    for name in store.list(report.prefix):
        target.put(name, store.get(name))
    target.put(locator_name(session_id), store.get(locator_name(session_id)))
    key = opts.trust.station_key(report.station_id) or (
        opts.carried.station_key(report.station_id) if opts.carried else None)
    if key is None:  # verify() passed V02, so an anchor exists; refuse rather than export without one
        raise VerificationError(f"no trust anchor for station {report.station_id}: nothing to export with")
    trust_station_key(out / "trust", report.station_id, key)
    trust_tsa_roots(out / "trust", opts.trust.tsa_roots or (opts.carried.tsa_roots if opts.carried else ()))
    info = _info(report, store.get(manifest_name(report.prefix)), label, now)
    write_durable(out / EXPORT_FILE, canonical_json(info), replace=False)
    write_durable(out / "README.txt", _readme(info, out.name), replace=False)
    return info


def _info(report: Report, manifest: bytes, label: str, now: dt.datetime) -> dict[str, Any]:
    return {
        "exported_at_us": int(now.timestamp() * 1_000_000),
        "format": EXPORT_FORMAT,
        "label": label,
        "manifest_sha256": hashlib.sha256(manifest).hexdigest(),
        "segments": report.segments,
        "session_id": report.session_id,
        "station_id": report.station_id,
        "station_key_id": report.station_key_id,
    }


def _readme(info: dict[str, Any], folder: str) -> bytes:
    return (
        f"IRMS sealed copy ({info['label']}) of session {info['session_id']}\n\n"
        f"Verify offline:  irms-verify session {info['session_id']} --store {folder}\n"
        f"The station key id is {info['station_key_id']}; compare it with the annex to the minutes.\n"
        "A verifier whose own trust store knows this station checks the folder against it; one that\n"
        "does not says it verified against the key carried by this folder.\n"
        f"The manifest SHA-256 is {info['manifest_sha256']}.\n"
    ).encode()


SEGMENT_OBJECT = re.compile(r"seg/(\d{8})\.bin")

Progress = Callable[[str, int, int, int], None]
"""progress(step, objects done, objects in all, bytes written): step is `checking` (the documents, before any
byte), `copying` (object by object) or `sealing` (the trust anchors, EXPORT.json, the zip's directory)."""


class _AppendOnly:
    """What `zipfile` writes to: bytes only ever appended (no seek, so every local header is final when written
    and the zip can be sent while it is built), counted and hashed on the way."""

    def __init__(self, sink: BinaryIO) -> None:
        self.sink = sink
        self.size = 0
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sink.write(data)
        self.size += len(data)
        self.sha256.update(data)
        return len(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self.sink.flush()


def export_zip(store: ObjectStore, session_id: str, opts: Options, sink: BinaryIO, label: str, now: dt.datetime,
               progress: Progress | None = None) -> dict[str, Any]:
    """The sealed copy as a zip archive written into `sink` as it is built: the folder `export_session` makes,
    under `irms-<session>-<label>/`, never seeking back, so what is already written can be sent at once.

    Verified in the same pass: the document rules (header, records, signatures, chain, manifest, witnessed heads:
    `verify` without the byte rules) run in a thread while the objects are copied; each segment's ciphertext is
    checked against its record as it is copied (V06); before the archive is sealed (trust anchors, EXPORT.json,
    the zip's directory) the verification must have passed and every record, the header and the manifest copied
    must be the very bytes it verified. A failure raises VerificationError naming the rule and leaves the archive
    unfinished (no central directory: no unzip tool opens it). Returns EXPORT.json's content plus
    `archive_size` and `archive_sha256` (of the bytes written)."""
    say = progress or (lambda step, done, total, written: None)
    say("checking", 0, 0, 0)
    verified: dict[str, Any] = {}

    def check() -> None:
        try:
            verified["report"] = verify(store, session_id, dataclasses.replace(opts, ciphertexts=False))
        except BaseException as err:  # noqa: BLE001 - handed to the copying thread, which raises it
            verified["error"] = err

    checker = threading.Thread(target=check, name=f"irms-export-verify-{session_id[:8]}", daemon=True)
    checker.start()
    prefix = locate(store, session_id)
    names = sorted(store.list(prefix))
    present = set(names)
    total = len(names) + 1
    top = f"irms-{session_id}-{label}"
    stamp = now.astimezone(dt.UTC).timetuple()[:6]
    out = _AppendOnly(sink)
    copied: dict[str, bytes] = {}  # sha256 of the documents copied (records, header, manifest), by name

    def entry(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
        info = zipfile.ZipInfo(f"{top}/{name}", date_time=stamp)
        info.external_attr = 0o644 << 16
        zf.writestr(info, data, compress_type=zipfile.ZIP_STORED)

    def record_of(index: int) -> dict[str, Any]:
        name = record_name(prefix, index)
        data = store.get(name) if name not in copied else b""
        if name not in copied:
            copied[name] = hashlib.sha256(data).digest()
            entry(zf, f"objects/{name}", data)
            try:
                records[index] = parse_json_object(data, "segment record")
            except FormatError as err:
                raise VerificationError(f"V04 segment record {index} is not valid: {err}") from None
        return records[index]

    records: dict[int, dict[str, Any]] = {}
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:  # type: ignore[call-overload]
        for n, name in enumerate(names):
            rel = name[len(prefix):]
            seg = SEGMENT_OBJECT.fullmatch(rel)
            if seg is not None:
                i = int(seg.group(1))
                rec = record_of(i) if record_name(prefix, i) in present else {}
                data = store.get(name)
                if len(data) != rec.get("cipher_size") or hashlib.sha256(data).hexdigest() != rec.get("cipher_sha256"):
                    raise VerificationError(f"V06 ciphertext differs from its record (altered or replaced) "
                                            f"(segment {i})")
                entry(zf, f"objects/{name}", data)
            elif name not in copied:
                data = store.get(name)
                if RECORD_OBJECT.fullmatch(rel) or name in (header_name(prefix), manifest_name(prefix)):
                    copied[name] = hashlib.sha256(data).digest()
                entry(zf, f"objects/{name}", data)
            out.flush()
            say("copying", n + 1, total, out.size)
        entry(zf, f"objects/{locator_name(session_id)}", store.get(locator_name(session_id)))
        say("sealing", total, total, out.size)
        checker.join()
        if "error" in verified:
            raise verified["error"]
        report: Report = verified["report"]
        if report.status != "verified":
            raise VerificationError(f"session {session_id} is unterminated (no manifest): no sealed copy before "
                                    "it is closed")
        _same_as_verified(report, prefix, copied)
        key = opts.trust.station_key(report.station_id) or (
            opts.carried.station_key(report.station_id) if opts.carried else None)
        if key is None:
            raise VerificationError(f"no trust anchor for station {report.station_id}: nothing to export with")
        with tempfile.TemporaryDirectory(prefix="irms-export-trust-") as tmp:
            trust_station_key(Path(tmp), report.station_id, key)
            trust_tsa_roots(Path(tmp), opts.trust.tsa_roots or (opts.carried.tsa_roots if opts.carried else ()))
            for path in sorted(Path(tmp).rglob("*")):
                if path.is_file():
                    entry(zf, f"trust/{path.relative_to(tmp).as_posix()}", path.read_bytes())
        info = _info(report, store.get(manifest_name(prefix)), label, now)
        entry(zf, EXPORT_FILE, canonical_json(info))
        entry(zf, "README.txt", _readme(info, top))
    out.flush()
    say("sealing", total, total, out.size)
    return {**info, "archive_size": out.size, "archive_sha256": out.sha256.hexdigest()}


RECORD_OBJECT = re.compile(r"seg/\d{8}\.json")


def _same_as_verified(report: Report, prefix: str, copied: dict[str, bytes]) -> None:
    """The documents copied are the bytes the verification read (each is stored exactly canonical, V01, V04, V10):
    a store changed between the two reads fails the copy."""
    expected: dict[str, Any] = {record_name(prefix, int(r["index"])): r for r in report.records}
    expected[header_name(prefix)] = report.header
    expected[manifest_name(prefix)] = report.manifest
    copied_docs = set(copied)
    if copied_docs != set(expected):
        odd = sorted(copied_docs ^ set(expected))[0]
        raise VerificationError(f"V05 the store changed while it was copied ({odd})")
    for name, doc in expected.items():
        if hashlib.sha256(canonical_json(doc)).digest() != copied[name]:
            raise VerificationError(f"V04 {name} changed between its verification and its copy")


def rebuild_session(store: ObjectStore, report: Report, custodian: Unwrapper, out: Path) -> None:
    """Decrypt a verified session into one playable MP4."""
    with tempfile.TemporaryDirectory(prefix="irms-rebuild-") as tmp:
        paths = []
        for i, plain in enumerate(decrypt_segments(store, report, custodian)):
            p = Path(tmp) / f"{i:08d}.ts"
            p.write_bytes(plain)
            paths.append(p)
        rebuild_file(paths, out)
