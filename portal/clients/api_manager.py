"""Outbound calls to WSO2 API Manager: the SOAP admin service `TenantMgtAdminService` (wso2-apis.md §6), the
internal notify API `/internal/data/v1/notify` (§4) and the admin REST API for a tenant's key managers (§7,
portal.clients.apim_admin). API Manager has no REST API for tenants.

One `ApiManagerClient` sends its calls through one `portal.clients.transport.Transport` (API Manager's server
certificate verified against the CA bundle given and nothing else, the address policy, timeouts, capped reads), and
calls authenticate with HTTP Basic as a super-tenant user (the admin service needs the monitor-tenants
permission to read and add, modify-tenants to update, activate and deactivate; notify needs modify-tenants).

SOAP: SOAP 1.1 envelopes built with xml.etree, `SOAPAction: "urn:<operation>"`, the operation elements in
`http://services.mgt.tenant.carbon.wso2.org` and the TenantInfoBean fields in
`http://beans.common.stratos.carbon.wso2.org/xsd`, both qualified, the fields in the WSDL's sequence order (ADB
refuses any other). Answers are parsed only below a size cap and never with a DTD (no entity expansion). A fault
becomes an `UpstreamError` carrying the fault string as its message and, as its code, the exception the detail
names (`TenantMgtAdminServiceException` for the service's own refusals) or else the fault code (an authentication
or authorization refusal by Carbon's handlers).

Retries: every SOAP call is a POST, so each call says whether it is idempotent and the transport's `RetryPolicy`
repeats only those (get, list, update, activate, deactivate, delete) after a connection failure, a timeout or a
429/502/503/504, honouring a short Retry-After. `addTenant` and notify are never repeated: a lost answer may
mean the tenant exists.

API Manager's quirks handled here: `retrievePaginatedTenants` counts pages from 0 and answers a page past the end
with the LAST page again, so `iter_all_tenants` stops at `numberOfPages`; an empty list is numberOfPages 0 with a
nil bean; list beans carry only id, domain, email, created date and active (no admin or names: use `get_tenant`);
`getTenant` for an unknown domain answers an EMPTY bean (tenantId 0, no domain) rather than a fault (older
versions and the simulator before issue 12 faulted), both read as "no such tenant"; void operations answer 202 (or
200) with no body; `updateTenant` needs the tenant's id, read first with getTenant; `deleteTenant` reports success
and does nothing unless tenant deletion is enabled in API Manager, so a delete is verified by reading back.

Key managers (`list_key_managers`, `get_key_manager`, `create_key_manager`, `update_key_manager`,
`delete_key_manager`) are called as the TENANT's admin (`<admin>@<domain>` and that admin's password, per call):
the API answers for the caller's tenant. Reads, updates and deletes are retried like the idempotent SOAP calls;
a create never is.
"""
from __future__ import annotations

import datetime
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.auth import HTTPBasicAuth

from portal.clients import transport
from portal.clients.address_policy import AddressPolicy
from portal.clients.apim_admin import (
    KEY_MANAGER,
    KEY_MANAGERS_PATH,
    KeyManager,
    KeyManagerSummary,
    key_manager,
    rest_error,
    summaries,
)
from portal.clients.errors import PRODUCT_APIM, Cause, UpstreamError

__all__ = ["KEY_MANAGERS_PATH", "NOTIFY_PATH", "SERVICE_PATH", "ApiManagerClient", "ApimTenant", "ApimTenantSpec",
           "KeyManager", "KeyManagerSummary"]

PRODUCT = PRODUCT_APIM
SERVICE_PATH = "/services/TenantMgtAdminService"
NOTIFY_PATH = "/internal/data/v1/notify"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SERVICES_NS = "http://services.mgt.tenant.carbon.wso2.org"
BEANS_NS = "http://beans.common.stratos.carbon.wso2.org/xsd"
PAGINATED_NS = "http://beans.mgt.tenant.carbon.wso2.org/xsd"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
BEAN_FIELDS = ("active", "admin", "adminPassword", "createdDate", "email", "firstname", "lastname", "name",
               "originatedService", "successKey", "tenantDomain", "tenantId", "usagePlan")  # the WSDL's order
