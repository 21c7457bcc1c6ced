"""Password checks against a tenant's own user store, for the token endpoint's password grant.

Relational stores (PostgreSQL, Oracle) are the um_user/um_role/um_user_role tables the portal provisions at
registration; `um_user.credential` holds an argon2 hash (any argon2 parameters: the hash carries them). LDAP
stores are checked the way directory-backed servers do it: find the user's entry with the service bind, then
bind as that entry with the password. Every failure comes back as a `UserCheck` with a reason for the log;
callers tell the client only "invalid_grant", so a wrong password and an unknown user look the same. The
connections and directory searches are shared with clients/tenant_users.py, which manages the users.
"""
from __future__ import annotations

import math
import os
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import oracledb
import psycopg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from psycopg import sql

from portal.clients import ldap as ldap_client
from portal.clients.address_policy import PolicyError, configured
from portal.clients.jdbc import APPLICATION_NAME, pg_host_kwargs
from portal.idp.jdbc_url import JdbcTarget
from portal.idp.ldap_settings import parse_ldap_url

MAX_ROLES = 100
# A disabled user's credential starts with this mark (as `passwd -l` locks a shadow entry): no argon2 hash starts
# with it, so the password grant refuses the user, and removing the mark gives the same password back.
DISABLED_MARK = "!"
# Verification only: the hash's own parameters are used, these defaults are never applied.
_VERIFIER = PasswordHasher()
# A real hash of a random value, verified when the user is unknown so both paths cost the same.
_DUMMY_HASH = _VERIFIER.hash(os.urandom(16).hex())


@dataclass(frozen=True)
class UserCheck:
    ok: bool
    username: str
    roles: list[str] = field(default_factory=list)
    reason: str = ""  # for the log and the token lab, never for the token client
    unavailable: bool = False  # the store could not be reached or queried: a server problem, not a bad grant


def _argon2_matches(stored: str | None, password: str) -> bool:
    try:
        return _VERIFIER.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


class StoreUnavailable(Exception):
    """The store could not be reached or refused the connection; `reason` names why, without any secret."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- PostgreSQL and Oracle ---------------------------------------------------------------------------------


def connect_postgres(target: JdbcTarget, db_user: str, db_password: str, *, timeout: float) -> psycopg.Connection:
    """A connection to the tenant's PostgreSQL store through the outbound policy, with a statement timeout."""
    try:
        addresses = configured().vet(target.host, target.port)  # the outbound policy, on every connect
    except PolicyError as exc:
        raise StoreUnavailable(f"user store not connected: {exc.reason}") from None
    try:
        return psycopg.connect(
            **pg_host_kwargs(target, addresses), port=target.port, dbname=target.database, user=db_user,
            password=db_password,
            connect_timeout=max(1, math.ceil(timeout)), options=f"-c statement_timeout={max(1, int(timeout * 1000))}",
            application_name=APPLICATION_NAME, passfile=os.path.join(os.devnull, "no-pgpass"),
        )
    except (psycopg.Error, OSError) as exc:
        raise StoreUnavailable(f"user store unreachable: {first_line(exc)}") from None


def connect_oracle(target: JdbcTarget, db_user: str, db_password: str, *, timeout: float) -> oracledb.Connection:
    """A connection to the tenant's Oracle store through the outbound policy, with a call timeout."""
    where = {"service_name": target.service_name} if target.service_name else {"sid": target.sid}
    try:
        address = configured().vet(target.host, target.port)[0]  # the outbound policy, on every connect
    except PolicyError as exc:
        raise StoreUnavailable(f"user store not connected: {exc.reason}") from None
    try:
        conn = oracledb.connect(user=db_user, password=db_password, host=address, port=target.port,
                                tcp_connect_timeout=float(timeout), retry_count=0, **where)
    except (oracledb.Error, OSError) as exc:
        raise StoreUnavailable(f"user store unreachable: {first_line(exc)}") from None
    conn.call_timeout = max(1, int(timeout * 1000))
    return conn


def _credential_verdict(username: str, row, password: str) -> UserCheck | None:
    """None when `row` (id, credential) matches the password; otherwise the refusal. A disabled user (credential
    marked with DISABLED_MARK) is refused after the same work as a wrong password."""
    stored = row[1] if row else None
    if stored and stored.startswith(DISABLED_MARK):
        _argon2_matches(None, password)
        return UserCheck(False, username, reason="user disabled")
    if not _argon2_matches(stored, password):
        return UserCheck(False, username, reason="unknown user or wrong password")
    return None


