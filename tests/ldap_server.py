"""A private OpenLDAP server for tests: the LDAP check is only worth testing against a real directory.

`Slapd` writes a throwaway configuration (mdb database, the Debian schema files, a CA and a server
certificate made on the spot), starts slapd in the foreground on free high ports of 127.0.0.1 with plain
LDAP (StartTLS offered) and LDAPS, loads a few base entries with ldapadd, and removes everything on stop.

If slapd or the OpenLDAP client tools are missing, `find_slapd` raises: the tests that use it fail with
an explanation, they never skip.
"""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Literal

import pytest

from simulators.pki import Authority

SCHEMA_DIR = Path("/etc/ldap/schema")
SCHEMAS = ("core", "cosine", "inetorgperson", "nis")
MODULE_DIR = Path("/usr/lib/ldap")
INSTALL_HINT = (
    "install the OpenLDAP server and client tools first, e.g. "
    "`apt-get update && apt-get install -y slapd ldap-utils` (Debian/Ubuntu); .ci/run does this"
)
# Debian keeps slapd and slappasswd in /usr/sbin, which is not on every user's PATH.
_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/sbin"])


class SlapdNotInstalled(RuntimeError):
    """slapd or ldapadd is missing: the LDAP tests cannot run and must say how to fix it."""


def find_program(name: str) -> str:
    """Absolute path of an OpenLDAP program, or SlapdNotInstalled naming the package to install."""
    path = shutil.which(name, path=_SEARCH_PATH)
    if path is None:
        raise SlapdNotInstalled(f"{name} was not found; {INSTALL_HINT}.")
    return path


def find_slapd() -> str:
    """The slapd binary; also checks for the tools the helper needs, so a half installation fails early."""
    slapd = find_program("slapd")
    for tool in ("ldapadd", "slappasswd"):
        find_program(tool)
    missing = [str(SCHEMA_DIR / f"{name}.schema") for name in SCHEMAS if not (SCHEMA_DIR / f"{name}.schema").is_file()]
    if missing:
        raise SlapdNotInstalled(f"schema files {', '.join(missing)} are missing; {INSTALL_HINT}.")
    return slapd


def free_ports(count: int) -> list[int]:
    """Distinct ports the kernel considers free right now (slapd binds them a moment later; start() retries)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _write_tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost (simulators/pki.py); returns (ca, cert,
    key) paths. slapd runs as the current user (no -u), so the key's owner-only permissions are enough."""
    authority = Authority()
    ca_file = directory / "ca.pem"
    ca_file.write_text(authority.cert_pem)
    cert_file, key_file = authority.server().write(directory, "server")
    return ca_file, cert_file, key_file


