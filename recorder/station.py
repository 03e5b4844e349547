"""The station's identity and its files under IRMS_HOME.

IRMS_HOME/
  station.json          station id (and, once enrolled, the server)
  keys/station.key      Ed25519 private key (0600), made once by `irms-agent keygen`
  keys/station.pub      its public key
  keys/custodian.pub    the custodian's X25519 public key that session keys are wrapped to
  journal.db            the journal (SQLite WAL)
  agent.lock            held (flock) by the one irms-agent process that owns this home; holds its pid
  spool/ outbox/        plain segments (short-lived), sealed objects awaiting upload
  trust/                public keys this machine's verifier trusts (see verifier.trust)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from evidence import keys as K
from evidence.durable import write_durable
from evidence.errors import KeyError_
from evidence.formats import check_code
from recorder.errors import ConfigError, StationBusy


def irms_home() -> Path:
    env = os.environ.get("IRMS_HOME")
    return Path(env).expanduser() if env else Path.home() / ".local" / "share" / "irms"


@dataclass(frozen=True)
class Station:
    home: Path
    station_id: str
    key: Ed25519PrivateKey
    custodian: X25519PublicKey

    @property
    def public_b64(self) -> str:
        return K.b64(K.public_raw(self.key.public_key()))

    @property
    def journal_path(self) -> Path:
        return self.home / "journal.db"

    @property
    def spool(self) -> Path:
        return self.home / "spool"

    @property
    def outbox(self) -> Path:
        return self.home / "outbox"


LOCK_NAME = "agent.lock"


@dataclass
class HomeLock:
    """An exclusive lock on a station home, held until `release` or the end of the process."""

    path: Path
    fd: int

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def lock_home(home: Path, command: str) -> HomeLock | None:
    """Own the station home for this process, or raise StationBusy naming the process that owns it.

    One agent per home: two processes writing one journal resume each other's live session. The
    lock is an OS lock (flock), so it dies with its process, kill -9 and power cuts included; the
    file only tells the refused process who holds it. None when there is no home yet (nothing to guard).
    """
    if not home.is_dir():
        return None
    path = home / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as err:
        raise ConfigError(f"cannot open the station lock {path}: {err.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = ""
        for _ in range(20):  # the holder writes its pid right after locking: give it a moment
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
            if holder:
                break
            time.sleep(0.05)
        os.close(fd)
        pid, _, what = holder.partition(" ")
        raise StationBusy(f"station home {home} is in use by irms-agent pid {pid or '?'} ({what or '?'}); "
                          "this command did nothing") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {command}\n".encode(), 0)
    return HomeLock(path, fd)


def keygen(home: Path, station_id: str | None, custodian_public: Path | None) -> tuple[str, Path]:
    """Make the station key once (refuses to overwrite), trust it locally, install the custodian key."""
    key_path = home / "keys" / "station.key"
    if key_path.exists():
        raise ConfigError(f"station key already exists at {key_path}; refusing to replace it")
    key = Ed25519PrivateKey.generate()
    sid = station_id or "st-" + K.key_id(K.public_raw(key.public_key()))[:12]
    check_code(sid, "station id")
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    (home / "keys").mkdir(exist_ok=True, mode=0o700)
    K.save_private_key(key_path, key)
    K.save_public_key(home / "keys" / "station.pub", key.public_key())
    write_durable(home / "station.json", json.dumps({"station_id": sid}).encode(), mode=0o600)
    from verifier.trust import trust_dir, trust_station_key  # X.509 (a tenth of a start's CPU): keygen only

    trust_station_key(trust_dir(), sid, key.public_key())
    if custodian_public is not None:
        install_custodian(home, custodian_public)
    return sid, key_path


def install_custodian(home: Path, custodian_public: Path) -> None:
    pub = K.load_custodian_public(custodian_public)
    K.save_public_key(home / "keys" / "custodian.pub", pub)


def load_station(home: Path | None = None) -> Station:
    home = home or irms_home()
    try:
        meta = json.loads((home / "station.json").read_text())
        sid = str(meta["station_id"])
    except FileNotFoundError:
        raise ConfigError(f"no station here ({home}): run `irms-agent keygen` first") from None
    except (ValueError, KeyError, OSError) as err:
        raise ConfigError(f"station file {home / 'station.json'} is unreadable: {err}") from None
    try:
        key = K.load_station_private(home / "keys" / "station.key")
        custodian = K.load_custodian_public(home / "keys" / "custodian.pub")
    except KeyError_ as err:
        raise ConfigError(str(err)) from None
    return Station(home=home, station_id=sid, key=key, custodian=custodian)
