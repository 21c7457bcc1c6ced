"""A WSO2 Identity Server 7 simulator: real HTTPS on 127.0.0.1 that asks for client certificates, authenticates REST
calls the way IS's authentication handlers do, and serves the tenant management API under /api/server/v1,
following `reference/wso2-apis.md` §1-§3 to the letter, quirks included:

- not found is 400 TM-60014 / TM-60015; HEAD /tenants/domain/{d} is 200 (taken) or 404 (free);
- create answers 201 with an EMPTY body and an absolute Location; a duplicate domain is 400 TM-60009; a bad email
  is a 500 TM-65002; PUT lifecycle-status answers 200 with the URI as a JSON string and no Location;
- list: limit 15 by default, 100 at most, case-sensitive sortOrder, `domainName sw|ew|eq|co value` filters;
- API errors are {"code": "TM-…", "message", "description", "traceId"} with X-WSO2-TraceId; the authentication
  valve's errors carry an INTEGER code, `WWW-Authenticate: Bearer realm=…` and application/json;charset=UTF-8.

Authentication: a presented client certificate (with certificate authentication on) is decided by the
simulator's own port of IS's ClientCertificateBasedAuthenticationHandler (cert_oracle.py; `handler_line` "master"
or "backport"), over the simulator's own mapping list and user stores, and wins over any Authorization header
(priority 10 against Basic's 100, no fallback); otherwise HTTP Basic is checked against the simulator's Basic users
(admin/admin by default) and tenant owners' passwords. Anything else gets the valve's 401. With
`require_client_certificate` the TLS handshake itself refuses a client without a certificate, as a Tomcat connector
with `clientAuth="true"` does. Authorization follows identity.xml.j2's resource permissions for the tenant API
(`/permission/protected/manage/monitor/tenants/list` for GET/POST/HEAD, `.../manage/modify/tenants` for PUT and
DELETE): a user without them gets the valve's 403. Users have every permission unless given fewer
(`add_user(..., permissions=...)`).

The key manager's endpoints (what API Manager's WSO2-IS-7 key manager calls for a new tenant):
`POST /t/{domain}/api/identity/oauth2/dcr/v1.1/register` (behind the same authentication; the user must belong to
that tenant) and `POST /t/{domain}/oauth2/token` (client_credentials, client authenticated by Basic
client_id:client_secret; not behind the REST valve). An unknown or inactive tenant domain in `/t/...` is answered
by TenantContextRewriteValve's 404. Registered applications and issued tokens are kept per tenant.

IS's own sync to API Manager (§3): when `configure_tenant_sync` is given a notification endpoint, the
TenantSyncListener posts CREATE / UPDATE / ACTIVATE / DEACTIVATE events (integer tenant ids, Basic auth, the
configured `header.*` headers) asynchronously on IS's pool (core size 2 over an unbounded queue, so two threads),
retrying ONLY when the connection fails (5 attempts, delays 1/2/4/8 s times `retry_delay`); any HTTP status ends
an event, as in IS. `wait_for_sync` lets tests wait for the pool to drain; `sync_attempts` records every try.

Tests import `Is7Simulator`; the demo starts it from the command line (`python -m simulators.is7 --help`).
Injected latency, failures (a status or a connection reset, matched by method and path prefix), downtime and a
request log make failure handling testable. Simulator choices where IS's behaviour was not read are marked
"simulator:".
"""
from __future__ import annotations

import argparse
import base64
import binascii
import datetime
import http.client
import json
import re
import ssl
import sys
import threading
import time
import tomllib
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote_plus, unquote, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from simulators import cert_oracle, x509_names
from simulators.cert_oracle import (
    HANDLER_LINES,
    MASTER,
    AuthenticationResult,
    ClientCertAuthConfig,
    SystemMapping,
    UserMapping,
    system_mapping,
    tenant_domain_of,
    user_mapping,
)
from simulators.https import (
    BaseState,
    Fault,
    HttpsSimulator,
    TlsHandler,
    run_until_interrupted,
    server_context,
)

__all__ = ["API_PREFIX", "FORBIDDEN_DESCRIPTION", "Fault", "HANDLER_LINES", "Is7Simulator", "LIST_TENANTS",
           "MODIFY_TENANTS", "SystemMapping", "TenantSyncConfig", "UNAUTHORIZED_DESCRIPTION", "UserMapping",
           "load_mappings", "main"]

API_PREFIX = "/api/server/v1"
SUPER_TENANT = "carbon.super"
DEFAULT_LIMIT = 15  # carbon.xml ItemsPerPage
MAX_LIMIT = 100  # carbon.xml MaximumItemsPerPage
CORRELATION_HEADER = "activityid"  # RequestCorrelationIdValve's default header
USER_HEADER = "WSO2-Identity-User"

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

# IdentityMgtConstants.TenantManagement: one event URI per kind; DEACTIVATE reuses the activation URI.
EVENT_URI_PREFIX = "https://schemas.identity.wso2.org/events/tenant/event-type/"
EVENT_URIS = {"CREATE": EVENT_URI_PREFIX + "tenantCreated", "UPDATE": EVENT_URI_PREFIX + "tenantOwnerUpdated",
              "ACTIVATE": EVENT_URI_PREFIX + "tenantActivated", "DEACTIVATE": EVENT_URI_PREFIX + "tenantActivated"}

