"""make demo: the whole system on one machine with embedded defaults.

SQLite, the file store and the synthetic kit: starts the web with a demo country (34
provincial-level units), enrolls a station for a demo room, records a short session,
verifies it, exports the two sealed copies, and prints the URL and the coverage figure.
The web keeps running afterwards; `make demo-stop` (or kill the pid it prints) stops it.
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
DEMO = ROOT / ".demo"
BIN = Path(sys.executable).parent
SECONDS = os.environ.get("IRMS_DEMO_SECONDS", "20")
PORT = int(os.environ.get("IRMS_DEMO_PORT", "8080"))
SITE, ROOM = "HNI-DEMO", "P01"
ADMIN_PASSWORD = "irms-demo-admin"
PROSECUTOR_PASSWORD = "irms-demo-prosecutor"
ENV = {**os.environ, "IRMS_HOME": str(DEMO / "station"), "IRMS_WEB_DATABASE_URL": f"sqlite:///{DEMO / 'web.db'}",
       "IRMS_WEB_STORE_URL": str(DEMO / "store"), "IRMS_SERVER_URL": f"http://127.0.0.1:{PORT}",
       "IRMS_HEARTBEAT_INTERVAL_S": "10",
       # Demo only: the passphrase that encrypts the custodian key at rest on the server.
       "IRMS_CUSTODIAN_PASSPHRASE": os.environ.get("IRMS_CUSTODIAN_PASSPHRASE", "demo custodian passphrase")}


def run(*argv: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=900,
                          env=ENV, input=stdin)
    if check and proc.returncode != 0:
        sys.exit(f"demo: {' '.join(argv[:3])} failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")
    return proc


def stop_previous() -> None:
    pidfile = DEMO / "web.pid"
    if pidfile.exists():
        try:
            pid = int(pidfile.read_text())
            if b"irms-web" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGTERM)
                for _ in range(50):
                    if not Path(f"/proc/{pid}").exists():
                        break
                    time.sleep(0.1)
        except (ValueError, OSError):
            pass


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
    (DEMO / "custodian").mkdir(parents=True)
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
    log = (DEMO / "web.log").open("wb")
    web = subprocess.Popen([str(BIN / "irms-web"), "serve", "--host", "127.0.0.1", "--port", str(PORT)], env=ENV,
                           stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    (DEMO / "web.pid").write_text(str(web.pid))
    url = f"http://127.0.0.1:{PORT}/"
    wait_http(url + "login")
    run("irms-web", "simulate", "--server", url.rstrip("/"), "--keys", str(DEMO / "web-keys"), "--rounds", "1")

    print("== station: keys, enrollment")
    run("irms-verify", "custodian-keygen", "--private", str(DEMO / "custodian" / "custodian.key"),
        "--public", str(DEMO / "custodian" / "custodian.pub"))
    run("irms-web", "custodian", "import", str(DEMO / "custodian" / "custodian.key"))
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
                            "--json").stdout)
    run("irms-verify", "export", sid, "--store", str(store), "--out", str(DEMO / "export"))
    run("irms-verify", "annex", sid, "--store", str(store), "--out", str(DEMO / "annex.pdf"))
    run("irms-verify", "rebuild", sid, "--store", str(store), "--custodian-key", key, "--out",
        str(DEMO / "recording.mp4"))
    run("irms-web", "sessions", "sync", "--verify")
    coverage = json.loads(run("irms-web", "coverage", "--json").stdout)

    print()
    print(f"session    {sid}")
    print(f"store      {store / summary['prefix']}")
    print(f"verified   {report['status']}: {report['segments']} segments, {report['duration_s']} s, "
          f"{len(report['findings'])} findings, media decoded: {report['media_checked']}")
    print(f"exports    {DEMO / 'export' / 'case-file'}  {DEMO / 'export' / 'procuracy-file'}")
    print(f"annex      {DEMO / 'annex.pdf'}")
    print(f"playable   {DEMO / 'recording.mp4'}")
    print(f"web        {url}  (admin / {ADMIN_PASSWORD}; pid {web.pid}, stop with `make demo-stop`)")
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
