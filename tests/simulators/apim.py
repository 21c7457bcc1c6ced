"""A WSO2 API Manager 4.x simulator: real HTTPS on 127.0.0.1 serving what the portal and WSO2 IS call, following
`reference/wso2-apis.md` §4-§6 to the letter, quirks included:

- `POST /services/TenantMgtAdminService`: the SOAP 1.1 admin service (SOAPAction `urn:<op>`, operations in
  `http://services.mgt.tenant.carbon.wso2.org`, TenantInfoBean fields in
  `http://beans.common.stratos.carbon.wso2.org/xsd` in the WSDL's order, both qualified); HTTP Basic as a super-tenant user with the operation's permission; service
  exceptions are SOAP faults (HTTP 500) with a TenantMgtAdminServiceException detail, handler refusals are faults
  with an empty detail; void operations answer 202 with no body; `retrievePaginatedTenants` pages like Carbon's
  DataPaginator (page numbers from 0, 15 per page, a page past the end returns the LAST page, an empty list has
  numberOfPages 0 and a nil tenantInfoBeans);
- `POST /internal/data/v1/notify` (§4): a wrong Basic password is a 401 from the CXF interceptor, a caller outside
  the super tenant a 403; no Authorization header at all passes the interceptor and the TenantManagementEventHandler
  then refuses it with a 500, as it does a user without the modify-tenant permission; the FIRST `events` value is
  used whatever its key, `action` decides (DEACTIVATE arrives under the tenantActivated key), CREATE / UPDATE with
  no owners are a silent 200, and every failure is 500 {"Message": …}; an unknown X-WSO2-KEY-MANAGER type is a
  no-op 200.

API Manager's own sync to IS (§5): with `configure_tenant_sharing`, the ISTenantSyncListener runs inside the admin
operations, synchronously, with Basic auth and `Content-Type: application/json` on every call: a create POSTs the
tenant to IS (errors only logged) and the initial activation then GETs it by domain, deactivating the new tenant
in API Manager on ANY error; an update GETs the tenant and its owners and PUTs the owner, falling back to a create
on a 400/404; an activation or deactivation GETs the tenant, PUTs the lifecycle only when it differs, and rolls
API Manager's own state back on ANY error. The SOAP call still succeeds in every case: callers must verify.
Connection failures are retried as Feign's default Retryer does (5 attempts from 100 ms, times 1.5).

Tests import `ApimSimulator`; the demo starts it from the command line (`python -m tests.simulators.apim --help`).
Injected latency, failures (a status or a connection reset, matched by method, path prefix and SOAP operation),
downtime and a request log make failure handling testable. Simulator choices where API Manager's behaviour was not
read are marked "simulator:".
"""
from __future__ import annotations

import argparse
import base64
import datetime
import http.client
import json
import re
import ssl
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit
from xml.sax.saxutils import escape

from tests.simulators.https import BaseState, HttpsSimulator, TlsHandler, server_context
from tests.simulators.is7 import domain_problem, email_problem, parse_basic

__all__ = ["ApimSimulator", "TenantSharingConfig", "main"]

SERVICE_PATH = "/services/TenantMgtAdminService"
NOTIFY_PATH = "/internal/data/v1/notify"
SUPER_TENANT = "carbon.super"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
SERVICES_NS = "http://services.mgt.tenant.carbon.wso2.org"
BEANS_NS = "http://beans.common.stratos.carbon.wso2.org/xsd"
PAGINATED_NS = "http://beans.mgt.tenant.carbon.wso2.org/xsd"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
BEAN_FIELDS = ("active", "admin", "adminPassword", "createdDate", "email", "firstname", "lastname", "name",
               "originatedService", "successKey", "tenantDomain", "tenantId", "usagePlan")
KEY_MANAGER_HEADER = "X-WSO2-KEY-MANAGER"
TENANT_MANAGEMENT = "TENANT_MANAGEMENT"
HANDLER_ERROR = "Error while executing tenant management service"  # the outer APIManagementException's message
RESIDENT_KEY_MANAGER = "Resident Key Manager"
DEFAULT_ITEMS_PER_PAGE = 15  # carbon.xml ItemsPerPage

PERMISSION_ALL = "/permission"
PERMISSION_MONITOR = "/permission/protected/manage/monitor/tenants"
PERMISSION_LIST = "/permission/protected/manage/monitor/tenants/list"
PERMISSION_MODIFY = "/permission/protected/manage/modify/tenants"
OPERATIONS: dict[str, str] = {  # services.xml: the permission each operation needs
    "addTenant": PERMISSION_MONITOR, "getTenant": PERMISSION_MONITOR, "retrieveTenants": PERMISSION_LIST,
    "retrievePaginatedTenants": PERMISSION_LIST, "updateTenant": PERMISSION_MODIFY,
    "activateTenant": PERMISSION_MODIFY, "deactivateTenant": PERMISSION_MODIFY,
}
VOID_OPERATIONS = frozenset({"updateTenant", "activateTenant", "deactivateTenant"})

_NAME_ILLEGAL = re.compile(r"[<>&\"'%;]")  # simulator: CommonUtil.validateName's character set was not read


# --- State ---------------------------------------------------------------------------------------------------


@dataclass
class ApimUser:
    password: str = field(repr=False)
    permissions: frozenset[str] = frozenset()

    def may(self, permission: str) -> bool:
        """Carbon permissions form a tree: holding a node grants everything under it."""
        return any(permission == held or permission.startswith(held.rstrip("/") + "/") for held in self.permissions)


@dataclass
class ApimTenant:
    id: int
    uuid: str
    domain: str
    admin: str
    email: str
    firstname: str | None
    lastname: str | None
    created: datetime.datetime
    active: bool = False
    password: str | None = field(default=None, repr=False)


