"""Heartbeats: what the station tells the server every interval, signed, queued while the server is away.

A heartbeat (format irms.heartbeat/1) carries the probe results, free disk, the clock offset
against the server, versions, and while recording the session id, index and chain head, which
the server keeps append-only (witnessing, R08). Each POST is signed with the station key per
`evidence.request_auth`. Heartbeats go into a local queue (SQLite, IRMS_HOME/heartbeats.db)
first and leave it oldest first only when the server has accepted them, so an outage delays
them but loses none (up to `QUEUE_CAP`, beyond which the oldest are dropped and counted).

Each heartbeat carries the station's run (`run`, docs/evidence-format.md "Heartbeat runs"), built with
`evidence.coverage.next_run` under the coverage policy the server's answers carry; the run state is kept
in the same database, written in the transaction that queues the heartbeat, so a restart continues the
run (or, after more than two intervals, starts a new one) and queued heartbeats keep their claims.

Each accepted heartbeat's answer carries the server's signed audit chain head (`audit_head`,
irms.audit-head/1); the station keeps every distinct one in the same database (`audit_heads`),
so the server's audit log can later be checked against them (`irms-web audit verify --witness`).
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import platform
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from evidence import keys as K
from evidence.coverage import Policy, RunState, next_run
from evidence.durable import write_durable
from evidence.errors import KeyError_
from evidence.owner_only import private_database
from evidence.protocol import ENROLL_PATH, HEARTBEAT_FORMAT, HEARTBEAT_PATH
from evidence.request_auth import sign_request
from recorder.clock import Clock
from recorder.errors import ConfigError, RecorderError

log = logging.getLogger(__name__)

QUEUE_CAP = 100_000
AGENT_VERSION = "0.1.0"


class ServerUnavailable(RecorderError):
    """The server could not be reached or failed (5xx); try again later."""

    exit_code = 3


class ServerRefused(RecorderError):
    """The server answered with a refusal (4xx); `status` is the HTTP status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


# --- the heartbeat document ------------------------------------------------------------------


@dataclass(frozen=True)
class Recording:
    session_id: str
    index: int
    chain_head: str


def probe_json(check: str, device: str, ok: bool, reason: str, value: object = None, unit: str = "") -> dict[str, Any]:
    """One probe result as the heartbeat carries it (values as text or integers, never floats)."""
    v: str | int | None
    v = value if value is None or isinstance(value, str | int) else str(value)
    return {"check": check, "device": device, "ok": ok, "reason": reason, "value": v, "unit": unit}


def build_heartbeat(station_id: str, sent_at_us: int, *, probes: Sequence[dict[str, Any]],
                    disk_free_bytes: int | None, clock_offset_ms: int | None, store_ok: bool | None,
                    versions: dict[str, str], recording: Recording | None) -> dict[str, Any]:
    """The heartbeat document (pure)."""
    return {
        "format": HEARTBEAT_FORMAT,
        "station_id": station_id,
        "sent_at_us": sent_at_us,
        "probes": list(probes),
        "disk_free_bytes": disk_free_bytes,
        "clock_offset_ms": clock_offset_ms,
        "store_ok": store_ok,
        "versions": versions,
        "recording": None if recording is None else {
            "session_id": recording.session_id, "index": recording.index, "chain_head": recording.chain_head},
    }


def encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def versions() -> dict[str, str]:
    return {"agent": AGENT_VERSION, "python": platform.python_version(), "os": platform.platform(terse=True)}


# --- the queue --------------------------------------------------------------------------------


