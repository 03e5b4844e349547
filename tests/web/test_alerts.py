"""Alerts (issue 14, R21): a room that stops working is told once by e-mail (a real SMTP server on
loopback, aiosmtpd) and webhook (a real HTTP endpoint), acknowledged by IT staff, and told "all clear"
when it works again; a blip shorter than `alert_after_s` is never told; a channel that fails is tried
again without telling the others twice; the shipped Prometheus rules pass `promtool test rules`."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from tests.plugins.base import loopback_http, missing_service
from tests.plugins.processes import free_port
from tests.web.conftest import FakeNow, World, beat, login
from web.alerts import run_once
from web.config import WebConfig
from web.db import Database
from web.models import Alert, AuditEntry

ROOT = Path(__file__).resolve().parents[2]
SECRET = "webhook-signing-secret"


class Inbox:
    """aiosmtpd's handler: keeps every message it is sent."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[int, Inbox]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()


@dataclass
class Hook:
    url: str = ""
    bodies: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    status: int = 204


@pytest.fixture
def webhook() -> Iterator[Hook]:
    hook = Hook()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            if hook.status < 300:
                hook.bodies.append((json.loads(raw), self.headers.get("X-IRMS-Signature", "")))
                expected = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
                assert self.headers.get("X-IRMS-Signature") == expected
            self.send_response(hook.status)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    with loopback_http(Handler) as base:
        hook.url = base + "/irms-alerts?token=abc"
        yield hook


@pytest.fixture
def config(config: WebConfig, smtp: tuple[int, Inbox], webhook: Hook) -> WebConfig:
    """The tests' configuration (tests/web/conftest.py) with the alert channels on loopback."""
    return config.model_copy(update={
        "alert_after_s": 300, "alert_smtp_host": "127.0.0.1", "alert_smtp_port": smtp[0],
        "alert_mail_to": ("it-desk@procuracy.example",), "alert_webhook_url": webhook.url,
        "alert_webhook_secret": SECRET})


def round_(db: Database, config: WebConfig, now: FakeNow) -> tuple[int, int, int]:
    with db.session() as s:
        return run_once(s, config, now())


def alerts(db: Database) -> list[Alert]:
    with db.session() as s:
        return list(s.scalars(select(Alert).order_by(Alert.id)))


def test_a_room_that_stops_working_is_told_once_and_all_clear_once(
        world: World, db: Database, config: WebConfig, now: FakeNow, smtp: tuple[int, Inbox], webhook: Hook) -> None:
    st = world.enroll("HN-TTG", "P01")
    assert beat(world.client, st, now())[0] == 201
    assert round_(db, config, now) == (0, 0, 0)  # working; the rooms without a station are no alert
    now.advance(10 * 60)  # silent for ten minutes: more than two intervals
    assert round_(db, config, now) == (1, 0, 0)  # opened, not told before alert_after_s
    now.advance(301)
    assert round_(db, config, now) == (0, 0, 2)  # told: e-mail and webhook
    assert round_(db, config, now) == (0, 0, 0)  # once
    inbox = smtp[1].messages
    assert len(inbox) == 1 and "P01 (HN-TTG)" in inbox[0]["Subject"] and "cannot record" in inbox[0]["Subject"]
    text = inbox[0].get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert "mất liên lạc" in text and "silent for" in text and st.station_id in text
    (event, _), = webhook.bodies
    assert event["event"] == "room_down" and event["site"] == "HN-TTG" and event["room"] == "P01"
    assert [r["code"] for r in event["reasons"]] == ["silent"]

    assert beat(world.client, st, now())[0] == 201  # back
    assert round_(db, config, now) == (0, 1, 2)  # cleared and told "all clear"
    assert round_(db, config, now) == (0, 0, 0)
    assert len(smtp[1].messages) == 2 and "all clear" in smtp[1].messages[1]["Subject"]
    assert [b["event"] for b, _ in webhook.bodies] == ["room_down", "all_clear"]
    (a,) = alerts(db)
    assert a.notified_us is not None and a.clear_notified_us is not None and a.last_error == ""


