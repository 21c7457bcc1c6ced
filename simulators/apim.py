"""A WSO2 API Manager 4.x simulator: real HTTPS on 127.0.0.1 serving what the portal and WSO2 IS call, following
`reference/wso2-apis.md` §4-§6 to the letter, quirks included:

- `POST /services/TenantMgtAdminService`: the SOAP 1.1 admin service (SOAPAction `urn:<op>`, operations in
  `http://services.mgt.tenant.carbon.wso2.org`, TenantInfoBean fields in
  `http://beans.common.stratos.carbon.wso2.org/xsd` in the WSDL's order, both qualified); HTTP Basic as a
  super-tenant user with the operation's permission; service exceptions are SOAP faults (HTTP 500) with a
  TenantMgtAdminServiceException detail, handler refusals are faults with an empty detail; void operations answer
  202 with no body; `retrievePaginatedTenants` pages like Carbon's DataPaginator (page numbers from 0, 15 per
  page, a page past the end returns the LAST page, an empty list has numberOfPages 0 and a nil tenantInfoBeans);
- `getTenant` for an unknown domain answers an EMPTY bean (tenantId 0, every other field nil), not a fault: the
  errors underneath are swallowed (findings #7); `deleteTenant` (modify permission) answers success and does
  nothing unless tenant deletion is enabled (`tenant_deletion`), as API Manager's does;
- `addTenant` without an admin password (what the notify handler passes on for an IS invite-via-email owner) fails
  while the tenant admin is created: a service fault, and no tenant (findings #2);
- `/api/am/admin/v4/key-managers` (§7): the caller's tenant's key managers (simulators/apim_keys.py);
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
Connection failures are retried as Feign's default Retryer does (5 attempts from 100 ms, times 1.5). With
`present_client_certificate` those Basic calls also present API Manager's client certificate (findings #4: then
IS's certificate handler decides alone).

Key managers (findings #1, #3, #8): every new tenant, whether added by SOAP or by a notify CREATE, gets the default
Resident Key Manager unless `skip_create_resident_key_manager`; with skip AND `auto_configure_key_manager` (a
KeyManagerConfig, or the sharing config's flag) it gets the WSO2-IS-7 one instead, whatever the sync setting; with
auto-configure alone it silently gets none. After the tenant is created, the simulator makes that key manager's
calls to IS (client registration, then a token) over mutual TLS with its client certificate and records the
outcome per tenant (`key_generation(domain)`), without ever failing the tenant's creation.

Tests import `ApimSimulator`; the demo starts it from the command line (`python -m simulators.apim --help`).
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

from simulators.apim_keys import (
    ADMIN_PREFIX,
    IS7_TYPE,
    AdminApi,
    KeyGeneration,
    KeyManagerConfig,
    default_key_manager,
    is7_key_manager,
    probe_key_generation,
)
from simulators.https import (
    BaseState,
    HttpsSimulator,
    TlsHandler,
    client_context,
    run_until_interrupted,
    server_context,
)
from simulators.is7 import domain_problem, email_problem, parse_basic

__all__ = ["ApimSimulator", "KeyGeneration", "KeyManagerConfig", "TenantSharingConfig", "main"]

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
DEFAULT_ITEMS_PER_PAGE = 15  # carbon.xml ItemsPerPage

PERMISSION_ALL = "/permission"
PERMISSION_MONITOR = "/permission/protected/manage/monitor/tenants"
PERMISSION_LIST = "/permission/protected/manage/monitor/tenants/list"
PERMISSION_MODIFY = "/permission/protected/manage/modify/tenants"
OPERATIONS: dict[str, str] = {  # services.xml: the permission each operation needs
    "addTenant": PERMISSION_MONITOR, "getTenant": PERMISSION_MONITOR, "retrieveTenants": PERMISSION_LIST,
    "retrievePaginatedTenants": PERMISSION_LIST, "updateTenant": PERMISSION_MODIFY,
    "activateTenant": PERMISSION_MODIFY, "deactivateTenant": PERMISSION_MODIFY,
    "deleteTenant": PERMISSION_MODIFY,  # simulator: services.xml's entry for deleteTenant was not read
}
VOID_OPERATIONS = frozenset({"updateTenant", "activateTenant", "deactivateTenant", "deleteTenant"})
PERMISSION_ADMIN = "/permission/admin"  # simulator: stands in for the apim:admin scope of the admin REST API
# simulator: TenantPersistor.addTenantAdminUser's message; the user store's refusal of a null password underneath
# it was not read.
NO_ADMIN_PASSWORD = "Error while adding tenant admin user."

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
    trusts for IS (None: the system CAs); `retry_period` scales Feign's 100 ms first retry so tests run fast.
    `auto_configure_key_manager` here is used only when the simulator has no KeyManagerConfig of its own."""

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
    def __init__(self, *, users: Mapping[str, ApimUser] | None = None, public_cloud_setup: bool = False,
                 items_per_page: int = DEFAULT_ITEMS_PER_PAGE, skip_create_resident_key_manager: bool = False,
                 tenant_deletion: bool = False, latency: float = 0.0) -> None:
        super().__init__(latency=latency)
        self.users: dict[str, ApimUser] = dict(users) if users is not None else {
            "admin": ApimUser("admin", frozenset({PERMISSION_ALL})),
            "monitor": ApimUser("monitor", frozenset({PERMISSION_MONITOR})),  # can read and add, cannot modify
        }
        self.public_cloud_setup = public_cloud_setup
        self.items_per_page = items_per_page
        self.skip_create_resident_key_manager = skip_create_resident_key_manager
        self.tenant_deletion = tenant_deletion
        self.tenants: dict[str, ApimTenant] = {}
        self.key_managers: dict[str, list[dict]] = {}  # tenant domain (or carbon.super) -> KeyManagerDTOs
        self.key_generations: dict[str, list[KeyGeneration]] = {}
        self.next_id = 1
        self.sharing: TenantSharingConfig | None = None
        self.key_manager: KeyManagerConfig | None = None
        self.client_cert_pem: str | None = None  # API Manager's own certificate (its keystore) for mutual TLS
        self.client_key_pem: str | None = None
        self.present_client_certificate = False  # also on the tenant sharing (Basic) calls to IS
        self.sharing_calls: list[SharingCall] = []
        self.events: list[str] = []  # what API Manager logged: listener errors, rollbacks, handler failures
        self.echo_events = False  # also print them to stderr (the command line does)

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
            echo = self.echo_events
        if echo:
            print(f"apim-sim: {text}", file=sys.stderr, flush=True)

    def key_manager_settings(self) -> KeyManagerConfig | None:
        """The auto-configure setting and IS base URL in force: the KeyManagerConfig, else what the sharing config
        says (API Manager reads both from the same WSO2-IS-7 tenant sharing properties)."""
        with self.lock:
            if self.key_manager is not None:
                return self.key_manager
            sharing = self.sharing
        if sharing is not None and sharing.auto_configure_key_manager:
            return KeyManagerConfig(sharing.identity_server_base_url, True, sharing.ca_pem, sharing.timeout)
        return None


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
            if not bean.get("adminPassword"):
                # The SOAP service has no ask-password path: TenantMgtUtil.initializeTenant passes the null
                # password on and creating the tenant admin fails. simulator: the real product may leave a
                # half-made tenant behind; here nothing is kept.
                raise ServiceFault(NO_ADMIN_PASSWORD)
            tenant = ApimTenant(id=self.state.next_id, uuid=str(uuid.uuid4()), domain=domain, admin=admin,
                                email=email, firstname=bean.get("firstname"), lastname=bean.get("lastname"),
                                created=_now(), active=False, password=bean.get("adminPassword"))
            self.state.next_id += 1
            self.state.tenants[domain] = tenant
            managers = self.state.key_managers.setdefault(domain, [])
            if not self.state.skip_create_resident_key_manager:
                managers.append(default_key_manager())
        self.sync.on_create(tenant, bean)  # TenantMgtUtil.triggerAddTenant
        with self.state.lock:
            tenant.active = True  # activateTenantInitially: every tenant the super tenant adds starts active
        if not self.sync.on_initial_activation(domain):
            with self.state.lock:
                tenant.active = False
            self.state.log_event(f"Deactivating tenant {domain} in API Manager due to missing tenant in Identity "
                                 "Server")
        self.generate_keys(domain)
        return tenant.uuid

    def generate_keys(self, domain: str) -> KeyGeneration | None:
        """Make the tenant's WSO2-IS-7 key manager register a client and get a token from IS, and record the
        outcome; None when the tenant has no such key manager. Failures are recorded and logged, never raised."""
        with self.state.lock:
            manager = next((dict(m) for m in self.state.key_managers.get(domain, []) if m.get("type") == IS7_TYPE),
                           None)
            cert, key = self.state.client_cert_pem, self.state.client_key_pem
            attempt = len(self.state.key_generations.get(domain, [])) + 1
        if manager is None:
            return None
        name = f"apim_{domain}_km_probe" + (f"_{attempt}" if attempt > 1 else "")
        result = probe_key_generation(manager, domain, self.state.key_manager_settings(), cert, key, name)
        with self.state.lock:
            self.state.key_generations.setdefault(domain, []).append(result)
        if result.ok:
            self.state.log_event(f"Key manager check: {result}")
        else:
            self.state.log_event(f"Error while generating keys through the key manager: {result}")
        return result

    def get_tenant(self, domain: str) -> dict[str, Any]:
        with self.state.lock:
            tenant = self.state.tenants.get(domain)
            if tenant is None:
                # ClaimsMgtUtil swallows the lookup's errors: an empty TenantInfoBean (tenantId 0, the rest nil).
                return {}
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

    def delete_tenant(self, domain: str) -> None:
        """deleteTenant: success without effect unless tenant deletion is enabled (`tenant_deletion`); then the
        tenant, its key managers and its key generation records are gone. Neither listener propagates a delete."""
        with self.state.lock:
            if not self.state.tenant_deletion:
                self.state.log_event(f"Tenant deletion is not enabled; tenant {domain} was not deleted")
                return
            if self.state.tenants.pop(domain, None) is None:
                # simulator: the text for an unknown domain with deletion on was not read
                raise ServiceFault(f"Error in retrieving the tenant id for the tenant domain: {domain}.")
            self.state.key_managers.pop(domain, None)
            self.state.key_generations.pop(domain, None)

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
        """onTenantCreate: the create in IS only with sync on; the WSO2-IS-7 key manager whenever skip-resident and
        auto-configure are both set, sync on or off (apim-km-wso2is 2.x reads them apart)."""
        config = self.config
        if config is not None and config.enable_tenant_sync:
            try:
                self._create(config, tenant.domain, bean)
            except IsCallFailed as exc:
                self.state.log_event(f"Error while creating tenant in Identity server: {exc}")
        settings = self.state.key_manager_settings()
        with self.state.lock:
            if self.state.skip_create_resident_key_manager and settings is not None and \
                    settings.auto_configure_key_manager:
                self.state.key_managers.setdefault(tenant.domain, []).append(
                    is7_key_manager(settings.identity_server_base_url, tenant.domain, tenant.admin))

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
                status, answer = _request(url, method, content, headers, config, self._client_certificate())
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

    def _client_certificate(self) -> tuple[str, str] | None:
        """API Manager's certificate when its outbound calls present it (`present_client_certificate`)."""
        with self.state.lock:
            if self.state.present_client_certificate and self.state.client_cert_pem and self.state.client_key_pem:
                return self.state.client_cert_pem, self.state.client_key_pem
        return None

    def _record(self, method: str, path: str, body: Any, outcome: int | str) -> None:
        with self.state.lock:
            self.state.sharing_calls.append(SharingCall(method, path, body, outcome))


