"""Fixtures every test may use: an isolated IRMS home directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def irms_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh IRMS_HOME (keys, journal, spool, trust anchors) for one test."""
    home = tmp_path / "irms-home"
    home.mkdir()
    monkeypatch.setenv("IRMS_HOME", str(home))
    yield home
