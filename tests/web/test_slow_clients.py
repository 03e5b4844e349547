"""A hostile client: twenty connections that send `Content-Length: 1000` and one byte.

Against the bare server (`irms-web serve`: gunicorn, uvicorn workers) they are answered 408 after
body_timeout_s and no page or heartbeat waits on them meanwhile; more bodies at once than
max_body_readers are refused 503. Behind the shipped nginx configuration (deploy/nginx/irms.conf,
TLS, the real nginx) they never reach the server, and a page and a heartbeat still answer within
seconds; the client's own X-Forwarded-For is replaced by nginx.
"""

from __future__ import annotations

import datetime as dt
import http.client
import ipaddress
import json
import os
import re
import shutil
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID
from sqlalchemy import text

from evidence import keys as K
from tests.plugins.processes import Processes, free_port, wait_http
from tests.plugins.recording import BIN
from tests.web.conftest import PASSWORD, SimStation
from web.db import Database
from web.models import Base, Station
from web.sites import ensure_province, ensure_room, ensure_site
from web.users import add_user

pytestmark = pytest.mark.postgres
REPO = Path(__file__).resolve().parents[2]
SLOW = 20
BODY_TIMEOUT_S = 4


@dataclass
class Node:
    port: int
    db: Database
    station: SimStation


