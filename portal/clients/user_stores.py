"""Password checks against a tenant's own user store, for the token endpoint's password grant.

Relational stores (PostgreSQL, Oracle) are the um_user/um_role/um_user_role tables the portal provisions at
registration; `um_user.credential` holds an argon2 hash (any argon2 parameters: the hash carries them). LDAP
stores are checked the way directory-backed servers do it: find the user's entry with the service bind, then
bind as that entry with the password. Every failure comes back as a `UserCheck` with a reason for the log;
callers tell the client only "invalid_grant", so a wrong password and an unknown user look the same.
"""
from __future__ import annotations

import math
import os
import ssl
from dataclasses import dataclass, field

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


# --- PostgreSQL and Oracle ---------------------------------------------------------------------------------


def check_postgres(target: JdbcTarget, db_user: str, db_password: str, username: str, password: str,
                   *, timeout: float) -> UserCheck:
    schema = target.schema or "public"
    try:
        addresses = configured().vet(target.host, target.port)  # the outbound policy, on every connect
    except PolicyError as exc:
        return UserCheck(False, username, reason=f"user store not connected: {exc.reason}", unavailable=True)
    try:
        conn = psycopg.connect(
            **pg_host_kwargs(target, addresses), port=target.port, dbname=target.database, user=db_user,
            password=db_password,
            connect_timeout=max(1, math.ceil(timeout)), options=f"-c statement_timeout={max(1, int(timeout * 1000))}",
            application_name=APPLICATION_NAME, passfile=os.path.join(os.devnull, "no-pgpass"),
        )
    except (psycopg.Error, OSError) as exc:
        return UserCheck(False, username, reason=f"user store unreachable: {_first_line(exc)}", unavailable=True)
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("SELECT id, credential FROM {} WHERE user_name = %s").format(
                sql.Identifier(schema, "um_user")), (username,))
            row = cur.fetchone()
            if not _argon2_matches(row[1] if row else None, password):
                return UserCheck(False, username, reason="unknown user or wrong password")
            cur.execute(sql.SQL(
                "SELECT r.role_name FROM {ur} ur JOIN {r} r ON r.id = ur.role_id WHERE ur.user_id = %s "
                "ORDER BY r.role_name LIMIT %s").format(ur=sql.Identifier(schema, "um_user_role"),
                                                         r=sql.Identifier(schema, "um_role")), (row[0], MAX_ROLES))
            return UserCheck(True, username, [name for (name,) in cur.fetchall()])
    except psycopg.Error as exc:
        return UserCheck(False, username, reason=f"user store query failed: {_first_line(exc)}", unavailable=True)
    finally:
        conn.close()


def check_oracle(target: JdbcTarget, db_user: str, db_password: str, username: str, password: str,
                 *, timeout: float) -> UserCheck:
    owner = f'"{target.schema}".' if target.schema else ""
    where = {"service_name": target.service_name} if target.service_name else {"sid": target.sid}
    try:
        address = configured().vet(target.host, target.port)[0]  # the outbound policy, on every connect
    except PolicyError as exc:
        return UserCheck(False, username, reason=f"user store not connected: {exc.reason}", unavailable=True)
    try:
        conn = oracledb.connect(user=db_user, password=db_password, host=address, port=target.port,
                                tcp_connect_timeout=float(timeout), retry_count=0, **where)
    except (oracledb.Error, OSError) as exc:
        return UserCheck(False, username, reason=f"user store unreachable: {_first_line(exc)}", unavailable=True)
    try:
        conn.call_timeout = max(1, int(timeout * 1000))
        with conn.cursor() as cur:
            cur.execute(f"SELECT ID, CREDENTIAL FROM {owner}UM_USER WHERE USER_NAME = :u", u=username)
            row = cur.fetchone()
            if not _argon2_matches(row[1] if row else None, password):
                return UserCheck(False, username, reason="unknown user or wrong password")
            cur.execute(f"SELECT R.ROLE_NAME FROM {owner}UM_USER_ROLE UR JOIN {owner}UM_ROLE R ON R.ID = UR.ROLE_ID "
                        "WHERE UR.USER_ID = :i ORDER BY R.ROLE_NAME FETCH FIRST :n ROWS ONLY", i=row[0], n=MAX_ROLES)
            return UserCheck(True, username, [name for (name,) in cur.fetchall()])
    except oracledb.Error as exc:
        return UserCheck(False, username, reason=f"user store query failed: {_first_line(exc)}", unavailable=True)
    finally:
        conn.close()