class HeartbeatQueue:
    """Heartbeats waiting for the server, oldest first, durable across restarts."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            self.db = sqlite3.connect(private_database(path), timeout=30, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("CREATE TABLE IF NOT EXISTS queue (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                            " body BLOB NOT NULL, queued_us INTEGER NOT NULL)")
            self.db.execute("CREATE TABLE IF NOT EXISTS dropped (n INTEGER NOT NULL)")
            self.db.execute("CREATE TABLE IF NOT EXISTS audit_heads (seq INTEGER NOT NULL, head TEXT NOT NULL,"
                            " UNIQUE (seq, head))")
            self.db.execute("CREATE TABLE IF NOT EXISTS run_state (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        except sqlite3.Error as err:
            raise RecorderError(f"heartbeat queue {path} cannot be opened: {err}") from None

    def close(self) -> None:
        self.db.close()

    def push(self, body: bytes, queued_us: int) -> None:
        self.db.execute("INSERT INTO queue (body, queued_us) VALUES (?, ?)", (body, queued_us))
        excess = len(self) - QUEUE_CAP
        if excess > 0:
            self.db.execute("DELETE FROM queue WHERE seq IN (SELECT seq FROM queue ORDER BY seq LIMIT ?)", (excess,))
            self.db.execute("INSERT INTO dropped (n) VALUES (?)", (excess,))

    def oldest(self, limit: int = 100) -> list[tuple[int, bytes]]:
        rows = self.db.execute("SELECT seq, body FROM queue ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return [(int(seq), bytes(body)) for seq, body in rows]

    def remove(self, seq: int) -> None:
        self.db.execute("DELETE FROM queue WHERE seq = ?", (seq,))

    def __len__(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM queue").fetchone()[0])

    def dropped(self) -> int:
        return int(self.db.execute("SELECT COALESCE(SUM(n), 0) FROM dropped").fetchone()[0])

    def _get(self, name: str) -> Any:
        row = self.db.execute("SELECT value FROM run_state WHERE name = ?", (name,)).fetchone()
        return None if row is None else json.loads(row[0])

    def _set(self, name: str, value: object) -> None:
        self.db.execute("INSERT OR REPLACE INTO run_state (name, value) VALUES (?, ?)",
                        (name, json.dumps(value, sort_keys=True, separators=(",", ":"))))

    def run_state(self) -> RunState | None:
        """The run the station's last heartbeat left (None: none yet, or the state was lost)."""
        doc = self._get("run")
        try:
            return None if doc is None else RunState.from_json(doc)
        except (ValueError, AttributeError):
            log.warning("run state in the heartbeat queue is unreadable: a new run starts")
            return None

    def coverage_policy(self) -> tuple[Policy | None, int | None]:
        """The coverage policy and this station's enrolment time the server last gave (None: not yet)."""
        doc = self._get("policy")
        if not isinstance(doc, dict):
            return None, None
        try:
            policy = Policy.from_json(doc.get("policy") or {})
        except ValueError:
            return None, None
        enrolled = doc.get("enrolled_at_us")
        return policy, enrolled if isinstance(enrolled, int) else None

    def keep_policy(self, answer: object) -> None:
        """Keep the coverage policy and enrolment an answer (enrolment, heartbeat) carries, if it carries one."""
        if isinstance(answer, dict) and isinstance(answer.get("policy"), dict):
            try:
                Policy.from_json(answer["policy"])
            except ValueError as err:
                log.warning("the server's coverage policy is not understood: %s", err)
                return
            self._set("policy", {"policy": answer["policy"], "enrolled_at_us": answer.get("enrolled_at_us")})

    def push_heartbeat(self, doc: dict[str, Any], queued_us: int, default: Policy) -> bytes:
        """Add the station's run to the heartbeat `doc`, queue it and keep the new run state, in one transaction;
        the body queued. Until the server gave its policy, `default` judges."""
        policy, enrolled = self.coverage_policy()
        self.db.execute("BEGIN IMMEDIATE")
        try:
            state = self.run_state()
            run = next_run(state, doc, policy or default, enrolled)
            body = encode({**doc, "run": run.as_json()})
            self.push(body, queued_us)
            self._set("run", (state or RunState()).after(run, int(doc["sent_at_us"]), body).as_json())
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return body

    def keep_audit_head(self, head: object) -> None:
        """Keep a signed audit head the server gave (each distinct one once); anything else is ignored."""
        if isinstance(head, dict) and isinstance(head.get("seq"), int):
            self.db.execute("INSERT OR IGNORE INTO audit_heads (seq, head) VALUES (?, ?)",
                            (head["seq"], json.dumps(head, sort_keys=True, separators=(",", ":"))))

    def audit_heads(self) -> list[dict[str, Any]]:
        """The signed audit heads kept, oldest entry first."""
        rows = self.db.execute("SELECT head FROM audit_heads ORDER BY seq, rowid").fetchall()
        return [json.loads(r[0]) for r in rows]


