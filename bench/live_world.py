"""The world the live benchmarks run in: the production server, an enrolled station, the RTSP camera peer.

Server side as an operator installs it (as in tests/e2e/test_whole_session.py): a fresh SQLite database
migrated, a site and room, prosecutors assigned to the site's unit, the custodian key made on the server and
unlocked over the custody socket, `irms-web serve` (gunicorn, uvicorn workers) on a free loopback port and a
file store. Station side: a fresh IRMS_HOME enrolled with `irms-agent enroll`, the custodian public key
installed, and `irms-agent record` from the camera peer (tests/plugins/devices.py, 640x360 at 25 fps) with
the kit `ip-camera-rtsp` (pass-through) at the segment length asked for. The station sends its session
events to the server, so the server knows the session while it records.

Every process started here is ended by its pid (tests/plugins/processes.py) when the world closes.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.plugins.devices import CameraPeer  # noqa: E402
from tests.plugins.processes import Proc, Processes, free_port, stop_process, wait_http  # noqa: E402

BIN = Path(sys.executable).parent
SITE, ROOM = "HN-CA-01", "P101"
PASSWORD = "mật-khẩu-bench-đủ-dài"
PASSPHRASE = "mật khẩu người giữ khoá bench"
WIDTH, HEIGHT, FPS = 640, 360, 25
CODE_BITS = 32
CODE_ROWS = max(8, (HEIGHT // 45) & ~1)  # as scripts/camera-peer draws it


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IRMS_")}
    env.update(extra)
    return env


@dataclass
class Recording:
    """One `irms-agent record` from the camera peer, its session id once it is in the store."""

    proc: Proc
    session_id: str
    segment_s: int

    def log_times(self, what: str) -> dict[int | str, int]:
        """Times (µs) the agent logged (with --debug): "captured" and "sealed" by segment index, "uploaded" by
        object name."""
        pattern = r"uploaded (\S+) at (\d+)" if what == "uploaded" else rf"segment (\d+) {what} at (\d+)"
        out: dict[int | str, int] = {}
        for m in re.finditer(pattern, self.proc.log.read_text(errors="replace")):
            out[m.group(1) if what == "uploaded" else int(m.group(1))] = int(m.group(2))
        return out


@dataclass
class LiveWorld:
    tmp: Path
    server_url: str
    store: Path
    server_env: dict[str, str]
    station_env: dict[str, str]
    procs: Processes
    camera: CameraPeer
    users: list[str] = field(default_factory=list)

    # --- the station ------------------------------------------------------------------------------------

    def kit(self, segment_s: int) -> Path:
        """The ip-camera-rtsp kit at the camera peer's size, cut into `segment_s`-second segments."""
        text = (ROOT / "hardware_profiles" / "ip-camera-rtsp.toml").read_text()
        text = text.replace("width = 1280", f"width = {WIDTH}").replace("height = 720", f"height = {HEIGHT}")
        path = self.tmp / f"kit-{segment_s}s.toml"
        path.write_text(text + f"\n[segment]\nseconds = {segment_s}\n")
        return path

    def record(self, segment_s: int, seconds: float, name: str) -> Recording:
        """Start recording; return once the session's locator is in the store (its id known)."""
        before = set((self.store / "sessions").glob("*.json")) if (self.store / "sessions").exists() else set()
        proc = self.procs.spawn(name, [str(BIN / "irms-agent"), "--debug", "record", "--kit", str(self.kit(segment_s)),
                                       "--camera", f"wide={self.camera.url}", "--seconds", str(seconds),
                                       "--store", str(self.store), "--site", SITE, "--room", ROOM,
                                       "--case", "15/2026/HS", "--suspect", "Bench", "--interrogator", "Bench",
                                       "--legal-basis", "Bench", "--json"], self.station_env, self.tmp)
        deadline = time.monotonic() + 60
        while True:
            found = set((self.store / "sessions").glob("*.json")) - before if (self.store / "sessions").exists() \
                else set()
            if found:
                return Recording(proc, found.pop().stem, segment_s)
            if proc.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start a session:\n{proc.tail()}")
            time.sleep(0.1)

    def end(self, rec: Recording) -> None:
        """End the recording as an operator does (SIGTERM: the session is closed, the rest uploaded)."""
        if rec.proc.popen.poll() is None:
            os.kill(rec.proc.popen.pid, signal.SIGTERM)
        try:
            rec.proc.popen.wait(120)
        except subprocess.TimeoutExpired:
            stop_process(rec.proc.popen, 10)
            raise RuntimeError(f"the recording did not end in 120 s:\n{rec.proc.tail()}") from None

    def records(self, session_id: str) -> dict[int, dict[str, object]]:
        """The session's segment records as the store holds them, by index."""
        out: dict[int, dict[str, object]] = {}
        for path in self.store.glob(f"*/*/{session_id}/seg/*.json"):
            rec = json.loads(path.read_bytes())
            out[int(rec["index"])] = rec
        return out

    def wait_segments(self, session_id: str, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.records(session_id)) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"session {session_id}: fewer than {count} segments in the store after {timeout} s")
            time.sleep(0.2)

    # --- the server ---------------------------------------------------------------------------------------

    def web(self, *args: str, stdin: str | None = None) -> str:
        proc = subprocess.run([str(BIN / "irms-web"), *args], env=self.server_env, cwd=self.tmp, input=stdin,
                              capture_output=True, text=True, timeout=120, check=False,
                              stdin=None if stdin is not None else subprocess.DEVNULL)
        if proc.returncode != 0:
            raise RuntimeError(f"irms-web {' '.join(args)} exited {proc.returncode}: {proc.stdout}{proc.stderr}")
        return proc.stdout

    def close(self) -> None:
        try:
            self.procs.stop_all()
        finally:
            self.camera.terminate()


