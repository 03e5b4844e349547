"""Trust anchors: the station public keys and time-stamping authorities a verifier accepts, held in
a `TrustStore` object.

A trust directory holds one SPKI PEM file per station, `stations/<station_id>.pub`, and the root
certificates of the time-stamping authorities it accepts, `tsa/*.pem` (PEM, one or more each).
Default directory: $IRMS_TRUST, else $IRMS_HOME/trust, else ~/.local/share/irms/trust.
The caller builds the TrustStore once; the audit never reads a directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from evidence.errors import KeyError_
from evidence.formats import CODE_RE
from evidence.keys import load_public_key, save_public_key
from verifier.errors import VerificationError

TSA_FOLDER = "tsa"


def trust_dir() -> Path:
    if os.environ.get("IRMS_TRUST"):
        return Path(os.environ["IRMS_TRUST"]).expanduser()
    home = os.environ.get("IRMS_HOME")
    base = Path(home).expanduser() if home else Path.home() / ".local" / "share" / "irms"
    return base / "trust"


@dataclass(frozen=True)
class TrustStore:
    """Station keys this verifier trusts, by station id; `origin` says where they came from."""

    stations: dict[str, Ed25519PublicKey] = field(default_factory=dict)
    origin: str = ""
    tsa_roots: tuple[x509.Certificate, ...] = ()

    def station_key(self, station_id: str) -> Ed25519PublicKey | None:
        return self.stations.get(station_id)

    @classmethod
    def from_dir(cls, directory: Path) -> TrustStore:
        """Load every `stations/<id>.pub` of a trust directory; a missing directory is an empty store."""
        stations: dict[str, Ed25519PublicKey] = {}
        folder = directory / "stations"
        try:
            paths = sorted(folder.glob("*.pub")) if folder.is_dir() else []
        except OSError as err:
            raise KeyError_(f"cannot read trust directory {folder}: {err.strerror}") from None
        for path in paths:
            if not CODE_RE.match(path.stem):
                continue
            key = load_public_key(path)
            if not isinstance(key, Ed25519PublicKey):
                raise KeyError_(f"trusted key {path} is not an Ed25519 key")
            stations[path.stem] = key
        return cls(stations, str(directory), load_tsa_roots(directory))


def load_tsa_roots(directory: Path) -> tuple[x509.Certificate, ...]:
    """Every certificate of the PEM files `tsa/*.pem` of a trust directory (none: no TSA is trusted)."""
    roots: list[x509.Certificate] = []
    folder = directory / TSA_FOLDER
    for path in sorted(folder.glob("*.pem")) if folder.is_dir() else []:
        try:
            roots += x509.load_pem_x509_certificates(path.read_bytes())
        except (OSError, ValueError) as err:
            raise KeyError_(f"TSA certificate file {path} is not readable PEM certificates: {err}") from None
    return tuple(roots)


def trust_tsa_roots(directory: Path, roots: tuple[x509.Certificate, ...]) -> Path | None:
    """Write `roots` as `tsa/roots.pem` of a trust directory (an export folder carries its TSA roots)."""
    if not roots:
        return None
    path = directory / TSA_FOLDER / "roots.pem"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in roots))
    return path


def trust_station_key(directory: Path, station_id: str, key: Ed25519PublicKey) -> Path:
    path = directory / "stations" / f"{station_id}.pub"
    save_public_key(path, key)
    return path


def trusted_station_key(directory: Path, station_id: str) -> Ed25519PublicKey | None:
    """The trusted key of `station_id` in a trust directory, or None when it is not there."""
    return TrustStore.from_dir(directory).station_key(station_id)


def load_server_key(path: str | None) -> Ed25519PublicKey | None:
    """The server's Ed25519 public key given with --server-key (coverage bundles, tombstones), or None."""
    if not path:
        return None
    loaded = load_public_key(Path(path))
    if not isinstance(loaded, Ed25519PublicKey):
        raise VerificationError(f"{path} is not an Ed25519 public key")
    return loaded
