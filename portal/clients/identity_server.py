"""Outbound calls to WSO2 Identity Server 7's tenant management REST API (wso2-apis.md §1, §2; security.md §4).

One `IdentityServerClient` sends its calls through one `portal.clients.transport.Transport` (trust exactly the CA
bundle given, the address policy, timeouts, capped reads, typed transport failures):
- the portal authenticates with its client certificate (mutual TLS, `WSO2-Identity-User` names the user), or with
  HTTP Basic (`username` / `password`); IS lets a presented certificate win over an Authorization header;
- every call sends an `activityid` correlation id IS logs, the same for each attempt of one call;
- idempotent calls (GET, HEAD, PUT, DELETE) are retried on connection failures and 429/502/503/504, honouring a
  short Retry-After; POST never is, not even after a refused connection;
- every failure is an `UpstreamError` (portal.clients.errors): an HTTP error with IS's status, error code, message,
  description and trace id; or a transport failure with a plain `Cause`. A raw `Response` never leaves this module.

IS's quirks handled here: an unknown tenant is 400 TM-60014 / TM-60015 (not 404), so the getters return None for
exactly those; a create answers 201 with an EMPTY body and the new tenant's URL in `Location`; HEAD on a domain is
200 (taken) or 404 (free); `sortOrder` is compared case-sensitively; a metadata delete is refused with 400
TM-60016 unless tenant deletion is enabled (`DeletionDisabled`); the valve's 403 (identity.xml.j2's resource
permissions) becomes a `PermissionDenied` naming the permission the operation needs.
"""
from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.auth import HTTPBasicAuth

from portal.clients.address_policy import AddressPolicy
from portal.clients.errors import (
    PRODUCT_IS,
    Cause,
    DeletionDisabled,
    PermissionDenied,
    UpstreamError,
    error_class,
    parse_retry_after,
)
from portal.clients.transport import (
    DEFAULT_TIMEOUT,
    TRANSIENT_CAUSES,
    Answer,
    RetryPolicy,
    Transport,
    TransportClient,
    build_ssl_context,
    expand,
)

__all__ = ["API_PATH", "PERMISSION_LIST_TENANTS", "PERMISSION_MODIFY_TENANTS", "PRODUCT", "IdentityServerClient",
           "IsTenant", "TenantOwner", "TenantOwnerSpec", "TenantSummary", "TenantsPage"]

PRODUCT = PRODUCT_IS
API_PATH = "api/server/v1"
USER_HEADER = "WSO2-Identity-User"
TRACE_HEADER = "X-WSO2-TraceId"
SORT_ORDERS = ("ASC", "DESC")  # IS compares case-sensitively; anything else silently means ASC
MAX_LIMIT = 100  # IS clamps larger limits to MaximumItemsPerPage
PROVISIONING_METHODS = ("inline-password", "invite-via-email")
# identity.xml.j2's resource access control for /api/server/v1/tenants(.*): GET/POST/HEAD need the list permission
# (scope internal_list_tenants), PUT and the metadata DELETE the modify permission (internal_modify_tenants).
PERMISSION_LIST_TENANTS = "/permission/protected/manage/monitor/tenants/list"
PERMISSION_MODIFY_TENANTS = "/permission/protected/manage/modify/tenants"
_SCOPES = {PERMISSION_LIST_TENANTS: "internal_list_tenants", PERMISSION_MODIFY_TENANTS: "internal_modify_tenants"}
# URL templates (python-keycloak's urls_patterns): `transport.expand` fills each {value} as one quoted segment.
TENANTS = f"/{API_PATH}/tenants"
TENANT = f"/{API_PATH}/tenants/{{tenant_id}}"
TENANT_BY_DOMAIN = f"/{API_PATH}/tenants/domain/{{domain}}"
TENANT_LIFECYCLE = f"/{API_PATH}/tenants/{{tenant_id}}/lifecycle-status"
TENANT_OWNERS = f"/{API_PATH}/tenants/{{tenant_id}}/owners"
TENANT_OWNER = f"/{API_PATH}/tenants/{{tenant_id}}/owners/{{owner_id}}"
TENANT_METADATA = f"/{API_PATH}/tenants/{{tenant_id}}/metadata"