_ILLEGAL_DOMAIN = re.compile(r"[^a-z0-9._\-]")
_EMAIL_ILLEGAL = re.compile(r".*[()<>,;:\\\"\[\]].*", re.DOTALL)  # CommonUtil.validateEmail
_EMAIL_SHAPE = re.compile(r"^[^@]+@[^@.]+\.[^@]*\w\w$", re.ASCII)
_FILTER_OPERATIONS = ("sw", "ew", "eq", "co")

# identity.xml.j2 <ResourceAccessControl> for /api/server/v1/tenants(.*): the permission each method needs.
LIST_TENANTS = "/permission/protected/manage/monitor/tenants/list"  # scope internal_list_tenants
MODIFY_TENANTS = "/permission/protected/manage/modify/tenants"  # scope internal_modify_tenants
ALL_PERMISSIONS = frozenset({"/permission"})
_TENANT_API_PERMISSIONS = {"GET": LIST_TENANTS, "POST": LIST_TENANTS, "HEAD": LIST_TENANTS,
                           "PUT": MODIFY_TENANTS, "DELETE": MODIFY_TENANTS}

DCR_PATH = "/api/identity/oauth2/dcr/v1.1/register"
TOKEN_PATH = "/oauth2/token"
_TENANT_PATH = re.compile(r"^/t/([^/]+)(/.*)$")


def _java_issuer(cert: x509.Certificate) -> str:
    """The issuer as IS reads it: Java's getIssuerDN().getName()."""
    return x509_names.issuer_name(cert)


def thumbprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """(user, password) from `Authorization: Basic …` (scheme case-insensitive), None when absent or unreadable."""
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        text = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = text.partition(":")
    return (user, password) if colon else None


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
    number: int = 0  # IS's integer tenant id (1, 2, …): what the TenantSyncListener sends, not the REST UUID


@dataclass
class Application:
    """An OAuth application registered through DCR in one tenant."""

    client_id: str
    client_secret: str = field(repr=False)
    client_name: str
    grant_types: list[str]
    redirect_uris: list[str]
    owner: str | None  # the user who registered it


