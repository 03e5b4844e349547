"""The camera password never reaches a process's argv (/proc/<pid>/cmdline, readable by every local user)
nor a log line: recording and probing a real RTSP camera that asks for a login (recorder.private_input)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from tests.plugins.devices import CameraPeer
from tests.plugins.recording import Station

pytestmark = pytest.mark.slow


class CmdlineWatch:
    """Reads every process's /proc/<pid>/cmdline, as any local user could, until stopped."""

    def __init__(self, secret: str) -> None:
        self.secret = secret.encode()
        self.leaks: list[str] = []
        self.ffmpeg_seen: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(0.1):
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                try:
                    cmdline = (entry / "cmdline").read_bytes()
                except OSError:
                    continue
                if self.secret in cmdline:
                    self.leaks.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
                if cmdline.startswith((b"ffmpeg\0", b"ffprobe\0")) and b".ffconcat" in cmdline:
                    self.ffmpeg_seen.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))

    def __enter__(self) -> CmdlineWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)


def login_url(peer: CameraPeer) -> str:
    """The peer's URL as a template: the user and password come from station.toml."""
    return peer.url.replace("rtsp://", "rtsp://{user}:{password}@", 1)


def files_holding(root: Path, secret: str, *, but: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p != but and secret.encode() in p.read_bytes()]


def test_recording_from_a_camera_with_a_password_keeps_it_out_of_argv_and_logs(
        station: Station, tmp_path: Path, camera_peer_with_password: CameraPeer) -> None:
    peer = camera_peer_with_password
    config = station.home / "station.toml"
    with config.open("a", encoding="utf-8") as f:
        f.write(f'camera_user = "{peer.user}"\ncamera_password = "{peer.password}"\n')
    store = tmp_path / "store"
    with CmdlineWatch(peer.password) as watch:
        listed = station.agent("devices", "--camera", login_url(peer), "--json")
        out = station.agent("record", "--kit", "ip-camera-rtsp", "--camera", f"wide={login_url(peer)}",
                            "--seconds", "8", "--store", str(store), "--site", "HN-CA-01", "--room", "P101",
                            "--case", "11/2026/HS", "--suspect", "A", "--interrogator", "B",
                            "--legal-basis", "C", "--json")
    assert watch.leaks == [], watch.leaks
    assert any(c.startswith("ffmpeg ") for c in watch.ffmpeg_seen), "the watch never saw the recording's ffmpeg"
    # ffprobe logged in with the password from its private file: it saw the camera's streams.
    (camera,) = json.loads(listed.stdout)["network"]
    assert camera["ok"] and (camera["width"], camera["height"]) == peer.size, camera
    # ffmpeg logged in too: a whole, verifiable recording.
    summary = json.loads(out.stdout)
    res = station.verify("session", summary["session_id"], "--store", str(store), "--json")
    assert res.returncode == 0, res.stdout
    records = (store / json.loads(res.stdout)["prefix"] / "seg").glob("*.json")
    assert sum(json.loads(p.read_text())["duration_us"] for p in records) >= 5_000_000
    for text in (listed.stdout, listed.stderr, out.stdout, out.stderr):
        assert peer.password not in text
    # Only station.toml (0600, in the 0700 home) holds it: no log line, no leftover camera script.
    assert files_holding(station.home, peer.password, but=config) == []
    assert not list(station.home.rglob("*.ffconcat"))
    assert config.stat().st_mode & 0o077 == 0


def test_a_password_written_on_the_command_line_is_warned_about(station: Station) -> None:
    res = station.agent("devices", "--camera", "rtsp://operator:Literal-Pw@127.0.0.1:9/cam", "--json",
                        check=False)
    assert "the camera password given in --camera is in this command's argv" in res.stderr
    (camera,) = json.loads(res.stdout)["network"]
    # ffprobe's error names the camera (password redacted), not the private script it read the URL from.
    assert not camera["ok"] and "rtsp://operator:***@127.0.0.1:9/cam" in camera["error"], camera
    assert "Literal-Pw" not in res.stdout and ".ffconcat" not in camera["error"]


def test_the_camera_script_is_private_and_gone_with_its_ffmpeg(tmp_path: Path) -> None:
    from recorder.supervisor import ProcessSupervisor

    script = tmp_path / "camera-wide.ffconcat"
    sup = ProcessSupervisor("cat", ["sleep", "0.5"], cwd=tmp_path, files={script: "secret\n"})
    sup.start()
    assert script.read_text() == "secret\n" and os.stat(script).st_mode & 0o777 == 0o600
    sup.stop()
    assert not script.exists()