class Slapd:
    """One private slapd: `start()`, then use `ldap_url` / `ldaps_url` / `ca_file` and the admin credentials.

    The base entries are the suffix (an organization), ou=users with one inetOrgPerson (user_dn, which can
    bind with user_password) and ou=groups with one group (private_dn). Anonymous clients may read everything
    but passwords and private_dn; the admin (the rootdn) may do anything.
    """

    root_dn = "dc=example,dc=com"
    domain_name = "example.com"
    admin_dn = "cn=admin,dc=example,dc=com"
    users_dn = "ou=users,dc=example,dc=com"
    groups_dn = "ou=groups,dc=example,dc=com"
    user_dn = "uid=alice,ou=users,dc=example,dc=com"
    private_dn = "cn=admins,ou=groups,dc=example,dc=com"  # hidden from anonymous clients

    def __init__(self, base_dir: str | os.PathLike[str] | None = None, *, tls: bool = True,
                 start_timeout: float = 10.0) -> None:
        self.base_dir = Path(base_dir) if base_dir is not None else None
        self.tls = tls
        self.start_timeout = start_timeout
        # Random per run, so no test can pass by guessing, and a leaked value is worthless.
        self.admin_password = "admin-" + secrets.token_urlsafe(12)
        self.user_password = "alice-" + secrets.token_urlsafe(12)
        self.host = "127.0.0.1"
        self.ldap_port = 0
        self.ldaps_port: int | None = None
        self.ca_file: str | None = None
        self.directory: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # --- URLs -------------------------------------------------------------------------------------------

    @property
    def ldap_url(self) -> str:
        return f"ldap://{self.host}:{self.ldap_port}"

    @property
    def ldaps_url(self) -> str:
        if self.ldaps_port is None:
            raise RuntimeError("this slapd was started without TLS: it has no ldaps:// listener")
        return f"ldaps://{self.host}:{self.ldaps_port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # --- Life cycle -------------------------------------------------------------------------------------

    def start(self, attempts: int = 3) -> Slapd:
        """Start slapd and load the base entries. A port taken between choosing and binding it is retried."""
        if self._process is not None:
            raise RuntimeError("slapd is already started")
        slapd = find_slapd()
        self.directory = Path(tempfile.mkdtemp(prefix="slapd-", dir=self.base_dir))
        try:
            (self.directory / "data").mkdir()
            tls_files = _write_tls_files(self.directory) if self.tls else None
            if tls_files is not None:
                self.ca_file = str(tls_files[0])
            for attempt in range(attempts):
                ports = free_ports(2 if self.tls else 1)
                self.ldap_port = ports[0]
                self.ldaps_port = ports[1] if self.tls else None
                self._write_config(tls_files)
                if self._launch(slapd):
                    break
                if attempt == attempts - 1 or "already in use" not in self.log_text():
                    raise RuntimeError(f"slapd did not start; its log says:\n{self.log_text()[-4000:]}")
            self._load_base_entries()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop slapd (SIGTERM, then SIGKILL after 10 s) and remove its files. Safe to call twice."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self) -> Slapd:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def log_text(self) -> str:
        """What slapd wrote to stderr so far, for error messages."""
        if self.directory is None or not (self.directory / "slapd.log").exists():
            return ""
        return (self.directory / "slapd.log").read_text(errors="replace")

    # --- Internals --------------------------------------------------------------------------------------

    def _write_config(self, tls_files: tuple[Path, Path, Path] | None) -> None:
        assert self.directory is not None
        rootpw = subprocess.run(
            [find_program("slappasswd"), "-s", self.admin_password],
            check=True, capture_output=True, text=True, timeout=30,
        ).stdout.strip()
        lines = [f"include {SCHEMA_DIR / name}.schema" for name in SCHEMAS]
        lines += [
            f"pidfile {self.directory / 'slapd.pid'}",
            f"argsfile {self.directory / 'slapd.args'}",
            f"modulepath {MODULE_DIR}",
            "moduleload back_mdb",
        ]
        if tls_files is not None:
            ca_file, cert_file, key_file = tls_files
            lines += [
                f"TLSCACertificateFile {ca_file}",
                f"TLSCertificateFile {cert_file}",
                f"TLSCertificateKeyFile {key_file}",
                "TLSProtocolMin 3.3",  # TLS 1.2 and later, as the portal requires
            ]
        lines += [
            "database mdb",
            "maxsize 16777216",
            f'suffix "{self.root_dn}"',
            f'rootdn "{self.admin_dn}"',
            f"rootpw {rootpw}",
            f"directory {self.directory / 'data'}",
            # Passwords are for binding only; everything else is readable anonymously, as many directories
            # are, except private_dn: bound users read it, anonymous clients only learn that it exists.
            "access to attrs=userPassword by self write by anonymous auth by * none",
            f'access to dn.subtree="{self.private_dn}" by users read by anonymous disclose',
            "access to * by * read",
        ]
        (self.directory / "slapd.conf").write_text("\n".join(lines) + "\n")

    def _launch(self, slapd: str) -> bool:
        """Start the process and wait until every listener accepts connections; False if slapd exited."""
        assert self.directory is not None
        if self._log is not None:
            self._log.close()
        self._log = open(self.directory / "slapd.log", "wb")  # noqa: SIM115 - closed in stop()
        urls = [f"ldap://{self.host}:{self.ldap_port}/"]
        if self.ldaps_port is not None:
            urls.append(f"ldaps://{self.host}:{self.ldaps_port}/")
        # -d 0 keeps slapd in the foreground (so terminate/wait work) without debug output.
        self._process = subprocess.Popen(
            [slapd, "-f", str(self.directory / "slapd.conf"), "-h", " ".join(urls), "-d", "0"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
        )
        ports = [port for port in (self.ldap_port, self.ldaps_port) if port is not None]
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                return False
            if all(_accepts(self.host, port) for port in ports):
                return True
            time.sleep(0.05)
        self._process.kill()
        self._process.wait()
        self._process = None
        raise RuntimeError(
            f"slapd did not accept connections within {self.start_timeout:g} s; its log says:\n"
            f"{self.log_text()[-4000:]}"
        )

    def _load_base_entries(self) -> None:
        ldif = f"""\
dn: {self.root_dn}
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: {self.users_dn}
objectClass: organizationalUnit
ou: users

dn: {self.groups_dn}
objectClass: organizationalUnit
ou: groups

dn: {self.user_dn}
objectClass: inetOrgPerson
uid: alice
cn: Alice Example
sn: Example
mail: alice@example.com
userPassword: {self.user_password}

dn: {self.private_dn}
objectClass: groupOfNames
cn: admins
member: {self.user_dn}
"""
        result = subprocess.run(
            [find_program("ldapadd"), "-x", "-H", self.ldap_url, "-D", self.admin_dn, "-w", self.admin_password],
            input=ldif, capture_output=True, text=True, timeout=30,
        )
        if result.returncode != 0:
            output = result.stderr.strip() or result.stdout.strip()
            raise RuntimeError(f"ldapadd failed ({result.returncode}): {output}")


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def slapd_fixture(
    name: str = "slapd",
    scope: Literal["session", "package", "module", "class", "function"] = "session",
    **options: Any,
) -> Callable[..., Iterator[Slapd]]:
    """A pytest fixture that runs one Slapd for its scope; in a conftest or test module: `slapd = slapd_fixture()`.

    options go to Slapd, e.g. tls=False.
    """

    @pytest.fixture(name=name, scope=scope)
    def _slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
        with Slapd(tmp_path_factory.mktemp("slapd"), **options) as server:
            yield server

    return _slapd
