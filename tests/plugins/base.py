"""Fixtures every test may use: an isolated IRMS home directory."""

from __future__ import annotations

import contextlib
import email.utils
import http.server
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# `make test` sets this: a test whose real service (PostgreSQL, S3, Chromium) is missing then fails.
REQUIRE_SERVICES = "IRMS_REQUIRE_SERVICES"


def missing_service(reason: str) -> None:
    """A real service a test needs is absent: skip on a developer's machine, fail under `make test`."""
    if os.environ.get(REQUIRE_SERVICES) == "1":
        pytest.fail(f"{reason} ({REQUIRE_SERVICES}=1: a missing service is a failure)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def irms_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh IRMS_HOME (keys, journal, spool, trust anchors) for one test."""
    home = tmp_path / "irms-home"
    home.mkdir()
    monkeypatch.setenv("IRMS_HOME", str(home))
    yield home


@contextlib.contextmanager
def loopback_http(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """`handler` served on a free loopback port in a thread until the block ends; yields http://127.0.0.1:PORT."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextlib.contextmanager
def date_server(skew_s: float = 0.0) -> Iterator[str]:
    """A loopback HTTP server answering HEAD with a Date header `skew_s` seconds off this machine's clock:
    the time reference a station's pre-flight measures its clock against."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
            self.send_response(204)
            self.end_headers()

        def date_time_string(self, timestamp: float | None = None) -> str:
            return email.utils.formatdate(time.time() + skew_s, usegmt=True)

        def log_message(self, *args: Any) -> None:
            pass

    with loopback_http(Handler) as base:
        yield base + "/"