@dataclass
class LoggedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes = field(repr=False)
    operation: str | None = None  # the SOAP operation, from the body (or SOAPAction when the body is unreadable)
    basic_user: str | None = None
    status: int | str | None = None  # "reset" for an injected reset
    note: str | None = None  # why the simulator refused, for test diagnostics (never sent)

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def xml(self) -> ET.Element:
        return ET.fromstring(self.body)


@dataclass(frozen=True)
class TenantSharingConfig:
    """`[[apim.tenant_sharing]]` type "WSO2-IS-7" and its properties. `ca_pem` is what API Manager's truststore
    trusts for IS (None: the system CAs); `retry_period` scales Feign's 100 ms first retry so tests run fast."""

    identity_server_base_url: str
    username: str
    password: str = field(repr=False)
    enable_tenant_sync: bool = True
    auto_configure_key_manager: bool = False
    ca_pem: str | None = None
    timeout: float = 10.0
    retry_period: float = 0.1
    max_attempts: int = 5


@dataclass
class SharingCall:
    """One call API Manager's listener made to IS: `outcome` is the HTTP status, or "error: …"."""

    method: str
    path: str
    body: Any
    outcome: int | str


class ServiceFault(Exception):
    """A TenantMgtAdminServiceException: a SOAP fault whose detail names the exception."""


class HandlerFault(Exception):
    """An AxisFault from a handler (authentication, authorization, dispatch, parsing): an empty detail."""

    def __init__(self, message: str, code: str = "soapenv:Server") -> None:
        super().__init__(message)
        self.code = code


class IsCallFailed(Exception):
    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(message)
        self.status = status  # None for a connection failure


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class ApimState(BaseState):
    def __init__(self, *, users: Mapping[str, ApimUser] | None = None, public_cloud_setup: bool = True,
                 items_per_page: int = DEFAULT_ITEMS_PER_PAGE, skip_create_resident_key_manager: bool = False,
                 latency: float = 0.0) -> None:
        super().__init__(latency=latency)
        self.users: dict[str, ApimUser] = dict(users) if users is not None else {
            "admin": ApimUser("admin", frozenset({PERMISSION_ALL})),
            "monitor": ApimUser("monitor", frozenset({PERMISSION_MONITOR})),  # can read and add, cannot modify
        }
        self.public_cloud_setup = public_cloud_setup
        self.items_per_page = items_per_page
        self.skip_create_resident_key_manager = skip_create_resident_key_manager
        self.tenants: dict[str, ApimTenant] = {}
        self.key_managers: dict[str, list[dict]] = {}
        self.next_id = 1
        self.sharing: TenantSharingConfig | None = None
        self.sharing_calls: list[SharingCall] = []
        self.events: list[str] = []  # what API Manager logged: listener errors, rollbacks, handler failures

    def user(self, username: str) -> tuple[str, ApimUser | None]:
        """(tenant domain, user) for `name` or `name@domain`; tenant admins log in with their tenant password."""
        name, at, domain = username.rpartition("@")
        if not at or domain == SUPER_TENANT:
            name = username.removesuffix("@" + SUPER_TENANT)
            return SUPER_TENANT, self.users.get(name)
        tenant = self.tenants.get(domain)
        if tenant and tenant.active and tenant.admin == name and tenant.password:
            return domain, ApimUser(tenant.password, frozenset({"/permission/admin"}))
        return domain, None

    def log_event(self, text: str) -> None:
        with self.lock:
            self.events.append(text)


# --- TenantMgtAdminService --------------------------------------------------------------------------------------


