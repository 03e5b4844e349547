"""A station whose encoder runs slower than real time (an overloaded PC) records less media than the
wall clock spans. That time was not recorded: it must be declared, not left for V17 to fail an
honest session or, worse, hidden."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.plugins.recording import Station

pytestmark = pytest.mark.slow

# A generated picture far too heavy for this machine to encode in real time (2 cores).
HEAVY_KIT = """
format = "irms.profile/1"
name = "heavy-synthetic"
description = "Generated 1080p25 picture encoded with a slow preset: slower than real time here"

[[cameras]]
role = "wide"
source = "lavfi"
device = "testsrc2=size={width}x{height}:rate={fps}"
width = 1920
height = 1080
fps = 25

[[microphones]]
role = "room"
source = "lavfi"
device = "sine=frequency=1000:sample_rate={rate}"
rate = 48000
channels = 1

[encode]
preset = "slow"
crf = 18
max_bitrate_kbps = 8000
audio_bitrate_kbps = 64

[segment]
seconds = 2
"""


def test_an_encoder_slower_than_real_time_is_a_declared_stall(station: Station, tmp_path: Path) -> None:
    kit = tmp_path / "heavy.toml"
    kit.write_text(HEAVY_KIT)
    # Segments come slowly: the watchdog must not take the slow encoder for a dead device.
    (station.home / "station.toml").write_text("watchdog_s = 90\n")
    store = tmp_path / "store"
    proc = station.agent("record", "--kit", str(kit), "--seconds", "12", "--store", str(store), "--site", "HN-CA-01",
                         "--room", "P101", "--case", "5/2026/HS", "--json", timeout=600)
    sid = json.loads(proc.stdout)["session_id"]
    verdict = station.verify("session", sid, "--store", str(store), "--json")
    report = json.loads(verdict.stdout)
    assert verdict.returncode == 0, report["findings"]
    media_s = report["duration_s"]
    stalls = [i for i in report["interruptions"] if i["cause"] == "encoder_stall"]
    assert media_s < 10, f"the kit kept up with real time ({media_s} s of 12 s): not a test of lag"
    assert len(stalls) == 1 and "slower than real time" in stalls[0]["reason"], report["interruptions"]
