"""The server as gunicorn runs it: an ASGI app on uvicorn workers.

On PostgreSQL, POST /api/v1/heartbeat is answered on the worker's event loop
(`heartbeat.http.HeartbeatDoor.asgi` with `heartbeat.ingest.AsyncHeartbeatIngest`): a waiting
heartbeat is a coroutine, not a thread, so thousands a second share one group commit per worker
without threads contending for the interpreter lock. Everything else (pages, the rest of the API),
and heartbeats on SQLite, is the Flask app (whose heartbeat door is the same, on WSGI), run in a
thread pool by a2wsgi.

A request body is read whole on the event loop before anything answers it (`BodyGate`): a body
that does not arrive within `body_timeout_s` is answered 408 and the connection closed, at most
`max_body_readers` bodies are being read at once per worker (more: 503 at once), and no thread of the
pool ever waits on a slow client (twenty connections sending `Content-Length: 1000` and one byte
once held every thread, freezing every page). The supported deployment also puts nginx in front
(deploy/nginx/), which buffers bodies itself.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from a2wsgi import WSGIMiddleware
from sqlalchemy.engine import make_url
from uvicorn_worker import UvicornWorker

from evidence.protocol import HEARTBEAT_PATH
from web.app import MAX_BODY, create_app
from web.config import WebConfig
from web.db import Database
from web.heartbeat.http import HeartbeatDoor
from web.heartbeat.ingest import AsyncHeartbeatIngest

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Worker(UvicornWorker):  # type: ignore[misc]
    """gunicorn's uvicorn worker without uvicorn's own X-Forwarded-For handling (by default it believes the
    header from any local client): the app alone decides whom to believe (`trusted_proxies`, web/auth.py)."""

    CONFIG_KWARGS = {**UvicornWorker.CONFIG_KWARGS, "proxy_headers": False}


def conninfo_of(db: Database) -> str:
    """The libpq URI of a PostgreSQL database URL (SQLAlchemy's driver name removed)."""
    return make_url(db.engine.url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _answer(send: Send, status: int, error: str, message: str) -> None:
    body = json.dumps({"error": error, "status": status, "message": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": body})


class BodyGate:
    """Reads each request body whole, on the event loop, within a time limit and a limit of bodies at once."""

    def __init__(self, app: ASGIApp, timeout_s: float, max_readers: int, max_body: int) -> None:
        self.app = app
        self.timeout_s = timeout_s
        self.max_readers = max_readers
        self.max_body = max_body
        self.reading = 0
        """Bodies being read now (one event loop: a plain counter)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"").strip()
        if (not length or length == b"0") and b"transfer-encoding" not in headers:
            await self.app(scope, receive, send)
            return
        if length and (not length.isdigit() or int(length) > self.max_body):
            await _answer(send, 413 if length.isdigit() else 400, "TooLarge" if length.isdigit() else "BadRequest",
                          f"a request body is at most {self.max_body} bytes" if length.isdigit()
                          else "Content-Length is not a number")
            return
        if self.reading >= self.max_readers:
            await _answer(send, 503, "Busy", "too many request bodies are arriving at once; send again shortly")
            return
        self.reading += 1
        try:
            body = await asyncio.wait_for(self._read(receive), self.timeout_s)
        except TimeoutError:
            await _answer(send, 408, "RequestTimeout", f"the request body did not arrive within {self.timeout_s:g} s")
            return
        finally:
            self.reading -= 1
        if body is None:
            await _answer(send, 413, "TooLarge", f"a request body is at most {self.max_body} bytes")
            return
        if body is False:  # the client went away
            return
        given = False

        async def replay() -> dict[str, Any]:
            nonlocal given
            if not given:
                given = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: only a disconnect can come

        await self.app(scope, replay, send)

    async def _read(self, receive: Receive) -> bytes | None | bool:
        """The whole body; None if it is too large, False if the client disconnected."""
        chunks = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return False
            chunks += message.get("body", b"")
            if len(chunks) > self.max_body:
                return None
            if not message.get("more_body"):
                return bytes(chunks)


def create_asgi_app(config: WebConfig | None = None, *, threads: int = 8) -> ASGIApp:
    """The whole server as one ASGI app; `threads` run the Flask app's requests."""
    flask_app = create_app(config)
    st = flask_app.extensions["irms"]
    door: HeartbeatDoor = flask_app.extensions["irms.heartbeat_door"]
    # a2wsgi types the WSGI environ as its own TypedDict, Flask as dict[str, Any]: the same object at run time.
    pages = WSGIMiddleware(flask_app, workers=threads)  # type: ignore[arg-type]
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
        # a2wsgi types ASGI scopes and messages as TypedDicts; this module passes them on as the dicts they are.
        await pages(scope, receive, send)  # type: ignore[arg-type]

    cfg = st.config
    return BodyGate(app, cfg.body_timeout_s, cfg.max_body_readers, MAX_BODY)