@dataclass
class IssuedToken:
    access_token: str = field(repr=False)
    client_id: str
    tenant: str
    grant_type: str
    expires_in: int = 3600


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
    decision: AuthenticationResult | None = None
    basic_user: str | None = None  # who authenticated with HTTP Basic
    authenticated: str | None = None  # the user the call runs as (None: none, or not authenticated)

    @property
    def user(self) -> str | None:
        return self.headers.get(USER_HEADER.lower())

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class Is7State(BaseState):
    """Everything the simulator knows, behind one lock (handler threads run concurrently)."""

    def __init__(self, *, user_mappings: Iterable[Any] = (), system_mappings: Iterable[Any] = (),
                 users: Mapping[str, Iterable[str]] | None = None, basic_users: Mapping[str, str] | None = None,
                 public_cloud_setup: bool = False, tenant_deletion: bool = False,
                 client_cert_auth: bool | None = True, log_client_cert_info: bool = False,
                 handler_line: str = MASTER, domain_regex: str | None = None, latency: float = 0.0) -> None:
        super().__init__(latency=latency)
        if handler_line not in HANDLER_LINES:
            raise ValueError(f"handler_line must be one of {HANDLER_LINES}")
        # Mappings may be given as any objects with the deployment.toml fields; they are kept as the simulator's own.
        self.user_mappings: list[UserMapping] = [user_mapping(m) for m in user_mappings]
        self.system_mappings: list[SystemMapping] = [system_mapping(m) for m in system_mappings]
        self.handler_line = handler_line
        self.log_client_cert_info = log_client_cert_info
        self.cert_info_log: list[str] = []  # what the backport handler logs with LogClientCertInfoEnabled
        # (tenant, lower-case name) -> permissions; users not listed have all (as the super admin has).
        self.permissions: dict[tuple[str, str], frozenset[str]] = {}
        self.applications: dict[str, dict[str, Application]] = {}  # tenant domain -> client_id -> application
        self.tokens: dict[str, IssuedToken] = {}
        self.users: dict[str, set[str]] = {SUPER_TENANT: {"admin"}}
        for tenant, names in (users or {}).items():
            self.users.setdefault(tenant, set()).update(names)
        self.basic_users: dict[str, str] = dict({"admin": "admin"} if basic_users is None else basic_users)
        for name in self.basic_users:
            if "@" not in name:
                self.users[SUPER_TENANT].add(name)
        self.public_cloud_setup = public_cloud_setup
        self.tenant_deletion = tenant_deletion
        self.client_cert_auth = client_cert_auth  # None: no [client_certificate_based_authentication] at all
        self.domain_regex = domain_regex
        self.tenants: dict[str, Tenant] = {}
        self.next_number = 1

    def take_number(self) -> int:
        with self.lock:
            number, self.next_number = self.next_number, self.next_number + 1
            return number

    def tenant_known(self, domain: str) -> bool:
        with self.lock:
            return domain == SUPER_TENANT or domain in self.users or any(
                t.domain == domain for t in self.tenants.values())

    def tenant_active(self, domain: str) -> bool:
        """TenantManager.isTenantActive(getTenantId(domain)): False for a domain IS does not know."""
        with self.lock:
            if domain == SUPER_TENANT:
                return True
            tenant = next((t for t in self.tenants.values() if t.domain == domain), None)
            return tenant.activated if tenant is not None else domain in self.users

    def user_store(self, tenant: str, store: str, name: str) -> bool:
        """isExistingUser in that tenant's realm (PRIMARY only; names compare ignoring case, as IS 7's default
        user stores do). An unknown tenant raises, as getTenantIdOfUser does."""
        if not self.tenant_known(tenant):
            raise cert_oracle.TenantNotFound(tenant)
        if store != cert_oracle.PRIMARY_DOMAIN:
            return False  # simulator: only the primary user store exists
        with self.lock:
            return name.lower() in {u.lower() for u in self.users.get(tenant, set())}

    def user_exists(self, username: str) -> bool:
        """`[USERSTORE/]name[@tenant]` in that tenant's store."""
        try:
            return self.user_store(*cert_oracle.split_username(username))
        except cert_oracle.TenantNotFound:
            return False

    def has_permission(self, username: str, permission: str) -> bool:
        """IS's permission tree: holding a permission grants every permission below it."""
        tenant, _, name = cert_oracle.split_username(username)
        with self.lock:
            granted = self.permissions.get((tenant, name.lower()), ALL_PERMISSIONS)
        return any(permission == g or permission.startswith(g.rstrip("/") + "/") for g in granted)

    def client_cert_config(self) -> ClientCertAuthConfig:
        with self.lock:
            return ClientCertAuthConfig(present=self.client_cert_auth is not None,
                                        enable=bool(self.client_cert_auth),
                                        log_client_cert_info=self.log_client_cert_info,
                                        user_mappings=tuple(self.user_mappings),
                                        system_mappings=tuple(self.system_mappings))

    def check_password(self, username: str, password: str) -> bool:
        """Basic authentication: a configured Basic user, or a tenant owner (`name@domain`) with its password."""
        with self.lock:
            for name, secret in self.basic_users.items():
                if name.lower() == username.lower() and secret == password:
                    return self.user_exists(username)
            name, at, domain = username.rpartition("@")
            if at:
                tenant = next((t for t in self.tenants.values() if t.domain == domain), None)
                if tenant and tenant.owner.username.lower() == name.lower() and tenant.owner.password and \
                        tenant.owner.password == password:
                    return True
        return False


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

    def __init__(self, state: Is7State, origin: Callable[[], str],
                 events: Callable[[str, Tenant, dict | None], None] | None = None) -> None:
        self.state = state
        self.origin = origin  # "https://<host>:<port>", for Location headers
        self.events = events or (lambda action, tenant, owner: None)  # the TenantSyncListener, when configured

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
                                        password=password if inline else None, claims=claims),
                            number=self.state.take_number())
            self.state.tenants[tenant.id] = tenant
            self.state.users.setdefault(domain, set()).add(owner["username"])
            self.events("CREATE", tenant, {"username": tenant.owner.username, "password": tenant.owner.password,
                                           "email": tenant.owner.email, "firstname": tenant.owner.firstname,
                                           "lastname": tenant.owner.lastname})
        return Reply(201, headers={"Location": f"{self.origin()}{API_PREFIX}/tenants/{tenant.id}"})

    def _validate_domain(self, domain: str) -> None:
        problem = domain_problem(domain, public_cloud_setup=self.state.public_cloud_setup,
                                 domain_regex=self.state.domain_regex)
        if problem is not None:
            raise ApiError(400, ADDING, problem[1], problem[0])

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
            tenant = self._tenant(tenant_id, UPDATING)
            tenant.activated = activated
            # IS's activateTenant / deactivateTenant notify the listeners whatever the previous state was.
            self.events("ACTIVATE" if activated else "DEACTIVATE", tenant, None)
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
            password = document["password"] if isinstance(document.get("password"), str) and \
                document["password"] else None
            if password:
                owner.password = password
            for claim in document.get("additionalClaims") or []:
                if isinstance(claim, dict) and isinstance(claim.get("claim"), str):
                    owner.claims[claim["claim"]] = claim.get("value")
            # simulator: the bean IS hands its listeners carries the owner's values after the update.
            self.events("UPDATE", self.state.tenants[tenant_id], {"password": password, "email": owner.email,
                                                                   "firstname": owner.firstname,
                                                                   "lastname": owner.lastname})
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


def domain_problem(domain: str, *, public_cloud_setup: bool,
                   domain_regex: str | None = None) -> tuple[str, str] | None:
    """TenantMgtUtil.validateDomain's checks in IS's order: (TM code, message), or None for a valid domain."""
    if not domain:
        return "TM-60004", "Provided domain name is empty."
    if public_cloud_setup and domain.rfind(".") <= 0:
        return "TM-60005", "You should have an extension to your domain."
    if domain.startswith("."):
        return "TM-60006", "Invalid domain. Domain should not start with '.'"
    if _ILLEGAL_DOMAIN.search(domain):
        return "TM-60007", _illegal_domain(domain)
    if domain_regex and not re.fullmatch(domain_regex, domain):
        return "TM-60017", (f"Invalid tenant domain: {domain}. Domain should match the regex pattern "
                            f"{domain_regex}.")
    return None


def email_problem(email: str) -> str | None:
    """CommonUtil.validateEmail's messages, or None for a valid address."""
    return _email_problem(email)


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


# --- IS's TenantSyncListener (§3) ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TenantSyncConfig:
    """The `[[event_listener]]` TenantSyncListener block of IS's deployment.toml. `ca_pem` is what IS's truststore
    trusts for the endpoint (None: the system CAs); `retry_delay` scales IS's 1/2/4/8 s waits so tests run fast."""

    notification_endpoint: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    headers: Mapping[str, str] = field(default_factory=lambda: {"X-WSO2-KEY-MANAGER": "TENANT_MANAGEMENT"})
    ca_pem: str | None = None
    enable: bool = True
    retry_delay: float = 1.0
    max_attempts: int = 5
    timeout: float = 10.0


