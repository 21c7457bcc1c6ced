"""A tenant's users, in the tenant's own user store: the um_user table of its PostgreSQL or Oracle database (list,
add, disable, enable, set the password) and its LDAP directory (search and show, read-only).

The credential column holds the argon2 hash the password grant verifies (clients/user_stores.py); a disabled user's
credential carries user_stores.DISABLED_MARK in front. Hashes never leave the database: listing reads only whether
the mark is there, and disabling or enabling adds or removes the mark in SQL. Statements are built by `Statements`
(one dialect each, names quoted, values as bind parameters) so their text can be read and tested without a
database; `RelationalUsers` runs them.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import oracledb
import psycopg
from psycopg import errors as pg_errors

from portal.clients import ldap as ldap_client, user_stores
from portal.clients.user_stores import DISABLED_MARK, Directory, StoreUnavailable, first_line
from portal.idp.jdbc_url import JdbcTarget

_ORA_UNIQUE_VIOLATED = 1


@dataclass(frozen=True)
class StoreUser:
    username: str
    disabled: bool
    created_at: datetime | None


@dataclass(frozen=True)
class DirectoryUser:
    dn: str
    username: str  # uid, else sAMAccountName
    name: str  # cn
    mail: str
    groups: tuple[str, ...] = ()


class UserExists(Exception):
    pass


class NoSuchUser(Exception):
    pass


@dataclass(frozen=True)
class Statement:
    text: str
    params: dict[str, Any]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def like_prefix(text: str) -> str:
    """A LIKE pattern matching values that start with `text` literally (ESCAPE '\\')."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class Statements:
    """The SQL for one store. PostgreSQL names are lower case (schema `public` unless the URL names one); Oracle's
    are upper case, in the URL's schema or the user's own. Both dialects take FETCH FIRST, SUBSTR and ||."""

    def __init__(self, kind: str, schema: str | None) -> None:
        if kind not in ("postgres", "oracle"):
            raise ValueError(f"no user store statements for {kind}")
        self.kind = kind
        if kind == "postgres":
            self.table = f"{_quote(schema or 'public')}.{_quote('um_user')}"
        else:
            self.table = f"{_quote(schema)}.{_quote('UM_USER')}" if schema else _quote("UM_USER")

    def _p(self, name: str) -> str:
        return f"%({name})s" if self.kind == "postgres" else f":{name}"

    def _cols(self, *names: str) -> tuple[str, ...]:
        """Column names in the dialect's case (unquoted: the DDL created them unquoted)."""
        return tuple(name if self.kind == "postgres" else name.upper() for name in names)

    def list_users(self, prefix: str, after: str | None, limit: int) -> Statement:
        """Users whose name starts with `prefix`, after `after` in name order, at most `limit`."""
        name, credential, created = self._cols("user_name", "credential", "created_at")
        where = [f"{name} LIKE {self._p('prefix')} ESCAPE '\\'"]
        params: dict[str, Any] = {"prefix": like_prefix(prefix), "limit": limit}
        if after is not None:
            where.append(f"{name} > {self._p('after')}")
            params["after"] = after
        return Statement(
            f"SELECT {name}, CASE WHEN SUBSTR({credential}, 1, 1) = '{DISABLED_MARK}' THEN 1 ELSE 0 END, {created} "
            f"FROM {self.table} WHERE {' AND '.join(where)} ORDER BY {name} FETCH FIRST {self._p('limit')} ROWS ONLY",
            params)

    def find_user(self, username: str) -> Statement:
        name, credential, created = self._cols("user_name", "credential", "created_at")
        return Statement(
            f"SELECT {name}, CASE WHEN SUBSTR({credential}, 1, 1) = '{DISABLED_MARK}' THEN 1 ELSE 0 END, {created} "
            f"FROM {self.table} WHERE {name} = {self._p('username')}", {"username": username})

    def insert_user(self, username: str, credential: str) -> Statement:
        name, cred = self._cols("user_name", "credential")
        return Statement(f"INSERT INTO {self.table} ({name}, {cred}) VALUES ({self._p('username')}, "
                         f"{self._p('credential')})", {"username": username, "credential": credential})

    def disable(self, username: str) -> Statement:
        """Marks the credential; an already disabled user is left as it is (no row changes)."""
        name, cred = self._cols("user_name", "credential")
        return Statement(
            f"UPDATE {self.table} SET {cred} = '{DISABLED_MARK}' || COALESCE({cred}, '') WHERE {name} = "
            f"{self._p('username')} AND (SUBSTR({cred}, 1, 1) <> '{DISABLED_MARK}' OR {cred} IS NULL)",
            {"username": username})

    def enable(self, username: str) -> Statement:
        """Removes the mark: the user's own password works again."""
        name, cred = self._cols("user_name", "credential")
        return Statement(
            f"UPDATE {self.table} SET {cred} = SUBSTR({cred}, 2) WHERE {name} = {self._p('username')} "
            f"AND SUBSTR({cred}, 1, 1) = '{DISABLED_MARK}'", {"username": username})

    def set_credential(self, username: str, credential: str) -> Statement:
        """A new hash; a disabled user stays disabled (the mark is kept)."""
        name, cred = self._cols("user_name", "credential")
        return Statement(
            f"UPDATE {self.table} SET {cred} = CASE WHEN SUBSTR({cred}, 1, 1) = '{DISABLED_MARK}' THEN "
            f"'{DISABLED_MARK}' || {self._p('credential')} ELSE {self._p('credential')} END "
            f"WHERE {name} = {self._p('username')}", {"username": username, "credential": credential})


