"""A WSO2 Identity Server 7 simulator: real HTTPS on 127.0.0.1 that asks for client certificates, authenticates REST
calls the way IS's ClientCertificateBasedAuthenticationHandler does, and serves the tenant management API under
/api/server/v1, following `reference/wso2-apis.md` §1 and §2 to the letter, quirks included:

- not found is 400 TM-60014 / TM-60015; HEAD /tenants/domain/{d} is 200 (taken) or 404 (free);
- create answers 201 with an EMPTY body and an absolute Location; a duplicate domain is 400 TM-60009; a bad email
  is a 500 TM-65002; PUT lifecycle-status answers 200 with the URI as a JSON string and no Location;
- list: limit 15 by default, 100 at most, case-sensitive sortOrder, `domainName sw|ew|eq|co value` filters;
- API errors are {"code": "TM-…", "message", "description", "traceId"} with X-WSO2-TraceId; the authentication
  valve's errors carry an INTEGER code, `WWW-Authenticate: Bearer realm=…` and application/json;charset=UTF-8.

Authentication uses portal.services.cert_auth.evaluate, the one implementation of IS's mapping rules, over the
simulator's own mapping list and users. A call without a client certificate gets 401 (with CERT_OPTIONAL, as IS's
handler cannot run); with `require_client_certificate` the TLS handshake itself refuses it, as a Tomcat connector
with `clientAuth="true"` does. Simulator choices where IS's behaviour was not read are marked "simulator:".

Tests import `Is7Simulator`; the demo starts it from the command line (`python -m tests.simulators.is7 --help`).
Injected latency, injected failures (a status or a connection reset, matched by method and path prefix) and a
request log make failure handling testable. All state is guarded by one lock.
"""
from __future__ import annotations

import argparse
import datetime
import http.server
import json
import os
import re
import shutil
import socket
import ssl
import struct
import sys
import tempfile
import threading
import time
import tomllib
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, quote_plus, unquote, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from portal.services import cert_auth
from portal.services.cert_auth import SystemMapping, UserMapping
from portal.services.certificates import java_dn

API_PREFIX = "/api/server/v1"
SUPER_TENANT = "carbon.super"
DEFAULT_LIMIT = 15  # carbon.xml ItemsPerPage
MAX_LIMIT = 100  # carbon.xml MaximumItemsPerPage
CORRELATION_HEADER = "activityid"  # RequestCorrelationIdValve's default header
USER_HEADER = "WSO2-Identity-User"
HANDSHAKE_TIMEOUT = 5.0
IDLE_TIMEOUT = 30.0
MAX_BODY = 1024 * 1024

AUTH_JSON = "application/json;charset=UTF-8"
API_JSON = "application/json"
UNAUTHORIZED_DESCRIPTION = "Authorization failure. Authorization information was invalid or missing from your request."
FORBIDDEN_DESCRIPTION = "Operation is not permitted. You do not have permissions to make this request."

# Operation messages (TenantManagementConstants): the `message` of an API error body.
LISTING = ("TM-65001", "Unable to list existing tenants.")
ADDING = ("TM-65002", "Unable to add tenant.")
RETRIEVING = ("TM-65003", "Unable to retrieve tenant.")
UPDATING = ("TM-65004", "Error while updating the tenant.")
DELETING = ("TM-65008", "Unable to delete the tenant metadata.")  # simulator: text not read
GETTING_OWNER = ("TM-65009", "Unable to retrieve the tenant owner.")  # simulator: text not read
UPDATING_OWNER = ("TM-65010", "Unable to update the tenant owner.")  # simulator: text not read

_ILLEGAL_DOMAIN = re.compile(r"[^a-z0-9._\-]")
_EMAIL_ILLEGAL = re.compile(r".*[()<>,;:\\\"\[\]].*", re.DOTALL)  # CommonUtil.validateEmail
_EMAIL_SHAPE = re.compile(r"^[^@]+@[^@.]+\.[^@]*\w\w$", re.ASCII)
_FILTER_OPERATIONS = ("sw", "ew", "eq", "co")


def _java_issuer(cert: x509.Certificate) -> str:
    """The issuer as IS reads it: Java's getIssuerDN().getName()."""
    return java_dn(cert.issuer)


def thumbprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


# --- State ---------------------------------------------------------------------------------------------------


@dataclass
class Owner:
    id: str
    username: str
    email: str
    firstname: str | None = None
    lastname: str | None = None
    password: str | None = field(default=None, repr=False)
    claims: dict[str, str] = field(default_factory=dict)


@dataclass
class Tenant:
    id: str
    domain: str
    owner: Owner
    created: datetime.datetime
    name: str | None = None
    activated: bool = True


@dataclass
class Fault:
    """An injected failure, used once: the first request whose method (None: any) and path prefix match gets
    `action`, an HTTP status (with `body`, or a generic error body) or "reset" (the TCP connection is reset)."""

    method: str | None
    path_prefix: str
    action: int | str
    delay: float = 0.0
    body: dict | None = None