@dataclass
class SyncAttempt:
    """One try at delivering one event: `outcome` is the HTTP status, or "error: …" when the connection failed."""

    jti: str
    action: str
    domain: str
    attempt: int
    outcome: int | str
    at: float


class TenantSyncListener:
    """org.wso2.carbon.identity.mgt.listener.TenantSyncListener: builds §3's payload for each tenant event and posts
    it from a two-thread pool; an IOException (here: OSError, TLS errors included) is retried up to 5 attempts with
    doubling delays, and any HTTP answer, success or not, ends the event."""

    MAX_DELAY = 120.0

    def __init__(self, origin: Callable[[], str]) -> None:
        self.origin = origin  # IdentityUtil.getServerURL: "https://<host>:<port>"
        self.config: TenantSyncConfig | None = None
        self.attempts: list[SyncAttempt] = []
        self.sent: list[dict] = []  # every payload handed to the pool, in firing order
        self._executor: ThreadPoolExecutor | None = None
        self._pending = 0
        self._idle = threading.Condition()
        self._stopping = threading.Event()

    def configure(self, config: TenantSyncConfig | None) -> None:
        with self._idle:
            self.config = config
            if config is not None and self._executor is None:
                self._stopping.clear()
                self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="is7-tenant-sync")

    def payload(self, action: str, tenant: Tenant, owner: dict | None) -> dict:
        """TenantManagementEventDTO as Gson writes it (nulls omitted): owners only for CREATE / UPDATE, the user
        name only for CREATE, lifecycleStatus only for the two activation events."""
        iss = self.origin()
        body: dict[str, Any] = {"id": str(tenant.number), "domain": tenant.domain,
                                "ref": f"{iss}{API_PREFIX}/tenants/{tenant.number}"}
        if action in ("CREATE", "UPDATE") and owner is not None:
            fields = ["username", "password", "email", "firstname", "lastname"] if action == "CREATE" else \
                ["password", "email", "firstname", "lastname"]
            body["owners"] = [{key: owner[key] for key in fields if owner.get(key) is not None}]
        if action in ("ACTIVATE", "DEACTIVATE"):
            body["lifecycleStatus"] = {"activated": action == "ACTIVATE"}
        return {"iss": iss, "jti": str(uuid.uuid4()), "iat": int(time.time()),
                "events": {EVENT_URIS[action]: {"initiatorType": "SYSTEM", "action": action, "tenant": body}}}

    def fire(self, action: str, tenant: Tenant, owner: dict | None) -> None:
        with self._idle:
            config, executor = self.config, self._executor
            if config is None or not config.enable or executor is None:
                return
            event = self.payload(action, tenant, owner)
            self.sent.append(event)
            self._pending += 1
        executor.submit(self._deliver, config, event, action, tenant.domain)

    def _deliver(self, config: TenantSyncConfig, event: dict, action: str, domain: str) -> None:
        try:
            content = json.dumps(event, separators=(",", ":")).encode()
            headers = {"Content-Type": "application/json; charset=UTF-8"}
            if config.username and config.password:
                token = base64.b64encode(f"{config.username}:{config.password}".encode()).decode()
                headers["Authorization"] = f"Basic {token}"
            headers.update(config.headers)
            for attempt in range(1, config.max_attempts + 1):
                try:
                    status = _post(config, content, headers)
                except OSError as exc:  # IOException: connection refused or reset, TLS failure, timeout
                    outcome: int | str = f"error: {type(exc).__name__}: {exc}"
                else:
                    outcome = status
                with self._idle:
                    self.attempts.append(SyncAttempt(event["jti"], action, domain, attempt, outcome, time.time()))
                if isinstance(outcome, int):
                    return  # any HTTP status ends the event; 4xx and 5xx are only logged by IS
                if attempt < config.max_attempts:
                    delay = min(config.retry_delay * 2 ** (attempt - 1), self.MAX_DELAY)
                    if self._stopping.wait(delay):
                        return
        finally:
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every fired event has been delivered or given up; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def shutdown(self) -> None:
        self._stopping.set()
        with self._idle:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


