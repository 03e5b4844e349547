"""The server as gunicorn runs it: an ASGI app on uvicorn workers.

On PostgreSQL, POST /api/v1/heartbeat is answered on the worker's event loop
(`heartbeat.http.HeartbeatDoor.asgi` with `heartbeat.ingest.AsyncHeartbeatIngest`): a waiting
heartbeat is a coroutine, not a thread, so thousands a second share one group commit per worker
without threads contending for the interpreter lock. Everything else (pages, the rest of the API),
and heartbeats on SQLite, is the Flask app (whose heartbeat door is the same, on WSGI), run in a
thread pool by a2wsgi.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from a2wsgi import WSGIMiddleware
from sqlalchemy.engine import make_url

from evidence.protocol import HEARTBEAT_PATH
from web.app import create_app
from web.config import WebConfig
from web.db import Database
from web.heartbeat.http import HeartbeatDoor
from web.heartbeat.ingest import AsyncHeartbeatIngest

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def conninfo_of(db: Database) -> str:
    """The libpq URI of a PostgreSQL database URL (SQLAlchemy's driver name removed)."""
    return make_url(db.engine.url).set(drivername="postgresql").render_as_string(hide_password=False)


def create_asgi_app(config: WebConfig | None = None, *, threads: int = 8) -> ASGIApp:
    """The whole server as one ASGI app; `threads` run the Flask app's requests."""
    flask_app = create_app(config)
    st = flask_app.extensions["irms"]
    door: HeartbeatDoor = flask_app.extensions["irms.heartbeat_door"]
    pages = WSGIMiddleware(flask_app, workers=threads)
    fast = AsyncHeartbeatIngest(st.heartbeats, conninfo_of(st.db)) if st.db.dialect == "postgresql" else None

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    if fast is not None:
                        await fast.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if fast is not None and scope["type"] == "http" and scope["path"] == HEARTBEAT_PATH:
            await door.asgi(fast, scope, receive, send)
            return
        await pages(scope, receive, send)

    return app
