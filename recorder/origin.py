"""Where a camera-timed run's timeline sits on the station's clock.

A kit whose one RTSP camera gives the picture and every sound keeps the camera's own timestamps
(recorder.segmenter.camera_timed): its picture and its sound stay together to the sample, whatever
the camera's queues or this station's load do to when they arrive. Those timestamps start near 0
at the camera's first packet, not at a known wall-clock time, so each run learns where its 0 is.

ffmpeg prints a line for each sound frame of the run's first seconds (ashowinfo on a branch of the
camera's sound, ORIGIN_WINDOW_S long). Each line is stamped with the station's clock when it is read:
arrival − timestamp is the run's origin plus how late that frame was. The least of them is the
frame that came soonest; frames ffmpeg held while it probed the camera come in a burst, late, and
never win. The origin is known once the frames arrive at the pace of their timestamps (the burst is
over) for STEADY frames in a row; the camera's latency (its capture to our socket, `latency_ms`) is
then taken off, as it is for a camera stamped on arrival.

Measured on the camera peer: the least arrival − timestamp holds within ±1 ms over 8 s once the
burst (about 1 s of frames) is over.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from recorder.segmenter import ORIGIN_WINDOW_S, origin_sample

STEADY = 25          # frames in a row (half a second of 20 ms frames) ...
STEADY_PACE = 0.8    # ... whose arrivals span at least this share of their timestamps' span


class RunOrigin:
    """Fed every line ffmpeg prints (`feed`), it gives the run's t0 (`t0_us`) once it is known."""

    def __init__(self, now_us: Callable[[], int], latency_ms: int) -> None:
        self._now_us = now_us
        self._latency_us = latency_ms * 1000
        self._lock = threading.Lock()
        self._recent: deque[tuple[int, int]] = deque(maxlen=STEADY)  # (arrival, timestamp), µs
        self._first_us: int | None = None
        self._least: int | None = None
        self._known = False

    def feed(self, line: str) -> bool:
        """Take one line of ffmpeg's stderr; True if it was a sound frame's (not worth logging)."""
        pts = origin_sample(line)
        if pts is None:
            return False
        at = self._now_us()
        pts_us = round(pts * 1e6)
        with self._lock:
            self._least = at - pts_us if self._least is None else min(self._least, at - pts_us)
            self._first_us = pts_us if self._first_us is None else self._first_us
            self._recent.append((at, pts_us))
            (a0, p0), (a1, p1) = self._recent[0], self._recent[-1]
            steady = len(self._recent) == STEADY and a1 - a0 >= STEADY_PACE * (p1 - p0)
            window_over = p1 - self._first_us >= (ORIGIN_WINDOW_S - 0.5) * 1e6
            self._known = self._known or steady or window_over
        return True

    def t0_us(self, final: bool = False) -> int | None:
        """Station time at the segment list's 0: once known, or (`final`: the run has ended) from
        whatever frames came; None if none did."""
        with self._lock:
            if self._least is None or not (self._known or final):
                return None
            return self._least - self._latency_us
