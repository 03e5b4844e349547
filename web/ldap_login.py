"""LDAP / Active Directory passwords for users whose `auth_source` is `ldap` (units that run a directory).

Only the password is the directory's: the user's role, units and whether they are enabled stay in IRMS
(web/users.py checks `active` first, so a user disabled in IRMS is refused whatever the directory says),
and the second factor (web/twofactor.py) applies on top. The password is checked by binding as the user:
their DN comes from `ldap_user_dn_template` ({username} escaped as an RDN value) or from a search under
`ldap_search_base` with `ldap_search_filter` ({username} escaped as a filter value), bound as
`ldap_bind_dn` (or anonymously). An empty password is never sent (an LDAP server takes it for an
anonymous bind and says yes). A directory that does not answer within `ldap_timeout_s` is one clear
error (503); local accounts keep working.
"""

from __future__ import annotations

import ldap3
from ldap3.core.exceptions import LDAPException, LDAPInvalidCredentialsResult
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn

from web.config import WebConfig
from web.errors import ConfigError, WebError


class DirectoryUnavailable(WebError):
    """The unit's LDAP directory does not answer (or refuses the service account)."""

    http_status = 503


def _server(cfg: WebConfig) -> ldap3.Server:
    if not cfg.ldap_url:
        raise ConfigError("this user logs in with the LDAP directory, but ldap_url is not set")
    # ldap3 reads the port up to the end: no trailing "/" (ldap://host:389/ is how URLs are often written)
    return ldap3.Server(cfg.ldap_url.rstrip("/"), connect_timeout=cfg.ldap_timeout_s, get_info=ldap3.NONE)


def _bind(server: ldap3.Server, cfg: WebConfig, dn: str | None, password: str | None) -> ldap3.Connection | None:
    """A bound connection, or None if the directory refuses the credentials."""
    conn = ldap3.Connection(server, user=dn, password=password, receive_timeout=cfg.ldap_timeout_s,
                            raise_exceptions=False, auto_referrals=False, read_only=True)
    try:
        if conn.bind():
            return conn
    except LDAPInvalidCredentialsResult:
        pass
    conn.unbind()
    return None


def user_dn(server: ldap3.Server, cfg: WebConfig, username: str) -> str | None:
    """The DN the user binds as: from the template, else the one entry the search finds (None: no such user)."""
    if cfg.ldap_user_dn_template:
        return cfg.ldap_user_dn_template.format(username=escape_rdn(username))
    if not cfg.ldap_search_base:
        raise ConfigError("set ldap_user_dn_template or ldap_search_base to find LDAP users")
    conn = _bind(server, cfg, cfg.ldap_bind_dn or None, cfg.ldap_bind_password or None)
    if conn is None:
        raise DirectoryUnavailable(f"the LDAP directory {cfg.ldap_url} refuses the service account "
                                   f"{cfg.ldap_bind_dn or '(anonymous)'}")
    try:
        conn.search(cfg.ldap_search_base, cfg.ldap_search_filter.format(username=escape_filter_chars(username)),
                    search_scope=ldap3.SUBTREE, attributes=[], size_limit=2, time_limit=cfg.ldap_timeout_s)
        found = [e["dn"] for e in conn.response or [] if e.get("type") == "searchResEntry"]
    finally:
        conn.unbind()
    return found[0] if len(found) == 1 else None


def password_ok(cfg: WebConfig, username: str, password: str) -> bool:
    """Whether the directory takes `password` for `username`; DirectoryUnavailable if it does not answer."""
    if not password:
        return False
    try:
        server = _server(cfg)
        dn = user_dn(server, cfg, username)
        if dn is None:
            return False
        conn = _bind(server, cfg, dn, password)
    except LDAPException as err:
        raise DirectoryUnavailable(f"the LDAP directory {cfg.ldap_url} does not answer "
                                   f"({type(err).__name__}); local accounts still log in") from None
    if conn is None:
        return False
    conn.unbind()
    return True
