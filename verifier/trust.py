"""Trust anchors: the station public keys a verifier accepts, one PEM file per station.

Default directory: $IRMS_TRUST, else $IRMS_HOME/trust, else ~/.local/share/irms/trust.
`stations/<station_id>.pub`. The web exports the same layout for offline verifiers.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from verifier.errors import KeyError_
from verifier.keys import load_public_key, save_public_key


def trust_dir() -> Path:
    if os.environ.get("IRMS_TRUST"):
        return Path(os.environ["IRMS_TRUST"]).expanduser()
    home = os.environ.get("IRMS_HOME")
    base = Path(home).expanduser() if home else Path.home() / ".local" / "share" / "irms"
    return base / "trust"


def trust_station_key(directory: Path, station_id: str, key: Ed25519PublicKey) -> Path:
    path = directory / "stations" / f"{station_id}.pub"
    save_public_key(path, key)
    return path


def trusted_station_key(directory: Path, station_id: str) -> Ed25519PublicKey | None:
    """The trusted key of `station_id`, or None when this verifier does not know the station."""
    path = directory / "stations" / f"{station_id}.pub"
    if not path.exists():
        return None
    key = load_public_key(path)
    if not isinstance(key, Ed25519PublicKey):
        raise KeyError_(f"trusted key {path} is not an Ed25519 key")
    return key