# --- talking to the server ----------------------------------------------------------------------


@dataclass
class ServerLink:
    """One server, one station key; keeps the measured offset of the server's clock from ours."""

    server: str
    station_id: str
    key: Ed25519PrivateKey
    clock: Clock
    timeout_s: float = 10.0
    offset_us: int | None = None
    """Server time minus station time, as last measured (None before the first answer)."""

    def _note_offset(self, t0_us: int, t1_us: int, server_us: int | None, date_header: str | None) -> None:
        if server_us is not None:
            self.offset_us = server_us - (t0_us + t1_us) // 2
        elif date_header:
            try:
                server = email.utils.parsedate_to_datetime(date_header).timestamp()
            except (TypeError, ValueError):
                return
            if self.offset_us is None or abs(int(server * 1e6) - t1_us - self.offset_us) > 1_500_000:
                self.offset_us = int(server * 1e6) - (t0_us + t1_us) // 2

    def server_now_s(self) -> int:
        """The request timestamp: our clock corrected by the measured offset, so a wrong station clock
        is reported in the heartbeat (and fails coverage) instead of locking the station out."""
        return (self.clock.now_us() + (self.offset_us or 0)) // 1_000_000

    def post(self, path: str, body: bytes, *, signed: bool = True, retry_stale: bool = True) -> dict[str, Any]:
        headers = {"Content-Type": "application/json", "User-Agent": f"irms-agent/{AGENT_VERSION}"}
        if signed:
            headers.update(sign_request(self.key, self.station_id, "POST", path, body, self.server_now_s()))
        url = self.server.rstrip("/") + path
        req = urllib.request.Request(url, data=body, method="POST", headers=headers)
        t0 = self.clock.now_us()
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                data = resp.read()
                date = resp.headers.get("Date")
        except urllib.error.HTTPError as err:
            t1 = self.clock.now_us()
            detail = err.read().decode("utf-8", "replace")
            self._note_offset(t0, t1, None, err.headers.get("Date"))
            try:
                answer = json.loads(detail)
            except ValueError:
                answer = None
            # The server's own refusals carry its error root's fields (web.app.render_error).
            ours = isinstance(answer, dict) and answer.get("status") == err.code and "error" in answer
            message = str(answer.get("message", detail)) if isinstance(answer, dict) else (
                detail.strip()[:200] or str(err.reason))
            if err.code >= 500:
                raise ServerUnavailable(f"server {self.server} failed ({err.code}): {message}") from None
            if err.code in (401, 403) and not ours:
                # Only the IRMS server says a station is unknown or revoked; a proxy or a captive portal
                # saying 401/403 is the server being out of reach, and the station keeps its queue.
                raise ServerUnavailable(f"{self.server} answered {path} with {err.code}, not as the IRMS server "
                                        f"answers (a proxy in the way?): {message[:120]}") from None
            if signed and retry_stale and err.code == 401 and "stale" in message:
                return self.post(path, body, signed=signed, retry_stale=False)
            raise ServerRefused(f"server refused {path} ({err.code}): {message}", err.code) from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise ServerUnavailable(f"server {self.server} unreachable: {reason}") from None
        t1 = self.clock.now_us()
        try:
            answer = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise ServerUnavailable(f"server {self.server} answered {path} with something other than JSON") from None
        if not isinstance(answer, dict):
            raise ServerUnavailable(f"server {self.server} answered {path} with an unexpected document")
        server_us = answer.get("server_time_us")
        self._note_offset(t0, t1, server_us if isinstance(server_us, int) else None, date)
        return answer


