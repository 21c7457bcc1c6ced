"""The relational identity-provider check: JDBC URL parsing, and real connections to the local PostgreSQL.

PostgreSQL at 127.0.0.1:5432 (user postgres, trust) is required: if it cannot be reached these tests fail,
they never skip. Each run creates a throwaway login role and database and drops them at the end.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql

from portal.clients.checks import CheckResult
from portal.clients.jdbc import check_relational
from portal.idp.jdbc_url import (
    PASSWORD_FIELD,
    TYPE_FIELD,
    URL_FIELD,
    USER_FIELD,
    JdbcTarget,
    expected_kind,
    parse_jdbc_url,
)

PG_HOST, PG_PORT = "127.0.0.1", 5432
SEED_URL = "jdbc:postgresql://localhost:5432/userdbll?currentSchema=userschemall"
STORE = {"um_user", "um_role", "um_user_role"}


# --- Parsing -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            SEED_URL,
            JdbcTarget("postgres", "localhost", 5432, database="userdbll", schema="userschemall",
                       params={"currentSchema": "userschemall"}),
        ),
        ("jdbc:postgresql://db.example.com/app", JdbcTarget("postgres", "db.example.com", 5432, database="app")),
        (
            "jdbc:postgresql://[::1]:6543/app?currentSchema=Tenant_A,public&sslmode=require&x=a%20b",
            JdbcTarget("postgres", "::1", 6543, database="app", schema="tenant_a",
                       params={"currentSchema": "Tenant_A,public", "sslmode": "require", "x": "a b"}),
        ),
        ("jdbc:postgresql://[2001:db8::1]/app", JdbcTarget("postgres", "2001:db8::1", 5432, database="app")),
        (
            "jdbc:postgresql://h:5433/app?currentSchema=%22MixedCase%22",
            JdbcTarget("postgres", "h", 5433, database="app", schema="MixedCase",
                       params={"currentSchema": '"MixedCase"'}),
        ),
        ("jdbc:oracle:thin:@//db.example.com/ORCLPDB1",
         JdbcTarget("oracle", "db.example.com", 1521, service_name="ORCLPDB1")),
        ("jdbc:oracle:thin:@//db:1522/orclpdb1.example.com",
         JdbcTarget("oracle", "db", 1522, service_name="orclpdb1.example.com")),
        ("jdbc:oracle:thin:@db:1521:ORCL", JdbcTarget("oracle", "db", 1521, sid="ORCL")),
        ("jdbc:oracle:thin:@db:1525/XEPDB1", JdbcTarget("oracle", "db", 1525, service_name="XEPDB1")),
        ("jdbc:oracle:thin:@//[::1]:1521/XE", JdbcTarget("oracle", "::1", 1521, service_name="XE")),
        ("jdbc:oracle:thin:@[fe80::1]:1521:ORCL", JdbcTarget("oracle", "fe80::1", 1521, sid="ORCL")),
        (
            "jdbc:oracle:thin:@//db/XE?currentSchema=tenant_a",
            JdbcTarget("oracle", "db", 1521, service_name="XE", schema="TENANT_A",
                       params={"currentSchema": "tenant_a"}),
        ),
    ],
)
def test_accepted_urls(url: str, expected: JdbcTarget) -> None:
    assert parse_jdbc_url(url) == expected


def test_address_brackets_ipv6() -> None:
    assert parse_jdbc_url("jdbc:postgresql://[::1]/app").address == "[::1]:5432"
    assert parse_jdbc_url(SEED_URL).address == "localhost:5432"


@pytest.mark.parametrize(
    ("url", "fragments"),
    [
        ("string", ['placeholder "string"', "jdbc:postgresql://host"]),
        ("", ["empty"]),
        ("jdbc:mysql://localhost:3306/userdb", ["jdbc:mysql URLs are not supported", "jdbc:postgresql://host"]),
        ("jdbc:postgresql://h1:5432,h2:5432/userdb", ["Multi-host", "single host"]),
        ("jdbc:postgresql://localhost:5432/", ["names no database", "jdbc:postgresql://host[:port]/database"]),
        ("jdbc:postgresql://localhost:5432", ["names no database"]),
        ("jdbc:postgresql://localhost/userdb?currentSchema=a;drop", ["'a;drop' is not a valid schema name"]),
        ("jdbc:postgresql://localhost/userdb?currentSchema=a%22%3Bdrop", ["not a valid schema name"]),
        ("jdbc:postgresql://localhost/user-db", ["'user-db' is not a valid database name"]),
        ("jdbc:postgresql://localhost/userdb?currentSchema=", ["currentSchema is empty"]),
        ("jdbc:postgresql://localhost/userdb?currentSchema=" + "s" * 64, ["64 characters", "limit is 63"]),
        ("jdbc:postgresql:userdb", ["must name a host", "jdbc:postgresql://host"]),
        ("jdbc:postgresql://localhost:99999/userdb", ["'99999' is not a valid port"]),
        ("jdbc:postgresql://localhost:/userdb", ["'' is not a valid port"]),
        ("jdbc:postgresql://::1/userdb", ["IPv6 address in brackets"]),
        ("jdbc:postgresql://[::zz]/userdb", ["not a valid IPv6 address"]),
        ("jdbc:postgresql://bad host/userdb", ["not a valid host name"]),
        ("jdbc:oracle:thin:@(DESCRIPTION=(ADDRESS=(PROTOCOL=TCP)(HOST=h)(PORT=1521))(CONNECT_DATA=(SID=X)))",
         ["TNS descriptor", "not supported", "jdbc:oracle:thin:@//host"]),
        ("jdbc:oracle:oci:@//h:1521/XE", ["thin driver"]),
        ("jdbc:oracle:thin:@ORCLALIAS", ["TNS aliases are not supported"]),
        ("jdbc:oracle:thin:@h:1521:", ["names no SID"]),
        ("jdbc:oracle:thin:@//h:1521/", ["names no service name"]),
        ("jdbc:oracle:thin:@tcps://h:2484/XE", ["tcps://"]),
    ],
)
def test_refused_urls(url: str, fragments: list[str]) -> None:
    with pytest.raises(ValueError) as caught:
        parse_jdbc_url(url)
    for fragment in fragments:
        assert fragment in str(caught.value)


@pytest.mark.parametrize(
    "url", ["jdbc:postgresql://scott:tiger-pw@h/userdb", "jdbc:oracle:thin:scott/tiger-pw@//h:1521/XE"]
)
def test_credentials_in_url_are_refused_without_echoing_them(url: str) -> None:
    with pytest.raises(ValueError, match="dataSourceUserName and dataSourcePassword") as caught:
        parse_jdbc_url(url)
    assert "tiger-pw" not in str(caught.value)


def test_expected_kind() -> None:
    assert expected_kind("POSTGRES") == "postgres"
    assert expected_kind("ORACLE") == "oracle"
    with pytest.raises(ValueError, match="POSTGRES or ORACLE"):
        expected_kind("LDAP")


@pytest.mark.parametrize(
    ("idp_type", "url", "field", "fragment"),
    [
        ("POSTGRES", "jdbc:oracle:thin:@//127.0.0.1:1521/XE", URL_FIELD, "is POSTGRES but the URL is for Oracle"),
        ("ORACLE", SEED_URL, URL_FIELD, "is ORACLE but the URL is for PostgreSQL"),
        ("POSTGRES", "string", URL_FIELD, "placeholder"),
        ("LDAP", SEED_URL, TYPE_FIELD, "POSTGRES or ORACLE"),
    ],
)
def test_refused_before_connecting(idp_type: str, url: str, field: str, fragment: str) -> None:
    result = check_relational(idp_type, url, "u", "pw")
    assert not result.ok
    assert fragment in result.field_errors[field]
    assert fragment in result.summary


def test_empty_user_name_is_a_field_error() -> None:
    result = check_relational("POSTGRES", SEED_URL, "  ", "pw")
    assert not result.ok and USER_FIELD in result.field_errors


# --- Real PostgreSQL ---------------------------------------------------------------------------------


def _admin(dbname: str = "postgres") -> psycopg.Connection:
    try:
        return psycopg.connect(host=PG_HOST, port=PG_PORT, user="postgres", dbname=dbname, autocommit=True,
                               connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {PG_HOST}:{PG_PORT} (user postgres) is required and unreachable: {exc}")


@dataclass(frozen=True)
class Tenant:
    owner: str  # owns the database, so may create schemas
    weak: str  # may connect, nothing more
    password: str
    database: str

    def url(self, schema: str | None = None) -> str:
        query = f"?currentSchema={schema}" if schema else ""
        return f"jdbc:postgresql://{PG_HOST}:{PG_PORT}/{self.database}{query}"


@pytest.fixture(scope="module")
def tenant() -> Iterator[Tenant]:
    suffix = secrets.token_hex(4)
    t = Tenant(f"portal_t_{suffix}", f"portal_t_{suffix}_weak", "pw-" + secrets.token_hex(12), f"portal_t_{suffix}")
    with _admin() as admin:
        for role in (t.owner, t.weak):
            create_role = sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}")
            admin.execute(create_role.format(sql.Identifier(role), sql.Literal(t.password)))
        create_db = sql.SQL("CREATE DATABASE {} OWNER {}")
        admin.execute(create_db.format(sql.Identifier(t.database), sql.Identifier(t.owner)))
    try:
        yield t
    finally:
        with _admin() as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(t.database)))
            for role in (t.weak, t.owner):
                admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def _tables(database: str, schema: str) -> set[str]:
    with _admin(database) as admin:
        rows = admin.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
        ).fetchall()
    return {row[0] for row in rows}


def _assert_secret_absent(result: CheckResult, secret: str) -> None:
    assert secret not in repr(result)


def _closed_port() -> int:
    """A port nothing listens on: bound once by us, then released."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_seed_like_url_provisions_schema_and_tables_then_is_idempotent(tenant: Tenant) -> None:
    with _admin() as admin:
        version = admin.execute("SHOW server_version").fetchone()[0].split()[0]

    first = check_relational("POSTGRES", tenant.url("userschemall"), tenant.owner, tenant.password)
    assert first.ok, first
    assert f"PostgreSQL {version}" in first.summary
    assert "created: um_user, um_role, um_user_role" in first.summary
    assert "Schema userschemall: created" in first.details
    assert first.field_errors == {}
    assert _tables(tenant.database, "userschemall") == STORE
    with _admin(tenant.database) as admin:
        columns = set(admin.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'userschemall'"
        ).fetchall())
        foreign_keys = admin.execute(
            "SELECT count(*) FROM information_schema.table_constraints"
            " WHERE table_schema = 'userschemall' AND table_name = 'um_user_role' AND constraint_type = 'FOREIGN KEY'"
        ).fetchone()[0]
        owner = admin.execute(
            "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'userschemall'"
        ).fetchone()[0]
    assert {("um_user", "user_name"), ("um_user", "credential"), ("um_user", "created_at"),
            ("um_role", "role_name"), ("um_user_role", "user_id"), ("um_user_role", "role_id")} <= columns
    assert foreign_keys == 2
    assert owner == tenant.owner

    second = check_relational("POSTGRES", tenant.url("userschemall"), tenant.owner, tenant.password)
    assert second.ok, second
    assert "already present" in second.summary and "created" not in second.summary
    assert "Schema userschemall: already present" in second.details
    assert _tables(tenant.database, "userschemall") == STORE
    checked = check_relational("POSTGRES", tenant.url("userschemall"), tenant.owner, tenant.password,
                               provision=False)
    assert checked.ok and "already present" in checked.summary
    for result in (first, second, checked):
        _assert_secret_absent(result, tenant.password)


