"""A network camera's URL handed to ffmpeg/ffprobe without putting it in their argv.

A camera URL carries the camera's password (rtsp://user:password@host/...). A process's argv is
world-readable (/proc/<pid>/cmdline, `ps`), so any local user would read it there. ffmpeg has no
option to read an input URL from a file, but its concat demuxer does: the URL goes into a one-line
ffconcat script written 0600 in a 0700 directory, and ffmpeg gets `-f concat -i SCRIPT`. The
script's `option` lines are the inner demuxer's options (RTSP over TCP, socket timeout).

Timing: the concat demuxer opens (and probes) the camera itself; packets it buffers while
probing would reach ffmpeg in a burst and be stamped with one wall-clock time. So the inner
probe is cut to one packet and told not to buffer (`fast`): the outer input, stamped with the
wall clock on arrival, does the real probe exactly as a plain `-i URL` would.
"""

from __future__ import annotations

# The protocols a camera script may open: the script itself (file) and network cameras.
PROTOCOLS = "file,rtsp,rtsps,rtp,srtp,udp,tcp,tls,http,https,httpproxy,crypto"
NETWORK_SOURCES = ("rtsp", "http")
# The inner probe, in fast mode: one packet, kept nowhere (see the module docstring).
FAST_PROBE = {"probesize": "32", "fflags": "nobuffer"}
# What the inner probe prints when cut short: expected, and not an error of the camera.
PROBE_NOISE = ("Could not find codec parameters for stream", "not enough frames to estimate rate",
               "Consider increasing the value for the 'analyzeduration'")


def _quote(value: str) -> str:
    """An ffconcat token: single-quoted, a quote inside written as '\\''."""
    return "'" + value.replace("'", "'\\''") + "'"


def ffconcat_script(url: str, options: dict[str, str], *, fast: bool) -> str:
    """The script that opens `url` with the inner demuxer `options`."""
    if any(ch in url for ch in "\r\n\0"):
        raise ValueError("a camera URL must be one line")
    lines = ["ffconcat version 1.0", f"file {_quote(url)}"]
    for key, value in {**options, **(FAST_PROBE if fast else {})}.items():
        lines.append(f"option {key} {_quote(value)}")
    return "\n".join(lines) + "\n"


def input_options() -> dict[str, str | int]:
    """ffmpeg's options before `-i SCRIPT`: read it as ffconcat, let it name a URL, open only these protocols."""
    return {"f": "concat", "safe": 0, "protocol_whitelist": PROTOCOLS}


def camera_options(url: str, timeout_us: int) -> dict[str, str]:
    """The inner demuxer's options for a network camera: RTSP over TCP, socket I/O bounded."""
    opts = {"rtsp_transport": "tcp"} if url.startswith("rtsp") else {}
    return {**opts, "timeout": str(timeout_us)}
