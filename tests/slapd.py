"""A real OpenLDAP server (Debian's `slapd`) for the directory tests, in a temporary directory
with its own slapd.conf, an mdb database, the memberof overlay, and a test tree: never the
system's slapd (Debian's postinst may start one on port 389) nor its configuration.

It listens on ldap:// (StartTLS too) and ldaps:// on free ports of localhost, with a server
certificate for "localhost" from a `nac certs init` lab CA.  On a host where AppArmor confines
/usr/sbin/slapd to its usual paths, the temporary directory is refused: then the tests skip
outside CI and fail inside it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Final

import pytest

from nac.eap.certs import init as certs_init

SLAPD: Final = "/usr/sbin/slapd"
SUFFIX: Final = "dc=nac,dc=test"
ROOT_DN: Final = f"cn=admin,{SUFFIX}"
ROOT_PASSWORD: Final = "root secret"
SERVICE_DN: Final = f"cn=nac,ou=services,{SUFFIX}"
SERVICE_PASSWORD: Final = "service secret"
PEOPLE: Final = f"ou=people,{SUFFIX}"
GROUPS: Final = f"ou=groups,{SUFFIX}"
#: uid -> (password, groups); client.nac.lab is the CN of the lab client certificate (EAP-TLS).
USERS: Final = {
    "carol": ("carol's password", ("staff", "Printers")),
    "dave": ("dave's password", ()),
    "client.nac.lab": ("unused device password", ("devices",)),
    "alice": ("alice in the directory", ("staff",)),
}
START_TIMEOUT: Final = 10.0


def _conf(root: Path, pki: Path) -> str:
    schema = "/etc/ldap/schema"
    return f"""
include {schema}/core.schema
include {schema}/cosine.schema
include {schema}/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile {root}/slapd.pid
argsfile {root}/slapd.args
TLSCACertificateFile {pki}/ca.pem
TLSCertificateFile {pki}/server.pem
TLSCertificateKeyFile {pki}/server.key
database mdb
maxsize 16777216
suffix "{SUFFIX}"
rootdn "{ROOT_DN}"
rootpw "{ROOT_PASSWORD}"
directory {root}/db
overlay memberof
access to attrs=userPassword by anonymous auth by self write by * none
access to * by users read by anonymous auth
"""


def _people() -> str:
    out = [
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: nac test\ndc: nac\n",
        f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n",
        f"dn: ou=services,{SUFFIX}\nobjectClass: organizationalUnit\nou: services\n",
        f"dn: {SERVICE_DN}\nobjectClass: person\ncn: nac\nsn: service\nuserPassword: {SERVICE_PASSWORD}\n",
    ]
    for uid, (password, _) in USERS.items():
        out.append(
            f"dn: uid={uid},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\n"
            f"mail: {uid}@nac.test\nuserPassword: {password}\n"
        )
    return "\n".join(out)


def _groups() -> str:
    """Added through the running server, so the memberof overlay writes each user's memberOf."""
    names = sorted({g for _, groups in USERS.values() for g in groups})
    out = [f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups\n"]
    for name in names:
        members = "".join(f"member: uid={u},{PEOPLE}\n" for u, (_, gs) in USERS.items() if name in gs)
        out.append(f"dn: cn={name},{GROUPS}\nobjectClass: groupOfNames\ncn: {name}\n{members}")
    return "\n".join(out)


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Slapd:
    def __init__(self, root: Path) -> None:
        if not Path(SLAPD).exists() or shutil.which("ldapadd") is None:
            reason = "slapd and ldap-utils (Debian packages slapd, ldap-utils) are not installed"
            if os.environ.get("CI"):
                pytest.fail(f"{reason}, but CI is set and CI installs them", pytrace=False)
            pytest.skip(reason)
        self.root = root
        self.pki = root / "pki"
        certs_init(self.pki, server_name="localhost")
        (root / "db").mkdir()
        self.conf = root / "slapd.conf"
        self.conf.write_text(_conf(root, self.pki))
        (root / "people.ldif").write_text(_people())
        (root / "groups.ldif").write_text(_groups())
        subprocess.run(
            ["slapadd", "-f", str(self.conf), "-l", str(root / "people.ldif")],
            check=True,
            capture_output=True,
            timeout=30,
        )
        self.proc: subprocess.Popen[bytes] | None = None
        for _ in range(3):  # a free port is free only when looked at: on new ones if taken since
            self.port, self.tls_port = free_tcp_port(), free_tcp_port()
            if self.start(fail=False):
                break
        else:
            self.start()
        groups = str(root / "groups.ldif")
        subprocess.run(
            ["ldapadd", "-x", "-H", self.url, "-D", ROOT_DN, "-w", ROOT_PASSWORD, "-f", groups],
            check=True,
            capture_output=True,
            timeout=30,
        )

    @property
    def url(self) -> str:
        return f"ldap://localhost:{self.port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://localhost:{self.tls_port}"

    def start(self, *, fail: bool = True) -> bool:
        """Start slapd and wait until it listens; False if it exited first (and not ``fail``)."""
        log = (self.root / "slapd.log").open("ab")
        self.proc = subprocess.Popen(
            [SLAPD, "-f", str(self.conf), "-h", f"{self.url}/ {self.ldaps_url}/", "-d", "0"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if not fail:
                    self.proc = None
                    return False
                text = (self.root / "slapd.log").read_text(errors="replace")
                pytest.fail(f"slapd exited ({self.proc.returncode}):\n{text[-3000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.tls_port), timeout=0.2).close()
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                time.sleep(0.05)
        pytest.fail(f"slapd did not listen within {START_TIMEOUT} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def password_file(self) -> Path:
        path = self.root / "service-password"
        path.write_text(SERVICE_PASSWORD + "\n")
        return path