def _post(config: TenantSyncConfig, content: bytes, headers: dict[str, str]) -> int:
    url = urlsplit(config.notification_endpoint)
    if url.scheme == "https":
        context = ssl.create_default_context(cadata=config.ca_pem) if config.ca_pem else \
            ssl.create_default_context()
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            url.hostname, url.port or 443, timeout=config.timeout, context=context)
    else:
        connection = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=config.timeout)
    try:
        path = url.path or "/"
        connection.request("POST", path + (f"?{url.query}" if url.query else ""), body=content, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    except http.client.HTTPException as exc:  # a broken answer is an IOException in Apache HttpClient too
        raise OSError(str(exc)) from exc
    finally:
        connection.close()


# --- OAuth: the two endpoints API Manager's WSO2-IS-7 key manager uses --------------------------------------------


def _oauth_error(status: int, error: str, description: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, _json({"error": error, "error_description": description}), API_JSON, headers or {})


class OAuthEndpoints:
    """DCR (`/api/identity/oauth2/dcr/v1.1/register`) and the token endpoint, per tenant, over an Is7State."""

    def __init__(self, state: Is7State) -> None:
        self.state = state

    def register(self, domain: str, owner: str, body: bytes) -> Reply:
        """DCRMService.registerApplication: 201 with the new client; a taken client_name is a 409
        (DCRMConstants.ErrorMessages.CONFLICT_EXISTING_APPLICATION)."""
        try:
            document = json.loads(body) if body else None
        except ValueError:
            document = None
        if not isinstance(document, dict):
            # simulator: the DCR endpoint's answer to an unreadable body was not read
            return _oauth_error(400, "invalid_client_metadata", "Invalid request body.")
        name = document.get("client_name")
        if not isinstance(name, str) or not name.strip():
            # simulator: text not read
            return _oauth_error(400, "invalid_client_metadata", "Required parameter client_name is not specified.")
        grants = document.get("grant_types") or []
        redirects = document.get("redirect_uris") or []
        if not isinstance(grants, list) or not all(isinstance(g, str) for g in grants) or \
                not isinstance(redirects, list) or not all(isinstance(r, str) for r in redirects):
            return _oauth_error(400, "invalid_client_metadata", "Invalid grant_types or redirect_uris.")
        client_id = document.get("ext_param_client_id") or uuid.uuid4().hex[:28]
        client_secret = document.get("ext_param_client_secret") or uuid.uuid4().hex[:28]
        with self.state.lock:
            apps = self.state.applications.setdefault(domain, {})
            if any(app.client_name == name for app in apps.values()):
                # simulator: the error code for a conflict was not read; the description is DCRMConstants'.
                return _oauth_error(409, "invalid_client_metadata",
                                    f"Application with the name {name} already exist in the system")
            if any(client_id in tenant_apps for tenant_apps in self.state.applications.values()):
                return _oauth_error(409, "invalid_client_metadata",
                                    f"Client id {client_id} already exist in the system")  # simulator: text
            app = Application(client_id=str(client_id), client_secret=str(client_secret), client_name=name,
                              grant_types=list(grants), redirect_uris=list(redirects), owner=owner)
            apps[app.client_id] = app
        return Reply(201, _json({"client_id": app.client_id, "client_secret": app.client_secret,
                                 "client_name": app.client_name, "redirect_uris": app.redirect_uris,
                                 "grant_types": app.grant_types}), API_JSON)

    def token(self, domain: str, authorization: str | None, body: bytes, content_type: str) -> Reply:
        """client_credentials only; the client authenticates with HTTP Basic client_id:client_secret and must be
        registered in this tenant. Not behind the REST authentication valve: no mapping is evaluated."""
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True) \
            if "application/x-www-form-urlencoded" in content_type.lower() else {}
        credentials = parse_basic(authorization)
        if credentials is None and form.get("client_id"):
            credentials = (form["client_id"][0], (form.get("client_secret") or [""])[0])
        if credentials is None:
            return _oauth_error(401, "invalid_client", "Client Authentication failed.")  # simulator: text
        client_id, secret = credentials
        with self.state.lock:
            app = self.state.applications.get(domain, {}).get(client_id)
            if app is None:
                return _oauth_error(401, "invalid_client",
                                    f"A valid OAuth client could not be found for client_id: {client_id}")
            if app.client_secret != secret:
                return _oauth_error(401, "invalid_client", "Client Authentication failed.")  # simulator: text
            grant = (form.get("grant_type") or [""])[0]
            if grant != "client_credentials":
                return _oauth_error(400, "unsupported_grant_type", "Unsupported grant_type value")
            if app.grant_types and grant not in app.grant_types:
                return _oauth_error(400, "unauthorized_client",
                                    "The authenticated client is not authorized to use this authorization grant "
                                    "type")  # simulator: text not read
            issued = IssuedToken(access_token=str(uuid.uuid4()), client_id=client_id, tenant=domain, grant_type=grant)
            self.state.tokens[issued.access_token] = issued
        return Reply(200, _json({"access_token": issued.access_token, "token_type": "Bearer",
                                 "expires_in": issued.expires_in, "scope": "default"}), API_JSON,
                     {"Cache-Control": "no-store", "Pragma": "no-cache"})


# --- HTTPS server ----------------------------------------------------------------------------------------------