def _request(url: Any, method: str, content: bytes | None, headers: dict[str, str],
             config: TenantSharingConfig, certificate: tuple[str, str] | None = None) -> tuple[int, Any]:
    context = client_context(config.ca_pem, *(certificate or (None, None)))
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
        elif split.path == ADMIN_PREFIX or split.path.startswith(ADMIN_PREFIX + "/"):
            self._answer(entry, *self._admin(sim, entry, split.path, body))
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
        if operation in ("getTenant", "activateTenant", "deactivateTenant", "deleteTenant"):
            domain = _text(_children(element, SERVICES_NS, ["tenantDomain"]).get("tenantDomain"), "string",
                           "tenantDomain") or ""
            if operation == "getTenant":
                return _response(operation, _bean_xml(service.get_tenant(domain), "ns:return"), _BEAN_NS_DECL)
            if operation == "deleteTenant":
                service.delete_tenant(domain)
            else:
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

    # --- /api/am/admin/v4/key-managers ---

    def _admin(self, sim: ApimSimulator, entry: LoggedRequest, path: str,
               body: bytes) -> tuple[int, bytes, str | None, dict[str, str]]:
        """simulator: HTTP Basic as `<admin>@<domain>` (or a super-tenant user) stands in for the OAuth2 token
        with apim:admin scopes real API Manager asks for; the key managers are the caller's tenant's."""
        credentials = parse_basic(self.headers.get("Authorization"))
        with sim.state.lock:
            tenant, user = sim.state.user(credentials[0]) if credentials else (SUPER_TENANT, None)
        if credentials is None or user is None or user.password != credentials[1]:
            entry.note = "Unauthenticated request"
            return 401, json.dumps({"code": 900901, "message": "Invalid Credentials", "description":
                                    "Invalid Credentials. Make sure you have provided the correct security "
                                    "credentials", "moreInfo": "", "error": []}).encode(), "application/json", {}
        entry.basic_user = credentials[0]
        if not user.may(PERMISSION_ADMIN):
            entry.note = "the user has no apim:admin scope"
            return 403, json.dumps({"code": 900910, "message": "The access token does not allow you to access the "
                                    "requested resource", "description": "User is NOT authorized to access the "
                                    "Resource. Scope validation failed.", "moreInfo": "", "error": []}).encode(), \
                "application/json", {}
        return sim.admin_api.handle(self.command, path, body, tenant)

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
                 public_cloud_setup: bool = False, items_per_page: int = DEFAULT_ITEMS_PER_PAGE,
                 skip_create_resident_key_manager: bool = False, tenant_sharing: TenantSharingConfig | None = None,
                 key_manager: KeyManagerConfig | None = None, client_cert_pem: str | None = None,
                 client_key_pem: str | None = None, present_client_certificate: bool = False,
                 tenant_deletion: bool = False, latency: float = 0.0, verbose: bool = False) -> None:
        """`key_manager` holds auto_configure_key_manager and the IS base URL apart from `tenant_sharing` (sync);
        `client_cert_pem` / `client_key_pem` are API Manager's own certificate, used for the key managers' mutual
        TLS and, with `present_client_certificate`, on the tenant sharing calls too."""
        if (client_cert_pem is None) != (client_key_pem is None):
            raise ValueError("give both the client certificate and its key, or neither")
        self.state = ApimState(users=users, public_cloud_setup=public_cloud_setup, items_per_page=items_per_page,
                               skip_create_resident_key_manager=skip_create_resident_key_manager,
                               tenant_deletion=tenant_deletion, latency=latency)
        self.state.sharing = tenant_sharing
        self.state.key_manager = key_manager
        self.state.client_cert_pem, self.state.client_key_pem = client_cert_pem, client_key_pem
        self.state.present_client_certificate = present_client_certificate
        self.service = TenantService(self.state)
        self.admin_api = AdminApi(self.state.lock, self.state.key_managers)
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
            def match(entry: Any, _op: str = operation) -> bool:
                return entry is not None and entry.operation == _op
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
        """Copies of the tenant's KeyManagerDTOs ("carbon.super" for the super tenant's)."""
        with self.state.lock:
            return [json.loads(json.dumps(km)) for km in self.state.key_managers.get(domain, [])]

    def add_key_manager(self, domain: str, manager: dict) -> dict:
        """Seed a key manager into a tenant (an "id" is added when missing); returns a copy."""
        with self.state.lock:
            stored = {**json.loads(json.dumps(manager))}
            stored.setdefault("id", str(uuid.uuid4()))
            self.state.key_managers.setdefault(domain, []).append(stored)
            return json.loads(json.dumps(stored))

    def key_generation(self, domain: str) -> KeyGeneration | None:
        """The latest key generation attempt for the tenant (str() reads "key generation for acme.com: ok")."""
        with self.state.lock:
            attempts = self.state.key_generations.get(domain)
            return attempts[-1] if attempts else None

    @property
    def key_generations(self) -> dict[str, list[KeyGeneration]]:
        with self.state.lock:
            return {domain: list(attempts) for domain, attempts in self.state.key_generations.items()}

    def generate_keys(self, domain: str) -> KeyGeneration | None:
        """Run the tenant's key manager calls again now (e.g. after IS's mappings changed)."""
        return self.service.generate_keys(domain)

    def configure_key_manager(self, config: KeyManagerConfig | None) -> None:
        """Set auto_configure_key_manager and the IS base URL for new tenants' key managers (None: fall back to
        the tenant sharing config's flag)."""
        with self.state.lock:
            self.state.key_manager = config

    def set_client_certificate(self, cert_pem: str | None, key_pem: str | None) -> None:
        """API Manager's own certificate and key for mutual TLS (None, None: none)."""
        if (cert_pem is None) != (key_pem is None):
            raise ValueError("give both the client certificate and its key, or neither")
        with self.state.lock:
            self.state.client_cert_pem, self.state.client_key_pem = cert_pem, key_pem

    def configure(self, **settings: Any) -> None:
        """public_cloud_setup, items_per_page, skip_create_resident_key_manager, tenant_deletion,
        present_client_certificate."""
        allowed = {"public_cloud_setup", "items_per_page", "skip_create_resident_key_manager", "tenant_deletion",
                   "present_client_certificate"}
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
        prog="python -m simulators.apim",
        description="WSO2 API Manager simulator (test tool): HTTPS with Basic authentication, the SOAP "
                    f"TenantMgtAdminService at {SERVICE_PATH}, the notify API at {NOTIFY_PATH}, the admin key "
                    f"managers API at {ADMIN_PREFIX}, and optionally API Manager's tenant sharing push to IS 7 and "
                    "the auto-configured WSO2-IS-7 key manager (which registers a client and gets a token from IS "
                    "over mutual TLS for every new tenant).")
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
    parser.add_argument("--public-cloud-setup", action="store_true",
                        help="[multi_tenancy] stratos.public_cloud_setup = true: refuse domains without a dot "
                             "(default off, as in current releases)")
    parser.add_argument("--no-public-cloud-setup", action="store_true", help=argparse.SUPPRESS)  # the default now
    parser.add_argument("--is-base-url", help="identity_server_base_url of the WSO2-IS-7 tenant sharing block; "
                                              "turns API Manager's tenant sync to IS 7 on unless --no-tenant-sync")
    parser.add_argument("--no-tenant-sync", action="store_true",
                        help="enable_tenant_sync = false: keep --is-base-url only for the auto-configured key manager "
                             "(the IS 7 -> API Manager direction)")
    parser.add_argument("--is-credentials", type=_parse_credentials, default=("admin", "admin"),
                        metavar="USERNAME:PASSWORD", help="the IS user for tenant sharing (default admin:admin)")
    parser.add_argument("--is-ca", type=Path, help="PEM of the CA that issued IS's certificate")
    parser.add_argument("--auto-configure-key-manager", action="store_true",
                        help="auto_configure_key_manager = true (needs --is-base-url; takes effect only with "
                             "--skip-create-resident-key-manager)")
    parser.add_argument("--skip-create-resident-key-manager", action="store_true",
                        help="[apim.key_manager] skip_create_resident_key_manager = true")
    parser.add_argument("--client-cert", type=Path, metavar="PEM",
                        help="API Manager's own certificate: the key managers' mutual TLS to IS (key generation)")
    parser.add_argument("--client-key", type=Path, metavar="PEM", help="the private key of --client-cert")
    parser.add_argument("--present-client-cert", action="store_true",
                        help="the tenant sharing (Basic) calls to IS present --client-cert too; IS's certificate "
                             "handler then decides alone")
    parser.add_argument("--tenant-deletion", action="store_true",
                        help="deleteTenant really deletes (default: it answers success and does nothing)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    parser.add_argument("--verbose", action="store_true", help="log requests to stderr")
    args = parser.parse_args(argv)

    if args.demo_pki:
        from simulators.pki import Authority
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
    if args.auto_configure_key_manager and not args.is_base_url:
        parser.error("--auto-configure-key-manager needs --is-base-url")
    if bool(args.client_cert) != bool(args.client_key):
        parser.error("--client-cert and --client-key go together")
    if args.present_client_cert and not args.client_cert:
        parser.error("--present-client-cert needs --client-cert and --client-key")
    is_ca = args.is_ca.read_text() if args.is_ca else None
    sharing = key_manager = None
    if args.is_base_url and not args.no_tenant_sync:
        sharing = TenantSharingConfig(args.is_base_url, *args.is_credentials, ca_pem=is_ca)
    if args.is_base_url:
        key_manager = KeyManagerConfig(args.is_base_url, args.auto_configure_key_manager, is_ca)
    simulator = ApimSimulator(server_cert_pem=cert_pem, server_key_pem=key_pem, users=users, host=args.host,
                              port=args.port, hostname=args.hostname, public_cloud_setup=args.public_cloud_setup,
                              skip_create_resident_key_manager=args.skip_create_resident_key_manager,
                              tenant_sharing=sharing, key_manager=key_manager,
                              client_cert_pem=args.client_cert.read_text() if args.client_cert else None,
                              client_key_pem=args.client_key.read_text() if args.client_key else None,
                              present_client_certificate=args.present_client_cert,
                              tenant_deletion=args.tenant_deletion, latency=args.latency, verbose=args.verbose)
    simulator.state.echo_events = True
    simulator.start()
    print(f"API Manager simulator on {simulator.base_url} (SOAP {SERVICE_PATH}, notify {NOTIFY_PATH}, key managers "
          f"{ADMIN_PREFIX}{'; sharing tenants with ' + args.is_base_url if sharing else ''}"
          f"{'; auto-configured key managers' if key_manager and key_manager.auto_configure_key_manager else ''})"
          ". Ctrl-C stops it.", flush=True)
    return run_until_interrupted(simulator)


if __name__ == "__main__":
    sys.exit(main())
