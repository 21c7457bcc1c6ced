"""JDBC URLs of relational identity providers (POSTGRES, ORACLE), parsed the way the drivers read them.

Pure: names are resolved as the JDBC drivers resolve them (folded unless quoted) and validated, so the checks in
clients/jdbc.py can quote them into DDL; messages never repeat the whole URL (it may carry credentials)."""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote, unquote_plus

from portal.idp.parsing import host_port

# Field paths of the registration API, so the form can pin each problem on the right input.
URL_FIELD = "relationalSchema.dataSourceURL"
USER_FIELD = "relationalSchema.dataSourceUserName"
PASSWORD_FIELD = "relationalSchema.dataSourcePassword"
TYPE_FIELD = "identityProviderType"

PG_DEFAULT_PORT = 5432
ORACLE_DEFAULT_PORT = 1521
PG_IDENTIFIER_MAX = 63  # NAMEDATALEN - 1: longer names are silently truncated by the server
ORACLE_IDENTIFIER_MAX = 128  # Oracle 12.2 and later

PG_FORM = "jdbc:postgresql://host[:port]/database[?currentSchema=schema]"
ORACLE_FORMS = (
    "jdbc:oracle:thin:@//host[:port]/service_name, jdbc:oracle:thin:@host:port/service_name "
    "or jdbc:oracle:thin:@host:port:SID"
)
EXPECTED_FORMS = f"{PG_FORM} or {ORACLE_FORMS}"

_KINDS = {"POSTGRES": "postgres", "ORACLE": "oracle"}
KIND_LABEL = {"postgres": "PostgreSQL", "oracle": "Oracle"}
KIND_FORM = {"postgres": PG_FORM, "oracle": ORACLE_FORMS}

# ASCII only: these names end up quoted in DDL, so anything a JDBC driver would not pass through unquoted is refused.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_HOST_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME = re.compile(rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*\.?")
_ORACLE_SERVICE = re.compile(r"[A-Za-z0-9_$#][A-Za-z0-9_$#.\-]{0,254}")
_ORACLE_SID = re.compile(r"[A-Za-z][A-Za-z0-9_$#]{0,63}")

@dataclass(frozen=True)
class JdbcTarget:
    """Where a JDBC URL points, with names already resolved the way the driver resolves them."""

    kind: str  # "postgres" | "oracle"
    host: str  # without IPv6 brackets
    port: int
    database: str | None = None  # PostgreSQL database name
    service_name: str | None = None  # Oracle
    sid: str | None = None  # Oracle
    schema: str | None = None  # as the server stores it: folded to lower (PostgreSQL) / upper (Oracle) unless quoted
    params: dict[str, str] = field(default_factory=dict)  # every query parameter, unknown ones included

    @property
    def address(self) -> str:
        return host_port(self.host, self.port)


# --- Parsing -------------------------------------------------------------------------------------------


def expected_kind(identity_provider_type: str) -> str:
    """The URL kind an identity-provider type needs, so a POSTGRES tenant with an Oracle URL is caught early."""
    kind = _KINDS.get((identity_provider_type or "").strip().upper())
    if kind is None:
        raise ValueError(
            f"identityProviderType {identity_provider_type!r} is not a relational type; expected POSTGRES or ORACLE."
        )
    return kind


def parse_jdbc_url(url: str) -> JdbcTarget:
    """Parse a PostgreSQL or Oracle thin JDBC URL; ValueError says what is wrong and which form is expected.

    Messages never repeat the whole URL: it may carry credentials the administrator pasted by mistake.
    """
    text = (url or "").strip() if isinstance(url, str) else ""
    if not text:
        raise ValueError(f"The data source URL is empty; expected {EXPECTED_FORMS}.")
    if text.lower() == "string":
        raise ValueError(
            f'The data source URL is still the placeholder "string"; enter the real JDBC URL, e.g. {EXPECTED_FORMS}.'
        )
    lower = text.lower()
    if lower.startswith("jdbc:postgresql:"):
        return _parse_postgres(text[len("jdbc:postgresql:"):])
    if lower.startswith("jdbc:oracle:"):
        return _parse_oracle(text[len("jdbc:oracle:"):])
    match = re.match(r"(jdbc:)?[A-Za-z][A-Za-z0-9+.\-]*(?=:)", text)
    scheme = f"{match.group(0)} URLs are" if match else "This URL is"
    raise ValueError(f"{scheme} not supported here; expected {EXPECTED_FORMS}.")


def _parse_postgres(rest: str) -> JdbcTarget:
    if not rest.startswith("//"):
        raise ValueError(f"The PostgreSQL URL must name a host and a database; expected {PG_FORM}.")
    base, _, query = rest[2:].partition("?")
    authority, slash, database = base.partition("/")
    if "@" in authority:
        raise ValueError(
            "Put the user name and password in dataSourceUserName and dataSourcePassword, not in the URL; "
            f"expected {PG_FORM}."
        )
    if "," in authority:
        raise ValueError(
            f"Multi-host PostgreSQL URLs are not supported; give a single host, e.g. {PG_FORM}."
        )
    host, port = _split_host_port(authority, PG_DEFAULT_PORT, PG_FORM)
    database = unquote(database)
    if not slash or not database:
        raise ValueError(f"The PostgreSQL URL names no database; expected {PG_FORM}.")
    _check_identifier(database, "database name", PG_IDENTIFIER_MAX)
    params = _parse_query(query)
    schema = _schema_param(params, fold=str.lower, limit=PG_IDENTIFIER_MAX)
    return JdbcTarget("postgres", host, port, database=database, schema=schema, params=params)


