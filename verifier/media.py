"""Media checks on decrypted segments: does it decode, how long is it."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

from verifier.errors import FormatError


def probe_media(data: bytes, timeout: float = 30.0) -> tuple[bool, int, str]:
    """Decode a segment fully with ffmpeg. Returns (decodes, duration_us, first error line)."""
    with tempfile.NamedTemporaryFile(suffix=".ts") as tmp:
        tmp.write(data)
        tmp.flush()
        try:
            probe = subprocess.run(
                ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", tmp.name],
                capture_output=True, timeout=timeout, check=False,
            )
            decode = subprocess.run(
                ["ffmpeg", "-nostdin", "-v", "error", "-xerror", "-i", tmp.name, "-f", "null", "-"],
                capture_output=True, timeout=timeout, check=False,
            )
        except FileNotFoundError:
            raise FormatError("ffmpeg/ffprobe not installed: media rules cannot run") from None
        except subprocess.TimeoutExpired:
            return False, 0, "decoding timed out"
    if probe.returncode != 0 or decode.returncode != 0:
        err = (decode.stderr or probe.stderr).decode("utf-8", "replace").strip().splitlines()
        return False, 0, err[0] if err else "does not decode"
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
