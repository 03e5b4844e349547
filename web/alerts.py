"""Alerts (R21): a room that stops working is told, once, by e-mail and webhook; IT staff acknowledge it;
"all clear" is told when the room works again.

`evaluate` compares the rooms' status now (the dashboard's own pure function, web/coverage.py) with the
open alerts: an equipped room that is not working gets an alert (one open alert per room: a partial
unique index, so several nodes evaluating at once still open one); an open alert whose room works
again is cleared. A room with no station at all is a gap in coverage, shown on the dashboard, not an
alert. `deliver` tells what is due: "room down" for an alert open at least `alert_after_s` (a blip that
heals sooner is never told), "all clear" for a cleared alert whose "room down" went out. Each
(alert, notice, channel) is delivered once: a delivery row is written in the same transaction that
holds the alert's row lock, and a channel that failed is tried again at the next round (its error is
kept on the alert). `irms-web alerts run` does both every `--every` seconds (a systemd timer or the
loop itself); Prometheus rules for sites that run Alertmanager are in deploy/prometheus/.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage

from flask import Blueprint, g, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from web import audit
from web.auth import require_roles
from web.config import WebConfig
from web.context import db_session, now_us
from web.coverage import Reason, RoomStatus, reason
from web.errors import Conflict, NotFound
from web.evidence import current_coverage
from web.i18n import local_time, reason_text
from web.models import Alert, AlertDelivery, Province, Room, Site

log = logging.getLogger(__name__)

DOWN, CLEAR = "room_down", "all_clear"
NOT_ALERTED = {"no_station"}  # a room never equipped is a coverage gap, not a failure


class DeliveryError(Exception):
    """A channel did not take a notice (one line: which channel, what it answered)."""


@dataclass(frozen=True)
class Notice:
    """What is told: the room, why it failed, when."""

    kind: str
    alert_id: int
    province: str
    site: str
    site_name: str
    room: str
    room_name: str
    station_id: str
    opened_us: int
    cleared_us: int | None
    reasons: tuple[Reason, ...]

    def as_json(self) -> dict[str, object]:
        return {"event": self.kind, "alert_id": self.alert_id, "province": self.province, "site": self.site,
                "site_name": self.site_name, "room": self.room, "room_name": self.room_name,
                "station_id": self.station_id, "opened_us": self.opened_us, "cleared_us": self.cleared_us,
                "reasons": [r.as_json() for r in self.reasons],
                "reasons_text": {lang: [reason_text(r, lang) for r in self.reasons] for lang in ("vi", "en")}}

    def subject(self) -> str:
        where = f"{self.room} ({self.site})"
        if self.kind == DOWN:
            return f"[IRMS] Phòng {where} ngừng ghi được / Room {where} cannot record"
        return f"[IRMS] Phòng {where} ghi lại được / Room {where} records again (all clear)"

    def text(self, tz: str) -> str:
        opened = local_time(self.opened_us, tz, with_seconds=True)
        lines = [self.subject(), "",
                 f"{self.site_name} — {self.room_name} ({self.province}/{self.site}/{self.room}), "
                 f"trạm / station {self.station_id or '—'}",
                 f"Từ / since: {opened}"]
        if self.kind == CLEAR:
            lines.append(f"Hoạt động lại / working again: {local_time(self.cleared_us, tz, with_seconds=True)}")
        lines += ["", "Lý do / reasons:"]
        lines += [f"- {reason_text(r, 'vi')} / {reason_text(r, 'en')}" for r in self.reasons]
        lines += ["", f"Cảnh báo số / alert #{self.alert_id}"]
        return "\n".join(lines) + "\n"


# --- deciding ---------------------------------------------------------------------------------------


def alertable(status: RoomStatus) -> bool:
    return not status.working and not {r.code for r in status.reasons} <= NOT_ALERTED


def evaluate(s: Session, cfg: WebConfig, now: int) -> tuple[int, int]:
    """Open an alert for each equipped room not working that has none; clear those whose room works.
    Returns (opened, cleared); commits."""
    _, cov = current_coverage(s, cfg, now)
    failing = {r.room.id: r for r in cov.rooms if alertable(r)}
    open_alerts = {a.room_id: a for a in s.scalars(select(Alert).where(Alert.cleared_us.is_(None)))}
    opened = cleared = 0
    for room_id, status in failing.items():
        if room_id not in open_alerts:
            s.add(Alert(room_id=room_id, station_id=status.station_id or "", opened_us=now, acked_by="",
                        reasons=json.dumps([r.as_json() for r in status.reasons], ensure_ascii=False),
                        last_error=""))
            opened += 1
    for room_id, alert in open_alerts.items():
        if room_id not in failing:
            alert.cleared_us = now
            cleared += 1
    try:
        s.commit()
    except IntegrityError:  # another node opened one of these alerts first: its row stands
        s.rollback()
        return 0, 0
    return opened, cleared


# --- telling ----------------------------------------------------------------------------------------

Channel = Callable[[Notice], None]


def channels(cfg: WebConfig) -> dict[str, Channel]:
    """The configured channels by name."""
    out: dict[str, Channel] = {}
    if cfg.alert_smtp_host and cfg.alert_mail_to:
        out["mail"] = lambda n: send_mail(cfg, n)
    if cfg.alert_webhook_url:
        out["webhook"] = lambda n: send_webhook(cfg, n)
    return out


def send_mail(cfg: WebConfig, notice: Notice) -> None:
    msg = EmailMessage()
    msg["From"] = cfg.alert_mail_from
    msg["To"] = ", ".join(cfg.alert_mail_to)
    msg["Subject"] = notice.subject()
    msg["X-IRMS-Alert"] = f"{notice.kind} {notice.alert_id}"
    msg.set_content(notice.text(cfg.timezone))
    try:
        with smtplib.SMTP(cfg.alert_smtp_host, cfg.alert_smtp_port, timeout=15) as smtp:
            if cfg.alert_smtp_starttls:
                smtp.starttls()
            if cfg.alert_smtp_user:
                smtp.login(cfg.alert_smtp_user, cfg.alert_smtp_password)
            smtp.send_message(msg)
    except (OSError, smtplib.SMTPException) as err:
        raise DeliveryError(f"e-mail via {cfg.alert_smtp_host}:{cfg.alert_smtp_port}: {err}") from None


def send_webhook(cfg: WebConfig, notice: Notice) -> None:
    body = json.dumps(notice.as_json(), ensure_ascii=False, sort_keys=True).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "irms-alerts"}
    if cfg.alert_webhook_secret:
        digest = hmac.new(cfg.alert_webhook_secret.encode(), body, hashlib.sha256).hexdigest()
        headers["X-IRMS-Signature"] = f"sha256={digest}"
    req = urllib.request.Request(cfg.alert_webhook_url, data=body, headers=headers, method="POST")
    where = cfg.alert_webhook_url.split("?", 1)[0]
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:  # noqa: S310 - the operator's configured URL
            status = resp.status
    except urllib.error.HTTPError as err:
        status = err.code
    except (OSError, ValueError) as err:
        raise DeliveryError(f"webhook {where}: {getattr(err, 'reason', err)}") from None
    if not 200 <= status < 300:
        raise DeliveryError(f"webhook {where} answered HTTP {status}")


def notice_of(s: Session, alert: Alert, kind: str) -> Notice:
    room = s.get(Room, alert.room_id)
    if room is None:
        raise NotFound(f"alert {alert.id} names room {alert.room_id}, which does not exist")
    site = s.get(Site, room.site_id)
    province = s.get(Province, site.province_id) if site is not None else None
    reasons = tuple(reason(**r) for r in json.loads(alert.reasons or "[]"))
    return Notice(kind, alert.id, province.code if province else "", site.code if site else "",
                  site.name if site else "", room.code, room.name, alert.station_id, alert.opened_us,
                  alert.cleared_us, reasons)


def _due(cfg: WebConfig, now: int) -> ColumnElement[bool]:
    down = and_(Alert.notified_us.is_(None), Alert.cleared_us.is_(None), Alert.opened_us <= now - cfg.alert_after_s)
    clear = and_(Alert.cleared_us.is_not(None), Alert.notified_us.is_not(None), Alert.clear_notified_us.is_(None))
    return or_(down, clear)


def deliver(s: Session, cfg: WebConfig, now: int, chans: dict[str, Channel] | None = None) -> int:
    """Tell every notice that is due on every channel that has not taken it yet; returns how many
    (notice, channel) deliveries were made. Each alert is handled under its row lock, one commit each."""
    chans = channels(cfg) if chans is None else chans
    if not chans:
        return 0
    made = 0
    for alert_id in s.scalars(select(Alert.id).where(_due(cfg, now)).order_by(Alert.id)).all():
        alert = s.scalars(select(Alert).where(Alert.id == alert_id, _due(cfg, now))
                          .with_for_update(skip_locked=True)).first()
        if alert is None:  # another node has it, or told it already
            s.rollback()
            continue
        kind = DOWN if alert.cleared_us is None else CLEAR
        done = set(s.scalars(select(AlertDelivery.channel).where(AlertDelivery.alert_id == alert.id,
                                                                  AlertDelivery.kind == kind)))
        notice = notice_of(s, alert, kind)
        errors = []
        for name, send in chans.items():
            if name in done:
                continue
            try:
                send(notice)
            except DeliveryError as err:
                errors.append(str(err))
                log.warning("alert %d (%s, room %s/%s) not delivered: %s", alert.id, kind, notice.site,
                            notice.room, err)
                continue
            s.add(AlertDelivery(alert_id=alert.id, kind=kind, channel=name, sent_us=now))
            done.add(name)
            made += 1
        alert.last_error = "; ".join(errors)
        if done >= set(chans):
            if kind == DOWN:
                alert.notified_us = now
            else:
                alert.clear_notified_us = now
        s.commit()
    return made


def run_once(s: Session, cfg: WebConfig, now: int) -> tuple[int, int, int]:
    """One round: (opened, cleared, deliveries)."""
    opened, cleared = evaluate(s, cfg, now)
    return opened, cleared, deliver(s, cfg, now)


# --- the page ---------------------------------------------------------------------------------------

bp = Blueprint("alerts", __name__, url_prefix="/admin/alerts")


@bp.get("")
@require_roles("admin", "it_staff")
def page() -> ResponseReturnValue:
    s = db_session()
    open_ = s.scalars(select(Alert).where(Alert.cleared_us.is_(None)).order_by(Alert.opened_us.desc())).all()
    recent = s.scalars(select(Alert).where(Alert.cleared_us.is_not(None))
                       .order_by(Alert.cleared_us.desc()).limit(100)).all()
    notices = {a.id: notice_of(s, a, DOWN if a.cleared_us is None else CLEAR) for a in [*open_, *recent]}
    return render_template("admin/alerts.html", open_alerts=open_, recent=recent, notices=notices)


@bp.post("/<int:alert_id>/ack")
@require_roles("admin", "it_staff")
def ack(alert_id: int) -> ResponseReturnValue:
    s = db_session()
    alert = s.get(Alert, alert_id)
    if alert is None:
        raise NotFound(f"no alert {alert_id}")
    if alert.acked_us is not None:
        raise Conflict(f"alert {alert_id} was acknowledged by {alert.acked_by}")
    alert.acked_us, alert.acked_by = now_us(), g.user.username
    n = notice_of(s, alert, DOWN)
    audit.append(s, at_us=alert.acked_us, actor=g.user.username, action="alert.ack",
                 target=f"{n.site}/{n.room}", detail={"alert": alert.id, "opened_us": alert.opened_us})
    s.commit()
    return redirect(url_for("alerts.page"))
