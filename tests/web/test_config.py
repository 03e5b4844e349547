"""The configuration model: TOML, environment overrides, unknown keys named with their file."""

from __future__ import annotations

from pathlib import Path

import pytest

from web.config import load_config
from web.errors import ConfigError


def test_defaults_and_toml(tmp_path: Path) -> None:
    assert load_config(env={}).heartbeat_interval_s == 60
    f = tmp_path / "web.toml"
    f.write_text('database_url = "sqlite:////tmp/x.db"\nheartbeat_interval_s = 30\n'
                 'required_probe_kinds = ["camera"]\n')
    cfg = load_config(f, env={})
    assert (cfg.database_url, cfg.heartbeat_interval_s, cfg.required_probe_kinds) == (
        "sqlite:////tmp/x.db", 30, ("camera",))
    with pytest.raises(Exception, match="frozen"):
        cfg.heartbeat_interval_s = 5  # type: ignore[misc]


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    f = tmp_path / "web.toml"
    f.write_text("heartbeat_intervall_s = 30\n")
    with pytest.raises(ConfigError, match=rf"unknown key 'heartbeat_intervall_s' in {f}"):
        load_config(f, env={})
    with pytest.raises(ConfigError, match="IRMS_WEB_NOPE"):
        load_config(env={"IRMS_WEB_NOPE": "1"})


def test_env_overrides_file(tmp_path: Path) -> None:
    f = tmp_path / "web.toml"
    f.write_text("heartbeat_interval_s = 30\ncookie_secure = false\n")
    cfg = load_config(f, env={"IRMS_WEB_HEARTBEAT_INTERVAL_S": "15", "IRMS_WEB_COOKIE_SECURE": "yes",
                              "IRMS_WEB_REQUIRED_PROBE_KINDS": "camera, mic, other"})
    assert cfg.heartbeat_interval_s == 15 and cfg.cookie_secure is True
    assert cfg.required_probe_kinds == ("camera", "mic", "other")


def test_wrong_types_are_refused(tmp_path: Path) -> None:
    f = tmp_path / "web.toml"
    f.write_text('heartbeat_interval_s = "60"\n')
    with pytest.raises(ConfigError, match=rf"heartbeat_interval_s.*{f}"):
        load_config(f, env={})
    with pytest.raises(ConfigError, match="not an integer"):
        load_config(env={"IRMS_WEB_HEARTBEAT_INTERVAL_S": "soon"})
    with pytest.raises(ConfigError, match="heartbeat_interval_s"):
        load_config(env={"IRMS_WEB_HEARTBEAT_INTERVAL_S": "0"})
    f.write_text("this is not toml")
    with pytest.raises(ConfigError, match="unreadable"):
        load_config(f, env={})


def test_default_database_lives_under_irms_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IRMS_HOME", str(tmp_path / "home"))
    assert load_config(env={}).resolved_database_url(tmp_path / "inst") == f"sqlite:///{tmp_path}/home/web.db"
    secret = load_config(env={}).resolved_secret(tmp_path / "inst")
    assert secret == load_config(env={}).resolved_secret(tmp_path / "inst")  # made once, kept
    assert (tmp_path / "home" / "web-secret-key").stat().st_mode & 0o077 == 0