# --- Results ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TenantOwner:
    id: str | None
    username: str | None


@dataclass(frozen=True)
class IsTenant:
    """A TenantListItem / TenantResponseModel. `created` is IS's createdDate (UTC), None if IS sent none."""

    id: str
    domain: str
    name: str | None
    activated: bool
    owners: list[TenantOwner] = field(default_factory=list)
    created: datetime.datetime | None = None


TenantSummary = IsTenant  # the name issue 4 used


@dataclass(frozen=True)
class TenantsPage:
    total_results: int
    start_index: int
    count: int
    tenants: tuple[IsTenant, ...] = ()
    links: tuple[tuple[str, str], ...] = ()  # (rel, href) as IS sends them: relative hrefs


@dataclass(frozen=True)
class TenantOwnerSpec:
    """The owner of a tenant to create. `invite-via-email` makes IS ignore the password and mail the owner."""

    username: str
    email: str
    firstname: str | None = None
    lastname: str | None = None
    provisioning_method: str = "inline-password"
    password: str | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, str]:
        method = self.provisioning_method.lower()
        if method not in PROVISIONING_METHODS:
            raise ValueError("provisioning_method must be inline-password or invite-via-email")
        document = {"username": self.username, "email": self.email, "firstname": self.firstname,
                    "lastname": self.lastname, "provisioningMethod": method}
        if method == "inline-password":
            document["password"] = self.password
        return {key: value for key, value in document.items() if value is not None}


# --- The client ------------------------------------------------------------------------------------------------


def _check_header_value(value: str) -> str:
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValueError("The WSO2-Identity-User value contains control characters.")
    if len(value) > 255:
        raise ValueError("The WSO2-Identity-User value is longer than 255 characters.")
    return value