class TenantService:
    """The admin service's operations over an ApimState, with the ISTenantSyncListener calls they trigger."""

    def __init__(self, state: ApimState) -> None:
        self.state = state
        self.sync = IsTenantSync(state)

    # --- operations ---

    def add_tenant(self, bean: dict[str, Any]) -> str:
        domain = bean.get("tenantDomain") or ""
        email = bean.get("email") or ""
        if email_problem(email):
            raise ServiceFault("Invalid email is provided.")
        problem = domain_problem(domain, public_cloud_setup=self.state.public_cloud_setup)
        if problem is not None:
            raise ServiceFault(problem[1])
        admin = bean.get("admin")
        if not admin:
            raise ServiceFault("Invalid data.")  # simulator: persisting a tenant without an admin fails
        with self.state.lock:
            if domain == SUPER_TENANT or domain in self.state.tenants:
                raise ServiceFault(f"A tenant with same domain {domain} already exist. Please use a different "
                                   "domain name.")
            tenant = ApimTenant(id=self.state.next_id, uuid=str(uuid.uuid4()), domain=domain, admin=admin,
                                email=email, firstname=bean.get("firstname"), lastname=bean.get("lastname"),
                                created=_now(), active=False, password=bean.get("adminPassword"))
            self.state.next_id += 1
            self.state.tenants[domain] = tenant
            managers = self.state.key_managers.setdefault(domain, [])
            if not self.state.skip_create_resident_key_manager:
                managers.append({"name": RESIDENT_KEY_MANAGER, "type": "default"})
        self.sync.on_create(tenant, bean)  # TenantMgtUtil.triggerAddTenant
        with self.state.lock:
            tenant.active = True  # activateTenantInitially: every tenant the super tenant adds starts active
        if not self.sync.on_initial_activation(domain):
            with self.state.lock:
                tenant.active = False
            self.state.log_event(f"Deactivating tenant {domain} in API Manager due to missing tenant in Identity "
                                 "Server")
        return tenant.uuid

    def get_tenant(self, domain: str) -> dict[str, Any]:
        with self.state.lock:
            tenant = self.state.tenants.get(domain)
            if tenant is None:
                # simulator: getTenant for an unknown domain fails in IS's user core; the text was not read.
                raise ServiceFault(f"Error in retrieving the tenant information for the tenant domain: {domain}.")
            return {**self._list_bean(tenant), "admin": tenant.admin, "firstname": tenant.firstname,
                    "lastname": tenant.lastname, "usagePlan": ""}

    def update_tenant(self, bean: dict[str, Any]) -> None:
        domain = bean.get("tenantDomain") or ""
        for key, label in (("firstname", "first"), ("lastname", "last")):
            value = bean.get(key)
            if value and value.strip() and _NAME_ILLEGAL.search(value):
                raise ServiceFault(f"Invalid {label} name is provided.")
        email = bean.get("email")
        if email and email.strip() and email_problem(email):
            raise ServiceFault("Invalid email is provided.")
        with self.state.lock:
            tenant = self.state.tenants.get(domain)
            if tenant is None:
                raise ServiceFault(f"Error in retrieving the tenant id for the tenant domain: {domain}.")
            tenant.firstname = bean.get("firstname")  # set unconditionally: a missing name clears it
            tenant.lastname = bean.get("lastname")
            if email and email.strip():
                tenant.email = email
            password = bean.get("adminPassword")
            if password and password.strip():
                tenant.password = password
            else:
                bean = {**bean, "adminPassword": ""}  # "Password should be empty since no password update done"
        self.sync.on_update(bean)  # TenantMgtUtil.triggerUpdateTenant

    def set_active(self, domain: str, active: bool) -> None:
        with self.state.lock:
            tenant = self.state.tenants.get(domain)
            if tenant is None:
                verb = "activating the tenant" if active else "deactivating tenant"
                raise ServiceFault(f"Error in {verb} for tenant domain: {domain}.")
            tenant.active = active
        if not self.sync.on_activation_change(domain, active):
            with self.state.lock:
                tenant.active = not active  # the listener's rollback
            self.state.log_event(f"Rollback tenant {'activation' if active else 'deactivation'} for tenant {domain}")

    def retrieve_paginated(self, page_number: int) -> tuple[int, list[dict[str, Any]] | None]:
        """DataPaginator.doPaging: pages count from 0, a negative page is page 0, a page past the end is the last
        page; an empty list leaves numberOfPages at 0 and the beans unset."""
        beans = self.retrieve_all()
        if not beans:
            return 0, None
        per_page = self.state.items_per_page
        pages = -(-len(beans) // per_page)
        page = 0 if page_number < 0 or page_number == 2**31 - 1 else min(page_number, pages - 1)
        return pages, beans[page * per_page:(page + 1) * per_page]

    def retrieve_all(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return [self._list_bean(t) for t in sorted(self.state.tenants.values(), key=lambda t: t.id)]

    @staticmethod
    def _list_bean(tenant: ApimTenant) -> dict[str, Any]:
        """getTenantInfoBeanfromTenant: only id, domain, email, created date and active are filled."""
        return {"active": tenant.active, "createdDate": tenant.created, "email": tenant.email,
                "tenantDomain": tenant.domain, "tenantId": tenant.id}


class IsTenantSync:
    """org.wso2.is7.tenant.management.ISTenantSyncListener over a Feign client with Basic auth (§5)."""

    def __init__(self, state: ApimState) -> None:
        self.state = state

    @property
    def config(self) -> TenantSharingConfig | None:
        with self.state.lock:
            return self.state.sharing

    def on_create(self, tenant: ApimTenant, bean: dict[str, Any]) -> None:
        config = self.config
        if config is None:
            return
        if config.enable_tenant_sync:
            try:
                self._create(config, tenant.domain, bean)
            except IsCallFailed as exc:
                self.state.log_event(f"Error while creating tenant in Identity server: {exc}")
        with self.state.lock:
            skip = self.state.skip_create_resident_key_manager
        if skip and config.auto_configure_key_manager:
            with self.state.lock:
                self.state.key_managers.setdefault(tenant.domain, []).append(
                    _is7_key_manager(config.identity_server_base_url, tenant.domain, tenant.admin))

    def on_initial_activation(self, domain: str) -> bool:
        """False when API Manager must deactivate the new tenant: IS could not confirm it (any failure counts)."""
        config = self.config
        if config is None or not config.enable_tenant_sync:
            return True
        try:
            self._call(config, "GET", f"tenants/domain/{quote(domain, safe='')}")
        except IsCallFailed:
            return False
        return True

    def on_update(self, bean: dict[str, Any]) -> None:
        config = self.config
        if config is None or not config.enable_tenant_sync:
            return
        domain = bean.get("tenantDomain") or ""
        try:
            tenant = self._call(config, "GET", f"tenants/domain/{quote(domain, safe='')}")
            owners = self._call(config, "GET", f"tenants/{quote(tenant['id'], safe='')}/owners")
            owner_id = owners[0]["id"]
            body = _drop_none({"email": bean.get("email"), "password": bean.get("adminPassword"),
                               "firstname": bean.get("firstname"), "lastname": bean.get("lastname")})
            self._call(config, "PUT", f"tenants/{quote(tenant['id'], safe='')}/owners/{quote(owner_id, safe='')}",
                       body)
        except IsCallFailed as exc:
            if exc.status in (400, 404):  # TenantBadRequestException / TenantNotFoundException: create it
                try:
                    self._create(config, domain, bean)
                except IsCallFailed as again:
                    self.state.log_event(f"Error while creating missing tenant in Identity server: {again}")
            else:
                self.state.log_event(f"Error while updating tenant in IS: {domain}: {exc}")
        except (KeyError, IndexError, TypeError) as exc:  # an answer without the expected fields
            self.state.log_event(f"Error while updating tenant in IS: {domain}: {exc!r}")

    def on_activation_change(self, domain: str, active: bool) -> bool:
        """False when API Manager must roll its own change back: any error while aligning IS."""
        config = self.config
        if config is None or not config.enable_tenant_sync:
            return True
        try:
            tenant = self._call(config, "GET", f"tenants/domain/{quote(domain, safe='')}")
            if tenant["lifecycleStatus"]["activated"] == active:
                return True  # "Tenant is already activated in IS"
            self._call(config, "PUT", f"tenants/{quote(tenant['id'], safe='')}/lifecycle-status",
                       {"activated": active})
        except (IsCallFailed, KeyError, TypeError) as exc:
            self.state.log_event(f"Error while {'activating' if active else 'deactivating'} tenant in IS: "
                                 f"{domain}: {exc}")
            return False
        return True

    def _create(self, config: TenantSharingConfig, domain: str, bean: dict[str, Any]) -> None:
        owner = _drop_none({"username": bean.get("admin"), "password": bean.get("adminPassword"),
                            "email": bean.get("email"), "firstname": bean.get("firstname"),
                            "lastname": bean.get("lastname"), "provisioningMethod": "inline-password"})
        self._call(config, "POST", "tenants", {"domain": domain, "owners": [owner]})

    def _call(self, config: TenantSharingConfig, method: str, path: str, body: Any = None) -> Any:
        """One Feign call: connection failures are retried (Retryer.Default), an HTTP error raises at once."""
        base = config.identity_server_base_url
        base = base if base.endswith("/") else base + "/"
        url = urlsplit(f"{base}api/server/v1/{path}")
        content = json.dumps(body, separators=(",", ":")).encode() if body is not None else None
        token = base64.b64encode(f"{config.username}:{config.password}".encode()).decode()
        headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json",
                   "Accept": "application/json"}
        delay = config.retry_period
        for attempt in range(1, config.max_attempts + 1):
            try:
                status, answer = _request(url, method, content, headers, config)
            except OSError as exc:
                self._record(method, url.path, body, f"error: {type(exc).__name__}: {exc}")
                if attempt == config.max_attempts:
                    raise IsCallFailed(None, f"{method} {url.path} failed: {exc}") from None
                time.sleep(delay)
                delay = min(delay * 1.5, 1.0)
                continue
            self._record(method, url.path, body, status)
            if status >= 400:
                raise IsCallFailed(status, f"{method} {url.path} answered {status}: {answer!r}"[:500])
            return answer
        raise IsCallFailed(None, "no attempt made")

    def _record(self, method: str, path: str, body: Any, outcome: int | str) -> None:
        with self.state.lock:
            self.state.sharing_calls.append(SharingCall(method, path, body, outcome))


def _request(url: Any, method: str, content: bytes | None, headers: dict[str, str],
             config: TenantSharingConfig) -> tuple[int, Any]:
    context = ssl.create_default_context(cadata=config.ca_pem) if config.ca_pem else ssl.create_default_context()
    connection = http.client.HTTPSConnection(url.hostname, url.port or 443, timeout=config.timeout,
                                             context=context)
    try:
        connection.request(method, url.path, body=content, headers=headers)
        response = connection.getresponse()
        raw = response.read()
    except http.client.HTTPException as exc:
        raise OSError(str(exc)) from exc
    finally:
        connection.close()
    try:
        answer = json.loads(raw) if raw else None
    except ValueError:
        answer = raw.decode("utf-8", "replace")
    return response.status, answer


def _is7_key_manager(base_url: str, domain: str, admin: str) -> dict:
    """The `Resident Key Manager` of type WSO2-IS-7 the listener configures (no IS call), per §5."""
    base = base_url if base_url.endswith("/") else base_url + "/"
    prefix = f"{base}t/{domain}"
    return {
        "name": RESIDENT_KEY_MANAGER, "type": "WSO2-IS-7", "displayName": "IS7 as Default Key Manager",
        "enabled": True, "tokenType": "DIRECT", "organization": domain,
        "additionalProperties": {
            "Authentication": "MutualTLS", "MutualTLSOptions": "ServerWide", "IdentityUser": f"{admin}@{domain}",
            "api_resource_management_endpoint": f"{prefix}/api/server/v1/api-resources",
            "is7_roles_endpoint": f"{prefix}/scim2/v2/Roles",
            "client_registration_endpoint": f"{prefix}/api/identity/oauth2/dcr/v1.1/register",
            "introspection_endpoint": f"{prefix}/oauth2/introspect", "token_endpoint": f"{prefix}/oauth2/token",
            "revoke_endpoint": f"{prefix}/oauth2/revoke", "userinfo_endpoint": f"{prefix}/scim2/Me",
            "authorize_endpoint": f"{prefix}/oauth2/authorize", "certificate_value": f"{prefix}/oauth2/jwks",
        },
    }


def _drop_none(document: dict) -> dict:
    return {key: value for key, value in document.items() if value is not None}


# --- SOAP -------------------------------------------------------------------------------------------------------


def _xsd_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime.datetime):
        return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return escape(str(value))