@dataclass
class LoggedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes = field(repr=False)
    client_thumbprint: str | None
    client_issuer: str | None
    trace_id: str
    status: int | str | None = None  # "reset" for an injected reset
    decision: cert_auth.Decision | None = None

    @property
    def user(self) -> str | None:
        return self.headers.get(USER_HEADER.lower())

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class Is7State:
    """Everything the simulator knows, behind one lock (handler threads run concurrently)."""

    def __init__(self, *, user_mappings: Iterable[UserMapping] = (), system_mappings: Iterable[SystemMapping] = (),
                 users: Mapping[str, Iterable[str]] | None = None, public_cloud_setup: bool = True,
                 tenant_deletion: bool = False, client_cert_auth: bool = True, domain_regex: str | None = None,
                 latency: float = 0.0) -> None:
        self.lock = threading.RLock()
        self.user_mappings: list[UserMapping] = list(user_mappings)
        self.system_mappings: list[SystemMapping] = list(system_mappings)
        self.users: dict[str, set[str]] = {SUPER_TENANT: {"admin"}}
        for tenant, names in (users or {}).items():
            self.users.setdefault(tenant, set()).update(names)
        self.public_cloud_setup = public_cloud_setup
        self.tenant_deletion = tenant_deletion
        self.client_cert_auth = client_cert_auth
        self.domain_regex = domain_regex
        self.latency = latency
        self.tenants: dict[str, Tenant] = {}
        self.faults: deque[Fault] = deque()
        self.log: list[LoggedRequest] = []

    def user_exists(self, username: str) -> bool:
        """`[USERSTORE/]name[@tenant]` in that tenant's store; user names compare case-insensitively, as IS 7's
        default user stores do."""
        tenant = cert_auth.tenant_of(username)
        name, at, suffix = username.rpartition("@")
        if not at or (suffix != tenant and suffix != SUPER_TENANT):
            name = username
        store, slash, bare = name.partition("/")
        if slash and store.upper() == "PRIMARY":
            name = bare
        with self.lock:
            return name.lower() in {u.lower() for u in self.users.get(tenant, set())}

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if (fault.method is None or fault.method == method) and path.startswith(fault.path_prefix):
                    self.faults.remove(fault)
                    return fault
        return None


# --- The tenant management API -------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


