"""Media checks on decrypted segments: does it decode, how long is it."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

from evidence.errors import FormatError

DECODE_TIMED_OUT = "decoding timed out"


def probe_media(data: bytes, timeout: float = 30.0) -> tuple[bool, int, str]:
    """`probe_media_file` over bytes (a decrypted segment), through a private temporary file."""
    with tempfile.NamedTemporaryFile(suffix=".ts") as tmp:
        tmp.write(data)
        tmp.flush()
        return probe_media_file(Path(tmp.name), timeout)


def probe_media_file(path: Path, timeout: float = 30.0) -> tuple[bool, int, str]:
    """Decode every frame of every stream of a segment, once, with ffprobe (`-count_frames`).

    Returns (decodes, duration_us, first error line). A segment decodes when ffprobe exits 0 and
    writes nothing at its `error` log level (a frame that fails to decode, or bytes the demuxer
    must skip, are logged there even when the exit status stays 0); its duration is the container's
    `format.duration`. One process does both, where an ffprobe for the duration and an
    `ffmpeg -f null` decode cost two. This is V15's "decodes"; the station uses the same function to
    recognise a torn segment before sealing it.
    """
    try:
        probe = subprocess.run(
            ["ffprobe", "-v", "error", "-count_frames", "-show_entries", "format=duration", "-of", "json", str(path)],
            capture_output=True, timeout=timeout, check=False,
        )
    except FileNotFoundError:
        raise FormatError("ffprobe not installed: media rules cannot run") from None
    except subprocess.TimeoutExpired:
        return False, 0, DECODE_TIMED_OUT
    errors = probe.stderr.decode("utf-8", "replace").replace(str(path), "segment").strip().splitlines()
    if probe.returncode != 0 or errors:
        return False, 0, errors[0] if errors else f"ffprobe exited {probe.returncode}"
    try:
        duration = json.loads(probe.stdout)["format"]["duration"]
    except (KeyError, ValueError):
        return False, 0, "no duration"
    return True, round(float(duration) * 1e6), ""


def rebuild_file(segments: list[Path], out: Path, timeout: float = 3600.0) -> None:
    """Join TS segments by bytes (keeps A/V sync; the concat demuxer does not) and remux to MP4."""
    joined = out.with_suffix(".ts.part")
    with joined.open("wb") as sink:
        for seg in segments:
            sink.write(seg.read_bytes())
    try:
        proc = subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "error", "-y", "-fflags", "+genpts", "-i", str(joined),
             "-c", "copy", "-movflags", "+faststart", str(out)],
            capture_output=True, timeout=timeout, check=False,
        )
    finally:
        joined.unlink(missing_ok=True)
    if proc.returncode != 0:
        raise FormatError(f"ffmpeg could not rebuild {out}: {proc.stderr.decode(errors='replace').strip()[:300]}")
