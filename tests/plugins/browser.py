"""A real browser for tests: Debian's headless Chromium driven by Playwright.

Never `playwright install`: the browser is /usr/bin/chromium (apt package `chromium`).
`chromium` / `chromium_page` launch it through pytest-playwright's session `playwright`
instance (so they coexist with pytest-playwright's own `page` fixture), and
`browser_type_launch_args` points pytest-playwright's `browser` and `page` at the same binary.
Screenshots for people go to `artifacts_dir` (test-artifacts/ at the repository root).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.base import missing_service

CHROMIUM = os.environ.get("IRMS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _need_chromium() -> None:
    if not Path(CHROMIUM).exists():
        missing_service(f"no Chromium at {CHROMIUM} (apt-get install --no-install-recommends chromium)")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """pytest-playwright's launch options, pointed at Debian's Chromium."""
    args = [*browser_type_launch_args.get("args", []), *CHROMIUM_ARGS]
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "headless": True,
            "args": list(dict.fromkeys(args))}


@pytest.fixture(scope="session")
def chromium(playwright: Any) -> Iterator[Any]:
    """One headless Chromium for the test session."""
    _need_chromium()
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def chromium_page(chromium: Any) -> Iterator[Any]:
    """A fresh page (own context: cookies, storage) in Vietnamese locale and Vietnam time."""
    context = chromium.new_context(locale="vi-VN", timezone_id="Asia/Ho_Chi_Minh",
                                   viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests keep screenshots and other files for people to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


# Draws the <video id=player> frame onto a canvas: mean brightness, colour count, time and duration.
VIDEO_FRAME_JS = """() => {
  const v = document.getElementById('player');
  const c = document.createElement('canvas');
  c.width = 160; c.height = 90;
  const g = c.getContext('2d');
  g.drawImage(v, 0, 0, c.width, c.height);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  let sum = 0; const colours = new Set();
  for (let i = 0; i < d.length; i += 4) {
    sum += d[i] + d[i + 1] + d[i + 2];
    colours.add((d[i] >> 4) << 8 | (d[i + 1] >> 4) << 4 | (d[i + 2] >> 4));
  }
  return {mean: sum / (d.length / 4) / 3, colours: colours.size, t: v.currentTime, d: v.duration};
}"""


def play_and_check_picture(page: Any, timeout_ms: int) -> dict[str, Any]:
    """Play <video id=player>: it must reach 1 s, show a real picture (not black) and keep advancing."""
    page.evaluate("() => document.getElementById('player').play()")
    page.wait_for_function("() => document.getElementById('player').currentTime > 1.0", timeout=timeout_ms)
    frame = page.evaluate(VIDEO_FRAME_JS)
    assert frame["mean"] > 20 and frame["colours"] > 20, frame  # a real picture, not black
    page.wait_for_function(f"() => document.getElementById('player').currentTime > {frame['t'] + 0.5}",
                           timeout=timeout_ms)
    return dict(frame)


def seek_and_check_picture(page: Any, target: float, timeout_ms: int) -> float:
    """Seek <video id=player> to `target`: it must land within 0.6 s, play on and show a real picture."""
    page.evaluate(f"""() => new Promise(done => {{
        const v = document.getElementById('player');
        v.addEventListener('seeked', () => done(), {{once: true}});
        v.currentTime = {target};
    }})""")
    landed = float(page.evaluate("() => document.getElementById('player').currentTime"))
    assert abs(landed - target) < 0.6, (landed, target)
    page.wait_for_function(f"() => document.getElementById('player').currentTime > {landed + 0.3}",
                           timeout=timeout_ms)
    after = page.evaluate(VIDEO_FRAME_JS)
    assert after["mean"] > 20 and after["colours"] > 20, after
    return landed


def log_in(page: Any, base: str, username: str, password: str) -> None:
    """The login form at `base`, filled in and sent as a user does (what follows is the caller's to expect)."""
    page.goto(base + "/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("#login-form button[type=submit]")
