"""One owner for every child process: start, watch, stop (SIGINT once, wait, kill)."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

from evidence.owner_only import write_private
from recorder.errors import CaptureError

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child: get SIGKILL when the agent dies, so no orphan keeps a camera open."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass
    os.setpgrp()


# ffmpeg's `-loglevel level+info` tags each line with its level: `[info] ...` or `[rtsp @ 0x55..] [error] ...`.
_LEVEL_TAG = re.compile(r"^((?:\[[^]]* @ 0x[0-9a-f]+\] )?)\[(trace|debug|verbose|info|warning|error|fatal|panic)\] ")
_BELOW_WARNING = ("trace", "debug", "verbose", "info")


def untag(line: str) -> tuple[str, bool]:
    """A line without its level tag, and whether the tag was below warning (progress, not a problem).
    A line without a tag (a child that does not tag its lines) is kept as it is."""
    m = _LEVEL_TAG.match(line)
    if m is None:
        return line, False
    return m.group(1) + line[m.end():], m.group(2) in _BELOW_WARNING


class ProcessSupervisor:
    """Owns one child process; captures its stderr into a bounded tail and a log file."""

    def __init__(self, name: str, argv: Sequence[str], *, cwd: Path, env: dict[str, str] | None = None,
                 log_path: Path | None = None, secrets: Sequence[str] = (),
                 files: dict[Path, str] | None = None, shown_as: dict[str, str] | None = None,
                 watch: Callable[[str], bool] | None = None) -> None:
        """`files` are written owner-only before the child starts and removed once it has ended
        (the camera scripts that keep passwords out of argv, recorder.private_input); in what the
        child prints, each key of `shown_as` (a script's path) is replaced by its value (the camera).
        `watch` sees each line as soon as it is read; a line it returns True for is neither logged
        nor kept in the tail (recorder.origin's timing lines). A line ffmpeg tagged with a level below
        warning (`-loglevel level+info`) is dropped too, and the tag is taken off the others (`untag`),
        so that the log and the tail (where a failure's last error is read) hold problems only."""
        self.name = name
        self.files = dict(files or {})
        self.shown_as = dict(shown_as or {})
        self.argv = list(argv)
        self.cwd = cwd
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr_tail: deque[str] = deque(maxlen=40)
        self.secrets = [x for x in secrets if x]
        self._reader: threading.Thread | None = None
        self.watch = watch

    def start(self) -> None:
        try:
            for path, text in self.files.items():
                path.unlink(missing_ok=True)  # a restart's own leftover
                write_private(path, text.encode())
        except OSError as err:
            raise CaptureError(f"cannot write {err.filename} for {self.name}: {err.strerror}") from None
        try:
            self.proc = subprocess.Popen(
                self.argv, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=_die_with_parent,
            )
        except OSError as err:
            self._remove_files()
            raise CaptureError(f"cannot start {self.name} ({self.argv[0]}): {err.strerror}") from None
        self._reader = threading.Thread(target=self._read_stderr, name=f"{self.name}-stderr", daemon=True)
        self._reader.start()
        log.info("%s started, pid %d: %s", self.name, self.proc.pid, self.redact(" ".join(self.argv)))

    def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        sink = None
        if self.log_path:
            try:
                sink = self.log_path.open("ab")
            except OSError as err:
                log.warning("%s: cannot open its log %s: %s", self.name, self.log_path, err.strerror)
        try:
            for raw in self.proc.stderr:
                text = raw.decode("utf-8", "replace").rstrip()
                if self.watch is not None and self.watch(text):
                    continue
                text, below_warning = untag(text)
                if below_warning:
                    continue
                line = self.redact(text)
                self.stderr_tail.append(line)
                if sink:
                    try:
                        sink.write(line.encode() + b"\n")
                        sink.flush()
                    except OSError as err:
                        # A full disk must not stop this reader: ffmpeg would block on a full pipe.
                        log.warning("%s: its log %s stopped: %s", self.name, self.log_path, err.strerror)
                        with contextlib.suppress(OSError):
                            sink.close()
                        sink = None
        finally:
            self._remove_files()  # stderr closed: the child is ending (it read its files when it started)
            if sink:
                with contextlib.suppress(OSError):
                    sink.close()

    def _remove_files(self) -> None:
        for path in self.files:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def redact(self, text: str) -> str:
        """Secrets (camera passwords in URLs) never reach a log; a camera script is named by its camera."""
        for name, shown in self.shown_as.items():
            text = text.replace(name, shown)
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def stop(self, grace: float = 10.0) -> int | None:
        """Ask once (SIGINT, so ffmpeg closes its segment), wait, then kill."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGINT)
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0f s; killing pid %d", self.name, grace, self.proc.pid)
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self._reader:
            self._reader.join(timeout=5)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