class _Handler(TlsHandler):
    log_prefix = "is7-sim"

    def _dispatch(self) -> None:
        sim: Is7Simulator = self.server.sim  # type: ignore[assignment]
        body = self.read_body()
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
        fault = self.admit(sim.state, entry, split.path)
        if fault is False:
            return
        if fault is not None:
            status = int(fault.action)
            document = fault.body or {"code": f"SIM-{status}", "message": "Injected failure.",
                                      "description": f"The simulator was told to answer {status}."}
            self._send(entry, Reply(status, _json({**document, "traceId": trace_id}), API_JSON,
                                    dict(fault.headers or {})))
            return
        tenanted = _TENANT_PATH.match(split.path)
        if tenanted is not None:
            self._send(entry, self._tenanted(unquote(tenanted.group(1)), tenanted.group(2), cert, entry, body))
            return
        refusal = self._authenticate(cert, entry)
        if refusal is None:
            refusal = self._authorize(entry, split.path)
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

    def _authenticate(self, cert: x509.Certificate | None, entry: LoggedRequest) -> Reply | None:
        """None when the call may proceed (the user in `entry.authenticated`), else the valve's 401. The
        certificate handler (priority 10) runs when a certificate was presented and its `can_handle` agrees, and
        then decides alone; otherwise the Basic handler (priority 100) runs if there is an Authorization: Basic
        header."""
        state = self.server.sim.state
        line = state.handler_line
        handler = cert_oracle.ClientCertificateBasedAuthenticationHandler(
            cert_oracle.AuthConfiguration.build(state.client_cert_config(), line), line, state.user_store)
        if handler.can_handle(cert is not None):
            header = self.headers.get(USER_HEADER)  # header names are case-insensitive
            header = header.strip(" \t") if header is not None else None  # the container drops the value's OWS
            result = handler.do_authenticate(entry.client_issuer or "", entry.client_thumbprint or "", header,
                                             x509_names.subject_name(cert) if cert is not None else "")
            entry.decision = result
            if result.log:
                with state.lock:
                    state.cert_info_log.extend(result.log)
            if not result.ok:
                return self._valve(401, "Unauthorized", UNAUTHORIZED_DESCRIPTION, entry.trace_id)
            entry.authenticated = result.user
        else:
            credentials = parse_basic(self.headers.get("Authorization"))
            if credentials is None or not state.check_password(*credentials):
                return self._valve(401, "Unauthorized", UNAUTHORIZED_DESCRIPTION, entry.trace_id)
            entry.authenticated = entry.basic_user = credentials[0]
        return None

    def _authorize(self, entry: LoggedRequest, path: str) -> Reply | None:
        """The tenant management API: super-tenant users holding the resource's permission (identity.xml.j2)."""
        state = self.server.sim.state
        user = entry.authenticated
        if user is None:
            return None  # simulator: an anonymous system call (allowed_system_user "*") is not authorized further
        if tenant_domain_of(user) != SUPER_TENANT:
            # simulator: the tenant management API runs in the super tenant; a tenant's user is not permitted.
            return self._valve(403, "Forbidden", FORBIDDEN_DESCRIPTION, entry.trace_id)
        needed = _TENANT_API_PERMISSIONS.get(self.command) if path.startswith(API_PREFIX + "/tenants") else None
        if needed is not None and not state.has_permission(user, needed):
            return self._valve(403, "Forbidden", FORBIDDEN_DESCRIPTION, entry.trace_id)
        return None

    # --- /t/{tenant-domain}/...: the key manager's endpoints ---

    def _tenanted(self, domain: str, rest: str, cert: x509.Certificate | None, entry: LoggedRequest,
                  body: bytes) -> Reply:
        state = self.server.sim.state
        if not state.tenant_active(domain):
            # TenantContextRewriteValve: an unknown or deactivated tenant domain.
            message = f"invalid tenant domain : {domain}"
            return Reply(404, _json({"code": 404, "message": message, "description": message}), API_JSON)
        if rest == TOKEN_PATH:
            if self.command != "POST":
                return Reply(405, headers={"Allow": "POST"})
            return self.server.sim.oauth.token(domain, self.headers.get("Authorization"), body,
                                               self.headers.get("Content-Type") or "")
        if rest != DCR_PATH:
            return Reply(404)
        refusal = self._authenticate(cert, entry)
        if refusal is not None:
            return refusal
        user = entry.authenticated
        if user is None or tenant_domain_of(user) != domain:
            # The authenticated user must belong to the tenant whose applications it registers.
            return self._valve(403, "Forbidden", FORBIDDEN_DESCRIPTION, entry.trace_id)
        if self.command != "POST":
            return Reply(405, headers={"Allow": "POST"})
        return self.server.sim.oauth.register(domain, user, body)

    def _valve(self, status: int, message: str, description: str, trace_id: str) -> Reply:
        headers = {"WWW-Authenticate": f"Bearer realm={self.server.sim.hostname}"} if status == 401 else {}
        return Reply(status, _json({"code": status, "message": message, "description": description,
                                    "traceId": trace_id}), AUTH_JSON, headers)

    def _send(self, entry: LoggedRequest, reply: Reply) -> None:
        entry.status = reply.status
        self.write_answer(reply.status, reply.body, reply.content_type,
                          {**reply.headers, "X-WSO2-TraceId": entry.trace_id})