def _bean_xml(bean: Mapping[str, Any], element: str, prefix: str = "ax2388") -> str:
    """A TenantInfoBean as Axis2's ADB writes it: every field in the WSDL's order, unset ones as xsi:nil."""
    parts = [f'<{element} xsi:type="ax2388:TenantInfoBean">']
    for name in BEAN_FIELDS:
        value = bean.get(name)
        if name == "tenantId" and value is None:
            value = 0  # an int field is never nil
        if name == "active" and value is None:
            value = False
        if value is None:
            parts.append(f'<{prefix}:{name} xsi:nil="true"/>')
        else:
            parts.append(f"<{prefix}:{name}>{_xsd_value(value)}</{prefix}:{name}>")
    parts.append(f"</{element}>")
    return "".join(parts)


def envelope(body: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="{SOAP_ENV}"><soapenv:Body>'
            f"{body}</soapenv:Body></soapenv:Envelope>").encode()


def fault_envelope(message: str, *, code: str = "soapenv:Server", service_exception: bool = False) -> bytes:
    """A SOAP 1.1 fault. A service exception carries TenantMgtAdminServiceException in the detail (as the WSDL
    declares it); a handler's AxisFault has an empty detail."""
    detail = "<detail/>"
    if service_exception:
        detail = (f'<detail><ns:TenantMgtAdminServiceException xmlns:ns="{SERVICES_NS}">'
                  f"<ns:TenantMgtAdminServiceException><ns:Message>{escape(message)}</ns:Message>"
                  "</ns:TenantMgtAdminServiceException></ns:TenantMgtAdminServiceException></detail>")
    return envelope(f"<soapenv:Fault><faultcode>{escape(code)}</faultcode><faultstring>{escape(message)}"
                    f"</faultstring>{detail}</soapenv:Fault>")