def test_without_schema_uses_the_connections_current_schema(tenant: Tenant) -> None:
    result = check_relational("POSTGRES", tenant.url(), tenant.owner, tenant.password)
    assert result.ok, result
    assert any("current schema public" in line for line in result.details)
    assert "in schema public" in result.summary
    assert _tables(tenant.database, "public") >= STORE


def test_provisioning_off_creates_nothing(tenant: Tenant) -> None:
    result = check_relational("POSTGRES", tenant.url("not_provisioned"), tenant.owner, tenant.password,
                              provision=False)
    assert not result.ok
    assert "Schema not_provisioned does not exist" in result.field_errors[URL_FIELD]
    with _admin(tenant.database) as admin:
        assert admin.execute("SELECT 1 FROM pg_namespace WHERE nspname = 'not_provisioned'").fetchone() is None


def test_unknown_database_is_a_url_error(tenant: Tenant) -> None:
    url = f"jdbc:postgresql://{PG_HOST}:{PG_PORT}/{tenant.database}_missing?currentSchema=userschemall"
    result = check_relational("POSTGRES", url, tenant.owner, tenant.password)
    assert not result.ok
    expected = f"Database {tenant.database}_missing does not exist on {PG_HOST}:{PG_PORT}."
    assert result.field_errors == {URL_FIELD: expected}
    _assert_secret_absent(result, tenant.password)


