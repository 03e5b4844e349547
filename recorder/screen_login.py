"""The investigators' PIN for the station screen: set at enrolment, asked before the screen shows anything.

The screen shows the suspect's name and the live picture and can pause and end a session, so it
answers only a browser that gave the station's screen PIN. The PIN is set on the station
(`irms-agent screen-pin`, or `irms-agent enroll --screen-pin-stdin`) and kept as an argon2 hash in
IRMS_HOME/screen-pin (0600): it works with the server unreachable. Wrong PINs are throttled: after
`FREE_TRIES` each further try waits `DELAY_S`, doubling with every failure up to `MAX_DELAY_S`
(the screen is one process on one station, so its memory holds the count). A login lasts
`LOGIN_S` or until "log out".
"""

from __future__ import annotations

import math
import os
import secrets
import threading
from collections.abc import Callable
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from recorder.errors import ConfigError, RecorderError

PIN_FILE = "screen-pin"
MIN_PIN = 6
FREE_TRIES = 5
DELAY_S = 30
MAX_DELAY_S = 900
LOGIN_S = 12 * 3600

_hasher = PasswordHasher()


class PinRefused(RecorderError):
    """A wrong PIN, or too many of them (then `wait_s` > 0)."""

    http_status = 401

    def __init__(self, message: str, wait_s: int = 0) -> None:
        super().__init__(message)
        self.wait_s = wait_s
        if wait_s:
            self.http_status = 429


def check_new_pin(pin: str) -> None:
    if not (MIN_PIN <= len(pin) <= 64) or not pin.isprintable():
        raise ConfigError(f"the screen PIN must be {MIN_PIN} to 64 printable characters")


def set_pin(home: Path, pin: str) -> Path:
    """Keep the argon2 hash of a new screen PIN in IRMS_HOME/screen-pin (0600), replacing any old one."""
    check_new_pin(pin)
    path = home / PIN_FILE
    home.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(PIN_FILE + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(_hasher.hash(pin) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def load_pin_hash(home: Path) -> str:
    """The stored PIN hash; a ConfigError naming the command that sets one if there is none."""
    try:
        text = (home / PIN_FILE).read_text().strip()
    except FileNotFoundError:
        raise ConfigError(f"no screen PIN in {home / PIN_FILE}: set one with `irms-agent screen-pin`") from None
    if not text.startswith("$argon2"):
        raise ConfigError(f"{home / PIN_FILE} does not hold a PIN hash: set it again with `irms-agent screen-pin`")
    return text


class ScreenLogins:
    """PIN checks (throttled) and the logins they open (random tokens, kept in this process)."""

    def __init__(self, pin_hash: str, monotonic: Callable[[], float]) -> None:
        if not pin_hash.startswith("$argon2"):
            raise ConfigError("the screen needs a PIN hash (irms-agent screen-pin)")
        self.pin_hash = pin_hash
        self.monotonic = monotonic
        self.lock = threading.Lock()
        self.failures = 0
        self.last_failure = 0.0
        self.tokens: dict[str, float] = {}

    def wait_s(self) -> int:
        if self.failures < FREE_TRIES:
            return 0
        delay = min(DELAY_S * 2 ** min(self.failures - FREE_TRIES, 20), MAX_DELAY_S)
        return max(0, int(math.ceil(self.last_failure + delay - self.monotonic())))

    def log_in(self, pin: str) -> str:
        """A new login's token if `pin` is right; PinRefused otherwise (429 while throttled)."""
        with self.lock:
            wait = self.wait_s()
            if wait:
                raise PinRefused(f"too many wrong PINs; try again in {wait} s", wait)
            try:
                _hasher.verify(self.pin_hash, pin)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                self.failures += 1
                self.last_failure = self.monotonic()
                raise PinRefused("wrong PIN") from None
            self.failures = 0
            now = self.monotonic()
            self.tokens = {t: exp for t, exp in self.tokens.items() if exp > now}
            token = secrets.token_urlsafe(32)
            self.tokens[token] = now + LOGIN_S
            return token

    def valid(self, token: object) -> bool:
        if not isinstance(token, str):
            return False
        with self.lock:
            expires = self.tokens.get(token)
            return expires is not None and expires > self.monotonic()

    def log_out(self, token: object) -> None:
        with self.lock:
            if isinstance(token, str):
                self.tokens.pop(token, None)