def _response(operation: str, inner: str, extra_ns: str = "") -> bytes:
    return envelope(f'<ns:{operation}Response xmlns:ns="{SERVICES_NS}"{extra_ns}>{inner}</ns:{operation}Response>')


_BEAN_NS_DECL = f' xmlns:ax2388="{BEANS_NS}" xmlns:ax2392="{PAGINATED_NS}" xmlns:xsi="{XSI}"'


def parse_request(body: bytes) -> tuple[str, ET.Element]:
    """(operation, operation element) of a SOAP 1.1 request, or HandlerFault for what Axis2 would refuse."""
    if b"<!doctype" in body[:4096].lower() or b"<!entity" in body.lower():
        raise HandlerFault("DTDs are not allowed in SOAP messages.", "soapenv:Client")  # simulator: text not read
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise HandlerFault(f"Error while parsing the SOAP message: {exc}", "soapenv:Client") from None
    if root.tag == f"{{{SOAP12_ENV}}}Envelope":
        raise HandlerFault("Transport level information does not match with SOAP Message namespace URI",
                           "soapenv:VersionMismatch")
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        raise HandlerFault("First Element must contain the local name, Envelope", "soapenv:Client")
    soap_body = root.find(f"{{{SOAP_ENV}}}Body")
    if soap_body is None or len(soap_body) != 1:
        raise HandlerFault("The SOAP body must hold exactly one operation element.", "soapenv:Client")
    element = soap_body[0]
    namespace, _, operation = element.tag[1:].partition("}") if element.tag.startswith("{") else ("", "", element.tag)
    if namespace != SERVICES_NS or operation not in OPERATIONS:
        raise HandlerFault(f"The endpoint reference (EPR) for the Operation not found is {SERVICE_PATH} and the WSA "
                           f"Action = urn:{operation}. If this EPR was previously reachable, please contact the "
                           "server administrator.", "soapenv:Client")
    return operation, element


def _children(element: ET.Element, namespace: str, order: Iterable[str]) -> dict[str, ET.Element]:
    """The child elements by local name, as ADB reads a sequence: qualified, in order, each at most once."""
    order = list(order)
    found: dict[str, ET.Element] = {}
    position = -1
    for child in element:
        ns, _, local = child.tag[1:].partition("}") if child.tag.startswith("{") else ("", "", child.tag)
        if ns != namespace or local not in order or order.index(local) <= position:
            raise HandlerFault(f"Unexpected subelement {local}" + (f" (namespace {ns or 'none'})"), "soapenv:Client")
        position = order.index(local)
        found[local] = child
    return found


def _text(element: ET.Element | None, kind: str, name: str) -> Any:
    if element is None or element.get(f"{{{XSI}}}nil") == "true":
        return None
    text = element.text or ""
    if kind == "string":
        return text
    try:
        if kind == "boolean":
            if text.strip() not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return text.strip() in ("true", "1")
        if kind == "int":
            return int(text.strip())
        if kind == "dateTime":
            return datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise HandlerFault(f"Invalid value for {name}: '{text}'", "soapenv:Client") from None
    raise AssertionError(kind)


_BEAN_KINDS = {"active": "boolean", "tenantId": "int", "createdDate": "dateTime"}


def parse_bean(element: ET.Element | None) -> dict[str, Any]:
    if element is None or element.get(f"{{{XSI}}}nil") == "true":
        return {}
    children = _children(element, BEANS_NS, BEAN_FIELDS)
    return {name: _text(child, _BEAN_KINDS.get(name, "string"), name) for name, child in children.items()}


# --- HTTPS handler ------------------------------------------------------------------------------------------------


