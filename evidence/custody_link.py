"""The custody socket: how a web worker, `irms-web custody` and `irms-verify` talk to the custody holder.

The holder (web.custody_holder, started by `irms-web serve`) is the one process that holds the
unlocked custodian keys. It listens on a local Unix socket, mode 0600 in a 0700 folder: only the
server's own OS user and root can connect, and the holder reads each caller's uid from the kernel
(SO_PEERCRED), never from the request. One request per connection: one line of JSON, answered
by one line of JSON, `{"ok": true, ...}` or `{"ok": false, "error": "<one line>"}`.

  {"op": "status"}                                  -> {"locked", "held", "not_held", "unlocked_by", ...}
  {"op": "unlock", "passphrase": "..."}             -> the keys held (passphrase, or the token PIN)
  {"op": "lock"}                                    -> every key dropped from memory
  {"op": "unwrap", "session_id", "key_index", "wrapped", "prosecutor", "purpose"}
                                                    -> {"data_key": <base64>}, audited by the holder
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evidence.errors import DecryptionError, IrmsError
from evidence.keys import unb64

MAX_LINE = 1 << 20
PASSPHRASE_ENV = "IRMS_CUSTODIAN_PASSPHRASE"
ENV_REFUSAL = (f"{PASSPHRASE_ENV} is no longer read (it shows in /proc/<pid>/environ): unset it; a custodian "
               "officer unlocks the server with `irms-web custody unlock`, or give systemd the credential "
               "custodian-passphrase")


class CustodyLinkError(IrmsError):
    """The custody holder is away, locked, or refused the request."""

    exit_code = 3
    http_status = 503


class CustodyRefused(CustodyLinkError):
    exit_code = 1
    http_status = 403


def read_line(sock: socket.socket) -> bytes:
    buf = bytearray()
    while not buf.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
        if len(buf) > MAX_LINE:
            raise CustodyLinkError("custody request too long")
    return bytes(buf)


def request(path: Path, doc: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    """Send one request to the holder at `path`; its answer, or CustodyLinkError with the holder's line."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(path))
        except FileNotFoundError:
            raise CustodyLinkError(f"no custody holder at {path}: is `irms-web serve` running?") from None
        except PermissionError:
            raise CustodyLinkError(f"the custody socket {path} is only for the server's OS user and root") from None
        except ConnectionRefusedError:
            raise CustodyLinkError(f"the custody holder at {path} is not running") from None
        sock.sendall(json.dumps(doc).encode("utf-8") + b"\n")
        raw = read_line(sock)
    except TimeoutError:
        raise CustodyLinkError(f"the custody holder at {path} did not answer in {timeout:.0f} s") from None
    except OSError as err:
        raise CustodyLinkError(f"custody socket {path}: {err.strerror or err}") from None
    finally:
        sock.close()
    try:
        answer = json.loads(raw)
    except ValueError:
        raise CustodyLinkError(f"the custody holder at {path} gave no answer") from None
    if not isinstance(answer, dict):
        raise CustodyLinkError(f"the custody holder at {path} gave no answer")
    if not answer.get("ok"):
        if answer.get("kind") == "decryption":
            raise DecryptionError(str(answer.get("error", "data key cannot be unwrapped")))
        raise CustodyRefused(str(answer.get("error", "refused")))
    return answer


@dataclass(frozen=True)
class SocketUnwrapper:
    """Data keys unwrapped by the custody holder, each one audited there for `prosecutor`."""

    path: Path
    prosecutor: str
    purpose: str

    def unwrap(self, wrapped: dict[str, Any], session_id: str, key_index: int) -> bytes:
        answer = request(self.path, {"op": "unwrap", "session_id": session_id, "key_index": key_index,
                                     "wrapped": wrapped, "prosecutor": self.prosecutor, "purpose": self.purpose})
        return unb64(answer.get("data_key"), "custody answer data_key")


def user_name(uid: int) -> str:
    import pwd
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def os_user() -> str:
    """Who runs this command: the OS user name, and the user who became it through sudo, if any."""
    import os
    me = user_name(os.getuid())
    via = os.environ.get("SUDO_USER")
    return f"{me} (sudo from {via})" if via and via != me else me
