"""The server's one configuration model: TOML file plus IRMS_WEB_* environment overrides.

Defaults run everything on one machine: an SQLite file under $IRMS_HOME (or the
instance folder). Unknown keys are errors that name the key and the file.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from web.errors import ConfigError

ENV_PREFIX = "IRMS_WEB_"


class WebConfig(BaseModel):
    """Everything the server reads at start. Times are seconds, sizes bytes."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    database_url: str = ""
    """SQLAlchemy URL; empty means sqlite:///$IRMS_HOME/web.db (or the instance folder)."""
    secret_key: str = ""
    """Signs session cookies and CSRF tokens; empty makes a random one per process (dev only)."""
    heartbeat_interval_s: int = Field(default=60, gt=0)
    clock_tolerance_s: int = Field(default=2, ge=0)
    min_disk_free_bytes: int = Field(default=5 * 2**30, ge=0)
    required_probe_kinds: tuple[str, ...] = ("camera", "mic")
    """A room works only if its heartbeat carries at least one passing probe of each kind."""
    selftest_max_age_s: int = Field(default=26 * 3600, ge=0)
    """R19: a room needs a passing daily self-test no older than this (26 h) to count as working; 0: off."""
    selftest_grace_s: int = Field(default=26 * 3600, ge=0)
    """After its station's enrolment a room counts as working this long without a self-test."""
    request_window_s: int = Field(default=300, gt=0)
    """Signed station requests older or newer than this are refused as stale."""
    enrollment_code_ttl_s: int = Field(default=7 * 86400, gt=0)
    login_max_failures: int = Field(default=5, gt=0)
    """Failed logins per (username, client address) before each further attempt must wait."""
    login_window_s: int = Field(default=900, gt=0)
    """Failed logins older than this are forgotten; also the longest wait."""
    login_delay_s: int = Field(default=30, gt=0)
    """The first wait after login_max_failures; it doubles with each further failure."""
    trusted_proxies: tuple[str, ...] = ()
    """Addresses or networks (e.g. 127.0.0.1, 10.0.0.0/24) of the reverse proxies whose X-Forwarded-For is
    believed; empty: the header is ignored and the client is the connection's peer."""
    body_timeout_s: int = Field(default=10, gt=0)
    """A request body must arrive within this (else 408); the served server reads bodies before a thread runs."""
    max_body_readers: int = Field(default=256, gt=0)
    """Request bodies read at once per worker process; more are refused with 503 at once."""
    session_lifetime_s: int = Field(default=8 * 3600, gt=0)
    totp_required_roles: tuple[str, ...] = ("prosecutor", "admin")
    """Roles that must give a TOTP code after the password (enrolment at their first login); any user who
    enrolled is asked for a code whatever the role."""
    totp_issuer: str = "IRMS"
    """The issuer name authenticator apps show beside the account."""
    ldap_url: str = ""
    """The unit's directory, e.g. ldaps://dc1.vks.local/ (users with auth_source ldap); empty: no LDAP logins."""
    ldap_user_dn_template: str = ""
    """The DN a user binds as, `{username}` replaced (escaped), e.g. uid={username},ou=people,dc=vks,dc=vn;
    empty: search for it under ldap_search_base."""
    ldap_search_base: str = ""
    ldap_search_filter: str = "(sAMAccountName={username})"
    """The search that finds the user's DN when there is no template (Active Directory's account name)."""
    ldap_bind_dn: str = ""
    """The service account the search binds as; empty: an anonymous search."""
    ldap_bind_password: str = ""
    """Secret: never logged (IRMS_WEB_LDAP_BIND_PASSWORD or the config file, mode 0600)."""
    ldap_timeout_s: int = Field(default=5, gt=0)
    """Connecting to and answering from the directory must each take no longer than this."""
    timezone: str = "Asia/Ho_Chi_Minh"
    default_language: Literal["vi", "en"] = "vi"
    metrics_token: str = ""
    """Bearer token for /metrics; without one, /metrics answers loopback clients only."""
    trend_days: int = Field(default=30, gt=0, le=366)
    trend_cache_s: int = Field(default=300, ge=0)
    """Past days of the trend are kept this long per process (late heartbeats show up after it); 0: off."""
    audit_key_path: str = ""
    """The server's Ed25519 key signing audit chain heads (outside the database); empty: audit-signing.key
    beside the database (0600, made once)."""
    audit_tsa_url: str = ""
    """The RFC 3161 time-stamping authority `irms-web audit timestamp` asks for tokens over the audit head."""
    audit_timestamp_interval_s: int = Field(default=3600, gt=0)
    """`irms-web audit timestamp` asks again for an unchanged head only after this long."""
    alert_after_s: int = Field(default=300, ge=0)
    """A room must have failed this long before its alert is told (a blip that heals sooner is never told)."""
    alert_smtp_host: str = ""
    """SMTP server for alert e-mail; empty: no e-mail."""
    alert_smtp_port: int = Field(default=25, gt=0, lt=65536)
    alert_smtp_starttls: bool = False
    alert_smtp_user: str = ""
    alert_smtp_password: str = ""
    """Secret: never logged (IRMS_ALERT_SMTP_PASSWORD or the config file, mode 0600)."""
    alert_mail_from: str = "irms@localhost"
    alert_mail_to: tuple[str, ...] = ()
    alert_webhook_url: str = ""
    """POSTed a JSON notice for each alert and all clear; empty: no webhook."""
    alert_webhook_secret: str = ""
    """Signs each webhook body: X-IRMS-Signature: sha256=<hex HMAC-SHA256 of the body>."""
    testing: bool = False
    cookie_secure: bool = False
    store_url: str = ""
    """The object store the stations upload to (a directory, file:///dir or s3://...); needed for sessions."""
    data_key_cache_s: int = Field(default=900, ge=0)
    """Unwrapped session data keys stay in the custody holder's memory this long for replay (one audit entry
    per prosecutor, session and data key in that time)."""
    custody_socket: str = ""
    """The custody holder's Unix socket (0600 in a 0700 folder); empty: custody/holder.sock beside the database."""
    pkcs11_module: str = ""
    """PKCS#11 module for hardware custody, e.g. /usr/lib/softhsm/libsofthsm2.so; empty: keys sealed at rest."""
    pkcs11_token: str = ""
    """The label of the token that holds the custodian key (`irms-web custodian new --pkcs11`)."""
    export_dir: str = ""
    """Where sealed copies are built and kept (web/export_jobs.py); empty: exports/ beside the database. Nodes
    behind one proxy share it (the copy is downloaded from whichever node answers)."""
    export_keep_s: int = Field(default=86400, ge=60)
    """A finished sealed copy's file is removed this long after it was sealed (its job and audit entries stay)."""
    verify_recheck_s: int = Field(default=60, ge=0)
    verify_on_list: int = Field(default=3, ge=0)
    """How many ended, not yet verified sessions a sessions list view verifies on the spot."""
    """A session not yet verified (still recording, upload pending) is verified again on view after this."""

    @field_validator("totp_required_roles")
    @classmethod
    def _roles(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        roles = ("investigator", "prosecutor", "it_staff", "auditor", "admin")  # web.models.Role
        for item in value:
            if item not in roles:
                raise ValueError(f"{item!r} is not one of {', '.join(roles)}")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
        return value

    def resolved_database_url(self, instance_dir: Path) -> str:
        if self.database_url:
            return self.database_url
        folder = self.data_dir(instance_dir)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        return f"sqlite:///{folder / 'web.db'}"

    def data_dir(self, instance_dir: Path) -> Path:
        home = os.environ.get("IRMS_HOME")
        return Path(home).expanduser() if home else instance_dir

    def resolved_audit_key(self, instance_dir: Path) -> Path:
        return Path(self.audit_key_path) if self.audit_key_path else self.data_dir(instance_dir) / "audit-signing.key"

    def resolved_custody_socket(self, instance_dir: Path) -> Path:
        if self.custody_socket:
            return Path(self.custody_socket)
        return self.data_dir(instance_dir) / "custody" / "holder.sock"

    def resolved_export_dir(self, instance_dir: Path) -> Path:
        return Path(self.export_dir) if self.export_dir else self.data_dir(instance_dir) / "exports"

    def resolved_secret(self, instance_dir: Path) -> str:
        """The configured key; else one kept in web-secret-key (0600) beside the database, made once."""
        if self.secret_key:
            return self.secret_key
        if self.testing:
            return secrets.token_hex(32)
        path = self.data_dir(instance_dir) / "web-secret-key"
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = secrets.token_hex(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()
        with os.fdopen(fd, "w") as fh:
            fh.write(key + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        return key


def _coerce_env(name: str, raw: str, field_type: Any) -> Any:
    """Environment values are text: turn them into the field's type, strictly."""
    text = raw.strip()
    if field_type is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"environment {name}={raw!r} is not a boolean")
    if field_type is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"environment {name}={raw!r} is not an integer") from None
    if field_type == tuple[str, ...]:
        return tuple(p.strip() for p in text.split(",") if p.strip())
    return text


def load_config(path: Path | None = None, env: Mapping[str, str] | None = None,
                **overrides: Any) -> WebConfig:
    """Read `path` (TOML, optional), then IRMS_WEB_<KEY> variables, then keyword overrides."""
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    where = "defaults"
    if path is None and env.get("IRMS_WEB_CONFIG"):
        path = Path(env["IRMS_WEB_CONFIG"])
    if path is not None:
        where = str(path)
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"configuration file {path} not found") from None
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise ConfigError(f"configuration file {path} is unreadable: {err}") from None
        for key in data:
            if key not in WebConfig.model_fields:
                raise ConfigError(f"unknown key {key!r} in {path}")
        for key, value in list(data.items()):
            if isinstance(value, list):
                data[key] = tuple(value)
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or name == "IRMS_WEB_CONFIG":
            continue
        key = name[len(ENV_PREFIX):].lower()
        field = WebConfig.model_fields.get(key)
        if field is None:
            raise ConfigError(f"unknown setting {name} in the environment")
        data[key] = _coerce_env(name, raw, field.annotation)
    data.update(overrides)
    try:
        return WebConfig(**data)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"setting {loc!r} ({where}): {first['msg']}") from None
