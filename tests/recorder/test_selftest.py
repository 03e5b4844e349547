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


def test_selftest_passes_on_the_synthetic_kit_and_is_kept(station: Station, tmp_path: Path) -> None:
    rc, result = selftest(station, tmp_path / "store", "--kit", "synthetic")
    assert rc == 0, result
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
