"""Health of the picture and sound while recording: a black, frozen or covered picture, or a
silent or clipping microphone, raises a health event in the session log (R17), not silence.

Every `every_s` seconds one finished plain segment (before it is sealed) is decoded: a few
frames of the first camera through OpenCV and the first audio stream through ffmpeg, judged by
the same functions as the pre-flight probes. Only changes are logged: the first failure of a
check, and its recovery.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from recorder.calibrate import audio_samples
from recorder.errors import CaptureError
from recorder.probe import FrameThresholds, ProbeResult, analyse_audio, analyse_frames

log = logging.getLogger(__name__)
WATCHED = ("camera.black", "camera.frozen", "camera.covered", "mic.silent", "mic.clipping")
MIN_JUDGED_US = 1_000_000


def segment_frames(path: Path, count: int = 6) -> list[np.ndarray]:
    """Up to `count` frames spread over a segment, decoded at full size."""
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    frames: list[np.ndarray] = []
    try:
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or 50
        step = max(1, total // count)
        i = 0
        while len(frames) < count:
            if not cap.grab():
                break
            if i % step == 0:
                ok, frame = cap.retrieve()
                if ok:
                    frames.append(frame)
            i += 1
    finally:
        cap.release()
    return frames


def judge_segment(path: Path, expected_size: tuple[int, int] | None, has_audio: bool) -> list[ProbeResult]:
    results = analyse_frames(segment_frames(path), expected_size, device="camera",
                             thresholds=FrameThresholds(min_frames=2))
    if has_audio:
        try:
            _start, samples = audio_samples(path, 0)
            results += analyse_audio(samples, 48000, device="microphone")
        except CaptureError as err:
            results.append(ProbeResult("mic.samples", "microphone", 0, 0.25, "s", False, str(err)))
    return results


@dataclass
class HealthMonitor:
    expected_size: tuple[int, int] | None
    has_audio: bool = True
    every_s: float = 10.0
    last_check_us: int | None = None
    failing: dict[str, str] = field(default_factory=dict)
    # Per check, over every judged segment: the first failure, else the latest pass (the self-test's verdict).
    worst: dict[str, ProbeResult] = field(default_factory=dict)

    def due(self, now_us: int) -> bool:
        return self.last_check_us is None or now_us - self.last_check_us >= self.every_s * 1e6

    def check(self, path: Path, now_us: int, duration_us: int) -> list[tuple[str, str]]:
        """Judge one segment; return (event kind, detail) for every change of state.

        A segment shorter than MIN_JUDGED_US (the last one of a run, cut by a stop) holds too few
        frames and too little sound to judge: it is left for the next one, not failed."""
        if duration_us < MIN_JUDGED_US:
            return []
        self.last_check_us = now_us
        try:
            results = judge_segment(path, self.expected_size, self.has_audio)
        except (CaptureError, cv2.error) as err:
            log.warning("health check of %s failed: %s", path, err)
            return []
        for r in results:
            if r.check not in self.worst or self.worst[r.check].ok:
                self.worst[r.check] = r
        events = []
        for r in results:
            if r.check not in WATCHED:
                continue
            if not r.ok and r.check not in self.failing:
                self.failing[r.check] = r.reason
                events.append(("health", f"{r.check}: {r.reason}"))
            elif r.ok and r.check in self.failing:
                del self.failing[r.check]
                events.append(("health_ok", f"{r.check}: {r.reason}"))
        return events


    def clip_results(self) -> list[ProbeResult]:
        """One result per check over every judged segment: a fault is never hidden by a later good segment."""
        return list(self.worst.values())