@dataclass(frozen=True)
class _Dialect:
    """What differs between the relational stores for a password check: how to connect, the two statements
    (with their parameters) and the driver's error class."""

    connect: Callable[..., Any]
    user: Callable[[JdbcTarget, str], tuple[Any, Any]]
    roles: Callable[[JdbcTarget, Any], tuple[Any, Any]]
    error: type[Exception]


def _pg_table(target: JdbcTarget, table: str) -> sql.Identifier:
    return sql.Identifier(target.schema or "public", table)


def _oracle_owner(target: JdbcTarget) -> str:
    return f'"{target.schema}".' if target.schema else ""


POSTGRES = _Dialect(
    connect=connect_postgres,
    user=lambda target, username: (sql.SQL("SELECT id, credential FROM {} WHERE user_name = %s").format(
        _pg_table(target, "um_user")), (username,)),
    roles=lambda target, user_id: (sql.SQL(
        "SELECT r.role_name FROM {ur} ur JOIN {r} r ON r.id = ur.role_id WHERE ur.user_id = %s "
        "ORDER BY r.role_name LIMIT %s").format(ur=_pg_table(target, "um_user_role"), r=_pg_table(target, "um_role")),
        (user_id, MAX_ROLES)),
    error=psycopg.Error)

ORACLE = _Dialect(
    connect=connect_oracle,
    user=lambda target, username: (
        f"SELECT ID, CREDENTIAL FROM {_oracle_owner(target)}UM_USER WHERE USER_NAME = :u", {"u": username}),
    roles=lambda target, user_id: (
        f"SELECT R.ROLE_NAME FROM {_oracle_owner(target)}UM_USER_ROLE UR JOIN {_oracle_owner(target)}UM_ROLE R "
        "ON R.ID = UR.ROLE_ID WHERE UR.USER_ID = :i ORDER BY R.ROLE_NAME FETCH FIRST :n ROWS ONLY",
        {"i": user_id, "n": MAX_ROLES}),
    error=oracledb.Error)


def _check_relational(dialect: _Dialect, target: JdbcTarget, db_user: str, db_password: str, username: str,
                      password: str, *, timeout: float) -> UserCheck:
    try:
        conn = dialect.connect(target, db_user, db_password, timeout=timeout)
    except StoreUnavailable as exc:
        return UserCheck(False, username, reason=exc.reason, unavailable=True)
    try:
        with conn.cursor() as cur:
            cur.execute(*dialect.user(target, username))
            row = cur.fetchone()
            if refused := _credential_verdict(username, row, password):
                return refused
            cur.execute(*dialect.roles(target, row[0]))
            return UserCheck(True, username, [name for (name,) in cur.fetchall()])
    except dialect.error as exc:
        return UserCheck(False, username, reason=f"user store query failed: {first_line(exc)}", unavailable=True)
    finally:
        conn.close()


def check_postgres(target: JdbcTarget, db_user: str, db_password: str, username: str, password: str,
                   *, timeout: float) -> UserCheck:
    return _check_relational(POSTGRES, target, db_user, db_password, username, password, timeout=timeout)


def check_oracle(target: JdbcTarget, db_user: str, db_password: str, username: str, password: str,
                 *, timeout: float) -> UserCheck:
    return _check_relational(ORACLE, target, db_user, db_password, username, password, timeout=timeout)


# --- LDAP --------------------------------------------------------------------------------------------------