# --- LDAP --------------------------------------------------------------------------------------------------


def check_ldap(settings: dict, bind_password: str | None, username: str, password: str, *,
               ca_file: str | None, timeout: float) -> UserCheck:
    """Search the user under the root DN with the service account (or anonymously), then bind as the user.

    An empty password is refused before any bind: LDAP treats it as an unauthenticated bind that "succeeds"."""
    from ldap3 import ANONYMOUS, SIMPLE, SUBTREE, Connection, Server
    from ldap3.utils.conv import escape_filter_chars

    if not password:
        return UserCheck(False, username, reason="empty password")
    target = parse_ldap_url(settings["ldapURLForDirectoryService"])
    root_dn = settings["directoryServiceRootDistinguishedName"]
    bind_dn = settings.get("bindDN") or None
    start_tls = bool(settings.get("startTLS"))
    try:
        address = ldap_client.vetted_address(target)  # the outbound policy, on every connect; TLS keeps the name
    except PolicyError as exc:
        return UserCheck(False, username, reason=f"directory not connected: {exc.reason}", unavailable=True)
    tls = ldap_client.VerifiedTls(target.host, ca_file) if target.use_ssl or start_tls else None
    server = Server(address, port=target.port, use_ssl=target.use_ssl, tls=tls, get_info="NO_INFO",
                    connect_timeout=timeout)
    wait = max(1, math.ceil(timeout))

    def connect(user: str | None, secret: str | None) -> Connection:
        conn = Connection(server, user=user, password=secret, authentication=SIMPLE if user else ANONYMOUS,
                          auto_bind=False, raise_exceptions=False, read_only=True, auto_referrals=False,
                          receive_timeout=wait)
        try:
            conn.open(read_server_info=False)
            if start_tls:
                conn.start_tls(read_server_info=False)
                if not isinstance(conn.socket, ssl.SSLSocket):  # never send the user's password in clear by mistake
                    raise OSError("StartTLS did not take effect")
        except BaseException:
            ldap_client.close_quietly(conn)  # ldap3 leaves the socket of a failed open or handshake behind
            raise
        return conn

    name = escape_filter_chars(username)
    try:
        service = connect(bind_dn, bind_password if bind_dn else None)
        try:
            if not service.bind(read_server_info=False):
                return UserCheck(False, username, reason="the service bind was refused", unavailable=True)
            service.search(root_dn, f"(|(uid={name})(sAMAccountName={name}))", search_scope=SUBTREE,
                           attributes=["1.1"], size_limit=2, time_limit=wait)
            found = [e["dn"] for e in service.response or [] if e.get("type") == "searchResEntry"]
            if len(found) != 1:
                _argon2_matches(None, password)  # spend the time a real check would
                why = "unknown user" if not found else "the username matches several entries"
                return UserCheck(False, username, reason=why)
            user_dn = found[0]
            escaped_dn = escape_filter_chars(user_dn)
            service.search(root_dn, f"(|(member={escaped_dn})(uniqueMember={escaped_dn}))", search_scope=SUBTREE,
                           attributes=["cn"], size_limit=MAX_ROLES, time_limit=wait)
            groups = sorted({str(v) for e in service.response or [] if e.get("type") == "searchResEntry"
                             for v in ldap_client.entry_values(e, "cn")})
        finally:
            ldap_client.close_quietly(service)
        user = connect(user_dn, password)
        try:
            if not user.bind(read_server_info=False):
                return UserCheck(False, username, reason="wrong password")
        finally:
            ldap_client.close_quietly(user)
    except Exception as exc:  # ldap3 raises many kinds for transport and TLS trouble
        return UserCheck(False, username, reason=f"directory unreachable: {_first_line(exc)}", unavailable=True)
    return UserCheck(True, username, groups)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
