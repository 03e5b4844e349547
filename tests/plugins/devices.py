"""The camera and microphone peers (scripts/camera-peer, scripts/mic-peer) as pytest fixtures.

`camera_peer` is a real RTSP camera (GStreamer's RTSP server, H.264 + PCMA, 640x360 at 25 fps
here to keep the CPU modest); `mic_peer` is a PulseAudio null sink whose monitor,
`roommic.monitor`, is the room microphone, in a PulseAudio daemon private to the session
(PULSE_SERVER points this process and its children at it). Both live for the whole session;
after every test that used one, it is put back to its normal signal (camera: `normal` picture,
mounted, restarted on the same ports if the test killed it; microphone: `tone`).
Tests that use them are marked `device` automatically, so `-m "not device"` leaves them out.

    def test_black_picture(camera_peer):
        camera_peer.control("black")
        ... camera_peer.url ...
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CAMERA_SCRIPT = REPO / "scripts" / "camera-peer"
MIC_SCRIPT = REPO / "scripts" / "mic-peer"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
CONTROL_TIMEOUT_S = 10.0
CAMERA_SIZE = (640, 360)
CAMERA_FPS = 25


class Peer:
    """A peer process: started, waited for ("READY ..."), controlled over its TCP port, stopped by pid."""

    name = "peer"

    def __init__(self, argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.argv = argv
        self.log_path = log_path
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.control_port = 0
        self.ready = ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def spawn(self, extra: list[str] | None = None) -> None:
        with self.log_path.open("a", encoding="utf-8") as log:
            log.write(f"--- {' '.join(self.argv + (extra or []))}\n")
            log.flush()
            self.proc = subprocess.Popen(
                self.argv + (extra or []), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                bufsize=0, start_new_session=True, env=self.env,
            )
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + START_TIMEOUT_S
        pending = b""
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while not self.ready:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    self.terminate()
                    pytest.fail(f"{self.name} did not start within {START_TIMEOUT_S:g} s:\n{self.log_tail()}")
                if not sel.select(min(left, 0.5)):
                    continue
                pending += os.read(fd, 4096)  # raw reads: a buffered reader would hide lines from select
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    line = raw.decode("utf-8", "replace").strip()
                    if line.startswith("CONTROL "):
                        self.control_port = int(line.rsplit(":", 1)[1])
                    elif line.startswith("READY "):
                        self.ready = line.split(" ", 1)[1]

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def control(self, command: str) -> str:
        """Send one command; return the reply line. Fails the test on an ERR reply."""
        with socket.create_connection(("127.0.0.1", self.control_port), timeout=CONTROL_TIMEOUT_S) as conn:
            conn.sendall(command.encode() + b"\n")
            reply = conn.makefile("r", encoding="utf-8").readline().strip()
        if reply.startswith("ERR") or not reply:
            raise AssertionError(f"{self.name} refused {command!r}: {reply or 'no reply'}")
        return reply

    def status(self) -> dict[str, object]:
        document: dict[str, object] = json.loads(self.control("status"))
        return document

    def terminate(self) -> None:
        """SIGTERM the peer's pid, then SIGKILL it if it does not go."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(STOP_TIMEOUT_S)
        if proc.stdout is not None:
            proc.stdout.close()
        self.ready = ""


