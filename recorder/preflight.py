"""The pre-flight check that gates the start of a session (R01).

Every required device of the room's kit must deliver real signal (probed with recorder.probe
where it has a probe for the source; the synthetic kit's generated signal passes), the disk must
hold the expected session on top of the reserve, and the station clock must be within tolerance
of the reference. Any of these failing **blocks** the start. An unreachable store, or a clock
reference that does not answer, is only a **warning**: segments queue in the outbox and go when
the store is back, and the offset is measured again by the heartbeat.

Every refused start is appended, with its reasons, to IRMS_HOME/logs/preflight.log (JSON lines).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from recorder import probe
from recorder.clock import Clock
from recorder.errors import CaptureError
from recorder.profile import Profile
from recorder.segmenter import camera_url, microphone_source
from storage.base import ObjectStore
from storage.url import redact

log = logging.getLogger(__name__)

Verdict = Literal["ok", "warning", "block"]
# Room left for the container, the audio and the encoder overshooting its cap.
SIZE_MARGIN = 1.25


@dataclass(frozen=True)
class Check:
    """One line of the pre-flight: what was checked, the verdict, and why."""

    name: str
    device: str
    verdict: Verdict
    message: str

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"


@dataclass
class KitView:
    """What the investigator sees of the kit at the pre-flight: a still of each camera (JPEG) and the sound
    level of each microphone (dBFS RMS), taken by the same probes that judge the devices."""

    stills: dict[str, bytes] = field(default_factory=dict)
    levels: dict[str, float] = field(default_factory=dict)
    cameras: list[str] = field(default_factory=list)
    """Every camera probed, with a still or not (a camera that sent nothing shows as an empty frame)."""


@dataclass(frozen=True)
class PreflightReport:
    checks: tuple[Check, ...]
    required_bytes: int
    clock_offset_s: float | None = None
    at_us: int = 0
    view: KitView | None = None

    @property
    def allowed(self) -> bool:
        return bool(self.checks) and all(c.verdict != "block" for c in self.checks)

    @property
    def blocking(self) -> list[Check]:
        return [c for c in self.checks if c.verdict == "block"]

    @property
    def warnings(self) -> list[Check]:
        return [c for c in self.checks if c.verdict == "warning"]


def expected_bytes(profile: Profile, seconds: float) -> int:
    """What `seconds` of this kit's recording take on disk at most (bitrates are capped)."""
    kbps = (sum(profile.encode.max_bitrate_kbps for _ in profile.cameras)
            + sum(profile.encode.audio_bitrate_kbps for _ in profile.microphones))
    return int(seconds * kbps * 1000 / 8 * SIZE_MARGIN)


DeviceProbe = Callable[..., list[probe.ProbeResult]]
"""`probe_kit`'s signature: (profile, credentials, view=KitView | None) -> results."""


def _ffmpeg(args: list[str], timeout_s: float = 10.0) -> bytes | None:
    """ffmpeg's output for a generated (lavfi) source, None when it fails (the view is then left out)."""
    try:
        proc = subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", *args], capture_output=True,
                              timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        log.info("pre-flight view: ffmpeg failed: %s", err)
        return None
    if proc.returncode != 0:
        log.info("pre-flight view: ffmpeg exit %d: %s", proc.returncode, proc.stderr[-300:])
        return None
    return proc.stdout


