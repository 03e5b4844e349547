"""The audit log's anchor outside the database: signed heads the stations keep (issue 12 §2).

A hash chain proves nothing against whoever can rewrite the whole table and recompute it. So the
server signs the current head of the chain (its seq and hash) with its own Ed25519 key, kept in a
file outside the database (`audit_key_path`, default `audit-signing.key` beside the database,
0600, made once), and every accepted heartbeat's answer carries it. Stations keep the heads they
were given (recorder/heartbeat.py). `irms-web audit verify --witness FILE` checks the log against
heads collected from stations: each must be signed by the server's audit key and name an entry
whose hash is, today, the one witnessed; the first that is not names the rewritten entry.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence import keys as K
from evidence.canonical import canonical_json
from evidence.errors import FormatError, KeyError_, SignatureError
from verifier.timestamp import request_token
from web.errors import AuditBroken, ConfigError
from web.models import AuditEntry, AuditTimestamp

HEAD_FORMAT = "irms.audit-head/1"
KEY_FILE = "audit-signing.key"


class AuditSigner:
    """Signs audit chain heads; one per process, the last head's signature kept (heads change rarely)."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self.key = key
        self.public_key: Ed25519PublicKey = key.public_key()
        self._last: tuple[tuple[int, str], dict[str, Any]] | None = None

    @classmethod
    def from_file(cls, path: Path) -> AuditSigner:
        """The key in `path` (PEM, unencrypted, 0600), made there first if there is none."""
        if not path.exists():
            _create_key(path)
        try:
            key = K.load_private_key(path)
        except (KeyError_, FormatError) as err:
            raise ConfigError(f"audit signing key {path}: {err}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"audit signing key {path} is not an Ed25519 private key")
        return cls(key)

    def head(self, seq: int, hash_: str) -> dict[str, Any]:
        """The signed head {"format", "seq", "hash", "signature"}."""
        last = self._last
        if last is not None and last[0] == (seq, hash_):
            return last[1]
        doc = K.sign_document({"format": HEAD_FORMAT, "seq": seq, "hash": hash_}, self.key)
        self._last = ((seq, hash_), doc)
        return doc


def _create_key(path: Path) -> None:
    """Write a new key to `path` unless one appears there first (several workers start at once): written
    whole to a file of its own (0600), then linked into place."""
    from cryptography.hazmat.primitives import serialization
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(FileExistsError):  # another worker's key is in place: that one is used
            os.link(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        tmp.unlink(missing_ok=True)


def public_key_of(path: Path) -> Ed25519PublicKey:
    """The audit key's public half, from the private key file or a public key PEM."""
    try:
        text = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"audit key {path} cannot be read: {err.strerror}") from None
    if b"PRIVATE KEY" in text:
        return AuditSigner.from_file(path).public_key
    try:
        key = K.load_public_key(path)
    except (KeyError_, FormatError) as err:
        raise ConfigError(f"audit key {path}: {err}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"audit key {path} is not an Ed25519 public key")
    return key


def parse_heads(text: str, where: str) -> list[Any]:
    """Heads collected from stations: a JSON list, one JSON object, or one object per line (as
    `sqlite3 IRMS_HOME/heartbeats.db "SELECT head FROM audit_heads"` prints them)."""
    try:
        loaded = json.loads(text)
    except ValueError:
        try:
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError:
            raise AuditBroken(f"{where} is neither JSON nor JSON lines") from None
    return loaded if isinstance(loaded, list) else [loaded]


@dataclass(frozen=True)
class WitnessReport:
    heads: int
    """Distinct witnessed heads checked."""
    newest_seq: int


def verify_witnessed(s: Session, heads: list[dict[str, Any]], key: Ed25519PublicKey) -> WitnessReport:
    """Check the log against heads stations were given; raise AuditBroken naming the first entry that
    differs from a witnessed head (or a head not signed by `key`)."""
    checked: dict[int, str] = {}
    for i, doc in enumerate(heads):
        if not isinstance(doc, dict) or doc.get("format") != HEAD_FORMAT or not isinstance(doc.get("seq"), int) \
                or not isinstance(doc.get("hash"), str):
            raise AuditBroken(f"witnessed head {i + 1} is not an {HEAD_FORMAT} document")
        try:
            K.verify_document(doc, key, f"witnessed audit head {doc['seq']}")
        except SignatureError as err:
            raise AuditBroken(f"{err} (not the server's audit key)") from None
        seq, want = int(doc["seq"]), str(doc["hash"])
        if checked.get(seq, want) != want:
            raise AuditBroken(f"two witnessed heads for audit log entry {seq} differ: the log was rewritten at or "
                              f"before entry {seq}")
        checked[seq] = want
    if not checked:
        return WitnessReport(0, 0)
    stored = {int(r[0]): str(r[1]) for r in s.execute(select(AuditEntry.seq, AuditEntry.hash).where(
        AuditEntry.seq.in_(list(checked))))}
    for seq in sorted(checked):
        if seq not in stored:
            raise AuditBroken(f"audit log entry {seq} is missing, but stations witnessed it")
        if stored[seq] != checked[seq]:
            raise AuditBroken(f"audit log entry {seq} differs from the head stations witnessed: the log was "
                              f"rewritten at or before entry {seq}")
    return WitnessReport(len(checked), max(checked))


# --- RFC 3161 time-stamps of the head --------------------------------------------------------------------
# `irms-web audit timestamp`, run at a fixed interval (a systemd timer or cron), asks the time-stamping
# authority the stations use for manifests (`audit_tsa_url`) for a token over the current signed head,
# and keeps it in audit_timestamps (append-only), outside the audit log: the log's state at that time is
# then fixed by a third party as well as by the stations.

def timestamp_head(s: Session, signer: AuditSigner, url: str, now_us: int, interval_s: int) -> AuditTimestamp | None:
    """Ask for a token over the current signed head unless one younger than `interval_s` covers the same
    head (None then, or while the log is empty); stored in the caller's transaction."""
    last = s.execute(select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)).first()
    if last is None:
        return None
    newest = s.scalars(select(AuditTimestamp).order_by(AuditTimestamp.id.desc()).limit(1)).first()
    if newest is not None and newest.seq == last[0] and newest.at_us > now_us - interval_s * 1_000_000:
        return None
    head = signer.head(int(last[0]), str(last[1]))
    data = canonical_json(head)
    row = AuditTimestamp(seq=int(last[0]), hash=str(last[1]), head=data.decode("utf-8"),
                         token=request_token(url, data), at_us=now_us)
    s.add(row)
    s.flush()
    return row


def verify_timestamps(s: Session, key: Ed25519PublicKey, roots: list[Any]) -> WitnessReport:
    """Check every stored token (TSA signature over the signed head) and the log against the heads they fix;
    raise AuditBroken naming the first entry that differs."""
    from verifier.timestamp import check_token
    heads: list[dict[str, Any]] = []
    for row in s.scalars(select(AuditTimestamp).order_by(AuditTimestamp.id)):
        try:
            check_token(bytes(row.token), row.head.encode("utf-8"), roots)
        except FormatError as err:
            raise AuditBroken(f"time-stamp {row.id} of audit log entry {row.seq}: {err}") from None
        heads.append(json.loads(row.head))
    return verify_witnessed(s, heads, key)