class CameraPeer(Peer):
    """The RTSP camera: `url`, `control(cmd)`, `stop()` / `start()` (the mount), `kill()`."""

    name = "camera-peer"

    def __init__(self, log_path: Path, width: int, height: int, fps: int,
                 user: str = "", password: str = "") -> None:
        # The login goes to the peer in its environment: its argv, like any process's, is public.
        env = {**os.environ, "CAMERA_PEER_CREDENTIALS": f"{user}:{password}"} if password else None
        super().__init__([str(CAMERA_SCRIPT), "--width", str(width), "--height", str(height),
                          "--fps", str(fps)], log_path, env)
        self.width, self.height, self.fps = width, height, fps
        self.user, self.password = user, password
        self.rtsp_port = 0

    @property
    def url(self) -> str:
        return self.ready

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def launch(self) -> None:
        """Start on free ports the first time, on the same ports after a kill (the URL stays valid)."""
        self.spawn(["--port", str(self.rtsp_port), "--control-port", str(self.control_port)])
        self.rtsp_port = int(self.url.rsplit(":", 1)[1].split("/", 1)[0])

    def stop(self) -> None:
        """Unmount: clients are dropped and new ones get 404 until start()."""
        self.control("stop")

    def start(self) -> None:
        self.control("start")

    def kill(self) -> None:
        """The camera dies at once (SIGKILL); the next test gets it back on the same URL."""
        assert self.proc is not None
        self.control("kill")
        self.proc.wait(STOP_TIMEOUT_S)

    def reset(self) -> None:
        if not self.alive():
            self.terminate()
            self.launch()
            return
        self.control("normal")
        self.control("start")


class MicPeer(Peer):
    """The PulseAudio microphone: `source` ("roommic.monitor"), `control(cmd)` (tone/beep/silence/clip).

    It runs in a PulseAudio daemon of its own (its own XDG_RUNTIME_DIR), so two test sessions at
    once never mix their signals or stop each other's daemon; the fixture points this process at
    it with PULSE_SERVER, which ffmpeg `-f pulse`, PyAudio (ALSA `pulse`) and pactl all follow.
    """

    name = "mic-peer"

    def __init__(self, log_path: Path, runtime_dir: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k != "PULSE_SERVER"}
        env["XDG_RUNTIME_DIR"] = str(runtime_dir)
        super().__init__([str(MIC_SCRIPT)], log_path, env)
        self.runtime_dir = runtime_dir
        self.server = f"unix:{runtime_dir}/pulse/native"

    @property
    def source(self) -> str:
        return self.ready

    def launch(self) -> None:
        self.spawn(["--control-port", str(self.control_port)])

    def reset(self) -> None:
        if not self.alive():
            self.terminate()
            self.launch()
            return
        self.control("tone")

    def shutdown(self) -> None:
        """Ask the peer to stop (it then stops the daemon it started); make sure of both by pid."""
        if self.alive():
            try:
                self.control("stop")
                assert self.proc is not None
                self.proc.wait(STOP_TIMEOUT_S)
            except (OSError, AssertionError, subprocess.TimeoutExpired):
                pass
        self.terminate()
        pid_file = self.runtime_dir / "pulse" / "pid"
        try:
            daemon = int(pid_file.read_text().strip())
            is_pulse = b"pulseaudio" in Path(f"/proc/{daemon}/cmdline").read_bytes()
        except (OSError, ValueError):
            return
        if is_pulse:
            with contextlib.suppress(ProcessLookupError):
                os.kill(daemon, signal.SIGTERM)


CODE_BITS = 32  # scripts/camera-peer: the frame number in the top rows, 32 blocks, MSB first, light = 1


def frame_numbers(video: Path, width: int, height: int) -> list[int]:
    """The number the camera peer codes into each frame's top rows: its capture time, as frames since the
    UTC day began (`capture_time_s`)."""
    import numpy as np

    rows = max(8, (height // 45) & ~1)
    proc = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(video), "-map", "0:v:0", "-vf",
                           f"crop={width}:{rows}:0:0,format=gray", "-fps_mode", "passthrough", "-f", "rawvideo",
                           "pipe:1"], capture_output=True, check=True, timeout=3600)
    frames = np.frombuffer(proc.stdout, dtype=np.uint8).reshape(-1, rows, width)
    block = width // CODE_BITS
    means = frames[:, 1:-1, : block * CODE_BITS].reshape(len(frames), rows - 2, CODE_BITS, block)[:, :, :, 1:-1]
    bits = (means.mean(axis=(1, 3)) > 128).astype(np.int64)
    weights = 1 << np.arange(CODE_BITS - 1, -1, -1, dtype=np.int64)
    return [int(x) for x in bits @ weights]


