"""The database: engine, sessions, and Alembic upgrades run from code (`irms-web db upgrade`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import CursorResult, Delete, Engine, Update, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import ArgumentError, DisconnectionError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from evidence.owner_only import private_database
from web.errors import ConfigError, DatabaseError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _sqlite_pragmas(dbapi_conn: DBAPIConnection, _record: object) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


PING_AFTER_IDLE_S = 2.0
"""A pooled connection unused for longer is pinged before use (it may have died with a server restart)."""


def _mark_idle(_dbapi_conn: Any, record: Any) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(driver_error: type[Exception]) -> Callable[[Any, Any, Any], None]:
    """SQLAlchemy's pool_pre_ping, but only for connections that sat idle.

    Pinging on every checkout cost a third of a heartbeat's time under load; a connection reused
    within seconds is alive, and if the server went away meanwhile the request fails once and the
    pool is invalidated (SQLAlchemy's disconnect handling), as with any other mid-request failure.
    """

    def checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_S:
            return
        try:
            cur = dbapi_conn.cursor()
            try:
                cur.execute("SELECT 1")
            finally:
                cur.close()
            dbapi_conn.rollback()
        except driver_error:
            raise DisconnectionError("pooled connection is dead") from None

    return checkout


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL, foreign keys and a busy timeout."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"database URL {url!r} is not valid") from None
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    try:
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                private_database(Path(parsed.database))  # 0600 from creation, as its -wal and -shm
            engine = create_engine(parsed, connect_args={"timeout": 30, "check_same_thread": False})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(parsed, pool_size=5, max_overflow=10)
            event.listen(engine, "checkin", _mark_idle)
            event.listen(engine, "checkout", _ping_if_idle(engine.dialect.loaded_dbapi.Error))
    except (ArgumentError, ImportError) as err:
        raise ConfigError(f"database URL {parsed.render_as_string()!r}: {err}") from None
    return engine


class Database:
    """One engine and its session factory."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on any error."""
        with self.sessions() as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    def dispose(self) -> None:
        self.engine.dispose()


def rows_changed(s: Session, statement: Update | Delete) -> int:
    """Execute an UPDATE or DELETE (without RETURNING) in `s`; how many rows it changed."""
    result = s.execute(statement)
    # Session.execute is typed as returning Result; for DML without RETURNING SQLAlchemy documents it as the
    # cursor's result, the one that carries rowcount.
    assert isinstance(result, CursorResult)
    return result.rowcount


def _alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(db: Database, revision: str = "head") -> str:
    """Bring the schema to `revision`; returns the revision now current."""
    try:
        with db.engine.begin() as conn:
            cfg = _alembic_config(db.engine)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
        return current_revision(db) or ""
    except SQLAlchemyError as err:
        raise DatabaseError(f"database upgrade failed: {err.__class__.__name__}: {err.args[0]}") from None


def current_revision(db: Database) -> str | None:
    try:
        with db.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except SQLAlchemyError as err:
        raise DatabaseError(f"database unreachable: {err.__class__.__name__}: {err.args[0]}") from None


def head_revision() -> str:
    script = ScriptDirectory.from_config(_alembic_config(create_engine("sqlite://")))
    return str(script.get_current_head())
