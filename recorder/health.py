"""Health of the picture and sound while recording: a black, frozen or covered picture, or a
silent or clipping microphone, raises a health event in the session log (R17), not silence.

Every `every_s` seconds one finished plain segment (before it is sealed) is decoded in this
process (PyAV, one thread, grey pictures): six frames 0.16 s apart from its start and its whole
first audio stream, judged by the same functions as the pre-flight probes. Only changes are
logged: the first failure of a check, and its recovery. The focus (a Laplacian over every judged
picture, more CPU than all the other checks together) is judged only where its verdict is used,
the daily self-test (`HealthMonitor.focus`); a recording watches black, frozen and covered. The CPU
it takes is counted (`HealthMonitor.cpu_s`), so that the recorder's cost can be told apart from it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from recorder.probe import FrameThresholds, ProbeResult, analyse_audio, analyse_frames

log = logging.getLogger(__name__)
WATCHED = ("camera.black", "camera.frozen", "camera.covered", "mic.silent", "mic.clipping")
MIN_JUDGED_US = 1_000_000
FRAMES = 6
SPACING_S = 0.16  # between judged frames: six of them span the segment's first 0.8 s
# The container is read as MPEG-TS, its streams found in its first 32 KiB: the default probe decoded
# pictures of the segment only to learn its streams' parameters (about a tenth of a check's CPU at 720p).
OPEN_OPTIONS = {"probesize": "32768", "analyzeduration": "0"}


@dataclass
class Decoded:
    """What a health check needs of a segment: a few grey pictures, the sound as mono samples."""

    frames: list[npt.NDArray[np.uint8]] = field(default_factory=list)
    samples: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    rate: int = 48000
    has_audio: bool = False


def decode_segment(path: Path, count: int = FRAMES, audio: bool = True) -> Decoded:
    """`count` frames `SPACING_S` apart from a segment's start (grey, full size), and its first audio
    stream, in one pass.

    Pictures are decoded only up to the last frame judged (21 of a 2 s segment's 50 at 25 fps, where
    six frames spread over the whole segment needed 41): a frozen picture repeats the same frame,
    whatever the spacing, and a moving one changes within 0.16 s. Grey straight from the decoder's
    luma plane (full range), not through a BGR picture: less conversion, the same figures within
    1 % (the Laplacian's detail about 10 % higher). One decoding thread, so that a check never takes
    both cores from the encoder and its CPU is this thread's.
    """
    out = Decoded()
    chunks: list[npt.NDArray[np.float64]] = []
    with av.open(str(path), format="mpegts", options=OPEN_OPTIONS) as container:
        video = container.streams.video[0] if container.streams.video else None
        sound = container.streams.audio[0] if audio and container.streams.audio else None
        streams = [s for s in (video, sound) if s is not None]
        for s in streams:
            s.codec_context.thread_count = 1
        if video is not None:
            video.thread_type = "NONE"
        rate = video.average_rate if video is not None else None
        step = max(1, round(float(rate) * SPACING_S)) if rate else 4
        seen = 0
        for packet in container.demux(*streams):
            if packet.stream is video:
                if len(out.frames) >= count:
                    continue
                for vframe in _decoded(packet):
                    if not isinstance(vframe, av.VideoFrame):
                        continue
                    if seen % step == 0 and len(out.frames) < count:
                        out.frames.append(np.asarray(vframe.to_ndarray(format="gray"), dtype=np.uint8))
                    seen += 1
            elif packet.stream is sound:
                for aframe in _decoded(packet):
                    if not isinstance(aframe, av.AudioFrame):
                        continue
                    chunks.append(_mono(aframe))
                    out.rate = aframe.sample_rate
        out.has_audio = sound is not None
    if chunks:
        out.samples = np.concatenate(chunks)
    return out


def _decoded(packet: av.Packet[Any]) -> list[av.frame.Frame]:
    """A packet's frames; none for a damaged packet, which the decoder skips (as ffmpeg does)."""
    try:
        return list(packet.decode())
    except av.FFmpegError as err:
        log.debug("health: packet skipped: %s", err)
        return []


def _mono(frame: av.AudioFrame) -> npt.NDArray[np.float64]:
    """One audio frame as mono samples in -1..1 (the channels averaged)."""
    data: npt.NDArray[Any] = frame.to_ndarray()
    channels = len(frame.layout.channels)
    data = data.reshape(channels, -1) if frame.format.is_planar else data.reshape(-1, channels).T
    if np.issubdtype(data.dtype, np.integer):
        return np.asarray(data.mean(axis=0) / (float(np.iinfo(data.dtype).max) + 1.0), dtype=np.float64)
    return np.asarray(data.mean(axis=0), dtype=np.float64)


def judge_segment(path: Path, expected_size: tuple[int, int] | None, has_audio: bool, *, focus: bool = True
                  ) -> list[ProbeResult]:
    decoded = decode_segment(path, audio=has_audio)
    results = analyse_frames(decoded.frames, expected_size, device="camera",
                             thresholds=FrameThresholds(min_frames=2), focus=focus)
    if has_audio:
        if decoded.has_audio:
            results += analyse_audio(decoded.samples, decoded.rate, device="microphone")
        else:
            results.append(ProbeResult("mic.samples", "microphone", 0, 0.25, "s", False,
                                       f"no audio stream in {path}"))
    return results


@dataclass
class HealthMonitor:
    expected_size: tuple[int, int] | None
    has_audio: bool = True
    every_s: float = 10.0
    focus: bool = False
    """Judge the focus too (the self-test's verdict has it; a recording's health events do not)."""
    last_check_us: int | None = None
    failing: dict[str, str] = field(default_factory=dict)
    # CPU seconds spent judging, and how many segments were judged (the recorder's cost apart from it).
    cpu_s: float = 0.0
    checks: int = 0
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
        started = time.thread_time()
        try:
            results = judge_segment(path, self.expected_size, self.has_audio, focus=self.focus)
        except (av.FFmpegError, OSError, ValueError) as err:
            log.warning("health check of %s failed: %s", path, err)
            return []
        finally:
            self.cpu_s += time.thread_time() - started
            self.checks += 1
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