def probe_kit(profile: Profile, credentials: dict[str, str] | None = None, *,
              view: KitView | None = None) -> list[probe.ProbeResult]:
    """Probe every required device of the kit that recorder.probe can judge.

    lavfi sources (the synthetic kit) generate their signal and pass. A required device with no
    probe for its source is reported as not ok, with the reason, so the start is not taken on trust.
    With `view`, a still of each camera and the level of each microphone are kept there (a generated
    source is rendered once for it).
    """
    creds = credentials or {}
    results: list[probe.ProbeResult] = []
    for cam in profile.cameras:
        if not cam.required:
            continue
        name = f"camera {cam.role}"
        if view is not None:
            view.cameras.append(name)
        if cam.source == "lavfi":
            results.append(probe.ProbeResult("camera.synthetic", name, "lavfi", None, "", True,
                                             "generated test picture"))
            if view is not None:
                spec = cam.device.format(width=cam.width, height=cam.height, fps=cam.fps)
                still = _ffmpeg(["-f", "lavfi", "-i", spec, "-frames:v", "1", "-vf", "scale=640:-2", "-q:v", "5",
                                 "-f", "image2pipe", "-c:v", "mjpeg", "-"])
                if still and still[:2] == b"\xff\xd8":
                    view.stills[name] = still
        elif cam.source in ("rtsp", "http", "v4l2"):
            try:
                url = cam.device if cam.source == "v4l2" else camera_url(cam, creds)
            except CaptureError as err:
                results.append(probe.ProbeResult("camera.frames", name, None, None, "", False, str(err)))
                continue
            # A camera passed through sends its own size; only an encoded picture must match the profile.
            size = None if cam.passthrough else (cam.width, cam.height)
            found, frame = probe.probe_camera_window(url, size, frames=10, timeout_s=10.0)
            results.extend(found)
            if view is not None and frame is not None:
                try:
                    view.stills[name] = probe.jpeg(frame)
                except probe.DeviceUnavailable as err:
                    log.info("pre-flight view of %s: %s", name, err)
        else:  # pragma: no cover - the profile model allows no other source
            results.append(probe.ProbeResult("camera.unprobed", name, None, None, "", False,
                                             f"no probe for {cam.source} cameras"))
    for mic in profile.microphones:
        if not mic.required:
            continue
        name = f"microphone {mic.role}"
        if mic.source == "lavfi":
            results.append(probe.ProbeResult("mic.synthetic", name, "lavfi", None, "", True, "generated test tone"))
            if view is not None:
                raw = _ffmpeg(["-f", "lavfi", "-i", mic.device.format(rate=mic.rate), "-t", "1", "-ac", "1",
                               "-f", "s16le", "-"])
                if raw:
                    view.levels[name] = round(probe.rms_dbfs(np.frombuffer(raw, dtype=np.int16)), 1)
        elif mic.source == "pulse":
            found = probe.probe_microphone(microphone_source(mic, creds), seconds=1.0, rate=mic.rate)
            results.extend(found)
            if view is not None:
                level = next((r.value for r in found if r.check == "mic.silent"), None)
                if isinstance(level, int | float):
                    view.levels[name] = float(level)
        else:
            results.append(probe.ProbeResult("mic.unprobed", name, None, None, "", False,
                                             f"no probe for {mic.source} microphones: check the sound by ear "
                                             "and mark the device not required, or use a probed source"))
    return results


def run_preflight(
    *,
    home: Path,
    profile: Profile,
    store: ObjectStore,
    clock: Clock,
    expected_seconds: float,
    min_free_bytes: int,
    clock_offset: Callable[[], float] | None,
    clock_tolerance_s: float,
    credentials: dict[str, str] | None = None,
    device_probe: DeviceProbe = probe_kit,
) -> PreflightReport:
    """Run every check; never raises for a failing device, store or reference (they become checks)."""
    checks: list[Check] = []
    view = KitView()

    # The same device credentials the recording will use (station.toml), so a camera with a password is
    # checked as it will be recorded, not refused for want of a user name.
    for r in device_probe(profile, credentials, view=view):
        checks.append(Check(r.check, r.device, "ok" if r.ok else "block", r.reason))
    if not any(c.name.startswith("camera") for c in checks) or not any(c.name.startswith("mic") for c in checks):
        checks.append(Check("kit", profile.name, "block", "the kit has no required camera and microphone to check"))

    need = min_free_bytes + expected_bytes(profile, expected_seconds)
    disk = probe.probe_disk(home, need)
    minutes = expected_seconds / 60
    checks.append(Check("disk.free", str(home), "ok" if disk.ok else "block",
                        f"{disk.reason} (needed: {need / 2**30:.2f} GiB for {minutes:.0f} min "
                        f"plus the {min_free_bytes / 2**30:.2f} GiB reserve)"))

    offset: float | None = None
    if clock_offset is None:
        checks.append(Check("clock.offset", "clock", "warning",
                            "no time reference configured: the clock offset is not measured"))
    else:
        try:
            offset = clock_offset()
        except probe.DeviceUnavailable as err:
            checks.append(Check("clock.offset", "clock", "warning", f"{err}; the offset is not measured"))
        else:
            c = probe.probe_clock(offset, clock_tolerance_s)
            checks.append(Check(c.check, c.device, "ok" if c.ok else "block", c.reason))

    s = probe.probe_store(store, device=redact(store.url))
    checks.append(Check(s.check, s.device, "ok" if s.ok else "warning",
                        s.reason if s.ok else f"{s.reason}; segments will queue on this station and upload "
                        "when the store is back"))
    return PreflightReport(tuple(checks), need, offset, clock.now_us(), view)


def log_refusal(home: Path, report: PreflightReport, context: dict[str, Any]) -> Path:
    """Append a refused start, with every blocking reason, to IRMS_HOME/logs/preflight.log."""
    path = home / "logs" / "preflight.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {
        "at": dt.datetime.fromtimestamp(report.at_us / 1e6, tz=dt.UTC).isoformat(),
        "at_us": report.at_us,
        "event": "start_refused",
        **context,
        "reasons": [asdict(c) for c in report.blocking],
        "warnings": [asdict(c) for c in report.warnings],
    }
    line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    log.warning("start refused by the pre-flight check: %s", "; ".join(c.message for c in report.blocking))
    return path


def read_refusals(home: Path) -> list[dict[str, Any]]:
    path = home / "logs" / "preflight.log"
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]

