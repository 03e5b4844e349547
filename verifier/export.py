"""Sealed export copies: a folder that verifies offline on its own (R12)."""

from __future__ import annotations

import datetime as dt
import hashlib
import tempfile
from pathlib import Path
from typing import Any

from evidence.canonical import canonical_json
from evidence.crypto import Unwrapper
from evidence.durable import write_durable
from evidence.formats import locator_name, manifest_name
from storage.base import ObjectStore
from storage.errors import StoreConfigError
from storage.file import FileStore
from verifier.errors import VerificationError
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
    manifest = store.get(manifest_name(report.prefix))
    info = {
        "exported_at_us": int(now.timestamp() * 1_000_000),
        "format": EXPORT_FORMAT,
        "label": label,
        "manifest_sha256": hashlib.sha256(manifest).hexdigest(),
        "segments": report.segments,
        "session_id": session_id,
        "station_id": report.station_id,
        "station_key_id": report.station_key_id,
    }
    write_durable(out / EXPORT_FILE, canonical_json(info), replace=False)
    readme = (
        f"IRMS sealed copy ({label}) of session {session_id}\n\n"
        f"Verify offline:  irms-verify session {session_id} --store {out.name}\n"
        f"The station key id is {report.station_key_id}; compare it with the annex to the minutes.\n"
        "A verifier whose own trust store knows this station checks the folder against it; one that\n"
        "does not says it verified against the key carried by this folder.\n"
        f"The manifest SHA-256 is {info['manifest_sha256']}.\n"
    )
    write_durable(out / "README.txt", readme.encode(), replace=False)
    return info


def rebuild_session(store: ObjectStore, report: Report, custodian: Unwrapper, out: Path) -> None:
    """Decrypt a verified session into one playable MP4."""
    with tempfile.TemporaryDirectory(prefix="irms-rebuild-") as tmp:
        paths = []
        for i, plain in enumerate(decrypt_segments(store, report, custodian)):
            p = Path(tmp) / f"{i:08d}.ts"
            p.write_bytes(plain)
            paths.append(p)
        rebuild_file(paths, out)
