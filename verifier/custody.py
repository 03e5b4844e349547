"""Custodian key use from the command line: through the server's custody holder, or offline, recorded.

Two ways for `irms-verify` to unwrap data keys (media rules V14-V15, `rebuild`):

- `--custodian-socket PATH`: the running server's custody holder unwraps them (evidence.custody_link);
  each use is a `custodian.key_use` entry in the server's audit log, with the OS user the kernel
  names for this process and the prosecutor given with `--prosecutor`.
- `--custodian-key FILE`: a key file on this machine (an offline custodian copy, sealed by default).
  This process holds the key, so no server sees the use: each unwrap is one JSON line appended to the
  key-use log (`--key-use-log`, default $IRMS_HOME/custody-key-use.jsonl, mode 0600, synced), with the
  OS user, host, prosecutor, session, data key and key file; stderr says where it went.

Both name the prosecutor served (`--prosecutor`): no unwrap without it.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evidence.crypto import Unwrapper
from evidence.custody_link import os_user
from storage.errors import StoreConfigError

LOG_NAME = "custody-key-use.jsonl"


def default_log() -> Path:
    home = os.environ.get("IRMS_HOME")
    return (Path(home).expanduser() if home else Path.home() / ".local" / "share" / "irms") / LOG_NAME


@dataclass
class RecordedUnwrapper:
    """An offline custodian key whose every unwrap is appended to `log` before the data key is used."""

    inner: Unwrapper
    log: Path
    prosecutor: str
    purpose: str
    key_file: str
    _done: dict[tuple[str, int], bytes] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _told: bool = False

    def unwrap(self, wrapped: dict[str, Any], session_id: str, key_index: int) -> bytes:
        with self._lock:
            hit = self._done.get((session_id, key_index))
            if hit is not None:
                return hit
            data_key = self.inner.unwrap(wrapped, session_id, key_index)
            self._record({"at_us": time.time_ns() // 1000, "os_user": os_user(), "host": socket.gethostname(),
                          "prosecutor": self.prosecutor, "purpose": self.purpose, "session_id": session_id,
                          "key_index": key_index, "key_id": str(wrapped.get("key_id", "")), "key_file": self.key_file})
            self._done[(session_id, key_index)] = data_key
            return data_key

    def _record(self, entry: dict[str, Any]) -> None:
        try:
            self.log.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, json.dumps(entry, ensure_ascii=False, sort_keys=True).encode("utf-8") + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as err:
            raise StoreConfigError(f"the key-use log {self.log} cannot be written ({err.strerror}): "
                                   "no unwrap without its record") from None
        if not self._told:
            print(f"irms-verify: custodian key use recorded in {self.log} (offline key: not in the server's "
                  "audit log)", file=sys.stderr)
            self._told = True