SERVICE_EXCEPTION = "TenantMgtAdminServiceException"
KEY_MANAGER_HEADER = "X-WSO2-KEY-MANAGER"
TENANT_MANAGEMENT = "TENANT_MANAGEMENT"
DEFAULT_RETRIES = 2
_VOID_OPERATIONS = frozenset({"updateTenant", "activateTenant", "deactivateTenant", "deleteTenant"})


@dataclass(frozen=True)
class ApimTenantSpec:
    """A tenant as addTenant / updateTenant take it. API Manager activates every tenant the super tenant adds,
    whatever `active` says; on update a None or empty password leaves the admin's password as it is."""

    domain: str
    admin: str
    admin_password: str | None = field(repr=False)
    email: str
    firstname: str | None = None
    lastname: str | None = None
    active: bool = True


@dataclass(frozen=True)
class ApimTenant:
    """A TenantInfoBean. From a list, `admin`, `firstname` and `lastname` are None (API Manager does not fill them
    there); `get_tenant` fills them."""

    tenant_id: int
    domain: str
    admin: str | None
    email: str | None
    firstname: str | None
    lastname: str | None
    active: bool
    created: datetime.datetime | None


def _check_text(value: str, what: str) -> str:
    if any((ord(ch) < 0x20 and ch not in "\t\n\r") or ord(ch) in (0xFFFE, 0xFFFF) for ch in value):
        raise ValueError(f"{what} contains a character XML cannot carry")
    return value


