"""The web's instance folder is its owner's alone: `irms-web` creates the SQLite database (with its
-wal and -shm), the cookie secret and the audit key 0600 in a 0700 folder, and `irms-web serve` (the
real gunicorn server) fixes an older folder that is open to other users, one warning line per path."""

from __future__ import annotations

import os
import stat
import subprocess
import urllib.request
from pathlib import Path

from tests.plugins.processes import Processes, free_port, wait_http
from tests.plugins.recording import BIN


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def open_to_others(root: Path) -> list[str]:
    return [f"{p} {mode(p):04o}" for p in [root, *root.rglob("*")] if mode(p) & 0o077]


def serve(tmp_path: Path, env: dict[str, str], name: str) -> str:
    """Start `irms-web serve`, wait for it to answer, stop it; its output."""
    procs = Processes(tmp_path)
    port = free_port()
    proc = procs.spawn(name, [str(BIN / "irms-web"), "serve", "--host", "127.0.0.1", "--port", str(port),
                              "--workers", "1"], env, tmp_path)
    try:
        wait_http(f"http://127.0.0.1:{port}/login", proc)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as resp:  # reads the database
            assert resp.status == 200
        # While it serves: the worker's database connection has made the -wal and -shm files.
        instance = Path(env["IRMS_HOME"])
        assert {"web.db-wal", "web.db-shm"} <= {p.name for p in instance.iterdir()}
        assert open_to_others(instance) == []
    finally:
        procs.stop_all()
    return proc.tail(20_000)


def test_the_instance_folder_is_private_from_the_start_and_fixed_when_it_was_not(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    env = {k: v for k, v in os.environ.items() if not k.startswith("IRMS_WEB_")}
    env["IRMS_HOME"] = str(instance)
    subprocess.run([str(BIN / "irms-web"), "db", "upgrade"], env=env, check=True, capture_output=True)
    out = serve(tmp_path, env, "serve-fresh")
    assert "warning" not in out
    for name in ("web.db", "web-secret-key", "audit-signing.key"):
        assert mode(instance / name) == 0o600, name
    assert mode(instance) == 0o700

    os.chmod(instance, 0o755)
    os.chmod(instance / "web.db", 0o644)
    os.chmod(instance / "web-secret-key", 0o640)
    out = serve(tmp_path, env, "serve-old")
    lines = out.splitlines()
    assert f"irms-web: warning: folder {instance} was open to other users (mode 0755); made owner-only (0700)" in lines
    assert (f"irms-web: warning: file {instance / 'web.db'} was open to other users (mode 0644); "
            "made owner-only (0600)") in lines
    assert (f"irms-web: warning: file {instance / 'web-secret-key'} was open to other users (mode 0640); "
            "made owner-only (0600)") in lines
    assert open_to_others(instance) == []