class _Handler(TlsHandler):
    log_prefix = "apim-sim"

    def _dispatch(self) -> None:
        sim: ApimSimulator = self.server.sim  # type: ignore[assignment]
        body = self.read_body()
        if body is None:
            return
        split = urlsplit(self.path)
        entry = LoggedRequest(method=self.command, path=split.path, query=split.query,
                              headers={k.lower(): v for k, v in self.headers.items()}, body=body)
        if split.path == SERVICE_PATH:
            entry.operation = _peek_operation(body, self.headers.get("SOAPAction"))
        fault = self.admit(sim.state, entry, split.path)
        if fault is False:
            return
        if fault is not None:
            status, content, content_type = _injected(int(fault.action), fault.body, split.path)
            self._answer(entry, status, content, content_type, fault.headers)
            return
        if split.path == SERVICE_PATH and self.command == "POST":
            self._answer(entry, *self._soap(sim, entry, body))
        elif split.path == NOTIFY_PATH and self.command == "POST":
            self._answer(entry, *self._notify(sim, entry, body))
        elif split.path in (SERVICE_PATH, NOTIFY_PATH):
            self._answer(entry, 405, b"", None, {"Allow": "POST"})
        else:
            self._answer(entry, 404, b"", None)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _dispatch

    def _answer(self, entry: LoggedRequest, status: int, body: bytes, content_type: str | None,
                headers: dict[str, str] | None = None) -> None:
        entry.status = status
        self.write_answer(status, body, content_type, headers)

    # --- SOAP ---

    def _soap(self, sim: ApimSimulator, entry: LoggedRequest, body: bytes) -> tuple[int, bytes, str | None]:
        try:
            content_type = self.headers.get("Content-Type", "")
            if not content_type.lower().startswith("text/xml"):
                # simulator: Axis2 picks its message builder by content type; SOAP 1.1 is text/xml.
                raise HandlerFault(f"Unsupported content type {content_type or '(none)'} for SOAP 1.1.",
                                   "soapenv:Client")
            operation, element = parse_request(body)
            action = (self.headers.get("SOAPAction") or "").strip().strip('"')
            if action and action != f"urn:{operation}":
                raise HandlerFault(f"The endpoint reference (EPR) for the Operation not found is {SERVICE_PATH} "
                                   f"and the WSA Action = {action}. If this EPR was previously reachable, please "
                                   "contact the server administrator.", "soapenv:Client")
            self._authorize(sim, entry, OPERATIONS[operation])
            answer = self._operation(sim, operation, element)
        except HandlerFault as exc:
            entry.note = str(exc)
            return 500, fault_envelope(str(exc), code=exc.code), "text/xml; charset=UTF-8"
        except ServiceFault as exc:
            entry.note = str(exc)
            return 500, fault_envelope(str(exc), service_exception=True), "text/xml; charset=UTF-8"
        if answer is None:
            return 202, b"", None  # simulator: a void (robust in-only) operation answers 202 Accepted, no body
        return 200, answer, "text/xml; charset=UTF-8"

    def _authorize(self, sim: ApimSimulator, entry: LoggedRequest, permission: str) -> None:
        header = self.headers.get("Authorization")
        if not header:
            raise HandlerFault("Access Denied. Please login first.")
        credentials = parse_basic(header)
        with sim.state.lock:
            tenant, user = sim.state.user(credentials[0]) if credentials else (SUPER_TENANT, None)
        if credentials is None or user is None or user.password != credentials[1]:
            raise HandlerFault("Authentication failure")  # simulator: AuthenticationHandler's fault
        entry.basic_user = credentials[0]
        if tenant != SUPER_TENANT:
            raise HandlerFault("Denied accessing super tenant service.")
        if not user.may(permission):
            raise HandlerFault("Access Denied.")

    def _operation(self, sim: ApimSimulator, operation: str, element: ET.Element) -> bytes | None:
        service = sim.service
        if operation in ("addTenant", "updateTenant"):
            bean = parse_bean(_children(element, SERVICES_NS, ["tenantInfoBean"]).get("tenantInfoBean"))
            if operation == "addTenant":
                return _response(operation, f"<ns:return>{escape(service.add_tenant(bean))}</ns:return>")
            service.update_tenant(bean)
            return None
        if operation in ("getTenant", "activateTenant", "deactivateTenant"):
            domain = _text(_children(element, SERVICES_NS, ["tenantDomain"]).get("tenantDomain"), "string",
                           "tenantDomain") or ""
            if operation == "getTenant":
                return _response(operation, _bean_xml(service.get_tenant(domain), "ns:return"), _BEAN_NS_DECL)
            service.set_active(domain, operation == "activateTenant")
            return None
        if operation == "retrievePaginatedTenants":
            page = _text(_children(element, SERVICES_NS, ["pageNumber"]).get("pageNumber"), "int", "pageNumber")
            pages, beans = service.retrieve_paginated(page or 0)
            inner = f"<ax2392:numberOfPages>{pages}</ax2392:numberOfPages>"
            if beans is None:
                inner += '<ax2392:tenantInfoBeans xsi:nil="true"/>'
            else:
                inner += "".join(_bean_xml(bean, "ax2392:tenantInfoBeans") for bean in beans)
            return _response(operation, f'<ns:return xsi:type="ax2392:PaginatedTenantInfoBean">{inner}</ns:return>',
                             _BEAN_NS_DECL)
        beans = service.retrieve_all()  # retrieveTenants
        return _response(operation, "".join(_bean_xml(bean, "ns:return") for bean in beans), _BEAN_NS_DECL)

    # --- /internal/data/v1/notify ---

    def _notify(self, sim: ApimSimulator, entry: LoggedRequest, body: bytes) -> tuple[int, bytes, str | None]:
        credentials = parse_basic(self.headers.get("Authorization"))
        username = None
        if credentials is not None:  # the CXF BasicAuthenticationInterceptor runs only for a Basic header
            name, password = credentials[0].strip(), credentials[1].strip()
            with sim.state.lock:
                tenant, user = sim.state.user(name)
            if not name or not password or user is None or user.password != password:
                entry.note = "Unauthenticated request"
                # simulator: the 401 body of GlobalThrowableMapper was not read
                return 401, json.dumps({"code": 900901, "message": "Invalid Credentials", "description":
                                        "Invalid Credentials. Make sure you have provided the correct security "
                                        "credentials"}).encode(), "application/json"
            if tenant != SUPER_TENANT:
                entry.note = f"Notification event dispatch is not permitted for organization: {tenant}"
                return 403, b"", None
            username = entry.basic_user = name
        key_manager = self.headers.get(KEY_MANAGER_HEADER) or "default"
        if key_manager != TENANT_MANAGEMENT:
            entry.note = f"no handler for event type {key_manager}"
            return 200, b"", None
        try:
            self._tenant_event(sim, username, body)
        except (ServiceFault, _EventError) as exc:
            entry.note = str(exc)
            sim.state.log_event(f"Error while processing notification: {exc}")
            return 500, json.dumps({"Message": HANDLER_ERROR}).encode(), "application/json"
        return 200, b"", None

    def _tenant_event(self, sim: ApimSimulator, username: str | None, body: bytes) -> None:
        """TenantManagementEventHandler.handleEvent; the SOAP calls run as the event hub user, not the caller."""
        with sim.state.lock:
            user = sim.state.users.get(username) if username else None
        if user is None or not user.may(PERMISSION_MODIFY):  # simulator: the docs ask for modify-tenant
            raise _EventError("User is not authorized to perform this operation.")
        try:
            event = json.loads(body)
        except ValueError:
            raise _EventError("Failed to deserialize the event payload. The JSON string might be null or "
                              "malformed.") from None
        if not isinstance(event, dict):
            raise _EventError("Failed to deserialize the event payload.")
        events = event.get("events")
        if not isinstance(events, dict) or not events:
            raise _EventError("The 'events' field in the payload was either missing, null, or empty.")
        detail = next(iter(events.values()))  # the first value; its key is never looked at
        if not isinstance(detail, dict):
            raise _EventError("Could not process event because EventDetail could not be extracted.")
        tenant = detail.get("tenant")
        if not isinstance(tenant, dict) or not isinstance(tenant.get("domain"), str):
            raise _EventError("Invalid tenant management event data")
        domain, action = tenant["domain"], detail.get("action")
        if action is None:
            raise _EventError("action type cannot be null")
        owners = tenant.get("owners")
        owner = owners[0] if isinstance(owners, list) and owners and isinstance(owners[0], dict) else None
        service = sim.service
        if action == "CREATE":
            if owner is not None:
                service.add_tenant({"tenantDomain": domain, "admin": owner.get("username"),
                                    "adminPassword": owner.get("password"), "email": owner.get("email"),
                                    "firstname": owner.get("firstname"), "lastname": owner.get("lastname"),
                                    "active": True})
        elif action == "UPDATE":
            if owner is not None:  # TenantManagementClient.updateTenant: getTenant, change, updateTenant
                bean = service.get_tenant(domain)
                bean.update({"adminPassword": owner.get("password"), "email": owner.get("email"),
                             "firstname": owner.get("firstname"), "lastname": owner.get("lastname"),
                             "active": True})
                service.update_tenant(bean)
        elif action in ("ACTIVATE", "DEACTIVATE"):
            service.set_active(domain, action == "ACTIVATE")
        else:
            raise _EventError(f"Invalid action in tenant management event {action}")


