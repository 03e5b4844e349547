"""The heartbeat's HTTP front door, once for both servers: WSGI (Flask's threads) and ASGI (the event loop).

The heartbeat is the one request that arrives thousands of times a second, from stations, with no
cookie, form or page: Flask's request machinery (context, session, hooks) cost as much CPU as the
whole check and store, so POST /api/v1/heartbeat is answered here, in front of Flask. Answers are the
API's: 201 with the verdict, or the refusal as {"error", "status", "message"}.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

from evidence.errors import IrmsError
from evidence.protocol import HEARTBEAT_PATH
from web.audit_anchor import AuditSigner
from web.heartbeat.ingest import AsyncHeartbeatIngest, HeartbeatIngest
from web.heartbeat.pending import Accepted

Answer = tuple[int, dict[str, object]]
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

SECURITY_HEADERS = [("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"),
                    ("Referrer-Policy", "same-origin"), ("Cache-Control", "no-store")]
_REASONS = {201: "201 Created", 400: "400 Bad Request", 401: "401 Unauthorized", 403: "403 Forbidden",
            405: "405 Method Not Allowed", 409: "409 Conflict", 413: "413 Content Too Large",
            500: "500 Internal Server Error", 503: "503 Service Unavailable"}


def refusal(status: int, error: str, message: str) -> Answer:
    """A refused heartbeat's status and answer, as every API refusal: {"error", "status", "message"}."""
    return status, {"error": error, "status": status, "message": message}


class HeartbeatDoor:
    """What both servers do with a heartbeat request: refuse it before reading it, answer it, encode it."""

    def __init__(self, clock: Callable[[], int], interval_s: int, max_body: int,
                 signer: AuditSigner | None = None, policy: dict[str, object] | None = None) -> None:
        self.clock = clock
        self.interval_s = interval_s
        self.policy = policy
        """The coverage policy (`Policy.as_json`): the station judges its runs with it (docs, "Heartbeat runs")."""
        self.max_body = max_body
        self.signer = signer

    def refused_early(self, method: str) -> Answer | None:
        """The refusal of a request before its body is read."""
        if method != "POST":
            return refusal(405, "MethodNotAllowed", "heartbeats are sent with POST")
        return None

    def too_large(self) -> Answer:
        return refusal(413, "TooLarge", f"a heartbeat is at most {self.max_body} bytes")

    def accepted(self, got: Accepted, now_us: int) -> Answer:
        doc: dict[str, object] = {
            "accepted": True, "heartbeat_id": got.heartbeat_id, "ok": got.ok, "reasons": got.reasons,
            "witnessed": got.witnessed, "heartbeat_interval_s": self.interval_s, "server_time_us": now_us}
        if self.policy is not None:
            doc["policy"] = self.policy
            doc["enrolled_at_us"] = got.enrolled_at_us
        if self.signer is not None and got.audit_head is not None:
            doc["audit_head"] = self.signer.head(*got.audit_head)
        return 201, doc

    @staticmethod
    def refused(err: IrmsError) -> Answer:
        return refusal(err.http_status, type(err).__name__, str(err))

    @staticmethod
    def encode(answer: Answer) -> tuple[bytes, list[tuple[str, str]]]:
        status, doc = answer
        body = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *SECURITY_HEADERS]
        if status == 405:
            headers.append(("Allow", "POST"))
        return body, headers

    # --- WSGI -----------------------------------------------------------------------------------------------

    def wsgi(self, app: Callable[..., Any], ingest: HeartbeatIngest) -> Callable[..., Any]:
        """WSGI middleware answering the heartbeat itself; everything else goes to `app`."""

        def middleware(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            if environ.get("PATH_INFO") != HEARTBEAT_PATH:
                return app(environ, start_response)
            answer = self._wsgi_answer(environ, ingest)
            body, headers = self.encode(answer)
            start_response(_REASONS.get(answer[0], f"{answer[0]} Error"), headers)
            return [body]

        return middleware

    def _wsgi_answer(self, environ: dict[str, Any], ingest: HeartbeatIngest) -> Answer:
        early = self.refused_early(str(environ.get("REQUEST_METHOD")))
        if early is not None:
            return early
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return refusal(400, "BadRequest", "Content-Length is not a number")
        if length > self.max_body:
            return self.too_large()
        raw = environ["wsgi.input"].read(length) if length > 0 else b""
        now = self.clock()
        try:
            got = ingest.ingest(_WsgiHeaders(environ), environ.get("SCRIPT_NAME", "") + HEARTBEAT_PATH, raw, now)
        except IrmsError as err:
            return self.refused(err)
        return self.accepted(got, now)

    # --- ASGI -----------------------------------------------------------------------------------------------

    async def asgi(self, ingest: AsyncHeartbeatIngest, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one heartbeat request on the event loop."""
        answer = await self._asgi_answer(ingest, scope, receive)
        body, headers = self.encode(answer)
        await send({"type": "http.response.start", "status": answer[0],
                    "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]})
        await send({"type": "http.response.body", "body": body})

    async def _asgi_answer(self, ingest: AsyncHeartbeatIngest, scope: Scope, receive: Receive) -> Answer:
        early = self.refused_early(scope["method"])
        if early is not None:
            return early
        raw = bytearray()
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if len(raw) > self.max_body:
                return self.too_large()
            if not message.get("more_body"):
                break
        now = self.clock()
        try:
            got = await ingest.ingest(_AsgiHeaders(scope["headers"]), scope.get("root_path", "") + HEARTBEAT_PATH,
                                      bytes(raw), now)
        except IrmsError as err:
            return self.refused(err)
        return self.accepted(got, now)


class _WsgiHeaders(Mapping[str, str]):
    """Request headers by their HTTP name, read from the WSGI environ (X-IRMS-Nonce: HTTP_X_IRMS_NONCE)."""

    def __init__(self, environ: dict[str, Any]) -> None:
        self.environ = environ

    def __getitem__(self, name: str) -> str:
        value = self.environ["HTTP_" + name.upper().replace("-", "_")]
        return str(value)

    def __iter__(self) -> Iterator[str]:
        return (k[5:].replace("_", "-").title() for k in self.environ if k.startswith("HTTP_"))

    def __len__(self) -> int:
        return sum(1 for k in self.environ if k.startswith("HTTP_"))


class _AsgiHeaders(Mapping[str, str]):
    """ASGI request headers by name, case-insensitively."""

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self.map = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw}

    def __getitem__(self, name: str) -> str:
        return self.map[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self.map)

    def __len__(self) -> int:
        return len(self.map)