@dataclass(frozen=True)
class FlushResult:
    sent: int
    pending: int
    dropped: int
    last_answer: dict[str, Any] | None


def flush(queue: HeartbeatQueue, link: ServerLink, limit: int = 1000) -> FlushResult:
    """Send queued heartbeats oldest first; stop at the first sign the server is away.

    A heartbeat the server refuses as malformed (400) is dropped so it cannot block the queue;
    a revoked or unknown station (401/403) raises: nothing will be accepted until an admin acts.
    """
    sent = dropped = 0
    last: dict[str, Any] | None = None
    for seq, body in queue.oldest(limit):
        try:
            last = link.post(HEARTBEAT_PATH, body)
        except ServerRefused as err:
            if err.status in (400, 409, 413, 422):
                log.warning("heartbeat %d dropped: %s", seq, err)
                queue.remove(seq)
                dropped += 1
                continue
            raise
        queue.remove(seq)
        queue.keep_audit_head(last.get("audit_head"))
        queue.keep_policy(last)
        sent += 1
    return FlushResult(sent, len(queue), dropped, last)


# --- the station's enrollment record -----------------------------------------------------------


@dataclass(frozen=True)
class Enrollment:
    station_id: str
    server: str
    room: str | None


def read_station_file(home: Path) -> dict[str, Any]:
    try:
        data = json.loads((home / "station.json").read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise ConfigError(f"station file {home / 'station.json'} is unreadable: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"station file {home / 'station.json'} is not a JSON object")
    return data


def write_station_file(home: Path, data: dict[str, Any]) -> None:
    write_durable(home / "station.json", json.dumps(data, indent=1, sort_keys=True).encode(), mode=0o600)


def load_station_key(home: Path) -> Ed25519PrivateKey:
    try:
        return K.load_station_private(home / "keys" / "station.key")
    except KeyError_ as err:
        raise ConfigError(f"{err} (run `irms-agent keygen` first)") from None


def enroll(home: Path, server: str, code: str, room: str | None, clock: Clock,
           hardware_profile: str = "") -> Enrollment:
    """Register this station's public key with the server using a one-time code."""
    data = read_station_file(home)
    if data.get("server") and data.get("enrolled"):
        raise ConfigError(f"this station is already enrolled with {data['server']}; "
                          "a replacement station needs its own IRMS_HOME")
    key = load_station_key(home)
    station_id = str(data.get("station_id", "")) or None
    body = {"format": "irms.enroll/1", "code": code, "public_key": K.b64(K.public_raw(key.public_key())),
            "station_id": station_id, "room": room, "hardware_profile": hardware_profile}
    link = ServerLink(server, station_id or "", key, clock)
    answer = link.post(ENROLL_PATH, encode(body), signed=False)
    sid = answer.get("station_id")
    if not isinstance(sid, str) or not sid:
        raise ServerUnavailable("the server's enrollment answer has no station id")
    data.update({"station_id": sid, "server": server.rstrip("/"), "enrolled": True})
    if room:
        data["room"] = room
    if isinstance(answer.get("heartbeat_interval_s"), int):
        data["heartbeat_interval_s"] = answer["heartbeat_interval_s"]
    write_station_file(home, data)
    queue = HeartbeatQueue(home / "heartbeats.db")
    try:
        queue.keep_policy(answer)  # so the first heartbeat's run is judged as the server judges it
    finally:
        queue.close()
    return Enrollment(sid, server, room)


def disk_free(path: Path) -> int | None:
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize
