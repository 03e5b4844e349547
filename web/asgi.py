"""The server as gunicorn runs it: an ASGI app on uvicorn workers.

On PostgreSQL, POST /api/v1/heartbeat is answered on the worker's event loop
(`ingest.AsyncHeartbeatIngest`): a waiting heartbeat is a coroutine, not a thread, so thousands a
second share one group commit per worker without threads contending for the interpreter lock.
Everything else (pages, the rest of the API), and heartbeats on SQLite, is the Flask app, run in a
thread pool by a2wsgi.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

from a2wsgi import WSGIMiddleware
from sqlalchemy.engine import make_url

from evidence.errors import IrmsError
from evidence.protocol import HEARTBEAT_PATH
from web.app import MAX_BODY, create_app
from web.config import WebConfig
from web.db import Database
from web.ingest import AsyncHeartbeatIngest, accepted_answer, answer_headers, refusal

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def conninfo_of(db: Database) -> str:
    """The libpq URI of a PostgreSQL database URL (SQLAlchemy's driver name removed)."""
    return make_url(db.engine.url).set(drivername="postgresql").render_as_string(hide_password=False)


class _Headers(Mapping[str, str]):
    """ASGI request headers by name, case-insensitively."""

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self.map = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw}

    def __getitem__(self, name: str) -> str:
        return self.map[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self.map)

    def __len__(self) -> int:
        return len(self.map)


def create_asgi_app(config: WebConfig | None = None, *, threads: int = 8) -> ASGIApp:
    """The whole server as one ASGI app; `threads` run the Flask app's requests."""
    flask_app = create_app(config)
    st = flask_app.extensions["irms"]
    pages = WSGIMiddleware(flask_app, workers=threads)
    fast = AsyncHeartbeatIngest(st.heartbeats, conninfo_of(st.db)) if st.db.dialect == "postgresql" else None

    async def heartbeat(scope: Scope, receive: Receive, send: Send) -> None:
        assert fast is not None
        headers = _Headers(scope["headers"])
        status, answer = 201, {}
        if scope["method"] != "POST":
            status, answer = refusal(405, "MethodNotAllowed", "heartbeats are sent with POST")
        else:
            body = bytearray()
            while True:
                message = await receive()
                body += message.get("body", b"")
                if len(body) > MAX_BODY:
                    status, answer = refusal(413, "TooLarge", f"a heartbeat is at most {MAX_BODY} bytes")
                    break
                if not message.get("more_body"):
                    break
            if status == 201:
                now = st.clock()
                try:
                    got = await fast.ingest(headers, scope.get("root_path", "") + HEARTBEAT_PATH, bytes(body), now)
                    answer = accepted_answer(got, st.config.heartbeat_interval_s, now)
                except IrmsError as err:
                    status, answer = refusal(err.http_status, type(err).__name__, str(err))
        out = json.dumps(answer, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        await send({"type": "http.response.start", "status": status,
                    "headers": [(k.lower().encode("latin-1"), v.encode("latin-1"))
                                for k, v in answer_headers(status, len(out))]})
        await send({"type": "http.response.body", "body": out})

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
            await heartbeat(scope, receive, send)
            return
        await pages(scope, receive, send)

    return app
