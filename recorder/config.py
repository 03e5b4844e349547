"""The station's configuration: one strict model, from IRMS_HOME/station.toml plus
IRMS_* environment overrides; the defaults run everything on one machine."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from recorder.errors import ConfigError, first_problem

MARKER_LABELS = ("rights read", "suspect asks for counsel", "break", "statement begins")
MARKER_MAX = 80
"""A marker's label: at most this many characters."""


class StationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min_free_bytes: int = Field(default=512 * 1024 * 1024, ge=0)
    watchdog_s: float = Field(default=10.0, gt=0)
    health_every_s: float = Field(default=10.0, gt=0)
    retention_days: int = Field(default=0, ge=0)
    drain_timeout_s: float = Field(default=300.0, ge=0)
    server_url: str = ""
    heartbeat_interval_s: float = Field(default=30.0, gt=0)
    clock_tolerance_s: float = Field(default=2.0, gt=0)
    # RFC 3161 time-stamping authority asked for a token over every sealed manifest ("" = none).
    tsa_url: str = ""
    # While recording, a token over the latest chain head at most this often (0 = manifests only).
    tsa_heads_every_s: float = Field(default=60.0, ge=0)
    # Filled into the hardware profile's device URL templates; the password is never logged.
    camera_host: str = ""
    camera_host2: str = ""
    camera_user: str = ""
    camera_password: str = ""
    # The daily self-test the daemon (`irms-agent run`) schedules (R19): local time "HH:MM" ("" = none),
    # the store, site and room its clip goes to, a random start delay of up to selftest_jitter_s, and how
    # long it waits while a session records before asking again.
    selftest_at: str = ""
    selftest_store: str = ""
    selftest_site: str = ""
    selftest_room: str = ""
    selftest_seconds: float = Field(default=6.0, gt=0)
    selftest_jitter_s: float = Field(default=900.0, ge=0)
    selftest_retry_s: float = Field(default=60.0, gt=0)
    # Measured device latencies ("camera.<role>" / "microphone.<role>" -> ms), written by `irms-agent calibrate`.
    latency_ms: dict[str, int] = Field(default_factory=dict)
    # Whom the investigator calls when the station screen says "call the IT desk": the unit's IT desk, a name
    # and a phone number ("" = the screen says only "the IT desk").
    support_contact: str = Field(default="", max_length=200)
    # The short labels the investigator may give a marker (the unit's list; a marker may also have none).
    marker_labels: list[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)]] = \
        Field(default_factory=lambda: list(MARKER_LABELS), max_length=20)

    def credentials(self) -> dict[str, str]:
        return {"host": self.camera_host, "host2": self.camera_host2, "user": self.camera_user,
                "password": self.camera_password}


def load_config(home: Path) -> StationConfig:
    """Read station.toml (optional) and apply IRMS_<FIELD> overrides; unknown keys are errors."""
    path = home / "station.toml"
    raw: dict[str, object] = {}
    if path.exists():
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise ConfigError(f"station configuration {path} is unreadable: {err}") from None
    for name in StationConfig.model_fields:
        env = os.environ.get(f"IRMS_{name.upper()}")
        if env is not None:
            raw[name] = env
    try:
        return StationConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(f"station configuration {path}: {first_problem(err)}") from None


def save_latency(home: Path, key: str, value_ms: int) -> Path:
    """Record a calibrated latency in station.toml, keeping every other setting."""
    path = home / "station.toml"
    raw: dict[str, object] = {}
    if path.exists():
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    table = dict(raw.get("latency_ms", {}) or {})  # type: ignore[call-overload]
    table[key] = value_ms
    raw["latency_ms"] = table
    StationConfig.model_validate(raw)
    lines = []
    for name, value in raw.items():
        if not isinstance(value, dict):
            lines.append(f"{name} = {_toml_value(value)}")
    for name, value in raw.items():
        if isinstance(value, dict):
            lines.append(f"\n[{name}]")
            lines.extend(f'"{k}" = {_toml_value(v)}' for k, v in sorted(value.items()))
    from evidence.durable import write_durable

    write_durable(path, ("\n".join(lines) + "\n").encode(), mode=0o600)
    return path


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'