def start_node(procs: Processes, pg_url: str, tmp_path: Path, name: str, workers: int = 2,
               **env: str) -> int:
    port = free_port()
    proc = procs.spawn(name, [str(BIN / "irms-web"), "--database", pg_url, "serve", "--host", "127.0.0.1",
                              "--port", str(port), "--workers", str(workers)],
                       {**os.environ, "IRMS_HOME": str(tmp_path), "IRMS_WEB_SECRET_KEY": "slow-test",
                        "IRMS_WEB_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S), **env}, tmp_path)
    wait_http(f"http://127.0.0.1:{port}/login", proc)
    return port


@pytest.fixture
def world(pg_url: str) -> Iterator[tuple[Database, SimStation]]:
    db = Database(pg_url)
    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(t.name for t in Base.metadata.sorted_tables)} "
                          "RESTART IDENTITY CASCADE"))
    key = Ed25519PrivateKey.generate()
    with db.session() as s:
        site, _ = ensure_site(s, ensure_province(s, "HNI", "Hà Nội"), "HN-TTG", "Trại tạm giam", "detention_centre")
        room, _ = ensure_room(s, site, "P01", "Phòng 1")
        s.add(Station(station_id="st-slow-1", public_key=K.b64(K.public_raw(key.public_key())), status="enrolled",
                      hardware_profile="synthetic", room_id=room.id, enrolled_at_us=time.time_ns() // 1000))
        add_user(s, username="lan", display_name="Lan", role="auditor", password=PASSWORD, actor="test",
                 now_us=time.time_ns() // 1000)
    try:
        yield db, SimStation("st-slow-1", key)
    finally:
        db.dispose()


def slow_bodies(port: int, n: int, path: str = "/login", tls: ssl.SSLContext | None = None) -> list[socket.socket]:
    """n connections that promise 1000 bytes of body and send one."""
    out = []
    for _ in range(n):
        sock: socket.socket = socket.create_connection(("127.0.0.1", port), timeout=30)
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname="127.0.0.1")
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded"
                     f"\r\nContent-Length: 1000\r\n\r\na".encode())
        out.append(sock)
    return out


def timed(fn: object) -> tuple[float, object]:
    t = time.monotonic()
    result = fn()  # type: ignore[operator]
    return time.monotonic() - t, result


def get_page(port: int, tls: ssl.SSLContext | None = None, path: str = "/login") -> int:
    conn = (http.client.HTTPSConnection("127.0.0.1", port, timeout=30, context=tls) if tls
            else http.client.HTTPConnection("127.0.0.1", port, timeout=30))
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def heartbeat(port: int, st: SimStation, tls: ssl.SSLContext | None = None) -> int:
    now = time.time_ns() // 1000
    raw = json.dumps(st.body(now)).encode()
    conn = (http.client.HTTPSConnection("127.0.0.1", port, timeout=30, context=tls) if tls
            else http.client.HTTPConnection("127.0.0.1", port, timeout=30))
    try:
        conn.request("POST", "/api/v1/heartbeat", body=raw, headers={**st.headers(raw, now),
                                                                     "Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def failed_login(port: int, tls: ssl.SSLContext | None, forwarded_for: str) -> None:
    """A wrong password for lan, with the client's own X-Forwarded-For header."""
    conn = (http.client.HTTPSConnection("127.0.0.1", port, timeout=30, context=tls) if tls
            else http.client.HTTPConnection("127.0.0.1", port, timeout=30))
    try:
        conn.request("GET", "/login")
        resp = conn.getresponse()
        page = resp.read().decode()
        cookie = resp.getheader("Set-Cookie", "").split(";")[0]
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page) or re.search(
            r'value="([^"]+)"[^>]*name="csrf_token"', page)
        assert token and cookie
        conn.request("POST", "/login", body=f"username=lan&password=wrong-wrong-wrong&csrf_token={token.group(1)}",
                     headers={"X-Forwarded-For": forwarded_for, "Cookie": cookie,
                              "Content-Type": "application/x-www-form-urlencoded"})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 401, resp.status
    finally:
        conn.close()


def failed_logins(db: Database) -> list[str]:
    with db.session() as s:
        return list(s.execute(text("SELECT target FROM audit_log WHERE action = 'login.failed' ORDER BY seq"))
                    .scalars())


def answer_of(sock: socket.socket) -> bytes:
    sock.settimeout(BODY_TIMEOUT_S + 20)
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except (TimeoutError, ConnectionResetError, ssl.SSLError):
        pass
    return data


def test_bare_server_times_out_slow_bodies_and_keeps_answering(world: tuple[Database, SimStation],
                                                               pg_url: str, tmp_path: Path) -> None:
    db, st = world
    procs = Processes(tmp_path)
    try:
        port = start_node(procs, pg_url, tmp_path, "irms-web-bare")
        socks = slow_bodies(port, SLOW) + slow_bodies(port, 4, "/api/v1/heartbeat")
        t0 = time.monotonic()
        took, status = timed(lambda: get_page(port))
        assert status == 200 and took < 3, took
        took, status = timed(lambda: heartbeat(port, st))
        assert status == 201 and took < 3, took
        answers = [answer_of(s) for s in socks]
        waited = time.monotonic() - t0
        for a in answers:
            assert a.startswith(b"HTTP/1.1 408"), a[:200]
            assert b"did not arrive within 4 s" in a
        assert BODY_TIMEOUT_S - 1 < waited < BODY_TIMEOUT_S + 15, waited
        for s in socks:
            s.close()
        # a local client cannot pick its address with X-Forwarded-For (no trusted_proxies)
        failed_login(port, None, "203.0.113.9")
    finally:
        procs.stop_all()
    assert failed_logins(db) == ["127.0.0.1"]


def test_bare_server_limits_bodies_read_at_once(world: tuple[Database, SimStation], pg_url: str,
                                                tmp_path: Path) -> None:
    db, st = world
    procs = Processes(tmp_path)
    try:
        port = start_node(procs, pg_url, tmp_path, "irms-web-limited", workers=1, IRMS_WEB_MAX_BODY_READERS="5")
        socks = slow_bodies(port, 5)
        time.sleep(0.5)
        [extra] = slow_bodies(port, 1)
        took, answer = timed(lambda: answer_of(extra))
        assert answer.startswith(b"HTTP/1.1 503") and b"too many request bodies" in answer, answer[:200]
        assert took < 3, took
        assert get_page(port) == 200  # requests without a body are not held back
        for s in socks:
            s.close()
        extra.close()
    finally:
        procs.stop_all()


# --- behind the shipped nginx configuration ----------------------------------------------------------------


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = generate_private_key(SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "irms-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    crt, pem = folder / "server.crt", folder / "server.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    return crt, pem


def nginx_config(folder: Path, upstream_ports: list[int], https_port: int, http_port: int) -> Path:
    """deploy/nginx/irms.conf with its IRMS-... lines set for this test, inside a minimal nginx.conf."""
    crt, key = self_signed(folder)
    site = (REPO / "deploy" / "nginx" / "irms.conf").read_text()
    marked = {
        "IRMS-NODE": "".join(f"server 127.0.0.1:{p} max_fails=3 fail_timeout=10s;\n" for p in upstream_ports),
        "IRMS-LISTEN-HTTP": f"listen 127.0.0.1:{http_port};",
        "IRMS-LISTEN-HTTPS": f"listen 127.0.0.1:{https_port} ssl;",
        "IRMS-CERT": f"ssl_certificate {crt};",
        "IRMS-KEY": f"ssl_certificate_key {key};",
    }
    for marker, line in marked.items():
        site, n = re.subn(rf"^[^\n#]*# {marker}$", line, site, flags=re.M)
        assert n == 1, f"deploy/nginx/irms.conf has no line marked {marker}"
    (folder / "irms.conf").write_text(site)
    for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi", "logs"):
        (folder / d).mkdir(exist_ok=True)
    conf = folder / "nginx.conf"
    conf.write_text(f"""{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
error_log {folder}/logs/error.log warn;
pid {folder}/nginx.pid;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    include {folder}/irms.conf;
}}
""")
    return conf


def test_behind_nginx_the_slow_body_attack_never_reaches_the_server(world: tuple[Database, SimStation],
                                                                    pg_url: str, tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(nginx).exists(), "nginx is not installed (scripts/install-system)"
    db, st = world
    procs = Processes(tmp_path)
    folder = tmp_path / "nginx"
    folder.mkdir()
    try:
        # the server with a long body timeout: only nginx may save it here
        node = start_node(procs, pg_url, tmp_path, "irms-web-node", IRMS_WEB_BODY_TIMEOUT_S="600",
                          IRMS_WEB_TRUSTED_PROXIES="127.0.0.1", IRMS_WEB_COOKIE_SECURE="true")
        https_port, http_port = free_port(), free_port()
        conf = nginx_config(folder, [node], https_port, http_port)
        proxy = procs.spawn("nginx", [nginx, "-p", str(folder), "-c", str(conf), "-g", "daemon off;"], dict(os.environ),
                            folder)
        tls = ssl.create_default_context(cafile=str(folder / "server.crt"))
        deadline = time.monotonic() + 30
        while True:
            try:
                assert get_page(https_port, tls) == 200
                break
            except OSError:
                assert proxy.popen.poll() is None, proxy.tail() + (folder / "logs" / "error.log").read_text()
                assert time.monotonic() < deadline, "nginx did not answer"
                time.sleep(0.2)
        socks = slow_bodies(https_port, SLOW, tls=tls) + slow_bodies(https_port, 4, "/api/v1/heartbeat", tls=tls)
        time.sleep(1)
        took, status = timed(lambda: get_page(https_port, tls))
        assert status == 200 and took < 3, took
        took, status = timed(lambda: heartbeat(https_port, st, tls))
        assert status == 201 and took < 3, took
        assert get_page(https_port, tls, "/metrics") == 404  # scraped on the nodes, not through the front
        # plain HTTP is sent to HTTPS
        conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=10)
        conn.request("GET", "/login")
        assert conn.getresponse().status == 301
        conn.close()
        # the client's own X-Forwarded-For is replaced: a failed login counts against the address nginx saw
        failed_login(https_port, tls, "203.0.113.9")
        for s in socks:
            s.close()
        assert proxy.popen.poll() is None
    finally:
        procs.stop_all()
    assert failed_logins(db) == ["127.0.0.1"]
