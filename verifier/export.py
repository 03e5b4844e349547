"""Sealed export copies: a folder that verifies offline on its own (R12)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from storage.base import ObjectStore
from storage.durable import write_durable
from storage.errors import StoreConfigError
from storage.file import FileStore
from verifier.formats import locator_name, manifest_name
from verifier.media import rebuild_file
from verifier.session import Options, Report, decrypt_segments, verify
from verifier.trust import trust_station_key, trusted_station_key

EXPORT_FILE = "EXPORT.json"


def is_export(path: Path) -> bool:
    return (path / EXPORT_FILE).is_file()


def export_session(store: ObjectStore, session_id: str, opts: Options, out: Path, label: str,
                   now: dt.datetime) -> dict[str, Any]:
    """Verify, then copy every object of the session and its trust anchor into `out`."""
    report = verify(store, session_id, opts)
    if out.exists() and any(out.iterdir()):
        raise StoreConfigError(f"export folder {out} is not empty")
    target = FileStore(out / "objects")
    for name in store.list(report.prefix):
        target.put(name, store.get(name))
    target.put(locator_name(session_id), store.get(locator_name(session_id)))
    key = trusted_station_key(opts.trust, report.station_id)
    assert key is not None  # verify() passed V02
    trust_station_key(out / "trust", report.station_id, key)
    manifest = store.get(manifest_name(report.prefix))
    info = {
        "format": "irms.export/1",
        "label": label,
        "session_id": session_id,
        "station_id": report.station_id,
        "station_key_id": report.station_key_id,
        "manifest_sha256": hashlib.sha256(manifest).hexdigest(),
        "segments": report.segments,
        "exported_at": now.astimezone(dt.UTC).isoformat(),
    }
    write_durable(out / EXPORT_FILE, json.dumps(info, indent=2, ensure_ascii=False).encode(), replace=False)
    readme = (
        f"IRMS sealed copy ({label}) of session {session_id}\n\n"
        f"Verify offline:  irms-verify session {session_id} --store {out.name}\n"
        f"The station key id is {report.station_key_id}; compare it with the annex to the minutes.\n"
        f"The manifest SHA-256 is {info['manifest_sha256']}.\n"
    )
    write_durable(out / "README.txt", readme.encode(), replace=False)
    return info


def rebuild_session(store: ObjectStore, report: Report, custodian: X25519PrivateKey, out: Path) -> None:
    """Decrypt a verified session into one playable MP4."""
    with tempfile.TemporaryDirectory(prefix="irms-rebuild-") as tmp:
        paths = []
        for i, plain in enumerate(decrypt_segments(store, report, custodian)):
            p = Path(tmp) / f"{i:08d}.ts"
            p.write_bytes(plain)
            paths.append(p)
        rebuild_file(paths, out)