class RelationalUsers:
    """Runs `Statements` against the tenant's database: one connection per call, through the outbound policy.
    StoreUnavailable when the store cannot be reached or refuses a statement (the reason carries no secret)."""

    writable = True

    def __init__(self, target: JdbcTarget, db_user: str, db_password: str, *, timeout: float) -> None:
        self.target, self.db_user, self._db_password, self.timeout = target, db_user, db_password, timeout
        self.statements = Statements(target.kind, target.schema)

    def __repr__(self) -> str:  # the password stays out of tracebacks and logs
        return f"RelationalUsers({self.target.kind}://{self.target.address}, user={self.db_user})"

    def _run(self, statement: Statement, *, fetch: bool = False, write: bool = False) -> list[tuple] | int:
        connect = user_stores.connect_postgres if self.target.kind == "postgres" else user_stores.connect_oracle
        errors = (psycopg.Error,) if self.target.kind == "postgres" else (oracledb.Error,)
        conn = connect(self.target, self.db_user, self._db_password, timeout=self.timeout)
        try:
            with conn.cursor() as cur:
                cur.execute(statement.text, statement.params)
                result = cur.fetchall() if fetch else cur.rowcount
            if write:
                conn.commit()
            return result
        except errors as exc:
            if _unique_violation(exc):
                raise UserExists(statement.params.get("username")) from None
            raise StoreUnavailable(f"user store query failed: {first_line(exc)}") from None
        finally:
            conn.close()

    def list(self, prefix: str = "", after: str | None = None, limit: int = 50) -> list[StoreUser]:
        return [_user(row) for row in self._run(self.statements.list_users(prefix, after, limit), fetch=True)]

    def get(self, username: str) -> StoreUser:
        rows = self._run(self.statements.find_user(username), fetch=True)
        if not rows:
            raise NoSuchUser(username)
        return _user(rows[0])

    def add(self, username: str, credential: str) -> None:
        self._run(self.statements.insert_user(username, credential), write=True)

    def set_disabled(self, username: str, disabled: bool) -> bool:
        """True when the state changed; False when it already was so. NoSuchUser for an unknown name."""
        statement = self.statements.disable(username) if disabled else self.statements.enable(username)
        if self._run(statement, write=True):
            return True
        self.get(username)
        return False

    def set_credential(self, username: str, credential: str) -> None:
        if not self._run(self.statements.set_credential(username, credential), write=True):
            raise NoSuchUser(username)


def _user(row: tuple) -> StoreUser:
    return StoreUser(row[0], bool(row[1]), row[2])


def _unique_violation(exc: Exception) -> bool:
    if isinstance(exc, pg_errors.UniqueViolation):
        return True
    error = exc.args[0] if isinstance(exc, oracledb.Error) and exc.args else None
    return getattr(error, "code", None) == _ORA_UNIQUE_VIOLATED


class DirectoryUsers:
    """A tenant's LDAP directory, read-only: a search over names and a user's entry with its groups."""

    writable = False
    ATTRIBUTES = ["uid", "sAMAccountName", "cn", "mail"]

    def __init__(self, settings: Mapping[str, Any], bind_password: str | None, *, ca_file: str | None,
                 timeout: float) -> None:
        self.directory = Directory(settings, bind_password, ca_file=ca_file, timeout=timeout)

    def __repr__(self) -> str:
        return f"DirectoryUsers({self.directory.target.host}, bind={self.directory.bind_dn})"

    def search(self, text: str, limit: int = 50) -> list[DirectoryUser]:
        """People whose uid, sAMAccountName, cn or mail starts with `text` (everyone when blank)."""
        from ldap3.utils.conv import escape_filter_chars

        term = escape_filter_chars(text.strip()) + "*"
        search_filter = (f"(&(|(objectClass=person)(objectClass=user))"
                         f"(|(uid={term})(sAMAccountName={term})(cn={term})(mail={term})))")
        with self._service() as conn:
            found = self.directory.entries(conn, search_filter, self.ATTRIBUTES, limit)
        return sorted((_directory_user(e) for e in found), key=lambda user: user.username.lower())

    def show(self, username: str) -> DirectoryUser:
        """The one entry whose uid or sAMAccountName is `username`, with its groups; NoSuchUser otherwise."""
        with self._service() as conn:
            dns = self.directory.user_dns(conn, username)
            if len(dns) != 1:
                raise NoSuchUser(username)
            entry = self.directory.entry_at(conn, dns[0], self.ATTRIBUTES)
            groups = self.directory.groups_of(conn, dns[0])
        user = _directory_user(entry) if entry else DirectoryUser(dns[0], username, "", "")
        return DirectoryUser(user.dn, user.username, user.name, user.mail, tuple(groups))

    def _service(self):
        return _Bound(self.directory)


class _Bound:
    """with: a service-bound connection, closed at the end; transport trouble becomes StoreUnavailable."""

    def __init__(self, directory: Directory) -> None:
        self.directory, self.conn = directory, None

    def __enter__(self):
        try:
            self.conn = self.directory.service()
        except StoreUnavailable:
            raise
        except Exception as exc:  # ldap3 raises many kinds for transport and TLS trouble
            raise StoreUnavailable(f"directory unreachable: {first_line(exc)}") from None
        return self.conn

    def __exit__(self, kind, exc, traceback) -> bool:
        ldap_client.close_quietly(self.conn)
        if exc is not None and not isinstance(exc, StoreUnavailable | NoSuchUser):
            raise StoreUnavailable(f"directory search failed: {first_line(exc)}") from None
        return False


def _directory_user(entry: dict) -> DirectoryUser:
    def first(attribute: str) -> str:
        values = ldap_client.entry_values(entry, attribute)
        return str(values[0]) if values else ""

    return DirectoryUser(entry["dn"], first("uid") or first("sAMAccountName"), first("cn"), first("mail"))
