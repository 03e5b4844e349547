"""The request's context for the app and its blueprints: the process's state, this request's database
session, the clock, the language. Blueprints import these from here, never from web/app.py, so the
app (which imports the blueprints to register them) and its blueprints import no circle (as the
Flask tutorial's db.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import g, session
from sqlalchemy.orm import Session

from web import i18n
from web.config import WebConfig
from web.db import Database

if TYPE_CHECKING:
    from web.audit_anchor import AuditSigner
    from web.heartbeat.ingest import HeartbeatIngest


def system_now_us() -> int:
    return time.time_ns() // 1000


@dataclass
class IrmsState:
    config: WebConfig
    db: Database
    clock: Callable[[], int]
    heartbeats: HeartbeatIngest
    """The process's heartbeat ingest (one group commit per app), answered by `heartbeat.http.HeartbeatDoor`."""
    audit_signer: AuditSigner
    """Signs the audit chain heads heartbeat answers carry (web/audit_anchor.py)."""


def state() -> IrmsState:
    from flask import current_app
    st: IrmsState = current_app.extensions["irms"]
    return st


def db_session() -> Session:
    """This request's database session (closed, and rolled back if not committed, at teardown)."""
    if "db_session" not in g:
        g.db_session = state().db.sessions()
    s: Session = g.db_session
    return s


def now_us() -> int:
    return state().clock()


def lang() -> str:
    chosen = session.get("lang")
    return chosen if chosen in i18n.LANGUAGES else state().config.default_language