class ApiError(Exception):
    """A TenantMgtException as the REST layer renders it: client errors 400, server errors 500."""

    def __init__(self, status: int, operation: tuple[str, str], description: str, code: str | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.code = code or operation[0]
        self.message = operation[1]
        self.description = description


def _json(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def _iso(moment: datetime.datetime) -> str:
    """Java's ISO_OFFSET_DATE_TIME of a millisecond Date in UTC: 2020-06-19T17:36:46.271Z (fraction trimmed)."""
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    millis = moment.microsecond // 1000
    if millis:
        text += "." + f"{millis:03d}".rstrip("0")
    return text + "Z"


def _drop_none(document: dict) -> dict:
    return {key: value for key, value in document.items() if value is not None}


class TenantApi:
    """The tenant management API's behaviour over an Is7State; `handle` maps one request to one Reply."""

    def __init__(self, state: Is7State, origin: Callable[[], str]) -> None:
        self.state = state
        self.origin = origin  # "https://<host>:<port>", for Location headers

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> Reply:
        parts = [unquote(p) for p in path[len(API_PREFIX):].strip("/").split("/")]
        if not path.startswith(API_PREFIX + "/") or parts[0] != "tenants":
            return Reply(404)
        routes = self._route(parts)
        if routes is None:
            return Reply(404)
        handler = routes.get(method)
        if handler is None:
            return Reply(405, headers={"Allow": ", ".join(sorted(routes))})
        try:
            return handler(query=query, body=body)
        except ApiError as exc:
            return Reply(exc.status, _json({"code": exc.code, "message": exc.message, "description": exc.description}),
                         API_JSON)

    def _route(self, parts: list[str]) -> dict[str, Callable[..., Reply]] | None:
        n = len(parts)
        if parts == ["tenants"]:
            return {"GET": self.list_tenants, "POST": self.create_tenant}
        if n == 3 and parts[1] == "domain":
            domain = parts[2]
            return {"GET": lambda **kw: self.get_by_domain(domain), "HEAD": lambda **kw: self.domain_taken(domain)}
        if n == 2:
            tenant_id = parts[1]
            return {"GET": lambda **kw: self.get_tenant(tenant_id)}
        if n == 3 and parts[2] == "lifecycle-status":
            tenant_id = parts[1]
            return {"PUT": lambda body, **kw: self.set_status(tenant_id, body)}
        if n == 3 and parts[2] == "owners":
            tenant_id = parts[1]
            return {"GET": lambda **kw: self.get_owners(tenant_id)}
        if n == 4 and parts[2] == "owners":
            tenant_id, owner_id = parts[1], parts[3]
            return {"GET": lambda query, **kw: self.get_owner(tenant_id, owner_id, query),
                    "PUT": lambda body, **kw: self.update_owner(tenant_id, owner_id, body)}
        if n == 3 and parts[2] == "metadata":
            tenant_id = parts[1]
            return {"DELETE": lambda **kw: self.delete_metadata(tenant_id)}
        return None

    # --- helpers ---

    def _tenant(self, tenant_id: str, operation: tuple[str, str] = RETRIEVING) -> Tenant:
        tenant = self.state.tenants.get(tenant_id)
        if tenant is None:
            raise ApiError(400, operation, f"Tenant cannot be found for the provided id: {tenant_id}.", "TM-60014")
        return tenant

    def _by_domain(self, domain: str) -> Tenant | None:
        return next((t for t in self.state.tenants.values() if t.domain == domain), None)

    @staticmethod
    def _model(tenant: Tenant, *, fill_name: bool = False) -> dict:
        name = tenant.name or (tenant.domain if fill_name else None)
        return _drop_none({
            "id": tenant.id, "name": name, "domain": tenant.domain,
            "owners": [{"id": tenant.owner.id, "username": tenant.owner.username}],
            "createdDate": _iso(tenant.created), "lifecycleStatus": {"activated": tenant.activated},
        })

    @staticmethod
    def _body(body: bytes) -> dict:
        try:
            document = json.loads(body) if body else None
        except ValueError:
            document = None
        if not isinstance(document, dict):
            # simulator: the bean-validation mapper's answer was not read (UNCONFIRMED in wso2-apis.md §1)
            raise ApiError(400, ("UE-10000", "Invalid Request"),
                           "Provided request body content is not in the expected format.")
        return document

    @staticmethod
    def _int_param(query: dict[str, list[str]], name: str) -> int | None:
        values = query.get(name)
        if not values or values[0] == "":
            return None
        try:
            return int(values[0])
        except ValueError:
            # JAX-RS: a query parameter that cannot be converted is a 404 Not Found.
            raise _NotFound from None

    # --- operations ---

    def list_tenants(self, query: dict[str, list[str]], **_: Any) -> Reply:
        try:
            limit = self._int_param(query, "limit")
            offset = self._int_param(query, "offset")
        except _NotFound:
            return Reply(404)
        limit = DEFAULT_LIMIT if limit is None else limit
        if limit < 0:
            raise ApiError(400, LISTING, "Limit should not be negative.", "TM-60010")
        limit = min(limit, MAX_LIMIT)
        offset = 0 if offset is None else offset
        if offset < 0:
            raise ApiError(400, LISTING, "Offset should not be negative.", "TM-60011")
        sort_order = (query.get("sortOrder") or [""])[0]
        descending = sort_order == "DESC"  # case-sensitive: "desc" silently means ASC
        raw_filter = (query.get("filter") or [""])[0]
        matches = self._filter(raw_filter)
        with self.state.lock:
            tenants = sorted((t for t in self.state.tenants.values() if matches(t.domain)),
                             key=lambda t: t.domain, reverse=descending)
        total = len(tenants)
        page = tenants[offset:offset + limit]
        document: dict[str, Any] = {"totalResults": total, "startIndex": offset + 1, "count": len(page)}
        if page:
            document["tenants"] = [self._model(t) for t in page]
        document["links"] = self._links(limit, offset, total, raw_filter)
        # Field order as IS's model serialises it does not matter to JSON clients.
        return Reply(200, _json(document), API_JSON)

    @staticmethod
    def _filter(raw: str) -> Callable[[str], bool]:
        if not raw.strip():
            return lambda domain: True
        tokens = raw.split(" ")
        while tokens and tokens[-1] == "":  # Java's String.split drops trailing empty strings
            tokens.pop()
        if len(tokens) != 3:
            raise ApiError(400, LISTING, "Invalid format used for filtering.", "TM-60022")  # simulator: text
        attribute, operation, value = tokens
        if attribute.lower() != "domainname":
            raise ApiError(400, LISTING, f"The filter attribute '{attribute}' is not supported.", "TM-60023")
        if _ILLEGAL_DOMAIN.search(value):
            raise ApiError(400, LISTING, _illegal_domain(value), "TM-60007")
        operation = operation.lower()
        if operation not in _FILTER_OPERATIONS:
            raise ApiError(400, LISTING, f"The filter operation is not supported for the attribute '{attribute}'.",
                           "TM-60024")  # simulator: text not read
        return {"sw": lambda d: d.startswith(value), "ew": lambda d: d.endswith(value),
                "eq": lambda d: d == value, "co": lambda d: value in d}[operation]

    @staticmethod
    def _links(limit: int, offset: int, total: int, raw_filter: str) -> list[dict]:
        def href(page_offset: int, page_limit: int) -> str:
            text = f"{API_PREFIX}/tenants?offset={page_offset}&limit={page_limit}"
            return text + (f"&filter={quote_plus(raw_filter)}" if raw_filter.strip() else "")

        links = []
        if limit > 0 and offset + limit < total:
            links.append({"href": href(offset + limit, limit), "rel": "next"})
        if offset > 0 and limit > 0:
            if offset - limit >= 0:
                previous = offset - limit
                while previous >= total and previous - limit >= 0:  # calculateOffsetForPreviousLink
                    previous -= limit
                links.append({"href": href(previous, limit), "rel": "previous"})
            else:
                links.append({"href": href(0, offset), "rel": "previous"})
        return links

    def create_tenant(self, body: bytes, **_: Any) -> Reply:
        document = self._body(body)
        domain = document.get("domain")
        if not isinstance(domain, str):
            raise ApiError(400, ("UE-10000", "Invalid Request"), "Property domain cannot be null.")
        owners = document.get("owners")
        if not isinstance(owners, list) or not owners or not isinstance(owners[0], dict):
            raise ApiError(400, ADDING, "Required parameter owner is not specified.", "TM-60012")
        owner = owners[0]  # IS uses owners[0] only
        for prop in ("username", "email", "provisioningMethod"):
            if not isinstance(owner.get(prop), str):
                raise ApiError(400, ("UE-10000", "Invalid Request"), f"Property {prop} cannot be null.")
        password = owner.get("password")
        inline = owner["provisioningMethod"].lower() == "inline-password"
        if inline and (not isinstance(password, str) or not password.strip()):
            raise ApiError(400, ADDING, "Required parameter password is not specified.", "TM-60013")
        problem = _email_problem(owner["email"])
        if problem:
            raise ApiError(500, ADDING, problem)  # a plain Exception in IS: server error TM-65002
        self._validate_domain(domain)
        claims = {c["claim"]: c.get("value") for c in owner.get("additionalClaims") or []
                  if isinstance(c, dict) and isinstance(c.get("claim"), str)}
        if not inline:
            claims["http://wso2.org/claims/identity/tenantAdminAskPassword"] = "true"
        with self.state.lock:
            if domain == SUPER_TENANT or self._by_domain(domain) is not None:
                raise ApiError(400, ADDING, f"A tenant with same domain {domain} already exist. Please use a "
                               "different domain name.", "TM-60009")
            tenant = Tenant(id=str(uuid.uuid4()), domain=domain, created=datetime.datetime.now(datetime.UTC),
                            name=document.get("name") if isinstance(document.get("name"), str) else None,
                            owner=Owner(id=str(uuid.uuid4()), username=owner["username"], email=owner["email"],
                                        firstname=owner.get("firstname"), lastname=owner.get("lastname"),
                                        password=password if inline else None, claims=claims))
            self.state.tenants[tenant.id] = tenant
            self.state.users.setdefault(domain, set()).add(owner["username"])
        return Reply(201, headers={"Location": f"{self.origin()}{API_PREFIX}/tenants/{tenant.id}"})

    def _validate_domain(self, domain: str) -> None:
        if not domain:
            raise ApiError(400, ADDING, "Provided domain name is empty.", "TM-60004")
        if self.state.public_cloud_setup and domain.rfind(".") <= 0:
            raise ApiError(400, ADDING, "You should have an extension to your domain.", "TM-60005")
        if domain.startswith("."):
            raise ApiError(400, ADDING, "Invalid domain. Domain should not start with '.'", "TM-60006")
        if _ILLEGAL_DOMAIN.search(domain):
            raise ApiError(400, ADDING, _illegal_domain(domain), "TM-60007")
        if self.state.domain_regex and not re.fullmatch(self.state.domain_regex, domain):
            raise ApiError(400, ADDING, f"Invalid tenant domain: {domain}. Domain should match the regex pattern "
                           f"{self.state.domain_regex}.", "TM-60017")

    def get_tenant(self, tenant_id: str) -> Reply:
        with self.state.lock:
            return Reply(200, _json(self._model(self._tenant(tenant_id))), API_JSON)

    def get_by_domain(self, domain: str) -> Reply:
        with self.state.lock:
            tenant = self._by_domain(domain)
            if tenant is None:
                raise ApiError(400, RETRIEVING, f"Tenant cannot be found for the provided domain: {domain}.",
                               "TM-60015")
            return Reply(200, _json(self._model(tenant, fill_name=True)), API_JSON)

    def domain_taken(self, domain: str) -> Reply:
        with self.state.lock:
            taken = domain == SUPER_TENANT or self._by_domain(domain) is not None
        return Reply(200 if taken else 404)

    def set_status(self, tenant_id: str, body: bytes) -> Reply:
        document = self._body(body)
        activated = document.get("activated")
        if not isinstance(activated, bool):
            raise ApiError(400, ("UE-10000", "Invalid Request"), "Property activated cannot be null.")  # simulator
        with self.state.lock:
            self._tenant(tenant_id, UPDATING).activated = activated
        # 200, no Location; Jackson serialises the URI the implementation returns as a JSON string.
        return Reply(200, _json(f"{self.origin()}{API_PREFIX}/tenants/{tenant_id}"), API_JSON)

    def get_owners(self, tenant_id: str) -> Reply:
        with self.state.lock:
            owner = self._tenant(tenant_id).owner
            return Reply(200, _json([{"id": owner.id, "username": owner.username}]), API_JSON)

    def _owner(self, tenant_id: str, owner_id: str, operation: tuple[str, str]) -> Owner:
        owner = self._tenant(tenant_id, operation).owner
        if owner.id != owner_id:
            raise ApiError(400, operation, f"Invalid owner id: {owner_id} for the tenant: {tenant_id}.",
                           "TM-60020")  # simulator: text not read; names the tenant id as IS's tests expect
        return owner

    def get_owner(self, tenant_id: str, owner_id: str, query: dict[str, list[str]]) -> Reply:
        requested = [c for value in query.get("additionalClaims", []) for c in value.split(",") if c]
        with self.state.lock:
            owner = self._owner(tenant_id, owner_id, GETTING_OWNER)
            claims = [{"claim": c, "value": owner.claims[c]} for c in requested if (owner.claims.get(c) or "").strip()]
            document = _drop_none({"id": owner.id, "username": owner.username, "email": owner.email,
                                   "firstname": owner.firstname, "lastname": owner.lastname})
            if claims:
                document["additionalClaims"] = claims
        return Reply(200, _json(document), API_JSON)

    def update_owner(self, tenant_id: str, owner_id: str, body: bytes) -> Reply:
        document = self._body(body)
        with self.state.lock:
            owner = self._owner(tenant_id, owner_id, UPDATING_OWNER)
            email = document.get("email")
            if isinstance(email, str) and email.strip():
                if _email_problem(email):
                    raise ApiError(400, UPDATING_OWNER, "Invalid email address is provided.", "TM-60002")
                owner.email = email
            for key in ("firstname", "lastname"):
                value = document.get(key)
                if isinstance(value, str) and value.strip():  # blank keeps the old value
                    setattr(owner, key, value)
            if isinstance(document.get("password"), str) and document["password"]:
                owner.password = document["password"]
            for claim in document.get("additionalClaims") or []:
                if isinstance(claim, dict) and isinstance(claim.get("claim"), str):
                    owner.claims[claim["claim"]] = claim.get("value")
        return Reply(200)

    def delete_metadata(self, tenant_id: str) -> Reply:
        if not self.state.tenant_deletion:
            raise ApiError(400, DELETING, "Tenant deletion property Tenant.TenantDelete is not enabled in carbon.xml "
                           "file.", "TM-60016")
        with self.state.lock:
            tenant = self.state.tenants.pop(tenant_id, None)  # an unknown id is not an error (only logged by IS)
            if tenant is not None:
                self.state.users.pop(tenant.domain, None)
        return Reply(204)


class _NotFound(Exception):
    pass


def _illegal_domain(domain: str) -> str:
    return (f"The tenant domain {domain} contains one or more illegal characters. The valid characters are "
            "lowercase letters, numbers, '.', '-' and '_'.")


def _email_problem(email: str) -> str | None:
    """CommonUtil.validateEmail's messages; IS wraps them into a 500 TM-65002."""
    email = email.strip()
    if not email:
        return "Provided email value is empty."
    if _EMAIL_ILLEGAL.fullmatch(email):
        return "Wrong characters in the email."
    if not _EMAIL_SHAPE.fullmatch(email):
        return "Invalid email address is provided."
    return None


# --- HTTPS server ----------------------------------------------------------------------------------------------


class _HandshakeFailed(Exception):
    pass


def _drain_and_close(tls: ssl.SSLSocket) -> None:
    """After a refused handshake, read what the client still sends before closing: closing with unread data makes
    the kernel send a RST, which can overtake the TLS alert, and the client would see "connection reset" instead
    of "unknown ca"."""
    try:
        raw = socket.socket(fileno=os.dup(tls.fileno()))
    except OSError:
        tls.close()
        return
    try:
        raw.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            raw.settimeout(max(0.01, deadline - time.monotonic()))
            if not raw.recv(65536):
                break
    except OSError:
        pass
    finally:
        raw.close()
        tls.close()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    server_version = "WSO2 Carbon Server"  # the Server header of IS's Tomcat connector

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        # The handshake runs in the request thread, so a client that stalls cannot block accept().
        self.request.settimeout(HANDSHAKE_TIMEOUT)
        tls = self.server.tls.wrap_socket(self.request, server_side=True, do_handshake_on_connect=False)
        try:
            tls.do_handshake()
        except (ssl.SSLError, OSError):
            _drain_and_close(tls)
            raise _HandshakeFailed from None
        tls.settimeout(IDLE_TIMEOUT)
        self.request = self.connection = tls
        self.server.track(tls, add=True)
        super().setup()

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.track(self.request, add=False)
            self.request.close()

    def log_message(self, format: str, *args: object) -> None:
        if self.server.sim.verbose:
            sys.stderr.write(f"is7-sim {self.address_string()} {format % args}\n")

    def _dispatch(self) -> None:
        sim = self.server.sim
        body = self._read_body()
        if body is None:
            return
        split = urlsplit(self.path)
        der = self.connection.getpeercert(binary_form=True)
        cert = x509.load_der_x509_certificate(der) if der else None
        trace_id = self.headers.get(CORRELATION_HEADER) or str(uuid.uuid4())
        entry = LoggedRequest(method=self.command, path=split.path, query=split.query,
                              headers={k.lower(): v for k, v in self.headers.items()}, body=body,
                              client_thumbprint=thumbprint(cert) if cert else None,
                              client_issuer=_java_issuer(cert) if cert else None, trace_id=trace_id)
        with sim.state.lock:
            sim.state.log.append(entry)
            latency = sim.state.latency
        if latency:
            time.sleep(latency)
        fault = sim.state.take_fault(self.command, split.path)
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.action == "reset":
                entry.status = "reset"
                self._reset()
                return
            status = int(fault.action)
            document = fault.body or {"code": f"SIM-{status}", "message": "Injected failure.",
                                      "description": f"The simulator was told to answer {status}."}
            self._send(entry, Reply(status, _json({**document, "traceId": trace_id}), API_JSON))
            return
        refusal = self._authenticate(cert, entry)
        if refusal is not None:
            self._send(entry, refusal)
            return
        reply = sim.api.handle(self.command, split.path, parse_qs(split.query, keep_blank_values=True), body)
        if reply.status >= 400 and reply.body and reply.content_type == API_JSON:
            document = json.loads(reply.body)
            if isinstance(document, dict):
                reply.body = _json({**document, "traceId": trace_id})
        self._send(entry, reply)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _dispatch

    def _read_body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self._plain(411)
            return None
        length = self.headers.get("Content-Length") or "0"
        if not length.isdigit() or int(length) > MAX_BODY:
            self._plain(413)
            return None
        return self.rfile.read(int(length)) if int(length) else b""

    def _plain(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def _authenticate(self, cert: x509.Certificate | None, entry: LoggedRequest) -> Reply | None:
        """None when the call may proceed, else the valve's 401/403."""
        state = self.server.sim.state
        if cert is None or not state.client_cert_auth:
            # The certificate handler cannot run (canHandle false) and the simulator has no other handler.
            return self._valve(401, "Unauthorized", UNAUTHORIZED_DESCRIPTION, entry.trace_id)
        with state.lock:
            user_mappings, system_mappings = list(state.user_mappings), list(state.system_mappings)
        decision = cert_auth.evaluate(entry.client_issuer or "", entry.client_thumbprint or "",
                                      self.headers.get(USER_HEADER), user_mappings, system_mappings,
                                      user_exists=state.user_exists)
        entry.decision = decision
        if not decision.ok:
            return self._valve(401, "Unauthorized", UNAUTHORIZED_DESCRIPTION, entry.trace_id)
        if decision.user is not None and cert_auth.tenant_of(decision.user) != SUPER_TENANT:
            # simulator: the tenant management API runs in the super tenant; a tenant's user is not permitted.
            return self._valve(403, "Forbidden", FORBIDDEN_DESCRIPTION, entry.trace_id)
        return None

    def _valve(self, status: int, message: str, description: str, trace_id: str) -> Reply:
        headers = {"WWW-Authenticate": f"Bearer realm={self.server.sim.hostname}"} if status == 401 else {}
        return Reply(status, _json({"code": status, "message": message, "description": description,
                                    "traceId": trace_id}), AUTH_JSON, headers)

    def _send(self, entry: LoggedRequest, reply: Reply) -> None:
        entry.status = reply.status
        self.send_response(reply.status)
        if reply.content_type and reply.body:
            self.send_header("Content-Type", reply.content_type)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("X-WSO2-TraceId", entry.trace_id)
        body = b"" if self.command == "HEAD" else reply.body
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _reset(self) -> None:
        """Abort the TCP connection (RST), as a crashing server or a middlebox would."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.wfile = _Sink()
        self.connection.close()


class _Sink:
    """Stands in for wfile after a reset so http.server's flush in finish() has nowhere to write."""

    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    @property
    def closed(self) -> bool:
        return False


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], tls: ssl.SSLContext, sim: Is7Simulator) -> None:
        self.tls = tls
        self.sim = sim
        self._open: set[ssl.SSLSocket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, connection: ssl.SSLSocket, *, add: bool) -> None:
        with self._open_lock:
            (self._open.add if add else self._open.discard)(connection)

    def close_connections(self) -> None:
        with self._open_lock:
            connections, self._open = list(self._open), set()
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: object, client_address: object) -> None:
        # Refused handshakes, clients hanging up, injected resets: all expected here. Real bugs surface in tests
        # as wrong answers; print them only when asked.
        if self.sim.verbose:
            super().handle_error(request, client_address)