def _parse_oracle(rest: str) -> JdbcTarget:
    driver, _, rest = rest.partition(":")
    if driver.lower() != "thin":
        raise ValueError(f"Only the Oracle thin driver is supported; expected {ORACLE_FORMS}.")
    if not rest.startswith("@"):
        if "@" in rest:
            raise ValueError(
                "Put the user name and password in dataSourceUserName and dataSourcePassword, not in the URL; "
                f"expected {ORACLE_FORMS}."
            )
        raise ValueError(f"The Oracle URL must name a host; expected {ORACLE_FORMS}.")
    rest = rest[1:].strip()
    if rest.startswith("("):
        raise ValueError(
            "TNS descriptor URLs (jdbc:oracle:thin:@(DESCRIPTION=...)) are not supported; "
            f"use {ORACLE_FORMS}."
        )
    base, _, query = rest.partition("?")
    params = _parse_query(query)
    if "://" in base:
        raise ValueError(f"Protocol prefixes such as tcps:// are not supported; expected {ORACLE_FORMS}.")
    service_name = sid = None
    if base.startswith("//") or "/" in base:
        authority, _, service_name = base.removeprefix("//").partition("/")
        if not service_name:
            raise ValueError(f"The Oracle URL names no service name; expected {ORACLE_FORMS}.")
        if not _ORACLE_SERVICE.fullmatch(service_name):
            raise ValueError(
                f"{service_name!r} is not a valid Oracle service name (letters, digits, _ $ # . -); "
                f"expected {ORACLE_FORMS}."
            )
        host, port = _split_host_port(authority, ORACLE_DEFAULT_PORT, ORACLE_FORMS)
    else:
        authority, colon, sid = base.rpartition(":")
        if not colon:
            raise ValueError(f"TNS aliases are not supported; expected {ORACLE_FORMS}.")
        host, port = _split_host_port(authority, None, "jdbc:oracle:thin:@host:port:SID")
        if not sid:
            raise ValueError("The Oracle URL names no SID; expected jdbc:oracle:thin:@host:port:SID.")
        if not _ORACLE_SID.fullmatch(sid):
            raise ValueError(f"{sid!r} is not a valid Oracle SID (a letter, then letters, digits, _ $ #).")
    # Oracle URLs carry no schema; the portal reads an optional currentSchema parameter, as for PostgreSQL.
    schema = _schema_param(params, fold=str.upper, limit=ORACLE_IDENTIFIER_MAX)
    return JdbcTarget("oracle", host, port, service_name=service_name, sid=sid, schema=schema, params=params)


def _split_host_port(authority: str, default_port: int | None, form: str) -> tuple[str, int]:
    """host[:port] or [ipv6][:port]; the port is required when default_port is None."""
    if not authority:
        raise ValueError(f"The URL names no host; expected {form}.")
    if authority.startswith("["):
        host, bracket, after = authority[1:].partition("]")
        if not bracket:
            raise ValueError(f"An IPv6 address must be closed with ']'; expected {form}.")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"[{host}] is not a valid IPv6 address.") from None
        if after and not after.startswith(":"):
            raise ValueError(f"Unexpected text after [{host}]; expected {form}.")
        port_text = after[1:] if after else None
    else:
        if authority.count(":") > 1:
            raise ValueError(f"Write an IPv6 address in brackets, e.g. [::1]:5432; expected {form}.")
        host, colon, port_text_raw = authority.partition(":")
        port_text = port_text_raw if colon else None
        if not host or len(host) > 253 or not _HOSTNAME.fullmatch(host):
            raise ValueError(f"{host!r} is not a valid host name; expected {form}.")
    if port_text is None:
        if default_port is None:
            raise ValueError(f"The URL must give a port; expected {form}.")
        return host, default_port
    if not port_text.isascii() or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{port_text!r} is not a valid port (1-65535); expected {form}.")
    return host, int(port_text)


def _parse_query(query: str) -> dict[str, str]:
    """key=value&...; values are URL-decoded, as the JDBC drivers decode them."""
    params: dict[str, str] = {}
    for part in query.split("&") if query else ():
        if not part:
            continue
        key, _, value = part.partition("=")
        key = unquote_plus(key)
        if not key:
            raise ValueError("The URL has a query parameter without a name; expected ?name=value&name=value.")
        params[key] = unquote_plus(value)
    return params


def _schema_param(params: dict[str, str], *, fold: Callable[[str], str], limit: int) -> str | None:
    """The first entry of currentSchema, resolved like an SQL name: folded unless double-quoted."""
    if "currentSchema" not in params:
        return None
    first = params["currentSchema"].split(",")[0].strip()
    if len(first) >= 2 and first.startswith('"') and first.endswith('"'):
        name = first[1:-1]
    else:
        name = fold(first)
    if not name:
        raise ValueError("currentSchema is empty; give a schema name, e.g. ?currentSchema=userschema.")
    _check_identifier(name, "schema name (currentSchema)", limit)
    return name


def _check_identifier(name: str, what: str, limit: int) -> None:
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a valid {what}: use letters, digits, _ and $, starting with a letter or _."
        )
    if len(name) > limit:
        raise ValueError(f"The {what} is {len(name)} characters long; the limit is {limit}.")
