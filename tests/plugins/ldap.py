"""A real directory server on loopback: Debian's slapd as a child process (temp slapd.conf, mdb database in a
temp folder, a free port on 127.0.0.1), loaded with slapadd; never the system's slapd. Missing slapd is a
missing service (fails under IRMS_REQUIRE_SERVICES=1)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.plugins.base import missing_service
from tests.plugins.processes import Processes, free_port

SLAPD = "/usr/sbin/slapd"
SCHEMA = Path("/etc/ldap/schema")
SUFFIX = "dc=vks,dc=vn"
ADMIN_DN = f"cn=admin,{SUFFIX}"
ADMIN_PASSWORD = "directory-admin-secret"
SERVICE_DN = f"cn=irms-search,ou=services,{SUFFIX}"
SERVICE_PASSWORD = "irms-search-secret"


@dataclass
class Directory:
    url: str
    port: int
    people: str
    """The people branch: uid=<name>,<people>."""
    folder: Path
    procs: Processes
    conf: Path

    def add_person(self, uid: str, password: str, account: str | None = None) -> str:
        """A person (inetOrgPerson; `account` plays Active Directory's sAMAccountName in `description`)."""
        dn = f"uid={uid},{self.people}"
        ldif = (f"dn: {dn}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\n"
                f"description: {account or uid}\nuserPassword: {password}\n\n")
        subprocess.run(["ldapadd", "-x", "-H", self.url, "-D", ADMIN_DN, "-w", ADMIN_PASSWORD],
                       input=ldif, text=True, check=True, capture_output=True, timeout=30)
        return dn

    def stop(self) -> None:
        self.procs.stop_all()


def _wait_port(port: int, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"slapd did not listen on 127.0.0.1:{port} within {timeout} s")


@pytest.fixture
def directory(tmp_path: Path) -> Iterator[Directory]:
    if not Path(SLAPD).exists() or shutil.which("slapadd") is None or shutil.which("ldapadd") is None:
        missing_service("slapd and ldap-utils are not installed (scripts/install-system)")
    folder = tmp_path / "slapd"
    (folder / "data").mkdir(parents=True)
    conf = folder / "slapd.conf"
    conf.write_text("\n".join([
        *(f"include {SCHEMA / n}.schema" for n in ("core", "cosine", "inetorgperson", "nis")),
        "modulepath /usr/lib/ldap", "moduleload back_mdb",
        f"pidfile {folder / 'slapd.pid'}", f"argsfile {folder / 'slapd.args'}",
        "database mdb", "maxsize 10485760", f'suffix "{SUFFIX}"', f'rootdn "{ADMIN_DN}"',
        f"rootpw {ADMIN_PASSWORD}", f"directory {folder / 'data'}",
        # Passwords: only a bind reads them. The search account reads the rest; anonymous readers get nothing.
        "access to attrs=userPassword by anonymous auth by * none",
        f'access to * by dn.exact="{SERVICE_DN}" read by self read by anonymous auth by * none', ""]))
    base = (f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: VKS\ndc: vks\n\n"
            f"dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n"
            f"dn: ou=services,{SUFFIX}\nobjectClass: organizationalUnit\nou: services\n\n"
            f"dn: {SERVICE_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n"
            f"cn: irms-search\nuserPassword: {SERVICE_PASSWORD}\n\n")
    subprocess.run(["slapadd", "-f", str(conf), "-l", "/dev/stdin"], input=base, text=True, check=True,
                   capture_output=True, timeout=60)
    port = free_port()
    procs = Processes(tmp_path)
    proc = procs.spawn("slapd", [SLAPD, "-f", str(conf), "-h", f"ldap://127.0.0.1:{port}/", "-d", "0"], {},
                       folder)
    d = Directory(f"ldap://127.0.0.1:{port}/", port, f"ou=people,{SUFFIX}", folder, procs, conf)
    try:
        _wait_port(port)
        assert proc.popen.poll() is None, proc.tail()
        yield d
    finally:
        procs.stop_all()