class IdentityServerClient(TransportClient):
    """REST client for one IS 7 server. Build it once per process (or per check) and `close()` it."""

    def __init__(self, base_url: str, *, ca_pem: str | None = None, cert_pem: str | None = None,
                 key_pem: str | None = None, identity_user: str | None = None, username: str | None = None,
                 password: str | None = None, timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
                 retries: int = 2, pool_maxsize: int = 4, policy: AddressPolicy | None = None,
                 session: requests.Session | None = None) -> None:
        """`session`, when given, is used as it is (its adapters decide trust); else one is built that trusts only
        `ca_pem` and presents `cert_pem` / `key_pem` (mutual TLS)."""
        user = (identity_user or "").strip()
        self.identity_user = _check_header_value(user) if user else None
        if (username is None) != (password is None) or username == "":
            raise ValueError("Basic authentication needs both a user name and a password")
        self.presents_certificate = cert_pem is not None
        # urllib3's rules before the transport had its own: connect failures and 429/502-504 up to `retries`
        # times, at most one repeat after a read failure, the first repeat at once.
        retry = RetryPolicy(retries=max(0, retries), read_retries=min(retries, 1), first_at_once=True,
                            transient=TRANSIENT_CAUSES | {Cause.HOST_UNKNOWN})
        super().__init__(Transport(
            base_url, product=PRODUCT_IS, session=session, timeout=timeout, retry=retry, policy=policy,
            context=lambda: build_ssl_context(ca_pem or "", cert_pem, key_pem), pool_maxsize=pool_maxsize,
            sent_certificate=self.presents_certificate, headers={"Accept": "application/json"},
            auth=HTTPBasicAuth(username, password or "") if username is not None else None))

    # --- Tenant management API ----------------------------------------------------------------------------

    def ping(self) -> None:
        """Pre-flight: one tiny authenticated read. Raises UpstreamError (with a plain cause) when it fails."""
        self.list_tenants(limit=1)

    def list_tenants(self, *, limit: int | None = None, offset: int | None = None, sort_order: str | None = None,
                     sort_by: str | None = None, filter: str | None = None,
                     correlation_id: str | None = None) -> TenantsPage:
        """GET /tenants. `filter` is "domainName <sw|ew|eq|co> <value>"; IS defaults limit to 15, caps it at 100."""
        params: dict[str, str | int] = {}
        if limit is not None:
            params["limit"] = int(limit)
        if offset is not None:
            params["offset"] = int(offset)
        if sort_order is not None:
            if sort_order.upper() not in SORT_ORDERS:
                raise ValueError("sort_order must be ASC or DESC")
            params["sortOrder"] = sort_order.upper()
        if sort_by is not None:
            params["sortBy"] = sort_by
        if filter is not None:
            params["filter"] = filter
        answer = self._call("GET", TENANTS, params=params, correlation_id=correlation_id)
        return _tenants_page(_json_document(answer, self.base_url))

    def iter_all_tenants(self, page_size: int = MAX_LIMIT) -> Iterator[IsTenant]:
        """Every tenant, by domain, one page at a time (offsets follow what IS returned, so a limit IS clamps does
        not skip tenants). Tenants created or removed meanwhile may be missed or seen twice; reconcile re-reads."""
        if page_size < 1:
            raise ValueError("page_size must be positive")
        offset = 0
        while True:
            page = self.list_tenants(limit=page_size, offset=offset, sort_order="ASC")
            yield from page.tenants
            offset += len(page.tenants)
            if not page.tenants or offset >= page.total_results:
                return

    def create_tenant(self, domain: str, owner: TenantOwnerSpec, name: str | None = None, *,
                      correlation_id: str | None = None) -> str:
        """POST /tenants; returns the new tenant's id, read from `Location` (IS answers 201 with an empty body).

        Never retried: a lost answer may mean the tenant exists, so callers check by domain before trying again."""
        body: dict[str, Any] = {"domain": domain, "owners": [owner.to_json()]}
        if name is not None:
            body["name"] = name
        answer = self._call("POST", TENANTS, json_body=body, expected=(201,), correlation_id=correlation_id)
        location = {k.lower(): v for k, v in answer.headers.items()}.get("location", "")
        path = urlsplit(location).path.rstrip("/")
        head, _, tenant_id = path.rpartition("/")
        if not tenant_id or not head.endswith("/tenants"):
            raise UpstreamError(Cause.BAD_RESPONSE, "IS answered 201 without the new tenant's URL in Location; look "
                                f"the tenant up by its domain {domain}.", target=self.base_url,
                                correlation_id=correlation_id)
        return tenant_id

    def get_tenant(self, tenant_uuid: str, *, correlation_id: str | None = None) -> IsTenant | None:
        """GET /tenants/{id}; None when IS says 400 TM-60014 (its "not found")."""
        return self._tenant_or_none(expand(TENANT, tenant_id=tenant_uuid), "TM-60014", correlation_id)

    def get_tenant_by_domain(self, domain: str, *, correlation_id: str | None = None) -> IsTenant | None:
        """GET /tenants/domain/{domain}; None when IS says 400 TM-60015. IS fills a blank name with the domain."""
        return self._tenant_or_none(expand(TENANT_BY_DOMAIN, domain=domain), "TM-60015", correlation_id)

    def _tenant_or_none(self, path: str, not_found: str, correlation_id: str | None) -> IsTenant | None:
        try:
            answer = self._call("GET", path, correlation_id=correlation_id)
        except UpstreamError as exc:
            if exc.status == 400 and exc.code == not_found:
                return None
            raise
        return _tenant(_json_document(answer, self.base_url))

    def tenant_exists(self, domain: str, *, correlation_id: str | None = None) -> bool:
        """HEAD /tenants/domain/{domain}: 200 taken, 404 free (carbon.super counts as taken)."""
        answer = self._call("HEAD", expand(TENANT_BY_DOMAIN, domain=domain), expected=(200, 404),
                            correlation_id=correlation_id)
        return answer.status == 200

    def set_lifecycle(self, tenant_uuid: str, activated: bool, *, correlation_id: str | None = None) -> None:
        """PUT /tenants/{id}/lifecycle-status. IS answers 200 with no Location (the body is a URI string)."""
        self._call("PUT", expand(TENANT_LIFECYCLE, tenant_id=tenant_uuid), json_body={"activated": bool(activated)},
                   correlation_id=correlation_id)

    def get_owners(self, tenant_uuid: str, *, correlation_id: str | None = None) -> list[TenantOwner]:
        """GET /tenants/{id}/owners: IS lists one owner, the tenant admin."""
        answer = self._call("GET", expand(TENANT_OWNERS, tenant_id=tenant_uuid), correlation_id=correlation_id)
        document = _json_document(answer, self.base_url)
        if not isinstance(document, list):
            raise _bad_shape("the owners are not a list")
        return [TenantOwner(o.get("id"), o.get("username")) for o in document if isinstance(o, dict)]

    def update_owner(self, tenant_uuid: str, owner_id: str, email: str, firstname: str, lastname: str,
                     password: str | None = None, *, correlation_id: str | None = None) -> None:
        """PUT /tenants/{id}/owners/{owner-id}. IS keeps the old value of a blank name or email; a password is
        applied when given."""
        body: dict[str, str] = {"email": email, "firstname": firstname, "lastname": lastname}
        if password:
            body["password"] = password
        self._call("PUT", expand(TENANT_OWNER, tenant_id=tenant_uuid, owner_id=owner_id), json_body=body,
                   correlation_id=correlation_id)

    def delete_tenant_metadata(self, tenant_uuid: str, *, correlation_id: str | None = None) -> None:
        """DELETE /tenants/{id}/metadata (204): removes the tenant from IS. Raises `DeletionDisabled` when IS
        refuses because tenant deletion is off (400 TM-60016, IS's default), so callers can tell that apart."""
        self._call("DELETE", expand(TENANT_METADATA, tenant_id=tenant_uuid), expected=(204,),
                   correlation_id=correlation_id)

    # --- Plumbing -----------------------------------------------------------------------------------------

    def _call(self, method: str, path: str, *, params: dict[str, Any] | None = None, json_body: Any = None,
              expected: tuple[int, ...] = (200,), correlation_id: str | None = None) -> Answer:
        """One call to `path` (an expanded template); returns the answer when its status is expected, else raises
        UpstreamError. Every attempt of the call carries the same correlation id."""
        correlation_id = correlation_id or str(uuid.uuid4())
        headers = {USER_HEADER: self.identity_user} if self.identity_user else {}
        answer = self._transport.request(method, path, params=params, json=json_body, headers=headers,
                                         correlation_id=correlation_id)
        if answer.status not in expected:
            error = _http_error(answer, self.base_url, correlation_id)
            raise _typed(error, method, path, self._who())
        return answer

    def _who(self) -> str:
        if self.presents_certificate:
            return f"the user {self.identity_user!r}" if self.identity_user else "the certificate's system user"
        auth = self._transport.auth
        return f"the user {auth.username!r}" if isinstance(auth, HTTPBasicAuth) else "the portal's IS user"


