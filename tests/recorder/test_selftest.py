"""The daily self-test (R19) defines "working today": it must pass on working kit and fail for real faults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.plugins.devices import CameraPeer
from tests.plugins.recording import Station

pytestmark = pytest.mark.slow


def selftest(station: Station, store: Path, *extra: str) -> tuple[int, dict[str, object]]:
    proc = station.agent("selftest", "--store", str(store), "--site", "HN-CA-01", "--room", "P101", "--seconds", "4",
                         "--json", *extra, check=False)
    return proc.returncode, json.loads(proc.stdout)


def failing(result: dict[str, object]) -> list[tuple[str, str]]:
    return [(c["check"], c["reason"]) for c in result["checks"] if not c["ok"]]  # type: ignore[union-attr,index]


def test_selftest_passes_on_the_synthetic_kit_and_is_kept(station: Station, tmp_path: Path) -> None:
    rc, result = selftest(station, tmp_path / "store", "--kit", "synthetic")
    assert rc == 0, failing(result)
    checks = {c["check"] for c in result["checks"]}  # type: ignore[union-attr]
    assert {"disk.free", "store.reachable", "camera.black", "mic.silent", "selftest.verified"} <= checks
    kept = json.loads((station.home / "selftest" / "latest.json").read_text())
    assert kept["ok"] is True and kept["session_id"] == result["session_id"]


def test_selftest_fails_when_the_camera_is_black(station: Station, tmp_path: Path, camera_peer: CameraPeer) -> None:
    camera_peer.control("black")
    rc, result = selftest(station, tmp_path / "store", "--kit", "ip-camera-rtsp", "--camera", f"wide={camera_peer.url}")
    assert rc == 1 and result["ok"] is False
    failed = {c["check"] for c in result["checks"] if not c["ok"]}  # type: ignore[union-attr]
    assert "camera.black" in failed


def test_selftest_is_not_failed_by_the_short_last_segment_a_stop_cuts(station: Station, tmp_path: Path) -> None:
    """On a busy station the clip's last segment, cut by the stop, can hold one frame and 0.04 s of sound;
    it was judged alone and failed a working kit. The whole clip is judged, a cut-short segment is not."""
    proc = station.agent("selftest", "--store", str(tmp_path / "store"), "--site", "HN-CA-01", "--room", "P101",
                         "--seconds", "2.1", "--json", "--kit", "synthetic", check=False)
    result = json.loads(proc.stdout)
    assert proc.returncode == 0, failing(result)
    checks = {c["check"] for c in result["checks"]}
    assert {"camera.frames", "camera.black", "mic.samples", "mic.silent"} <= checks