def test_unknown_user_is_a_user_name_error(tenant: Tenant) -> None:
    result = check_relational("POSTGRES", tenant.url("userschemall"), tenant.owner + "_nobody", tenant.password)
    assert not result.ok
    assert "does not exist" in result.field_errors[USER_FIELD]
    _assert_secret_absent(result, tenant.password)


def test_no_create_privilege_on_the_database(tenant: Tenant) -> None:
    result = check_relational("POSTGRES", tenant.url("weak_schema"), tenant.weak, tenant.password)
    assert not result.ok
    message = result.field_errors[USER_FIELD]
    assert message.startswith(
        f"Permission denied while creating schema weak_schema: user {tenant.weak} lacks the privilege"
    )
    assert "permission denied for database" in message
    assert result.summary == message


def test_no_create_privilege_on_an_existing_schema(tenant: Tenant) -> None:
    with _admin(tenant.database) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA locked AUTHORIZATION {}").format(sql.Identifier(tenant.owner)))
        admin.execute(sql.SQL("GRANT USAGE ON SCHEMA locked TO {}").format(sql.Identifier(tenant.weak)))
    result = check_relational("POSTGRES", tenant.url("locked"), tenant.weak, tenant.password)
    assert not result.ok
    assert "Permission denied while creating table locked.um_user" in result.field_errors[USER_FIELD]
    assert "Schema locked: already present" in result.details
    assert _tables(tenant.database, "locked") == set()  # rolled back, nothing half-made