def _http_error(answer: Answer, target: str, correlation_id: str) -> UpstreamError:
    """IS's error bodies: {"code": "TM-60014", "message", "description", "traceId"} from the API, or the auth
    valve's {"code": 401, "message": "Unauthorized", ...} with an integer code."""
    code = message = description = trace_id = None
    try:
        document = json.loads(answer.body) if answer.body else None
    except ValueError:
        document = None
    if isinstance(document, dict):
        raw_code = document.get("code")
        code = str(raw_code) if isinstance(raw_code, str | int) and not isinstance(raw_code, bool) else None
        message = document.get("message") if isinstance(document.get("message"), str) else None
        description = document.get("description") if isinstance(document.get("description"), str) else None
        trace_id = document.get("traceId") if isinstance(document.get("traceId"), str) else None
    trace_id = trace_id or answer.header(TRACE_HEADER)
    if message is None:
        message = f"HTTP {answer.status} without an IS error body."
    return UpstreamError(Cause.HTTP_ERROR, message, status=answer.status, code=code, description=description,
                         trace_id=trace_id, target=target, correlation_id=correlation_id,
                         retry_after=parse_retry_after(answer.header("retry-after")))


def _typed(error: UpstreamError, method: str, path: str, who: str) -> UpstreamError:
    """The subclass a caller acts on: the valve's 403 (an integer code, not a TM code) as PermissionDenied naming
    the permission the operation needs; TM-60016 as DeletionDisabled; anything else unchanged."""
    fields = {"product": error.product, "status": error.status, "code": error.code, "description": error.description,
              "trace_id": error.trace_id, "target": error.target, "correlation_id": error.correlation_id,
              "retry_after": error.retry_after}
    kind = error_class(error.status, error.code)
    if kind is PermissionDenied and error.code in (None, "403"):  # the valve's, not a TM code
        permission = PERMISSION_MODIFY_TENANTS if method in ("PUT", "DELETE") else PERMISSION_LIST_TENANTS
        operation = f"{method} {path.split('?')[0]}"
        return PermissionDenied(Cause.HTTP_ERROR, f"IS refused {operation}: {who} lacks the permission {permission} "
                                f"(scope {_SCOPES[permission]}), which IS requires for it.", permission=permission,
                                **fields)
    if kind is DeletionDisabled and error.status == 400:
        return DeletionDisabled(Cause.HTTP_ERROR, "IS does not allow deleting tenants: tenant deletion is disabled "
                                "(Tenant.TenantDelete), so the tenant stays in IS.", **fields)
    return error


