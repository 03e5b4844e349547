"""The station screen reports every session to the server it is enrolled with, not just the first:
one `irms-agent screen` process records two sessions; each reaches the server with its case number
(issue 14, bug 1: the second session's "start" event failed on the first session's closed journal,
so searching by its case number found nothing)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from recorder.cli import main as agent
from recorder.screen import ScreenSettings, create_screen_app
from recorder.screen_cli import recorder_factory
from tests.plugins.recording import Station
from tests.recorder.test_screen import FORM, PIN_HASH, apps, csrf, log_in, wait_state
from tests.web.conftest import World
from web.app import create_app
from web.config import WebConfig
from web.db import Database
from web.models import RecordingSession

__all__ = ["apps"]  # the screen tests' fixture: any session still running is ended afterwards


@pytest.fixture
def server(config: WebConfig, live_server: Callable[[Flask], str]) -> str:
    app = create_app(config.model_copy(update={"min_disk_free_bytes": 0, "trend_cache_s": 0}))
    return live_server(app)


@pytest.mark.slow
def test_every_session_of_one_screen_reaches_the_server_with_its_case(
        world: World, server: str, station: Station, db: Database, tmp_path: Path, apps: list[Flask],
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    for name, value in station.env().items():
        if name.startswith("IRMS_"):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("IRMS_DRAIN_TIMEOUT_S", "5")
    assert agent(["enroll", "--server", server, "--code", world.code("HN-TTG", "P01")]) == 0
    app = create_screen_app(recorder_factory(station.home, str(tmp_path / "store"), "HN-TTG", "P01", "synthetic"),
                            ScreenSettings(site="HN-TTG", room="P01", pin_hash=PIN_HASH), home=station.home)
    apps.append(app)
    client = app.test_client()
    assert log_in(client) == 303  # the investigator's station PIN
    token = csrf(client)
    cases = ["21/2026/HS", "22/2026/HS"]
    sids = []
    for case in cases:
        page = client.post("/preflight", data={**FORM, "case_number": case, "csrf_token": token})
        html = page.get_data(as_text=True)
        assert page.status_code == 200, html
        start = client.post("/start", data={"csrf_token": token,
                                            "token": html.split('name="token" value="')[1].split('"')[0]})
        assert start.status_code == 303, start.get_data(as_text=True)
        sid = start.headers["Location"].rstrip("/").split("/")[-1]
        deadline = time.monotonic() + 60
        while wait_state(client, sid, "recording")["segments"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.25)
        assert client.post(f"/session/{sid}/end", data={"csrf_token": token, "confirm": "yes"}).status_code == 303
        wait_state(client, sid, "ended")
        sids.append(sid)
    deadline = time.monotonic() + 30
    while True:
        with db.session() as s:
            known = {r.session_id: r.case_number for r in s.scalars(
                select(RecordingSession).where(RecordingSession.session_id.in_(sids)))}
        if known == dict(zip(sids, cases, strict=True)) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert known == dict(zip(sids, cases, strict=True))
    assert "event sink failed" not in caplog.text