class _EventError(Exception):
    pass


def _peek_operation(body: bytes, soap_action: str | None) -> str | None:
    """The operation a SOAP request names, for the log and fault matching: the body's element, else SOAPAction."""
    try:
        _, element = parse_request(body)
        return element.tag.rpartition("}")[2]
    except HandlerFault:
        action = (soap_action or "").strip().strip('"')
        return action.removeprefix("urn:") or None


def _injected(status: int, body: Any, path: str) -> tuple[int, bytes, str | None]:
    if isinstance(body, dict | list):
        return status, json.dumps(body).encode(), "application/json"
    if isinstance(body, str | bytes):
        raw = body.encode() if isinstance(body, str) else body
        return status, raw, "text/xml; charset=UTF-8" if raw.lstrip().startswith(b"<") else "text/plain"
    if status == 500 and path == SERVICE_PATH:
        return status, fault_envelope("Injected failure."), "text/xml; charset=UTF-8"
    if status == 500 and path == NOTIFY_PATH:
        return status, json.dumps({"Message": "Injected failure."}).encode(), "application/json"
    return status, b"", None


# --- The simulator ----------------------------------------------------------------------------------------------


class ApimSimulator(HttpsSimulator):
    """API Manager on https://127.0.0.1:<port>. Use as a context manager, or start()/stop()."""

    thread_name = "apim-simulator"

    def __init__(self, *, server_cert_pem: str, server_key_pem: str, users: Mapping[str, ApimUser] | None = None,
                 host: str = "127.0.0.1", port: int = 0, hostname: str | None = None,
                 public_cloud_setup: bool = True, items_per_page: int = DEFAULT_ITEMS_PER_PAGE,
                 skip_create_resident_key_manager: bool = False, tenant_sharing: TenantSharingConfig | None = None,
                 latency: float = 0.0, verbose: bool = False) -> None:
        self.state = ApimState(users=users, public_cloud_setup=public_cloud_setup, items_per_page=items_per_page,
                               skip_create_resident_key_manager=skip_create_resident_key_manager, latency=latency)
        self.state.sharing = tenant_sharing
        self.service = TenantService(self.state)
        super().__init__(context=server_context(server_cert_pem, server_key_pem), handler=_Handler, host=host,
                         port=port, hostname=hostname, verbose=verbose)

    @property
    def service_url(self) -> str:
        return self.base_url + SERVICE_PATH

    @property
    def notify_url(self) -> str:
        return self.base_url + NOTIFY_PATH

    # --- test controls (thread-safe) ---

    def push_fault(self, method: str | None, path_prefix: str, action: int | str, *, delay: float = 0.0,
                   body: Any = None, match: Callable[[Any], bool] | None = None,
                   headers: dict[str, str] | None = None, operation: str | None = None) -> None:
        """As for every simulator; `operation` limits the fault to one SOAP operation (e.g. "addTenant")."""
        if operation is not None:
            match = lambda entry, _op=operation: entry is not None and entry.operation == _op
        super().push_fault(method, path_prefix, action, delay=delay, body=body, match=match, headers=headers)

    def add_user(self, username: str, password: str, permissions: Iterable[str] = (PERMISSION_ALL,)) -> None:
        """A super-tenant user with these Carbon permissions (PERMISSION_ALL, PERMISSION_MODIFY, …)."""
        with self.state.lock:
            self.state.users[username] = ApimUser(password, frozenset(permissions))

    def add_tenant(self, domain: str, *, admin: str = "admin", email: str | None = None, active: bool = True,
                   firstname: str | None = None, lastname: str | None = None,
                   password: str | None = None) -> ApimTenant:
        """Seed a tenant directly (no validation, no listener calls)."""
        with self.state.lock:
            tenant = ApimTenant(id=self.state.next_id, uuid=str(uuid.uuid4()), domain=domain, admin=admin,
                                email=email or f"{admin}@{domain}", firstname=firstname, lastname=lastname,
                                created=_now(), active=active, password=password)
            self.state.next_id += 1
            self.state.tenants[domain] = tenant
            return replace(tenant)

    def tenant(self, domain: str) -> ApimTenant | None:
        """A copy of the tenant's current state, or None."""
        with self.state.lock:
            tenant = self.state.tenants.get(domain)
            return replace(tenant) if tenant else None

    def key_managers(self, domain: str) -> list[dict]:
        with self.state.lock:
            return [dict(km) for km in self.state.key_managers.get(domain, [])]

    def configure(self, **settings: Any) -> None:
        """public_cloud_setup, items_per_page, skip_create_resident_key_manager."""
        allowed = {"public_cloud_setup", "items_per_page", "skip_create_resident_key_manager"}
        unknown = set(settings) - allowed
        if unknown:
            raise ValueError(f"unknown settings {sorted(unknown)}")
        with self.state.lock:
            for key, value in settings.items():
                setattr(self.state, key, value)

    def configure_tenant_sharing(self, config: TenantSharingConfig | None) -> None:
        """Turn API Manager's push to IS on (a TenantSharingConfig) or off (None)."""
        with self.state.lock:
            self.state.sharing = config

    @property
    def sharing_calls(self) -> list[SharingCall]:
        with self.state.lock:
            return list(self.state.sharing_calls)

    @property
    def events(self) -> list[str]:
        with self.state.lock:
            return list(self.state.events)