def _json_document(answer: Answer, target: str) -> Any:
    try:
        document = json.loads(answer.body)
    except ValueError:
        document = None
    if not isinstance(document, dict | list):
        content_type = answer.headers.get("Content-Type", "no content type")
        raise UpstreamError(Cause.BAD_RESPONSE, f"IS answered {answer.status} without a JSON document "
                            f"({content_type}).", target=target)
    return document


def _bad_shape(what: str) -> UpstreamError:
    return UpstreamError(Cause.BAD_RESPONSE, f"IS's answer is not in the expected shape: {what}.")


def _int(document: dict, key: str, default: int | None = None) -> int:
    value = document.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _bad_shape(f"{key} is not a number")
    return value


def _created(value: object) -> datetime.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def _tenant(item: object) -> IsTenant:
    if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not isinstance(item.get("domain"), str):
        raise _bad_shape("a tenant without an id or domain")
    owners = [TenantOwner(o.get("id"), o.get("username")) for o in item.get("owners") or [] if isinstance(o, dict)]
    status = item.get("lifecycleStatus")
    activated = status.get("activated") if isinstance(status, dict) else None
    if not isinstance(activated, bool):
        raise _bad_shape(f"tenant {item['domain']} has no lifecycleStatus.activated")
    name = item.get("name")
    return IsTenant(id=item["id"], domain=item["domain"], name=name if isinstance(name, str) else None,
                    activated=activated, owners=owners, created=_created(item.get("createdDate")))


def _tenants_page(document: Any) -> TenantsPage:
    if not isinstance(document, dict):
        raise _bad_shape("the tenant list is not an object")
    tenants = document.get("tenants") or []  # IS leaves `tenants` out when the page is empty
    if not isinstance(tenants, list):
        raise _bad_shape("tenants is not a list")
    links = tuple((link.get("rel", ""), link.get("href", "")) for link in document.get("links") or []
                  if isinstance(link, dict))
    return TenantsPage(total_results=_int(document, "totalResults"), start_index=_int(document, "startIndex", 1),
                       count=_int(document, "count", len(tenants)), tenants=tuple(_tenant(t) for t in tenants),
                       links=links)