class Is7Simulator(HttpsSimulator):
    """IS 7 on https://127.0.0.1:<port>. Use as a context manager, or start()/stop()."""

    thread_name = "is7-simulator"

    def __init__(self, *, server_cert_pem: str, server_key_pem: str, client_ca_pem: str,
                 user_mappings: Iterable[Any] = (), system_mappings: Iterable[Any] = (),
                 users: Mapping[str, Iterable[str]] | None = None, basic_users: Mapping[str, str] | None = None,
                 host: str = "127.0.0.1", port: int = 0, hostname: str | None = None,
                 require_client_certificate: bool = False, public_cloud_setup: bool = False,
                 tenant_deletion: bool = False, client_cert_auth: bool | None = True,
                 log_client_cert_info: bool = False, handler_line: str = MASTER, domain_regex: str | None = None,
                 latency: float = 0.0, tenant_sync: TenantSyncConfig | None = None, verbose: bool = False) -> None:
        """`client_cert_auth`: True / False is `[client_certificate_based_authentication] enable`; None means the
        table is absent (the master line is then off, the backport line on with no mappings). `handler_line`:
        "master" (auth-rest v1.9.38+) or "backport" (1.8.x / 1.11.x). `public_cloud_setup` defaults to false, as
        in carbon-multitenancy since commit 124b1e6f (2025-09-02): domains without a dot are accepted."""
        self.state = Is7State(user_mappings=user_mappings, system_mappings=system_mappings, users=users,
                              basic_users=basic_users, public_cloud_setup=public_cloud_setup,
                              tenant_deletion=tenant_deletion, client_cert_auth=client_cert_auth,
                              log_client_cert_info=log_client_cert_info, handler_line=handler_line,
                              domain_regex=domain_regex, latency=latency)
        context = server_context(server_cert_pem, server_key_pem, client_ca_pem, require_client_certificate)
        super().__init__(context=context, handler=_Handler, host=host, port=port, hostname=hostname,
                         verbose=verbose)
        self.sync = TenantSyncListener(lambda: self.base_url)
        self.sync.configure(tenant_sync)
        self.api = TenantApi(self.state, lambda: self.base_url, self.sync.fire)
        self.oauth = OAuthEndpoints(self.state)

    def stop(self) -> None:
        self.sync.shutdown()
        super().stop()

    # --- test controls (thread-safe) ---

    def set_mappings(self, user: Iterable[Any] | None = None, system: Iterable[Any] | None = None) -> None:
        """Replace the user and / or system thumbprint mappings (any objects with the deployment.toml fields)."""
        with self.state.lock:
            if user is not None:
                self.state.user_mappings = [user_mapping(m) for m in user]
            if system is not None:
                self.state.system_mappings = [system_mapping(m) for m in system]

    def set_handler_line(self, line: str) -> None:
        if line not in HANDLER_LINES:
            raise ValueError(f"handler line must be one of {HANDLER_LINES}")
        with self.state.lock:
            self.state.handler_line = line

    def add_user(self, username: str, *, permissions: Iterable[str] | None = None) -> None:
        """`name` (super tenant) or `name@tenant.domain`. `permissions`: the IS permissions the user holds (e.g.
        LIST_TENANTS only); None: all of them."""
        tenant, _, name = cert_oracle.split_username(username)
        with self.state.lock:
            self.state.users.setdefault(tenant, set()).add(name)
            if permissions is None:
                self.state.permissions.pop((tenant, name.lower()), None)
            else:
                self.state.permissions[(tenant, name.lower())] = frozenset(permissions)

    def remove_user(self, username: str) -> None:
        tenant, _, name = cert_oracle.split_username(username)
        with self.state.lock:
            self.state.users.get(tenant, set()).discard(name)

    def set_users(self, usernames: Iterable[str]) -> None:
        """Exactly these users exist (and `admin` in the super tenant); tenants' owners are kept."""
        with self.state.lock:
            self.state.users = {SUPER_TENANT: {"admin"}}
            for tenant in self.state.tenants.values():
                self.state.users.setdefault(tenant.domain, set()).add(tenant.owner.username)
        for username in usernames:
            self.add_user(username)

    def add_basic_user(self, username: str, password: str, *, permissions: Iterable[str] | None = None) -> None:
        """A user that may authenticate with HTTP Basic (a super-tenant user unless `name@tenant`)."""
        with self.state.lock:
            self.state.basic_users[username] = password
        self.add_user(username, permissions=permissions)

    def applications(self, domain: str) -> list[Application]:
        """The OAuth applications registered (by DCR) in a tenant, in registration order."""
        with self.state.lock:
            return list(self.state.applications.get(domain, {}).values())

    @property
    def tokens(self) -> list[IssuedToken]:
        with self.state.lock:
            return list(self.state.tokens.values())

    @property
    def cert_info_log(self) -> list[str]:
        with self.state.lock:
            return list(self.state.cert_info_log)

    def add_tenant(self, domain: str, *, owner: str = "admin", email: str | None = None,
                   activated: bool = True, name: str | None = None) -> Tenant:
        """Seed a tenant directly (no validation, no listener event), e.g. to test paging."""
        with self.state.lock:
            tenant = Tenant(id=str(uuid.uuid4()), domain=domain, created=datetime.datetime.now(datetime.UTC),
                            name=name, activated=activated, number=self.state.take_number(),
                            owner=Owner(id=str(uuid.uuid4()), username=owner, email=email or f"{owner}@{domain}"))
            self.state.tenants[tenant.id] = tenant
            self.state.users.setdefault(domain, set()).add(owner)
            return tenant

    def tenant(self, domain: str) -> Tenant | None:
        with self.state.lock:
            return next((t for t in self.state.tenants.values() if t.domain == domain), None)

    def configure(self, **settings: Any) -> None:
        """public_cloud_setup, tenant_deletion, client_cert_auth (None: the table is absent), log_client_cert_info,
        handler_line, domain_regex."""
        allowed = {"public_cloud_setup", "tenant_deletion", "client_cert_auth", "log_client_cert_info",
                   "handler_line", "domain_regex"}
        unknown = set(settings) - allowed
        if unknown:
            raise ValueError(f"unknown settings {sorted(unknown)}")
        if "handler_line" in settings and settings["handler_line"] not in HANDLER_LINES:
            raise ValueError(f"handler line must be one of {HANDLER_LINES}")
        with self.state.lock:
            for key, value in settings.items():
                setattr(self.state, key, value)

    def configure_tenant_sync(self, config: TenantSyncConfig | None) -> None:
        """Turn IS's push to API Manager on (a TenantSyncConfig) or off (None)."""
        self.sync.configure(config)

    def wait_for_sync(self, timeout: float = 10.0) -> bool:
        return self.sync.wait_idle(timeout)

    @property
    def sync_attempts(self) -> list[SyncAttempt]:
        with self.sync._idle:
            return list(self.sync.attempts)

    @property
    def sync_events(self) -> list[dict]:
        with self.sync._idle:
            return list(self.sync.sent)


# --- Command line ----------------------------------------------------------------------------------------------


def load_mappings(path: Path) -> tuple[list[UserMapping], list[SystemMapping]]:
    """Read the `[client_certificate_based_authentication]` block of an IS deployment.toml (or a file holding only
    that block), as the portal generates it."""
    with path.open("rb") as handle:
        document = tomllib.load(handle)
    block = document.get("client_certificate_based_authentication", document)
    users = [user_mapping(m) for m in block.get("user_thumbprint_mapping", [])]
    systems = [system_mapping(m) for m in block.get("system_thumbprint_mapping", [])]
    return users, systems


