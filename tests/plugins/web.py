"""The web server as a fixture: the app served on loopback for the agent and browser tests.

Register with `-p tests.plugins.web` (or in tests/conftest.py's pytest_plugins). The browser
itself (Debian's Chromium through Playwright, `chromium_page`, `artifacts_dir`) comes from
tests/plugins/browser.py; `playwright install` is never needed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server


def pytest_configure(config: pytest.Config) -> None:
    try:
        from playwright.sync_api import expect
    except ImportError:  # pragma: no cover - playwright is a test dependency
        return
    expect.set_options(timeout=15_000)  # a loaded 2-core machine can take more than the default 5 s


@pytest.fixture
def live_server() -> Iterator[Callable[[Flask], str]]:
    """Serve an app on 127.0.0.1 (a free port) in a thread; returns its base URL. Stopped after the test."""
    servers: list[tuple[BaseWSGIServer, threading.Thread]] = []

    def serve(app: Flask) -> str:
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, name="irms-live-server", daemon=True)
        thread.start()
        servers.append((server, thread))
        return f"http://127.0.0.1:{server.server_port}"

    yield serve
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