# --- Command line ----------------------------------------------------------------------------------------------


def _parse_credentials(text: str) -> tuple[str, str]:
    name, sep, password = text.partition(":")
    if not sep or not name or not password:
        raise argparse.ArgumentTypeError("use USERNAME:PASSWORD")
    return name, password


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.simulators.apim",
        description="WSO2 API Manager simulator (test tool): HTTPS with Basic authentication, the SOAP "
                    f"TenantMgtAdminService at {SERVICE_PATH}, the notify API at {NOTIFY_PATH}, and optionally "
                    "API Manager's tenant sharing push to IS 7.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9444, help="port (default 9444; 0 picks a free one)")
    parser.add_argument("--hostname", help="host name in URLs (default: --host)")
    parser.add_argument("--cert", type=Path, help="server certificate PEM")
    parser.add_argument("--key", type=Path, help="server private key PEM")
    parser.add_argument("--demo-pki", type=Path, metavar="DIR",
                        help="make a throwaway CA and server certificate in DIR (ignores --cert, --key)")
    parser.add_argument("--user", action="append", type=_parse_credentials, default=[], metavar="USERNAME:PASSWORD",
                        help="a super-tenant user with every permission (repeatable; admin:admin always, and "
                             "monitor:monitor without the modify-tenant permission)")
    parser.add_argument("--no-public-cloud-setup", action="store_true", help="accept domains without a dot")
    parser.add_argument("--is-base-url", help="turn tenant sharing to IS 7 on: identity_server_base_url")
    parser.add_argument("--is-credentials", type=_parse_credentials, default=("admin", "admin"),
                        metavar="USERNAME:PASSWORD", help="the IS user for tenant sharing (default admin:admin)")
    parser.add_argument("--is-ca", type=Path, help="PEM of the CA that issued IS's certificate")
    parser.add_argument("--auto-configure-key-manager", action="store_true")
    parser.add_argument("--skip-create-resident-key-manager", action="store_true")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    parser.add_argument("--verbose", action="store_true", help="log requests to stderr")
    args = parser.parse_args(argv)

    if args.demo_pki:
        from tests.simulators.pki import Authority
        authority = Authority("API Manager simulator test CA")
        server = authority.server()
        args.demo_pki.mkdir(parents=True, exist_ok=True)
        (args.demo_pki / "apim-ca.pem").write_text(authority.cert_pem)
        cert_pem, key_pem = server.cert_pem, server.key_pem
        print(f"Demo PKI in {args.demo_pki}: apim-ca.pem is the CA to trust.")
    else:
        if not (args.cert and args.key):
            parser.error("--cert and --key are required (or use --demo-pki DIR)")
        cert_pem, key_pem = args.cert.read_text(), args.key.read_text()
    users = {"admin": ApimUser("admin", frozenset({PERMISSION_ALL})),
             "monitor": ApimUser("monitor", frozenset({PERMISSION_MONITOR}))}
    users.update({name: ApimUser(password, frozenset({PERMISSION_ALL})) for name, password in args.user})
    sharing = None
    if args.is_base_url:
        sharing = TenantSharingConfig(args.is_base_url, *args.is_credentials,
                                      auto_configure_key_manager=args.auto_configure_key_manager,
                                      ca_pem=args.is_ca.read_text() if args.is_ca else None)
    simulator = ApimSimulator(server_cert_pem=cert_pem, server_key_pem=key_pem, users=users, host=args.host,
                              port=args.port, hostname=args.hostname,
                              public_cloud_setup=not args.no_public_cloud_setup,
                              skip_create_resident_key_manager=args.skip_create_resident_key_manager,
                              tenant_sharing=sharing, latency=args.latency, verbose=args.verbose)
    simulator.start()
    print(f"API Manager simulator on {simulator.base_url} (SOAP {SERVICE_PATH}, notify {NOTIFY_PATH}"
          f"{'; sharing tenants with ' + args.is_base_url if sharing else ''}). Ctrl-C stops it.", flush=True)
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