def test_closed_port_cannot_be_reached() -> None:
    port = _closed_port()
    result = check_relational("POSTGRES", f"jdbc:postgresql://127.0.0.1:{port}/userdb", "u", "secret-pw-1")
    assert not result.ok
    assert result.summary.startswith(f"Cannot reach 127.0.0.1:{port}: connection refused")
    assert result.field_errors[URL_FIELD] == result.summary
    _assert_secret_absent(result, "secret-pw-1")


def test_unresolvable_host_cannot_be_reached() -> None:
    result = check_relational("POSTGRES", "jdbc:postgresql://no-such-host.invalid/userdb", "u", "pw", timeout=2)
    assert not result.ok
    assert "Cannot reach no-such-host.invalid:5432: the host name does not resolve" in result.field_errors[URL_FIELD]


class RejectingPostgres:
    """Speaks just enough of the PostgreSQL protocol to ask for a password and reject it with 28P01.

    The local server trusts 127.0.0.1 and never asks for a password, so a wrong password has to be played here.
    """

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.passwords: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> RejectingPostgres:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                with contextlib.suppress(OSError):
                    self._reject(conn)

    @staticmethod
    def _read(conn: socket.socket, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = conn.recv(size - len(data))
            if not chunk:
                raise ConnectionError("client went away")
            data += chunk
        return data

    def _reject(self, conn: socket.socket) -> None:
        while True:  # decline SSL and GSS encryption, then read the startup message
            (length,) = struct.unpack("!I", self._read(conn, 4))
            body = self._read(conn, length - 4)
            if struct.unpack("!I", body[:4])[0] in (80877103, 80877104):
                conn.sendall(b"N")
                continue
            break
        fields = body[4:].split(b"\0")
        user = dict(zip(fields[0::2], fields[1::2], strict=False)).get(b"user", b"").decode()
        conn.sendall(b"R" + struct.pack("!II", 8, 3))  # AuthenticationCleartextPassword
        tag = self._read(conn, 1)
        (length,) = struct.unpack("!I", self._read(conn, 4))
        payload = self._read(conn, length - 4)
        if tag == b"p":
            self.passwords.append(payload.rstrip(b"\0").decode())
        error = (b"SFATAL\0VFATAL\0C28P01\0M"
                 + f'password authentication failed for user "{user}"'.encode() + b"\0\0")
        conn.sendall(b"E" + struct.pack("!I", len(error) + 4) + error)


def test_wrong_password_is_a_password_error_and_is_never_echoed() -> None:
    password = "wrong-" + secrets.token_hex(8)
    with RejectingPostgres() as server:
        result = check_relational(
            "POSTGRES", f"jdbc:postgresql://127.0.0.1:{server.port}/userdbll?currentSchema=userschemall",
            "tenant_user", password,
        )
    assert server.passwords == [password]  # it really was sent, as a separate connection argument
    assert not result.ok
    assert result.field_errors == {
        PASSWORD_FIELD: "Authentication failed for user tenant_user: check the user name and password."
    }
    _assert_secret_absent(result, password)


def test_oracle_closed_port_cannot_be_reached() -> None:
    port = _closed_port()
    result = check_relational("ORACLE", f"jdbc:oracle:thin:@//127.0.0.1:{port}/XEPDB1", "scott", "tiger-pw-1")
    assert not result.ok
    assert result.summary.startswith(f"Cannot reach 127.0.0.1:{port}: connection refused")
    assert result.field_errors[URL_FIELD] == result.summary
    _assert_secret_absent(result, "tiger-pw-1")


def test_oracle_sid_form_unresolvable_host_cannot_be_reached() -> None:
    result = check_relational("ORACLE", "jdbc:oracle:thin:@no-such-host.invalid:1521:ORCL", "scott", "pw", timeout=2)
    assert not result.ok
    assert "Cannot reach no-such-host.invalid:1521: the host name does not resolve" in result.field_errors[URL_FIELD]


def test_oracle_url_pointing_at_something_else_says_so() -> None:
    result = check_relational("ORACLE", f"jdbc:oracle:thin:@//{PG_HOST}:{PG_PORT}/XEPDB1", "scott", "tiger-pw-2")
    assert not result.ok
    assert result.summary.startswith(f"Could not connect to Oracle at {PG_HOST}:{PG_PORT}:")
    assert "Help:" not in result.summary and "CONNECTION_ID" not in result.summary
    assert result.field_errors[URL_FIELD] == result.summary
    _assert_secret_absent(result, "tiger-pw-2")


@contextlib.contextmanager
def _resetting_listener() -> Iterator[int]:
    """A listener that reads the client's first bytes and answers with a TCP reset (SO_LINGER 0), as a busy
    PostgreSQL sometimes does to a stranger's handshake: python-oracledb's thin driver then drops its socket
    without closing it, which is why pyproject.toml ignores that one ResourceWarning from oracledb.connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            conn.recv(64)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        thread.join(5)
        listener.close()


def test_oracle_listener_that_resets_says_so_and_leaves_no_descriptor_open() -> None:
    fds = set(os.listdir("/proc/self/fd"))
    with _resetting_listener() as port:
        result = check_relational("ORACLE", f"jdbc:oracle:thin:@//127.0.0.1:{port}/XEPDB1", "scott", "tiger-pw-2")
    assert not result.ok
    assert result.summary.startswith(f"Could not connect to Oracle at 127.0.0.1:{port}:")
    assert result.field_errors[URL_FIELD] == result.summary
    _assert_secret_absent(result, "tiger-pw-2")
    assert set(os.listdir("/proc/self/fd")) <= fds  # the driver's socket is closed once it is dropped