class Directory:
    """A tenant's directory as its settings describe it: connections (service or user binds) through the outbound
    policy with verified TLS, and the two searches a directory-backed server makes: a user by name, its groups."""

    def __init__(self, settings: Mapping[str, Any], bind_password: str | None, *, ca_file: str | None,
                 timeout: float) -> None:
        self.target = parse_ldap_url(settings["ldapURLForDirectoryService"])
        self.root_dn = settings["directoryServiceRootDistinguishedName"]
        self.bind_dn = settings.get("bindDN") or None
        self.bind_password = bind_password if self.bind_dn else None
        self.start_tls = bool(settings.get("startTLS"))
        self.ca_file, self.timeout = ca_file, timeout
        self.wait = max(1, math.ceil(timeout))

    def connect(self, user: str | None, secret: str | None):
        """An open connection (StartTLS done when asked), not yet bound; StoreUnavailable when the policy refuses."""
        from ldap3 import ANONYMOUS, SIMPLE, Connection, Server

        try:
            address = ldap_client.vetted_address(self.target)  # the outbound policy; TLS keeps the name
        except PolicyError as exc:
            raise StoreUnavailable(f"directory not connected: {exc.reason}") from None
        tls = (ldap_client.VerifiedTls(self.target.host, self.ca_file)
               if self.target.use_ssl or self.start_tls else None)
        server = Server(address, port=self.target.port, use_ssl=self.target.use_ssl, tls=tls, get_info="NO_INFO",
                        connect_timeout=self.timeout)
        conn = Connection(server, user=user, password=secret, authentication=SIMPLE if user else ANONYMOUS,
                          auto_bind=False, raise_exceptions=False, read_only=True, auto_referrals=False,
                          receive_timeout=self.wait)
        try:
            conn.open(read_server_info=False)
            if self.start_tls:
                conn.start_tls(read_server_info=False)
                if not isinstance(conn.socket, ssl.SSLSocket):  # never send a password in clear by mistake
                    raise OSError("StartTLS did not take effect")
        except BaseException:
            ldap_client.close_quietly(conn)  # ldap3 leaves the socket of a failed open or handshake behind
            raise
        return conn

    def service(self):
        """A connection bound as the service account (or anonymously); StoreUnavailable when the bind is refused."""
        conn = self.connect(self.bind_dn, self.bind_password)
        if not conn.bind(read_server_info=False):
            ldap_client.close_quietly(conn)
            raise StoreUnavailable("the service bind was refused")
        return conn

    def entries(self, conn, search_filter: str, attributes: list[str], limit: int) -> list[dict]:
        from ldap3 import SUBTREE

        conn.search(self.root_dn, search_filter, search_scope=SUBTREE, attributes=attributes, size_limit=limit,
                    time_limit=self.wait)
        return [e for e in conn.response or [] if e.get("type") == "searchResEntry"]

    def entry_at(self, conn, dn: str, attributes: list[str]) -> dict | None:
        """The entry at `dn` itself (a base search), or None."""
        from ldap3 import BASE

        conn.search(dn, "(objectClass=*)", search_scope=BASE, attributes=attributes, size_limit=1,
                    time_limit=self.wait)
        return next((e for e in conn.response or [] if e.get("type") == "searchResEntry"), None)

    def user_dns(self, conn, username: str) -> list[str]:
        """The entries whose uid or sAMAccountName is `username` (two at most: more than one is an error anyway)."""
        from ldap3.utils.conv import escape_filter_chars

        name = escape_filter_chars(username)
        return [e["dn"] for e in self.entries(conn, f"(|(uid={name})(sAMAccountName={name}))", ["1.1"], 2)]

    def groups_of(self, conn, dn: str) -> list[str]:
        """The cn of every group naming `dn` as member or uniqueMember, sorted."""
        from ldap3.utils.conv import escape_filter_chars

        escaped = escape_filter_chars(dn)
        found = self.entries(conn, f"(|(member={escaped})(uniqueMember={escaped}))", ["cn"], MAX_ROLES)
        return sorted({str(v) for e in found for v in ldap_client.entry_values(e, "cn")})


def check_ldap(settings: dict, bind_password: str | None, username: str, password: str, *,
               ca_file: str | None, timeout: float) -> UserCheck:
    """Search the user under the root DN with the service account (or anonymously), then bind as the user.

    An empty password is refused before any bind: LDAP treats it as an unauthenticated bind that "succeeds"."""
    if not password:
        return UserCheck(False, username, reason="empty password")
    directory = Directory(settings, bind_password, ca_file=ca_file, timeout=timeout)
    try:
        return _bind_as_user(directory, username, password)
    except StoreUnavailable as exc:
        return UserCheck(False, username, reason=exc.reason, unavailable=True)
    except Exception as exc:  # ldap3 raises many kinds for transport and TLS trouble
        return UserCheck(False, username, reason=f"directory unreachable: {first_line(exc)}", unavailable=True)


def _bind_as_user(directory: Directory, username: str, password: str) -> UserCheck:
    service = directory.service()
    try:
        found = directory.user_dns(service, username)
        if len(found) != 1:
            _argon2_matches(None, password)  # spend the time a real check would
            return UserCheck(False, username, reason="unknown user" if not found
                             else "the username matches several entries")
        groups = directory.groups_of(service, found[0])
    finally:
        ldap_client.close_quietly(service)
    user = directory.connect(found[0], password)
    try:
        if not user.bind(read_server_info=False):
            return UserCheck(False, username, reason="wrong password")
    finally:
        ldap_client.close_quietly(user)
    return UserCheck(True, username, groups)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
