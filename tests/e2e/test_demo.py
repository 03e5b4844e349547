"""`make demo` (scripts/demo.py) end to end, in a folder of its own: the station's home and the web's
instance folder are apart (the web's cookie secret is not in the station's home) and owner-only, and
the demo country's station keys are readable by their owner alone."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.plugins.processes import free_port

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def open_to_others(root: Path) -> list[str]:
    return [f"{p} {stat.S_IMODE(p.lstat().st_mode):04o}" for p in [root, *root.rglob("*")]
            if stat.S_IMODE(p.lstat().st_mode) & 0o077]


def test_the_demo_keeps_the_web_secret_out_of_the_station_home_and_its_keys_private(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    env = {**os.environ, "IRMS_DEMO_DIR": str(demo), "IRMS_DEMO_SECONDS": "4", "IRMS_DEMO_PORT": str(free_port())}
    try:
        res = subprocess.run([sys.executable, str(REPO / "scripts" / "demo.py")], env=env, capture_output=True,
                             text=True, timeout=600)
        # The demo leaves the web, the simulated stations and its station beating: the figure holds.
        running = {f.name: int(f.read_text()) for f in demo.glob("*.pid")}
        alive = {name for name, pid in running.items() if b"irms-" in Path(f"/proc/{pid}/cmdline").read_bytes()}
    finally:
        for pid_file in demo.glob("*.pid"):
            pid = int(pid_file.read_text())
            if Path(f"/proc/{pid}").exists() and b"irms-" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGTERM)
                for _ in range(100):
                    if not Path(f"/proc/{pid}").exists():
                        break
                    time.sleep(0.1)
    assert res.returncode == 0, res.stdout + res.stderr
    assert alive == {"web.pid", "simulate.pid", "station.pid"}, (running, alive)
    assert (demo / "web" / "web-secret-key").is_file()
    assert not list((demo / "station").rglob("web-secret-key"))
    assert (demo / "web" / "web.db").is_file() and (demo / "station" / "journal.db").is_file()
    keys = list((demo / "web-keys").glob("*.key"))
    assert keys and {stat.S_IMODE(k.stat().st_mode) for k in keys} == {0o600}
    for folder in ("station", "web", "web-keys", "custodian"):
        assert open_to_others(demo / folder) == [], folder
