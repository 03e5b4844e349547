"""The custody holder: the one process that holds the unlocked custodian keys, and audits every use.

`irms-web serve` starts it (`irms-web custody hold`) beside gunicorn; the web workers never hold a
custodian key, they ask the holder over the custody socket (evidence.custody_link) to unwrap a data
key for a prosecutor. Why one holder and not each worker unlocked: an officer unlocks once, the key
sits in one process's memory (not in every worker a restart forks), and no worker can unwrap
without the holder writing the audit entry first.

It starts locked. A custodian officer unlocks it with `irms-web custody unlock` (the passphrase,
or the token PIN, read from the terminal and sent over the socket), or systemd hands it the
credential `custodian-passphrase` ($CREDENTIALS_DIRECTORY, LoadCredentialEncrypted=). The socket
is 0600 in a 0700 folder, so only the server's OS user and root connect; the holder also refuses
any other uid the kernel reports (SO_PEERCRED), and names that OS user in every audit entry:
`custodian.unlock`, `custodian.lock`, `custodian.key_use` (actor: the prosecutor served; detail:
os_user, pid, key id, key index, purpose). An unwrap for a name that is not an active prosecutor
account is refused.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import socket
import socketserver
import struct
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence.crypto import Unwrapper
from evidence.custody_link import MAX_LINE, read_line, user_name
from evidence.errors import DecryptionError, IrmsError
from web import audit, custody
from web.db import Database
from web.errors import CustodyError
from web.models import Share, User
from web.sessions import CONTENT_ROLES

log = logging.getLogger("irms.custody")
CREDENTIAL = "custodian-passphrase"


def now_us() -> int:
    return time.time_ns() // 1000


def peer(sock: socket.socket) -> tuple[int, int]:
    """(pid, uid) of the process at the other end, as the kernel says."""
    pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    return pid, uid



def served_by_account(s: Session, username: str) -> str:
    """Why a data key may not be unwrapped for this account ("" if it may): an active content reader only."""
    user = s.scalars(select(User).where(User.username == username)).first()
    if user is None or not user.active or user.role not in CONTENT_ROLES:
        return f"{username!r} is not an active prosecutor account: no key use for it"
    return ""


def served_by_share(s: Session, actor: str, session_id: str) -> str:
    """Why a data key may not be unwrapped for an outside party's share `share:<id>` ("" if it may): the share
    must be of this session, allow replay, and be neither expired nor revoked now (web/shares.py)."""
    ident = actor.removeprefix("share:")
    share = s.get(Share, int(ident)) if ident.isdigit() else None
    if share is None or share.session_id != session_id or "replay" not in share.allow \
            or share.revoked_at_us is not None or now_us() >= share.expires_at_us:
        return f"{actor} is not a live share of session {session_id} that allows replay: no key use for it"
    return ""

class Holder:
    """The keys (in memory, or token sessions), their state, and the audited operations on them."""

    def __init__(self, db: Database, module: str, cache_s: float) -> None:
        self.db = db
        self.module = module
        self.cache_s = cache_s
        self.keys: dict[str, Unwrapper] = {}
        self.unlocked_by = ""
        self.unlocked_at_us = 0
        self.cached: dict[tuple[str, int, str, str, str], tuple[bytes, float]] = {}
        """Data keys by (session, key index, prosecutor, purpose, OS user): a use for anyone or anything else
        is unwrapped and audited again."""
        self.lock = threading.Lock()

    # --- operations ------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        with self.db.session() as s:
            rows = custody.all_keys(s)
            kept = {r.key_id: custody.where_kept(r) for r in rows}
        with self.lock:
            held = sorted(self.keys)
        return {"locked": not held, "held": held, "not_held": sorted(set(kept) - set(held)), "kept": kept,
                "unlocked_by": self.unlocked_by if held else "", "unlocked_at_us": self.unlocked_at_us if held else 0}

    def unlock(self, secret: str, os_user: str, via: str) -> dict[str, Any]:
        """Open every custodian key with `secret`; all or none (a key that does not open is named)."""
        opened: dict[str, Unwrapper] = {}
        try:
            with self.db.session() as s:
                rows = custody.all_keys(s)
                if not rows:
                    raise CustodyError("the server holds no custodian key yet (irms-web custodian new)")
                for row in rows:
                    opened[row.key_id] = custody.open_row(row, secret, self.module)
                audit.append(s, at_us=now_us(), actor=f"os:{os_user}", action="custodian.unlock", target="",
                             detail={"os_user": os_user, "via": via, "keys": sorted(opened)})
                s.commit()
        except BaseException:
            _close(opened.values())
            raise
        with self.lock:
            old = list(self.keys.values())
            self.keys, self.cached = opened, {}
            self.unlocked_by, self.unlocked_at_us = os_user, now_us()
        _close(old)
        log.warning("custody: unlocked by %s (%s): %d keys", os_user, via, len(opened))
        return {"held": sorted(opened)}

    def lock_all(self, os_user: str, via: str) -> dict[str, Any]:
        with self.lock:
            old = list(self.keys.values())
            self.keys, self.cached = {}, {}
            self.unlocked_by, self.unlocked_at_us = "", 0
        _close(old)
        with self.db.session() as s:
            audit.append(s, at_us=now_us(), actor=f"os:{os_user}", action="custodian.lock", target="",
                         detail={"os_user": os_user, "via": via, "keys": len(old)})
            s.commit()
        return {"locked": True}

    def unwrap(self, req: dict[str, Any], os_user: str, pid: int) -> bytes:
        session_id, key_index = str(req.get("session_id", "")), req.get("key_index")
        prosecutor, purpose, wrapped = str(req.get("prosecutor", "")), str(req.get("purpose", "")), req.get("wrapped")
        if not session_id or not isinstance(key_index, int) or not isinstance(wrapped, dict) or not purpose:
            raise CustodyError("an unwrap names session_id, key_index, wrapped, prosecutor and purpose")
        kid = str(wrapped.get("key_id", ""))
        t = time.monotonic()
        with self.lock:
            key = self.keys.get(kid)
            hit = self.cached.get((session_id, key_index, prosecutor, purpose, os_user))
            if not self.keys:
                raise CustodyError("the custodian key is locked: a custodian officer must run "
                                   "`irms-web custody unlock`")
        if key is None:
            raise CustodyError(f"this server does not hold custodian key {kid}")
        if hit is not None and hit[1] > t:
            return hit[0]
        with self.db.session() as s:
            refused = served_by_share(s, prosecutor, session_id) if prosecutor.startswith("share:") else \
                served_by_account(s, prosecutor)
            if refused:
                raise CustodyError(refused)
            data_key = key.unwrap(wrapped, session_id, key_index)  # DecryptionError: the caller is told
            audit.append(s, at_us=now_us(), actor=prosecutor, action="custodian.key_use", target=session_id,
                         detail={"key_id": kid, "key_index": key_index, "purpose": purpose, "os_user": os_user,
                                 "pid": pid})
            s.commit()
        if self.cache_s > 0:
            with self.lock:
                if kid in self.keys:
                    self.cached[(session_id, key_index, prosecutor, purpose, os_user)] = (data_key, t + self.cache_s)
        return data_key

    # --- the socket --------------------------------------------------------------------------------------

    def answer(self, req: dict[str, Any], uid: int, pid: int) -> dict[str, Any]:
        op, who = req.get("op"), user_name(uid)
        if op == "status":
            return self.status()
        if op == "unlock":
            secret = req.get("passphrase")
            if not isinstance(secret, str) or not secret:
                raise CustodyError("unlock needs the passphrase (or the token PIN)")
            return self.unlock(secret, who, "socket")
        if op == "lock":
            return self.lock_all(who, "socket")
        if op == "unwrap":
            return {"data_key": base64.b64encode(self.unwrap(req, who, pid)).decode("ascii")}
        raise CustodyError(f"unknown custody request {op!r}")


def _close(keys: Any) -> None:
    for k in keys:
        close = getattr(k, "close", None)
        if close is not None:
            close()


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(30)
        pid, uid = peer(sock)
        if uid not in (0, os.getuid()):  # the 0600 socket already says so; the kernel's word, checked again
            # Read (and ignore) its request first: answering before the peer has written would break its
            # pipe, and it would never see why it was refused.
            with contextlib.suppress(OSError, IrmsError):
                read_line(sock)
            self._send({"ok": False, "error": f"uid {uid} may not use the custody socket"})
            return
        try:
            raw = read_line(sock)
            req = json.loads(raw) if raw and len(raw) <= MAX_LINE else None
            if not isinstance(req, dict):
                raise CustodyError("a custody request is one line of JSON")
            self._send({"ok": True, **self.server.holder.answer(req, uid, pid)})
        except DecryptionError as err:
            self._send({"ok": False, "kind": "decryption", "error": str(err)})
        except (IrmsError, ValueError) as err:
            self._send({"ok": False, "error": str(err).splitlines()[0] if str(err) else err.__class__.__name__})
        except Exception as err:  # noqa: BLE001 - one line to the caller, the trace in the holder's log
            log.exception("custody request failed")
            self._send({"ok": False, "error": f"custody holder error: {err.__class__.__name__}"})

    def _send(self, doc: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            self.request.sendall(json.dumps(doc).encode("utf-8") + b"\n")


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    holder: Holder


def bind(path: Path) -> socket.socket:
    """The listening socket: 0600 in a 0700 folder, made with a tight umask so it is never looser."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    if path.is_socket():
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()  # a holder that died left it
        else:
            raise CustodyError(f"another custody holder is already listening on {path}")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(64)
    return sock


class HolderServer:
    """The holder serving its socket in a thread (in `irms-web custody hold`, or in a test)."""

    def __init__(self, holder: Holder, path: Path) -> None:
        self.holder, self.path = holder, path
        self.server = _Server(str(path), _Handler, bind_and_activate=False)
        self.server.socket.close()
        self.server.socket = bind(path)
        self.server.holder = holder
        self.thread = threading.Thread(target=self.server.serve_forever, name="irms-custody", daemon=True)

    def start(self) -> HolderServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)
        _close(self.holder.keys.values())
        self.holder.keys = {}
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def credential_unlock(holder: Holder) -> bool:
    """Unlock from the systemd credential custodian-passphrase, if systemd gave one."""
    folder = os.environ.get("CREDENTIALS_DIRECTORY")
    if not folder or not (Path(folder) / CREDENTIAL).is_file():
        return False
    secret = (Path(folder) / CREDENTIAL).read_text(encoding="utf-8").rstrip("\n")
    holder.unlock(secret, user_name(os.getuid()), "systemd-credential")
    return True