def _parse_user(text: str) -> tuple[str, str]:
    tenant, sep, name = text.partition(":")
    if not sep or not tenant or not name:
        raise argparse.ArgumentTypeError("use TENANT:USERNAME, e.g. carbon.super:admin")
    return tenant, name


def _parse_credentials(text: str) -> tuple[str, str]:
    name, sep, password = text.partition(":")
    if not sep or not name or not password:
        raise argparse.ArgumentTypeError("use USERNAME:PASSWORD")
    return name, password


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m simulators.is7",
        description="WSO2 IS 7 simulator (test tool): HTTPS with client-certificate or Basic authentication, the "
                    "tenant management API at /api/server/v1, and optionally IS's TenantSyncListener push to API "
                    "Manager.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9443, help="port (default 9443; 0 picks a free one)")
    parser.add_argument("--hostname", help="host name used in Location headers (default: --host)")
    parser.add_argument("--cert", type=Path, help="server certificate PEM")
    parser.add_argument("--key", type=Path, help="server private key PEM")
    parser.add_argument("--client-ca", type=Path, help="PEM bundle of CAs whose client certificates are accepted")
    parser.add_argument("--mappings", type=Path, help="TOML with the client_certificate_based_authentication block")
    parser.add_argument("--user", action="append", type=_parse_user, default=[], metavar="TENANT:USERNAME",
                        help="a user that exists (repeatable); carbon.super:admin always exists")
    parser.add_argument("--basic-user", action="append", type=_parse_credentials, default=[],
                        metavar="USERNAME:PASSWORD", help="a Basic-auth user (repeatable; admin:admin always)")
    parser.add_argument("--demo-pki", type=Path, metavar="DIR",
                        help="make a throwaway PKI in DIR and map its client certificate to admin (ignores --cert, "
                             "--key, --client-ca)")
    parser.add_argument("--require-client-certificate", action="store_true",
                        help="refuse TLS handshakes without a client certificate (clientAuth=true)")
    parser.add_argument("--public-cloud-setup", action="store_true",
                        help="refuse domains without a dot (TM-60005); off by default, as in current IS")
    parser.add_argument("--no-public-cloud-setup", action="store_true", help="the default; kept for old scripts")
    parser.add_argument("--tenant-deletion", action="store_true", help="enable DELETE /tenants/{id}/metadata")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    parser.add_argument("--handler-line", choices=HANDLER_LINES, default=MASTER,
                        help="which ClientCertificateBasedAuthenticationHandler to behave as: master (auth-rest "
                             "1.9.38+: thumbprints ignore case, users must exist, off unless enabled) or backport "
                             "(1.8.x / 1.11.x: user thumbprints case-sensitive, no user check, on by default)")
    parser.add_argument("--client-cert-auth", choices=("enabled", "disabled", "absent"), default="enabled",
                        help="[client_certificate_based_authentication] enable = true / false, or no such table "
                             "(master: off; backport: on with no mappings)")
    parser.add_argument("--log-client-cert-info", action="store_true",
                        help="log_client_cert_info = true (only the backport line reads it)")
    parser.add_argument("--notify-endpoint", help="turn the TenantSyncListener on: API Manager's "
                                                  "https://…/internal/data/v1/notify")
    parser.add_argument("--notify-credentials", type=_parse_credentials, metavar="USERNAME:PASSWORD",
                        help="the API Manager user the listener authenticates as")
    parser.add_argument("--notify-ca", type=Path, help="PEM of the CA that issued API Manager's certificate")
    parser.add_argument("--sync-retry-delay", type=float, default=1.0,
                        help="first retry delay of the listener in seconds (IS: 1, doubling)")
    parser.add_argument("--verbose", action="store_true", help="log requests to stderr")
    args = parser.parse_args(argv)

    user_mappings: list[UserMapping] = []
    system_mappings: list[SystemMapping] = []
    if args.demo_pki:
        from simulators.pki import is7_pki
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
    sync = None
    if args.notify_endpoint:
        username, password = args.notify_credentials or (None, None)
        sync = TenantSyncConfig(args.notify_endpoint, username, password,
                                ca_pem=args.notify_ca.read_text() if args.notify_ca else None,
                                retry_delay=args.sync_retry_delay)
    simulator = Is7Simulator(server_cert_pem=cert_pem, server_key_pem=key_pem, client_ca_pem=client_ca_pem,
                             user_mappings=user_mappings, system_mappings=system_mappings, users=extra_users,
                             basic_users={"admin": "admin", **dict(args.basic_user)},
                             host=args.host, port=args.port, hostname=args.hostname,
                             require_client_certificate=args.require_client_certificate,
                             public_cloud_setup=args.public_cloud_setup and not args.no_public_cloud_setup,
                             tenant_deletion=args.tenant_deletion,
                             latency=args.latency, handler_line=args.handler_line,
                             client_cert_auth={"enabled": True, "disabled": False, "absent": None}[
                                 args.client_cert_auth],
                             log_client_cert_info=args.log_client_cert_info, tenant_sync=sync,
                             verbose=args.verbose)
    simulator.start()
    print(f"IS 7 simulator on {simulator.base_url}{API_PREFIX} ({args.handler_line} handler line, "
          f"{len(user_mappings)} user and {len(system_mappings)} system mappings"
          f"{'; pushing tenant events to ' + args.notify_endpoint if sync else ''}). Ctrl-C stops it.", flush=True)
    return run_until_interrupted(simulator)


if __name__ == "__main__":
    sys.exit(main())