def capture_time_s(number: int, fps: int, near_s: float) -> float:
    """The wall-clock second a frame numbered `number` was captured, on the UTC day of `near_s`."""
    day = near_s - near_s % 86400
    t = day + number / fps
    return t - 86400 if t - near_s > 43200 else t + 86400 if near_s - t > 43200 else t


@pytest.fixture(scope="session")
def camera_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CameraPeer]:
    """A real RTSP camera on loopback for the whole session (see scripts/camera-peer)."""
    logs = tmp_path_factory.mktemp("device-peers")
    peer = CameraPeer(logs / "camera-peer.log", *CAMERA_SIZE, CAMERA_FPS)
    peer.launch()
    try:
        yield peer
    finally:
        peer.terminate()


@pytest.fixture(scope="session")
def camera_peer_with_password(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CameraPeer]:
    """A second RTSP camera that asks for a user and password (RTSP basic authentication), like a real one."""
    logs = tmp_path_factory.mktemp("device-peers")
    peer = CameraPeer(logs / "camera-peer-login.log", *CAMERA_SIZE, CAMERA_FPS,
                      user="operator", password="Pw-" + os.urandom(6).hex())
    peer.launch()
    try:
        yield peer
    finally:
        peer.terminate()


@pytest.fixture(scope="session")
def mic_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MicPeer]:
    """The PulseAudio room microphone for the whole session (see scripts/mic-peer)."""
    logs = tmp_path_factory.mktemp("device-peers")
    runtime = tmp_path_factory.mktemp("pulse")
    runtime.chmod(0o700)
    peer = MicPeer(logs / "mic-peer.log", runtime)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PULSE_SERVER", peer.server)
        peer.launch()
        try:
            yield peer
        finally:
            peer.shutdown()


@pytest.fixture(autouse=True)
def _reset_device_peers(request: pytest.FixtureRequest) -> Iterator[None]:
    """Put each peer a test used back to its normal signal afterwards."""
    peers: list[CameraPeer | MicPeer] = [
        request.getfixturevalue(name) for name in ("camera_peer", "mic_peer") if name in request.fixturenames
    ]
    yield
    for peer in peers:
        peer.reset()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if {"camera_peer", "camera_peer_with_password", "mic_peer"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.device)


def camera_and_mic_kit(tmp_path: Path, camera_peer: CameraPeer, mic_peer: MicPeer, device: str | None = None) -> Path:
    """A room kit of the camera peer's picture and the microphone peer, as a profile file; `device` is the
    camera's URL template if not the peer's own URL (e.g. with {user}:{password}@{host})."""
    kit = tmp_path / "room.toml"
    kit.write_text(f"""
format = "irms.profile/1"
name = "camera-plus-mic"
description = "RTSP camera picture with a separate PulseAudio microphone"
[[cameras]]
role = "wide"
source = "rtsp"
device = "{device or camera_peer.url}"
width = {camera_peer.width}
height = {camera_peer.height}
fps = {camera_peer.fps}
passthrough = true
[[microphones]]
role = "room"
source = "pulse"
device = "{mic_peer.source}"
rate = 48000
channels = 1
""")
    return kit


def unplugged_camera_kit(tmp_path: Path) -> Path:
    """A room kit whose RTSP camera does not answer (nothing listens on its port), with a generated tone."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kit = tmp_path / "ip-camera.toml"
    kit.write_text(f"""format = "irms.profile/1"
name = "ip-camera"
description = "An RTSP camera that does not answer"
[[cameras]]
role = "wide"
source = "rtsp"
device = "rtsp://127.0.0.1:{port}/stream"
width = 1280
height = 720
fps = 25
[[microphones]]
role = "room"
source = "lavfi"
device = "sine=frequency=1000:sample_rate={{rate}}"
""")
    return kit
