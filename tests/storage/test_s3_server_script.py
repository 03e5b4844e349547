"""scripts/s3-server: exit codes and the safety rules, without bootstrapping a second cluster."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.plugins.processes import free_port
from tests.plugins.s3 import SCRIPT, S3Server, run_script


@pytest.fixture
def listener() -> Iterator[int]:
    """A port held by a program that is not ours."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def run(s3_dir: Path, *args: str, port: int = 7499, mon_port: int = 3399) -> subprocess.CompletedProcess[str]:
    return run_script(*args, s3_dir=str(s3_dir), port=port, mon_port=mon_port, timeout=30)


def test_status_of_a_missing_dir_is_not_running(tmp_path: Path) -> None:
    result = run(tmp_path / "nothing", "status")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "not running" in result.stdout
    assert not (tmp_path / "nothing").exists()


def test_stop_of_a_missing_dir_is_a_no_op(tmp_path: Path) -> None:
    started = time.monotonic()
    result = run(tmp_path / "nothing", "stop")
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 5


def test_unknown_command_is_a_usage_error(tmp_path: Path) -> None:
    result = run(tmp_path, "restart")
    assert result.returncode == 2
    assert "start" in result.stderr and "stop" in result.stderr


def test_help_exits_0() -> None:
    result = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, timeout=10, check=False)
    assert result.returncode == 0
    assert "S3_DIR" in result.stdout


def test_a_stale_pid_file_never_makes_it_signal_a_stranger(tmp_path: Path) -> None:
    # A pid file naming a live process that was not started with our ceph.conf.
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run_dir = tmp_path / "run"
        run_dir.mkdir()
        for name in ("mon.a", "osd.0", "client.rgw.s3"):
            (run_dir / f"{name}.pid").write_text(f"{stranger.pid}\n")
        assert run(tmp_path, "status").returncode == 3
        assert run(tmp_path, "stop").returncode == 0
        assert run(tmp_path, "stop-rgw").returncode == 0
        assert stranger.poll() is None, "stop signalled a process that is not ours"
    finally:
        stranger.kill()
        stranger.wait()


def test_start_refuses_a_port_in_use(tmp_path: Path, listener: int) -> None:
    started = time.monotonic()
    result = run(tmp_path / "s3", "start", port=listener, mon_port=free_port())
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"port {listener}" in result.stderr and "in use" in result.stderr
    assert time.monotonic() - started < 5
    assert not (tmp_path / "s3" / "ceph.conf").exists()


def test_start_refuses_a_port_in_the_osd_range(tmp_path: Path) -> None:
    result = run(tmp_path / "s3", "start", port=6900)
    assert result.returncode == 2
    assert "6800-7300" in result.stderr


def test_start_refuses_a_foreign_non_empty_dir(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("not a cluster")
    result = run(tmp_path, "start", port=free_port(), mon_port=free_port())
    assert result.returncode == 2
    assert "holds no s3-server cluster" in result.stderr
    assert (tmp_path / "precious.txt").read_text() == "not a cluster"


def test_start_rgw_needs_a_bootstrapped_dir(tmp_path: Path) -> None:
    result = run(tmp_path, "start-rgw")
    assert result.returncode == 2
    assert "not bootstrapped" in result.stderr


@pytest.mark.s3
def test_status_and_start_of_the_running_server(s3_server: S3Server) -> None:
    status = s3_server.script("status", timeout=60)
    assert status.returncode == 0, status.stdout + status.stderr
    for daemon in ("mon", "osd", "rgw"):
        assert f"{daemon}  running" in status.stdout
    assert "HTTP 200" in status.stdout
    started = time.monotonic()
    again = s3_server.script("start", timeout=60)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "already running" in again.stdout
    assert time.monotonic() - started < 5
