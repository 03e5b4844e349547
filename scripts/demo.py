"""make demo: the whole system on one machine with embedded defaults.

SQLite, the file store and the synthetic kit: starts the web with a demo country (34
provincial-level units), enrolls a station for a demo room, records a short session,
verifies it, exports the two sealed copies, and prints the URL and the coverage figure.
The web, the simulated stations' heartbeats and the demo station's daemon keep running afterwards, so
the figure stays what it is; `make demo-stop` stops them (pid files in .demo/).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = Path(os.environ.get("IRMS_DEMO_DIR", str(ROOT / ".demo"))).resolve()
BIN = Path(sys.executable).parent
SECONDS = os.environ.get("IRMS_DEMO_SECONDS", "20")
PORT = int(os.environ.get("IRMS_DEMO_PORT", "8080"))
SITE, ROOM = "HNI-DEMO", "P01"
ADMIN_PASSWORD = "irms-demo-admin"
PROSECUTOR_PASSWORD = "irms-demo-prosecutor"
ENV = {**os.environ, "IRMS_HOME": str(DEMO / "station"),
       "IRMS_WEB_DATABASE_URL": f"sqlite:///{DEMO / 'web' / 'web.db'}",
       "IRMS_WEB_STORE_URL": str(DEMO / "store"), "IRMS_SERVER_URL": f"http://127.0.0.1:{PORT}",
       "IRMS_HEARTBEAT_INTERVAL_S": "10"}
# Demo only: the custodian passphrase, handed over on stdin as an officer would type it (never in the environment).
CUSTODIAN_PASSPHRASE = "demo custodian passphrase"
# The web has its own instance folder (its database, cookie secret, audit key); the station's home is the station's.
WEB_ENV = {**ENV, "IRMS_HOME": str(DEMO / "web")}


def env_of(program: str) -> dict[str, str]:
    return WEB_ENV if program == "irms-web" else ENV


def run(*argv: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=900,
                          env=env_of(argv[0]), input=stdin)
    if check and proc.returncode != 0:
        sys.exit(f"demo: {' '.join(argv[:3])} failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")
    return proc


BACKGROUND = {"web.pid": "irms-web", "simulate.pid": "irms-web", "station.pid": "irms-agent"}
"""What the demo leaves running, by pid file: the web, the demo country's simulated stations (so the figure
does not collapse two intervals after the demo ends) and the demo station's daemon (heartbeats, self-test)."""


def stop_previous() -> None:
    for name, program in BACKGROUND.items():
        pidfile = DEMO / name
        if not pidfile.exists():
            continue
        try:
            pid = int(pidfile.read_text())
            if program.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGTERM)
                for _ in range(50):
                    if not Path(f"/proc/{pid}").exists():
                        break
                    time.sleep(0.1)
        except (ValueError, OSError):
            pass


