"""Long-running processes a test starts (servers, stations): logged to a file, ended by their pid."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, n: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""


@dataclass
class Processes:
    """Every long-running process this test starts; `stop_all` ends each by its pid (newest first)."""

    logs: Path
    procs: list[Proc] = field(default_factory=list)

    def spawn(self, name: str, argv: list[str], env: dict[str, str], cwd: Path) -> Proc:
        log = self.logs / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    @staticmethod
    def stop(proc: Proc, timeout: float = 60) -> None:
        stop_process(proc.popen, timeout)

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            self.stop(proc)


def stop_process(popen: subprocess.Popen[Any], timeout: float = 60) -> None:
    """SIGTERM (a screen closes its session, gunicorn stops its workers), SIGKILL if it outlasts `timeout`."""
    if popen.poll() is not None:
        return
    os.kill(popen.pid, signal.SIGTERM)
    try:
        popen.wait(timeout)
    except subprocess.TimeoutExpired:
        os.kill(popen.pid, signal.SIGKILL)
        popen.wait(10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: Proc, timeout: float = 90) -> None:
    """Wait until `url` answers (any HTTP status), failing early if the process died."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.popen.poll() is not None:
            raise AssertionError(f"{proc.name} exited {proc.popen.returncode}:\n{proc.tail()}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"{proc.name} did not answer at {url} in {timeout} s:\n{proc.tail()}") from None
            time.sleep(0.2)


def wait_for(predicate: Callable[[], object], timeout: float, what: str = "the condition") -> None:
    """Poll `predicate` until it holds; fail the test naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def kill9(popen: subprocess.Popen[Any]) -> None:
    """kill -9, as a power cut or the OOM killer would: no handler runs. Reaps it and closes its pipes."""
    os.kill(popen.pid, signal.SIGKILL)
    popen.wait(timeout=10)
    for pipe in (popen.stdout, popen.stderr):
        if pipe is not None:
            pipe.close()

