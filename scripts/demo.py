"""make demo: a whole station on embedded defaults (file store, synthetic kit).

Makes a custodian key pair and a station key, records a short session, verifies
it, exports the two sealed copies and prints where everything is.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / ".demo"
BIN = Path(sys.executable).parent
SECONDS = os.environ.get("IRMS_DEMO_SECONDS", "20")


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "IRMS_HOME": str(DEMO / "station")})
    if check and proc.returncode != 0:
        sys.exit(f"demo: {' '.join(argv[:2])} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def main() -> int:
    shutil.rmtree(DEMO, ignore_errors=True)
    (DEMO / "custodian").mkdir(parents=True)
    store = DEMO / "store"
    run("irms-verify", "custodian-keygen", "--private", str(DEMO / "custodian" / "custodian.key"),
        "--public", str(DEMO / "custodian" / "custodian.pub"))
    print(run("irms-agent", "keygen", "--station-id", "st-demo-p101",
              "--custodian-public", str(DEMO / "custodian" / "custodian.pub")).stdout.strip())
    print(f"recording {SECONDS} s on the synthetic kit ...")
    rec = run("irms-agent", "record", "--kit", "synthetic", "--seconds", SECONDS, "--store", str(store),
              "--site", "HN-CA-01", "--room", "P101", "--case", "125/2026/HS", "--suspect", "Nguyễn Văn A",
              "--interrogator", "Trần Thị B", "--legal-basis", "Điều 183 BLTTHS 2015", "--json")
    summary = json.loads(rec.stdout)
    sid = summary["session_id"]
    ver = run("irms-verify", "session", sid, "--store", str(store),
              "--custodian-key", str(DEMO / "custodian" / "custodian.key"), "--json")
    report = json.loads(ver.stdout)
    run("irms-verify", "export", sid, "--store", str(store), "--out", str(DEMO / "export"))
    run("irms-verify", "rebuild", sid, "--store", str(store),
        "--custodian-key", str(DEMO / "custodian" / "custodian.key"), "--out", str(DEMO / "recording.mp4"))
    print(f"session   {sid}")
    print(f"store     {store / summary['prefix']}")
    print(f"verified  {report['status']}: {report['segments']} segments, {report['duration_s']} s, "
          f"{len(report['findings'])} findings, media decoded: {report['media_checked']}")
    print(f"exports   {DEMO / 'export' / 'case-file'}  {DEMO / 'export' / 'procuracy-file'}")
    print(f"playable  {DEMO / 'recording.mp4'}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