def background(pidfile: str, *argv: str) -> subprocess.Popen[bytes]:
    """Start a process that outlives the demo script; its pid goes to DEMO/pidfile, its output to a log."""
    log = (DEMO / pidfile.replace(".pid", ".log")).open("wb")
    proc = subprocess.Popen([str(BIN / argv[0]), *argv[1:]], env=env_of(argv[0]), stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    (DEMO / pidfile).write_text(str(proc.pid))
    return proc


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    sys.exit(f"demo: the web did not answer at {url}; see {DEMO / 'web.log'}")


def main() -> int:
    stop_previous()
    shutil.rmtree(DEMO, ignore_errors=True)
    os.umask(0o077)  # the demo's keys, databases and homes: owner-only, like a real installation's
    (DEMO / "custodian").mkdir(parents=True)
    (DEMO / "web").mkdir()
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", PORT)) == 0:
            sys.exit(f"demo: port {PORT} is taken; set IRMS_DEMO_PORT")

    print("== web: database, demo country, admin user")
    run("irms-web", "db", "upgrade")
    run("irms-web", "demo-country", "--keys", str(DEMO / "web-keys"), "--users-password-stdin",
        stdin=PROSECUTOR_PASSWORD + "\n")
    csv = DEMO / "demo-site.csv"
    csv.write_text("province_code,province_name,site_code,site_name,facility_type,room_code,room_name\n"
                   f"HNI,Thành phố Hà Nội,{SITE},Trại tạm giam trình diễn,detention_centre,{ROOM},Phòng hỏi cung 01\n",
                   encoding="utf-8")
    run("irms-web", "import-sites", str(csv))
    run("irms-web", "user", "add", "admin", "--role", "admin", "--password-stdin", stdin=ADMIN_PASSWORD + "\n")
    run("irms-web", "user", "add", "kiemsat", "--role", "prosecutor", "--password-stdin",
        stdin=PROSECUTOR_PASSWORD + "\n")
    run("irms-web", "unit", "place", SITE, "VKS-HNI")  # the demo site is in Hà Nội's unit (web/scope.py)
    run("irms-web", "unit", "assign", "kiemsat", "VKS-HNI")
    web = background("web.pid", "irms-web", "serve", "--host", "127.0.0.1", "--port", str(PORT))
    url = f"http://127.0.0.1:{PORT}/"
    wait_http(url + "login")
    run("irms-web", "simulate", "--server", url.rstrip("/"), "--keys", str(DEMO / "web-keys"), "--rounds", "1")
    background("simulate.pid", "irms-web", "simulate", "--server", url.rstrip("/"), "--keys", str(DEMO / "web-keys"))

    print("== station: keys, enrollment")
    run("irms-verify", "custodian-keygen", "--private", str(DEMO / "custodian" / "custodian.key"),
        "--public", str(DEMO / "custodian" / "custodian.pub"), "--passphrase-stdin", stdin=CUSTODIAN_PASSPHRASE + "\n")
    run("irms-web", "custodian", "import", str(DEMO / "custodian" / "custodian.key"), "--passphrase-stdin",
        stdin=f"{CUSTODIAN_PASSPHRASE}\n{CUSTODIAN_PASSPHRASE}\n")
    run("irms-web", "custody", "unlock", "--passphrase-stdin", stdin=CUSTODIAN_PASSPHRASE + "\n")
    run("irms-agent", "keygen", "--station-id", "st-demo-p01", "--custodian-public",
        str(DEMO / "custodian" / "custodian.pub"))
    code_out = run("irms-web", "station", "code", SITE, "--room", ROOM).stdout
    code = code_out.split()[-1]
    run("irms-agent", "enroll", "--server", url.rstrip("/"), "--code", code)
    run("irms-agent", "run", "--once", "--kit", "synthetic")

    print(f"== recording {SECONDS} s on the synthetic kit")
    store = DEMO / "store"
    rec = run("irms-agent", "record", "--kit", "synthetic", "--seconds", SECONDS, "--store", str(store),
              "--site", SITE, "--room", ROOM, "--case", "125/2026/HS", "--suspect", "Nguyễn Văn A",
              "--interrogator", "Trần Thị B", "--legal-basis", "Điều 183 BLTTHS 2015", "--json")
    summary = json.loads(rec.stdout)
    sid = summary["session_id"]
    run("irms-agent", "run", "--once", "--kit", "synthetic")
    key = str(DEMO / "custodian" / "custodian.key")
    report = json.loads(run("irms-verify", "session", sid, "--store", str(store), "--custodian-key", key,
                            "--prosecutor", "kiemsat", "--passphrase-stdin", "--json",
                            stdin=CUSTODIAN_PASSPHRASE + "\n").stdout)
    run("irms-verify", "export", sid, "--store", str(store), "--out", str(DEMO / "export"))
    run("irms-verify", "annex", sid, "--store", str(store), "--out", str(DEMO / "annex.pdf"))
    sock = DEMO / "web" / "custody" / "holder.sock"  # the server's custody holder: audited there
    run("irms-verify", "rebuild", sid, "--store", str(store), "--custodian-socket", str(sock), "--prosecutor",
        "kiemsat", "--out", str(DEMO / "recording.mp4"))
    run("irms-web", "sessions", "sync", "--verify")
    background("station.pid", "irms-agent", "run", "--kit", "synthetic")
    coverage = json.loads(run("irms-web", "coverage", "--json").stdout)

    print()
    print(f"session    {sid}")
    print(f"store      {store / summary['prefix']}")
    print(f"verified   {report['status']}: {report['segments']} segments, {report['duration_s']} s, "
          f"{len(report['findings'])} findings, media decoded: {report['media_checked']}")
    print(f"exports    {DEMO / 'export' / 'case-file'}  {DEMO / 'export' / 'procuracy-file'}")
    print(f"annex      {DEMO / 'annex.pdf'}")
    print(f"playable   {DEMO / 'recording.mp4'}")
    print(f"web        {url}  (admin / {ADMIN_PASSWORD}; pid {web.pid}; the simulated stations and the demo "
          "station keep beating; `make demo-stop` stops all three)")
    print(f"replay     {url}sessions  (prosecutor kiemsat / {PROSECUTOR_PASSWORD}, Hà Nội's unit)")
    print(f"scoped     ksv.hni, kiemtra.hni (auditor), ksv.hcm (sees nothing of Hà Nội), ksv.toanquoc; "
          f"password {PROSECUTOR_PASSWORD}")
    print(f"coverage   {coverage_line(coverage)}")
    return 0 if report["ok"] else 1


def coverage_line(c: dict[str, object]) -> str:
    def pct(x: object) -> str:
        return f"{float(x) * 100:.1f}%" if isinstance(x, int | float) else "n/a"

    return (f"{pct(c['facility_ratio'])} of facilities equipped ({c['facilities_equipped']}/{c['facilities_total']}), "
            f"{pct(c['room_ratio'])} of rooms working ({c['rooms_working']}/{c['rooms_total']}), "
            f"{len(c['failing_rooms'])} failing rooms with reasons, {len(c['silent_stations'])} silent stations")


if __name__ == "__main__":
    sys.exit(main())