def _server_context(cert_pem: str, key_pem: str, client_ca_pem: str, require: bool) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    directory = tempfile.mkdtemp(prefix="is7-sim-")
    try:
        cert_path, key_path = os.path.join(directory, "server.pem"), os.path.join(directory, "server-key.pem")
        for path, text in ((cert_path, cert_pem), (key_path, key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
        context.load_cert_chain(cert_path, key_path)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    context.load_verify_locations(cadata=client_ca_pem)
    context.verify_mode = ssl.CERT_REQUIRED if require else ssl.CERT_OPTIONAL
    return context


class Is7Simulator:
    """IS 7 on https://127.0.0.1:<port>. Use as a context manager, or start()/stop()."""

    def __init__(self, *, server_cert_pem: str, server_key_pem: str, client_ca_pem: str,
                 user_mappings: Iterable[UserMapping] = (), system_mappings: Iterable[SystemMapping] = (),
                 users: Mapping[str, Iterable[str]] | None = None, host: str = "127.0.0.1", port: int = 0,
                 hostname: str | None = None, require_client_certificate: bool = False,
                 public_cloud_setup: bool = True, tenant_deletion: bool = False, client_cert_auth: bool = True,
                 domain_regex: str | None = None, latency: float = 0.0, verbose: bool = False) -> None:
        self.state = Is7State(user_mappings=user_mappings, system_mappings=system_mappings, users=users,
                              public_cloud_setup=public_cloud_setup, tenant_deletion=tenant_deletion,
                              client_cert_auth=client_cert_auth, domain_regex=domain_regex, latency=latency)
        self.hostname = hostname or host  # what IS puts in Location and the WWW-Authenticate realm
        self.verbose = verbose
        self.api = TenantApi(self.state, lambda: self.base_url)
        context = _server_context(server_cert_pem, server_key_pem, client_ca_pem, require_client_certificate)
        self._server = _Server((host, port), context, self)
        self._thread: threading.Thread | None = None

    # --- lifecycle ---

    def start(self) -> Is7Simulator:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="is7-simulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"https://{self.hostname}:{self.port}"

    # --- test controls (thread-safe) ---

    def set_mappings(self, user: Iterable[UserMapping] | None = None,
                     system: Iterable[SystemMapping] | None = None) -> None:
        with self.state.lock:
            if user is not None:
                self.state.user_mappings = list(user)
            if system is not None:
                self.state.system_mappings = list(system)

    def add_user(self, username: str) -> None:
        """`name` (super tenant) or `name@tenant.domain`."""
        tenant = cert_auth.tenant_of(username)
        name = username.rpartition("@")[0] if tenant != SUPER_TENANT else username.removesuffix("@" + SUPER_TENANT)
        with self.state.lock:
            self.state.users.setdefault(tenant, set()).add(name)

    def remove_user(self, username: str) -> None:
        tenant = cert_auth.tenant_of(username)
        name = username.rpartition("@")[0] if tenant != SUPER_TENANT else username.removesuffix("@" + SUPER_TENANT)
        with self.state.lock:
            self.state.users.get(tenant, set()).discard(name)

    def add_tenant(self, domain: str, *, owner: str = "admin", email: str | None = None,
                   activated: bool = True, name: str | None = None) -> Tenant:
        """Seed a tenant directly (no validation), e.g. to test paging."""
        with self.state.lock:
            tenant = Tenant(id=str(uuid.uuid4()), domain=domain, created=datetime.datetime.now(datetime.UTC),
                            name=name, activated=activated,
                            owner=Owner(id=str(uuid.uuid4()), username=owner, email=email or f"{owner}@{domain}"))
            self.state.tenants[tenant.id] = tenant
            self.state.users.setdefault(domain, set()).add(owner)
            return tenant

    def tenant(self, domain: str) -> Tenant | None:
        with self.state.lock:
            return next((t for t in self.state.tenants.values() if t.domain == domain), None)

    def push_fault(self, method: str | None, path_prefix: str, action: int | str, *, delay: float = 0.0,
                   body: dict | None = None) -> None:
        if action != "reset" and not (isinstance(action, int) and 100 <= action <= 599):
            raise ValueError("action is an HTTP status or 'reset'")
        with self.state.lock:
            self.state.faults.append(Fault(method, path_prefix, action, delay, body))

    def set_latency(self, seconds: float) -> None:
        with self.state.lock:
            self.state.latency = seconds

    def configure(self, **settings: Any) -> None:
        """public_cloud_setup, tenant_deletion, client_cert_auth, domain_regex."""
        allowed = {"public_cloud_setup", "tenant_deletion", "client_cert_auth", "domain_regex"}
        unknown = set(settings) - allowed
        if unknown:
            raise ValueError(f"unknown settings {sorted(unknown)}")
        with self.state.lock:
            for key, value in settings.items():
                setattr(self.state, key, value)

    @property
    def requests(self) -> list[LoggedRequest]:
        with self.state.lock:
            return list(self.state.log)

    def clear_log(self) -> None:
        with self.state.lock:
            self.state.log.clear()


# --- Command line ----------------------------------------------------------------------------------------------


def load_mappings(path: Path) -> tuple[list[UserMapping], list[SystemMapping]]:
    """Read the `[client_certificate_based_authentication]` block of an IS deployment.toml (or a file holding only
    that block), as the portal generates it."""
    with path.open("rb") as handle:
        document = tomllib.load(handle)
    block = document.get("client_certificate_based_authentication", document)
    users = [UserMapping(m.get("trusted_issuer", ""), m.get("cert_thumbprint", ""),
                         tuple(m.get("allowed_username", []) or []))
             for m in block.get("user_thumbprint_mapping", [])]
    systems = [SystemMapping(m.get("trusted_issuer", ""), m.get("cert_thumbprint", ""),
                             m.get("allowed_system_user", ""))
               for m in block.get("system_thumbprint_mapping", [])]
    return users, systems


def _parse_user(text: str) -> tuple[str, str]:
    tenant, sep, name = text.partition(":")
    if not sep or not tenant or not name:
        raise argparse.ArgumentTypeError("use TENANT:USERNAME, e.g. carbon.super:admin")
    return tenant, name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.simulators.is7",
        description="WSO2 IS 7 simulator (test tool): HTTPS with client-certificate authentication and the tenant "
                    "management API at /api/server/v1.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9443, help="port (default 9443; 0 picks a free one)")
    parser.add_argument("--hostname", help="host name used in Location headers (default: --host)")
    parser.add_argument("--cert", type=Path, help="server certificate PEM")
    parser.add_argument("--key", type=Path, help="server private key PEM")
    parser.add_argument("--client-ca", type=Path, help="PEM bundle of CAs whose client certificates are accepted")
    parser.add_argument("--mappings", type=Path, help="TOML with the client_certificate_based_authentication block")
    parser.add_argument("--user", action="append", type=_parse_user, default=[], metavar="TENANT:USERNAME",
                        help="a user that exists (repeatable); carbon.super:admin always exists")
    parser.add_argument("--demo-pki", type=Path, metavar="DIR",
                        help="make a throwaway PKI in DIR and map its client certificate to admin (ignores --cert, "
                             "--key, --client-ca)")
    parser.add_argument("--require-client-certificate", action="store_true",
                        help="refuse TLS handshakes without a client certificate (clientAuth=true)")
    parser.add_argument("--no-public-cloud-setup", action="store_true", help="accept domains without a dot")
    parser.add_argument("--tenant-deletion", action="store_true", help="enable DELETE /tenants/{id}/metadata")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    parser.add_argument("--verbose", action="store_true", help="log requests to stderr")
    args = parser.parse_args(argv)

    user_mappings: list[UserMapping] = []
    system_mappings: list[SystemMapping] = []
    if args.demo_pki:
        from tests.simulators.pki import is7_pki
        pki = is7_pki()
        args.demo_pki.mkdir(parents=True, exist_ok=True)
        (args.demo_pki / "server-ca.pem").write_text(pki.server_ca.cert_pem)
        (args.demo_pki / "client-ca.pem").write_text(pki.client_ca.cert_pem)
        pki.client.write(args.demo_pki, "client")
        cert_pem, key_pem, client_ca_pem = pki.server.cert_pem, pki.server.key_pem, pki.client_ca.cert_pem
        issuer = _java_issuer(pki.client.cert)
        user_mappings.append(UserMapping(issuer, pki.client.thumbprint, ("admin",)))
        system_mappings.append(SystemMapping(issuer, pki.client.thumbprint, "admin"))
        print(f"Demo PKI in {args.demo_pki}: server-ca.pem (trust it), client.pem + client-key.pem (present them).")
        print(f"Client certificate issuer: {issuer}\nClient certificate thumbprint: {pki.client.thumbprint}")
    else:
        if not (args.cert and args.key and args.client_ca):
            parser.error("--cert, --key and --client-ca are required (or use --demo-pki DIR)")
        cert_pem, key_pem = args.cert.read_text(), args.key.read_text()
        client_ca_pem = args.client_ca.read_text()
    if args.mappings:
        users, systems = load_mappings(args.mappings)
        user_mappings.extend(users)
        system_mappings.extend(systems)
    extra_users: dict[str, set[str]] = {}
    for tenant, name in args.user:
        extra_users.setdefault(tenant, set()).add(name)
    simulator = Is7Simulator(server_cert_pem=cert_pem, server_key_pem=key_pem, client_ca_pem=client_ca_pem,
                             user_mappings=user_mappings, system_mappings=system_mappings, users=extra_users,
                             host=args.host, port=args.port, hostname=args.hostname,
                             require_client_certificate=args.require_client_certificate,
                             public_cloud_setup=not args.no_public_cloud_setup, tenant_deletion=args.tenant_deletion,
                             latency=args.latency, verbose=args.verbose)
    simulator.start()
    print(f"IS 7 simulator on {simulator.base_url}{API_PREFIX} ({len(user_mappings)} user and "
          f"{len(system_mappings)} system mappings). Ctrl-C stops it.", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        simulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