def test_a_blip_that_heals_before_alert_after_s_is_never_told(
        world: World, db: Database, config: WebConfig, now: FakeNow, smtp: tuple[int, Inbox], webhook: Hook) -> None:
    st = world.enroll("HN-TTG", "P01")
    beat(world.client, st, now())
    now.advance(3 * 60)
    assert round_(db, config, now)[0] == 1
    now.advance(60)
    beat(world.client, st, now())
    assert round_(db, config, now) == (0, 1, 0)
    now.advance(3600)
    beat(world.client, st, now())
    assert round_(db, config, now) == (0, 0, 0)
    assert smtp[1].messages == [] and webhook.bodies == []


def test_a_failing_channel_is_tried_again_and_the_other_is_not_told_twice(
        world: World, db: Database, config: WebConfig, now: FakeNow, smtp: tuple[int, Inbox], webhook: Hook) -> None:
    st = world.enroll("HN-TTG", "P01")
    beat(world.client, st, now())
    now.advance(10 * 60)
    round_(db, config, now)
    now.advance(301)
    webhook.status = 503
    assert round_(db, config, now) == (0, 0, 1)  # the e-mail went; the webhook did not
    (a,) = alerts(db)
    assert a.notified_us is None and "answered HTTP 503" in a.last_error and "token=abc" not in a.last_error
    webhook.status = 204
    assert round_(db, config, now) == (0, 0, 1)
    assert len(smtp[1].messages) == 1 and len(webhook.bodies) == 1
    (a,) = alerts(db)
    assert a.notified_us is not None and a.last_error == ""


def test_one_open_alert_per_room_whatever_the_nodes(world: World, db: Database, now: FakeNow) -> None:
    with db.session() as s:
        room = world.rooms["HN-TTG/P01"]
        s.add(Alert(room_id=room, station_id="", opened_us=now(), reasons="[]", acked_by="", last_error=""))
        s.commit()
        s.add(Alert(room_id=room, station_id="", opened_us=now(), reasons="[]", acked_by="", last_error=""))
        with pytest.raises(IntegrityError):
            s.commit()
        s.rollback()
        s.add(Alert(room_id=room, station_id="", opened_us=now(), reasons="[]", acked_by="", last_error="",
                    cleared_us=now()))
        s.commit()  # cleared ones are history: any number


def test_it_staff_acknowledge_on_the_page_and_it_is_audited(
        world: World, db: Database, config: WebConfig, now: FakeNow, client: FlaskClient) -> None:
    st = world.enroll("HN-TTG", "P01")
    beat(client, st, now())
    now.advance(10 * 60)
    round_(db, config, now)
    world.user("it-staff", "it_staff")
    world.user("prosecutor", "prosecutor")
    other = client.application.test_client()
    assert login(other, "prosecutor") == 302
    assert other.get("/admin/alerts").status_code == 403
    assert login(client, "it-staff") == 302
    page = client.get("/admin/alerts").get_data(as_text=True)
    (a,) = alerts(db)
    assert f'data-alert="{a.id}"' in page and 'data-room="HN-TTG/P01"' in page and "mất liên lạc" in page
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    assert client.post(f"/admin/alerts/{a.id}/ack", data={"csrf_token": token}).status_code == 302
    assert client.post(f"/admin/alerts/{a.id}/ack", data={"csrf_token": token}).status_code == 409
    (a,) = alerts(db)
    assert a.acked_by == "it-staff"
    with db.session() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "alert.ack")).one()
    assert entry.actor == "it-staff" and entry.target == "HN-TTG/P01"


def test_the_shipped_prometheus_rules_pass_promtool_and_name_metrics_the_server_exports(
        world: World, client: FlaskClient, now: FakeNow) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        missing_service("promtool (Debian package prometheus) is not installed: run scripts/install-system")
        return
    rules = ROOT / "deploy" / "prometheus" / "irms-alerts.yml"
    check = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    test = subprocess.run([promtool, "test", "rules", str(ROOT / "tests" / "web" / "prometheus-rules-test.yml")],
                          capture_output=True, text=True, timeout=60, cwd=ROOT / "tests" / "web")
    assert test.returncode == 0, test.stdout + test.stderr
    st = world.enroll("HN-TTG", "P01")
    beat(client, st, now())
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'irms_room_working{province="HNI",site="HN-TTG",room="P01"} 1' in metrics
    assert 'irms_room_working{province="HNI",site="HN-TTG",room="P02"} 0' not in metrics  # no station: no series
    for name in ("irms_room_working", "irms_stations_silent", "irms_room_coverage_ratio"):
        assert name in rules.read_text() and f"\n{name}" in metrics