def build(tmp: Path, viewers: int = 1, workers: int = 2) -> LiveWorld:
    """The server with `viewers` prosecutors (ksv01...), an enrolled station, the camera peer running."""
    from web.db import Database, upgrade
    from web.sites import ensure_province, ensure_room, ensure_site
    from web.units import add_unit, assign_user, place_in_unit
    from web.users import add_user

    procs = Processes(tmp)
    store = tmp / "store"
    server_home, station_home = tmp / "server", tmp / "station"
    server_home.mkdir()
    station_home.mkdir()
    database_url = f"sqlite:///{server_home / 'web.db'}"
    config = server_home / "web.toml"
    config.write_text(f"database_url = {json.dumps(database_url)}\nstore_url = {json.dumps(str(store))}\n")
    server_env = clean_env(IRMS_HOME=str(server_home), IRMS_WEB_CONFIG=str(config), IRMS_WEB_TOTP_REQUIRED_ROLES="")
    station_env = clean_env(IRMS_HOME=str(station_home), IRMS_TRUST=str(station_home / "trust"))
    camera = CameraPeer(tmp / "camera.log", WIDTH, HEIGHT, FPS)
    world = LiveWorld(tmp, "", store, server_env, station_env, procs, camera)
    try:
        camera.launch()
        db = Database(database_url)
        upgrade(db)
        now = time.time_ns() // 1000
        with db.session() as s:
            prov = ensure_province(s, "HNI", "Thành phố Hà Nội")
            site, _ = ensure_site(s, prov, SITE, "Cơ quan CSĐT Công an Hà Nội", "investigation_office")
            ensure_room(s, site, ROOM, "Phòng hỏi cung 101")
            add_unit(s, code="VN", name="Toàn quốc", kind="national", parent=None, actor="bench", now_us=now)
            add_unit(s, code="VKS-HNI", name="VKS Hà Nội", kind="province", parent="VN", actor="bench", now_us=now)
            s.flush()
            place_in_unit(s, site=SITE, room=None, unit="VKS-HNI", actor="bench", now_us=now)
            for n in range(1, viewers + 1):
                name = f"ksv{n:02d}"
                add_user(s, username=name, display_name=f"Kiểm sát viên {n:02d}", role="prosecutor",
                         password=PASSWORD, actor="bench", now_us=now)
                assign_user(s, username=name, unit="VKS-HNI", personal_data=False, actor="bench", now_us=now)
                world.users.append(name)
        db.dispose()
        world.web("custodian", "new", "--passphrase-stdin", stdin=PASSPHRASE + "\n")
        port = free_port()
        proc = procs.spawn("irms-web-serve", [str(BIN / "irms-web"), "serve", "--host", "127.0.0.1", "--port",
                                              str(port), "--workers", str(workers)], server_env, tmp)
        world.server_url = f"http://127.0.0.1:{port}"
        wait_http(world.server_url + "/login", proc)
        world.web("custody", "unlock", "--passphrase-stdin", stdin=PASSPHRASE + "\n")
        world.web("custodian", "public", "--out", str(tmp / "custodian.pub"))
        code = world.web("station", "code", SITE, "--room", ROOM).strip()
        for args in (["enroll", "--server", world.server_url, "--code", code, "--kit", "ip-camera-rtsp",
                      "--screen-pin-stdin"], ["custodian", str(tmp / "custodian.pub")]):
            out = subprocess.run([str(BIN / "irms-agent"), *args], env=station_env, cwd=tmp, input="2027-0115\n",
                                 capture_output=True, text=True, timeout=120, check=False)
            if out.returncode != 0:
                raise RuntimeError(f"irms-agent {args[0]} exited {out.returncode}: {out.stdout}{out.stderr}")
    except BaseException:
        world.close()
        raise
    return world


class Client:
    """One logged-in prosecutor over one keep-alive HTTP connection (as a browser holds one)."""

    def __init__(self, base: str, username: str) -> None:
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        self.cookies: dict[str, str] = {}
        page = self.get("/login")[1].decode()
        m = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page) or re.search(
            r'value="([^"]+)"[^>]*name="csrf_token"', page)
        if not m:
            raise RuntimeError("no CSRF token on /login")
        body = urllib.parse.urlencode({"username": username, "password": PASSWORD, "csrf_token": m.group(1)})
        status, _ = self.request("POST", "/login", body.encode(), {"Content-Type": "application/x-www-form-urlencoded"})
        if status != 302:
            raise RuntimeError(f"login of {username} answered {status}")

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        hdrs = {**(headers or {})}
        if self.cookies:
            hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for attempt in (0, 1):
            try:
                self.conn.request(method, path, body=body, headers=hdrs)
                resp = self.conn.getresponse()
                data = resp.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()  # the server closed an idle keep-alive connection: open another
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
                if attempt:
                    raise
        for value in resp.headers.get_all("Set-Cookie") or []:
            name, _, rest = value.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]
        return resp.status, data

    def get(self, path: str) -> tuple[int, bytes]:
        return self.request("GET", path)

    def close(self) -> None:
        self.conn.close()