def _element(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    child = ET.SubElement(parent, tag)
    if text is not None:
        child.text = _check_text(text, tag)
    return child


def build_envelope(operation: str, fill: Any = None) -> bytes:
    """A SOAP 1.1 request: `<soapenv:Envelope><soapenv:Body><ser:operation>…`, the prefixes declared once on the
    envelope (as in §6's sample). `fill(element)` adds the operation's children."""
    root = ET.Element("soapenv:Envelope", {"xmlns:soapenv": SOAP_ENV, "xmlns:ser": SERVICES_NS,
                                           "xmlns:xsd": BEANS_NS})
    body = ET.SubElement(root, "soapenv:Body")
    element = ET.SubElement(body, f"ser:{operation}")
    if fill is not None:
        fill(element)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _bean(parent: ET.Element, values: Mapping[str, Any]) -> None:
    """`<ser:tenantInfoBean>` with the given fields in the WSDL's order; None fields are left out (minOccurs 0)."""
    bean = ET.SubElement(parent, "ser:tenantInfoBean")
    for name in BEAN_FIELDS:
        value = values.get(name)
        if value is None:
            continue
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        _element(bean, f"xsd:{name}", text)


class ApiManagerClient(transport.TransportClient):
    """Client for one API Manager. Build it once per process (or per check) and `close()` it."""

    def __init__(self, base_url: str, *, ca_pem: str | None = None, username: str, password: str,
                 timeout: float | tuple[float, float] = transport.DEFAULT_TIMEOUT, retries: bool | int = True,
                 pool_maxsize: int = 4, backoff: float = 0.5, policy: AddressPolicy | None = None,
                 session: requests.Session | None = None) -> None:
        """`session`, when given, is used as it is (its adapters decide trust); else one is built that trusts only
        `ca_pem`."""
        if not username or password is None or password == "":
            raise ValueError("API Manager needs a user name and a password")
        self.retries = (DEFAULT_RETRIES if retries else 0) if isinstance(retries, bool) else max(0, int(retries))
        self.backoff = backoff
        # API Manager never asks for a client certificate (sent_certificate): a closed connection is not blamed on one.
        super().__init__(transport.Transport(
            base_url, product=PRODUCT, session=session, timeout=timeout, policy=policy, pool_maxsize=pool_maxsize,
            retry=transport.RetryPolicy(retries=self.retries, backoff=backoff), sent_certificate=True,
            context=lambda: transport.build_ssl_context(ca_pem or "", product=PRODUCT),
            auth=HTTPBasicAuth(username, password)))

    # --- TenantMgtAdminService ------------------------------------------------------------------------------

    def ping(self) -> None:
        """Pre-flight: list the first page. Raises UpstreamError (with a plain cause) when it fails."""
        self.list_tenants_page(0)

    def add_tenant(self, spec: ApimTenantSpec) -> str:
        """addTenant; returns what API Manager returns (the tenant's UUID). Never repeated automatically."""
        values = {"active": spec.active, "admin": spec.admin, "adminPassword": spec.admin_password,
                  "email": spec.email, "firstname": spec.firstname, "lastname": spec.lastname,
                  "tenantDomain": spec.domain}
        result = self._soap("addTenant", lambda op: _bean(op, values), idempotent=False)
        returned = result.find(f"{{{SERVICES_NS}}}return") if result is not None else None
        if returned is None or returned.get(f"{{{XSI}}}nil") == "true":
            raise UpstreamError(Cause.BAD_RESPONSE, "API Manager's addTenant answer has no return value.",
                                product=PRODUCT, target=self.base_url)
        return (returned.text or "").strip()

    def update_tenant(self, spec: ApimTenantSpec, *, tenant_id: int | None = None) -> None:
        """updateTenant: names, email and (when given) the admin's password. API Manager finds the tenant's
        registry by the bean's tenantId, so the id is read with getTenant first unless given."""
        if tenant_id is None:
            current = self.get_tenant(spec.domain)
            if current is None:
                raise UpstreamError(Cause.NOT_FOUND, f"API Manager has no tenant {spec.domain}.", product=PRODUCT,
                                    target=self.base_url)
            tenant_id = current.tenant_id
        values = {"active": spec.active, "admin": spec.admin, "adminPassword": spec.admin_password or None,
                  "email": spec.email, "firstname": spec.firstname, "lastname": spec.lastname,
                  "tenantDomain": spec.domain, "tenantId": int(tenant_id)}
        self._soap("updateTenant", lambda op: _bean(op, values), idempotent=True)

    def get_tenant(self, domain: str) -> ApimTenant | None:
        """getTenant; None when API Manager has no such tenant: it answers an empty bean (tenantId 0, no domain),
        or a service fault in older versions. Authentication and authorization refusals still raise."""
        try:
            result = self._soap("getTenant", lambda op: _element(op, "ser:tenantDomain", domain), idempotent=True)
        except UpstreamError as exc:
            if exc.code == SERVICE_EXCEPTION:
                return None
            raise
        returned = result.find(f"{{{SERVICES_NS}}}return") if result is not None else None
        tenant = _tenant(returned) if returned is not None else None
        if tenant is None or tenant.tenant_id <= 0 or not tenant.domain:
            return None
        return tenant

    def activate_tenant(self, domain: str) -> None:
        """activateTenant. With API Manager's tenant sharing on, API Manager may roll this back when IS fails, and
        the call still succeeds: read the tenant back to know."""
        self._soap("activateTenant", lambda op: _element(op, "ser:tenantDomain", domain), idempotent=True)

    def deactivate_tenant(self, domain: str) -> None:
        """deactivateTenant (the same caveat as activate_tenant)."""
        self._soap("deactivateTenant", lambda op: _element(op, "ser:tenantDomain", domain), idempotent=True)

    def delete_tenant(self, domain: str) -> None:
        """deleteTenant (modify-tenants permission). API Manager answers success and does NOTHING unless tenant
        deletion is enabled there: call get_tenant afterwards to know whether the tenant is gone."""
        self._soap("deleteTenant", lambda op: _element(op, "ser:tenantDomain", domain), idempotent=True)

    def list_tenants_page(self, page_number: int) -> tuple[list[ApimTenant], int]:
        """retrievePaginatedTenants: (tenants, numberOfPages). Pages count from 0; a page past the end comes back
        as the last page."""
        result = self._soap("retrievePaginatedTenants",
                            lambda op: _element(op, "ser:pageNumber", str(int(page_number))), idempotent=True)
        returned = result.find(f"{{{SERVICES_NS}}}return") if result is not None else None
        if returned is None or returned.get(f"{{{XSI}}}nil") == "true":
            return [], 0
        pages_text = returned.findtext(f"{{{PAGINATED_NS}}}numberOfPages") or "0"
        try:
            pages = int(pages_text.strip())
        except ValueError:
            raise UpstreamError(Cause.BAD_RESPONSE, "API Manager's page count is not a number.", product=PRODUCT,
                                target=self.base_url) from None
        tenants = [t for t in (_tenant(bean) for bean in returned.findall(f"{{{PAGINATED_NS}}}tenantInfoBeans"))
                   if t is not None]
        return tenants, pages

    def iter_all_tenants(self) -> Iterator[ApimTenant]:
        """Every tenant, page by page up to numberOfPages (never "until an empty page": there is none)."""
        seen: set[str] = set()
        page, pages = 0, 1
        while page < pages:
            tenants, pages = self.list_tenants_page(page)
            for tenant in tenants:
                if tenant.domain not in seen:  # a tenant added meanwhile shifts the pages
                    seen.add(tenant.domain)
                    yield tenant
            page += 1

    # --- /internal/data/v1/notify ---------------------------------------------------------------------------

    def notify(self, event: Mapping[str, Any], *, username: str, password: str) -> None:
        """POST a tenant management event as IS's TenantSyncListener would (`X-WSO2-KEY-MANAGER:
        TENANT_MANAGEMENT`, Basic as `username`, who needs the modify-tenant permission). 200 means API Manager
        has applied it. Never repeated automatically."""
        body = json.dumps(event, separators=(",", ":")).encode()
        answer = self._transport.request("POST", NOTIFY_PATH, data=body, auth=HTTPBasicAuth(username, password),
                                         headers={"Content-Type": "application/json",
                                                  KEY_MANAGER_HEADER: TENANT_MANAGEMENT})
        if answer.status != 200:
            raise _notify_error(answer, self.base_url)

    # --- Admin REST: key managers (as the tenant's admin) ----------------------------------------------------

    def list_key_managers(self, username: str, password: str) -> list[KeyManagerSummary]:
        """GET /api/am/admin/v4/key-managers: the key managers of `username`'s tenant (`<admin>@<domain>`)."""
        answer = self._rest("GET", KEY_MANAGERS_PATH, None, username, password, idempotent=True)
        return summaries(answer.body, self.base_url)

    def get_key_manager(self, key_manager_id: str, username: str, password: str) -> KeyManager | None:
        """GET /key-managers/{id}: the full key manager, or None when the tenant has no such one (404)."""
        path = _key_manager_path(key_manager_id)
        answer = self._rest("GET", path, None, username, password, idempotent=True, expected=(200, 404))
        return None if answer.status == 404 else key_manager(answer.body, self.base_url)

    def tenant_key_managers(self, username: str, password: str) -> list[KeyManager]:
        """Every key manager of the tenant in full (the list, then each one): what a check of the tenant's
        WSO2-IS-7 key manager needs. One that vanishes between the two calls is left out."""
        found = (self.get_key_manager(summary.id, username, password)
                 for summary in self.list_key_managers(username, password))
        return [manager for manager in found if manager is not None]

    def create_key_manager(self, dto: Mapping[str, Any], username: str, password: str) -> KeyManager:
        """POST /key-managers (a KeyManagerDTO: name, type, additionalProperties, ...): the created key manager.
        Raises AlreadyExists when the tenant has one of that name. Never repeated automatically."""
        answer = self._rest("POST", KEY_MANAGERS_PATH, dict(dto), username, password, idempotent=False,
                            expected=(201,))
        return key_manager(answer.body, self.base_url)

    def update_key_manager(self, key_manager_id: str, dto: Mapping[str, Any], username: str,
                           password: str) -> KeyManager:
        """PUT /key-managers/{id} with the whole DTO (start from `KeyManager.raw`)."""
        path = _key_manager_path(key_manager_id)
        answer = self._rest("PUT", path, dict(dto), username, password, idempotent=True)
        return key_manager(answer.body, self.base_url)

    def delete_key_manager(self, key_manager_id: str, username: str, password: str) -> None:
        """DELETE /key-managers/{id}; a key manager already gone (404) counts as deleted."""
        path = _key_manager_path(key_manager_id)
        self._rest("DELETE", path, None, username, password, idempotent=True, expected=(200, 204, 404))

    def _rest(self, method: str, path: str, document: Any, username: str, password: str, *, idempotent: bool,
              expected: tuple[int, ...] = (200,)) -> transport.Answer:
        """One admin REST call as `username`, repeated like the idempotent SOAP calls when `idempotent`."""
        if not username or not password:
            raise ValueError("the key manager API needs the tenant admin's user name and password")
        body = json.dumps(document).encode() if document is not None else b""
        headers = {"Accept": "application/json"}
        if document is not None:
            headers["Content-Type"] = "application/json"
        auth = HTTPBasicAuth(username, password)
        answer = self._transport.request(method, path, data=body or None, headers=headers, auth=auth,
                                         idempotent=idempotent)
        if answer.status not in expected:
            raise rest_error(answer.status, answer.headers, answer.body, self.base_url, username=username,
                             operation=f"{method} {path}")
        return answer

    # --- Plumbing -----------------------------------------------------------------------------------------

    def _soap(self, operation: str, fill: Any, *, idempotent: bool) -> ET.Element | None:
        """One operation; returns the `<ns:operationResponse>` element, or None for a void operation."""
        envelope = build_envelope(operation, fill)
        headers = {"Content-Type": "text/xml; charset=UTF-8", "SOAPAction": f'"urn:{operation}"',
                   "Accept": "text/xml"}
        answer = self._transport.request("POST", SERVICE_PATH, data=envelope, headers=headers, idempotent=idempotent)
        return self._soap_result(operation, answer, void=operation in _VOID_OPERATIONS)

    def _soap_result(self, operation: str, answer: transport.Answer, *, void: bool) -> ET.Element | None:
        if void and answer.status in (200, 202) and not answer.body.strip():
            return None  # a void operation: Axis2 answers 202 Accepted with no body
        if answer.status != 200:
            fault = _fault_in(answer)
            if fault is not None:
                raise _fault_error(fault, answer, self.base_url)
            raise UpstreamError(Cause.HTTP_ERROR, f"HTTP {answer.status} without a SOAP fault.", product=PRODUCT,
                                status=answer.status, target=self.base_url,
                                retry_after=answer.retry_after)
        document = _parse_xml(answer, self.base_url)
        body = document.find(f"{{{SOAP_ENV}}}Body")
        first = body[0] if body is not None and len(body) else None
        if first is not None and first.tag == f"{{{SOAP_ENV}}}Fault":
            raise _fault_error(first, answer, self.base_url)
        if void and first is None:
            return None
        if first is None or first.tag != f"{{{SERVICES_NS}}}{operation}Response":
            raise UpstreamError(Cause.BAD_RESPONSE, f"API Manager's answer to {operation} is not a "
                                f"{operation}Response.", product=PRODUCT, target=self.base_url)
        return first


def _key_manager_path(key_manager_id: str) -> str:
    return transport.expand(KEY_MANAGER, "a key manager id", key_manager_id=key_manager_id)


def _parse_xml(answer: transport.Answer, target: str) -> ET.Element:
    """Parse a success answer that is already size-capped; a DTD is refused outright, so no entity is ever
    expanded."""
    if _has_dtd(answer.body):
        raise UpstreamError(Cause.BAD_RESPONSE, "API Manager's answer carries a DTD; the portal does not parse those.",
                            product=PRODUCT, target=target)
    try:
        return ET.fromstring(answer.body)
    except ET.ParseError as exc:
        content_type = answer.header("content-type") or "no content type"
        raise UpstreamError(Cause.BAD_RESPONSE, f"API Manager answered {answer.status} with a body that is not XML "
                            f"({content_type}).", product=PRODUCT, detail=str(exc), target=target) from None


def _has_dtd(body: bytes) -> bool:
    lowered = body.lower()
    return b"<!doctype" in lowered or b"<!entity" in lowered


def _fault_in(answer: transport.Answer) -> ET.Element | None:
    """The SOAP fault in an error answer, or None when the body is something else (a proxy's page, nothing)."""
    if not answer.body.lstrip().startswith(b"<") or _has_dtd(answer.body):
        return None
    try:
        document = ET.fromstring(answer.body)
    except ET.ParseError:
        return None
    fault = document.find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    return fault


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _fault_error(fault: ET.Element, answer: transport.Answer, target: str) -> UpstreamError:
    """SOAP 1.1 fault: faultcode / faultstring / detail are unqualified. The code is the exception the detail names
    (the service refused) or else the fault code (Carbon's authentication or authorization handlers refused)."""
    faultcode = (fault.findtext("faultcode") or "").strip() or None
    faultstring = (fault.findtext("faultstring") or "").strip()
    detail = fault.find("detail")
    exception = detail[0] if detail is not None and len(detail) else None
    code = _local(exception.tag) if exception is not None else faultcode
    description = None
    if exception is not None:
        message = next((e.text for e in exception.iter() if _local(e.tag) == "Message" and e.text), None)
        description = message.strip() if message else None
    return UpstreamError(Cause.HTTP_ERROR, faultstring or f"SOAP fault {faultcode or ''} without a message.",
                         product=PRODUCT, status=answer.status, code=code, description=description, target=target,
                         retry_after=answer.retry_after)


def _notify_error(answer: transport.Answer, target: str) -> UpstreamError:
    """notify's failures: 500 {"Message": …} from the event handler, a 401 error body from the authentication
    interceptor, an empty 403 for a caller outside the super tenant."""
    message = code = description = None
    try:
        document = json.loads(answer.body) if answer.body else None
    except ValueError:
        document = None
    if isinstance(document, dict):
        message = document.get("Message") or document.get("message")
        raw_code = document.get("code")
        code = str(raw_code) if isinstance(raw_code, str | int) and not isinstance(raw_code, bool) else None
        description = document.get("description") if isinstance(document.get("description"), str) else None
    if not isinstance(message, str) or not message:
        message = f"HTTP {answer.status} without an API Manager error body."
    return UpstreamError(Cause.HTTP_ERROR, message, product=PRODUCT, status=answer.status, code=code,
                         description=description, target=target,
                         retry_after=answer.retry_after)


def _value(bean: ET.Element, name: str) -> str | None:
    element = bean.find(f"{{{BEANS_NS}}}{name}")
    if element is None or element.get(f"{{{XSI}}}nil") == "true":
        return None
    return element.text or ""


def _tenant(bean: ET.Element) -> ApimTenant | None:
    """A TenantInfoBean element (nil: None)."""
    if bean.get(f"{{{XSI}}}nil") == "true":
        return None
    raw_id = (_value(bean, "tenantId") or "0").strip()
    raw_active = (_value(bean, "active") or "false").strip()
    created = None
    raw_created = _value(bean, "createdDate")
    if raw_created:
        try:
            created = datetime.datetime.fromisoformat(raw_created.strip())
        except ValueError:
            created = None
    try:
        tenant_id = int(raw_id or "0")
    except ValueError:
        raise UpstreamError(Cause.BAD_RESPONSE, "A tenant id in API Manager's answer is not a number.",
                            product=PRODUCT) from None
    return ApimTenant(tenant_id=tenant_id, domain=_value(bean, "tenantDomain") or "", admin=_value(bean, "admin"),
                      email=_value(bean, "email"), firstname=_value(bean, "firstname"),
                      lastname=_value(bean, "lastname"), active=raw_active in ("true", "1"), created=created)
