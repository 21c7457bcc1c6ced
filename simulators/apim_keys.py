"""Key managers in the API Manager simulator (wso2-apis.md §5, §7; fidelity findings #1, #3, #8):

- the `Resident Key Manager` of type WSO2-IS-7 that `ISTenantSyncListener.onTenantCreate` adds to every new tenant
  when `[apim.key_manager] skip_create_resident_key_manager` and the WSO2-IS-7 sharing property
  `auto_configure_key_manager` are both set, whether or not `enable_tenant_sync` is (the two are read apart in
  apim-km-wso2is 2.x): MutualTLS, ServerWide, `IdentityUser = <tenant admin>@<tenant domain>`, endpoints under
  `<identity_server_base_url>/t/<domain>/`;
- a probe that makes that key manager's calls per new tenant, as key generation would: DCR client registration
  (`POST /t/<domain>/api/identity/oauth2/dcr/v1.1/register` with `WSO2-Identity-User`) and a client-credentials
  token (`POST /t/<domain>/oauth2/token`), over mutual TLS with API Manager's own certificate. API Manager itself
  registers clients only when an application asks for keys; the probe stands in for that first request so tests
  and the demo can read "key generation for acme.com: ok" or "failed 401";
- the admin REST API `/api/am/admin/v4/key-managers` over the caller's tenant.

Nothing here imports the portal.
"""
from __future__ import annotations

import base64
import datetime
import http.client
import json
import ssl
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from simulators.https import client_context

__all__ = ["ADMIN_PREFIX", "KeyCall", "KeyGeneration", "KeyManagerConfig", "default_key_manager",
           "is7_key_manager", "probe_key_generation"]

ADMIN_PREFIX = "/api/am/admin/v4/key-managers"
RESIDENT_KEY_MANAGER = "Resident Key Manager"  # APIConstants.KeyManager.DEFAULT_KEY_MANAGER
IS7_TYPE = "WSO2-IS-7"
USER_HEADER = "WSO2-Identity-User"
# simulator: the connector types a stock API Manager 4.x registers (KeyManagerConnectorConfiguration services).
KNOWN_TYPES = frozenset({"default", "WSO2-IS", IS7_TYPE, "Okta", "KeyCloak", "Auth0", "PingFederate", "AzureAD",
                         "ForgeRock"})
TOKEN_TYPES = ("DIRECT", "EXCHANGED", "BOTH")
IS7_GRANT_TYPES = ["refresh_token", "urn:ietf:params:oauth:grant-type:saml2-bearer", "password", "client_credentials",
                   "iwa:ntlm", "urn:ietf:params:oauth:grant-type:device_code", "authorization_code", "account_switch",
                   "urn:ietf:params:oauth:grant-type:token-exchange", "organization_switch",
                   "urn:ietf:params:oauth:grant-type:jwt-bearer"]


@dataclass(frozen=True)
class KeyManagerConfig:
    """The key manager half of API Manager's WSO2-IS-7 `[[apim.tenant_sharing]]` properties
    (`identity_server_base_url`, `auto_configure_key_manager`), kept apart from the sync half so the IS 7 -> API
    Manager direction can have sync off and the key manager on (`enable_tenant_sync = false`). `ca_pem` is what
    API Manager's truststore trusts for IS (None: the system CAs)."""

    identity_server_base_url: str
    auto_configure_key_manager: bool = True
    ca_pem: str | None = None
    timeout: float = 10.0


@dataclass(frozen=True)
class KeyCall:
    """One call of the key manager to IS: `status` is the HTTP status, None when the call failed before one."""

    method: str
    path: str
    status: int | None
    error: str | None = None


@dataclass(frozen=True)
class KeyGeneration:
    """One key generation attempt for a tenant: `outcome` is "ok", "failed <status>", "failed: <why>" or
    "not attempted: <why>"."""

    domain: str
    identity_user: str
    outcome: str
    calls: tuple[KeyCall, ...] = ()
    client_id: str | None = None
    at: datetime.datetime = field(default_factory=lambda: datetime.datetime.now(datetime.UTC))

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    @property
    def status(self) -> int | None:
        """The status of the last call made (None when none answered)."""
        return self.calls[-1].status if self.calls else None

    def __str__(self) -> str:
        return f"key generation for {self.domain}: {self.outcome}"


# --- Key manager DTOs ---------------------------------------------------------------------------------------------


def default_key_manager() -> dict[str, Any]:
    """The Resident Key Manager API Manager makes for a tenant unless skip_create_resident_key_manager."""
    return {"id": str(uuid.uuid4()), "name": RESIDENT_KEY_MANAGER, "displayName": RESIDENT_KEY_MANAGER,
            "type": "default", "description": "This is Resident Key Manager", "enabled": True,
            "tokenType": "DIRECT", "additionalProperties": {}, "endpoints": []}


def is7_key_manager(base_url: str, domain: str, admin: str) -> dict[str, Any]:
    """ISTenantSyncListener.getKeyManagerConfigurationDTO (apim-km-wso2is 2.x): no call to IS is made for it."""
    base = base_url if base_url.endswith("/") else base_url + "/"
    prefix = f"{base}t/{domain}"
    endpoints = {
        "client_registration_endpoint": f"{prefix}/api/identity/oauth2/dcr/v1.1/register",
        "introspection_endpoint": f"{prefix}/oauth2/introspect", "token_endpoint": f"{prefix}/oauth2/token",
        "display_token_endpoint": f"{prefix}/oauth2/token", "revoke_endpoint": f"{prefix}/oauth2/revoke",
        "display_revoke_endpoint": f"{prefix}/oauth2/revoke", "userinfo_endpoint": f"{prefix}/scim2/Me",
        "authorize_endpoint": f"{prefix}/oauth2/authorize",
        "scope_endpoint": f"{prefix}/api/identity/oauth2/v1.0/scopes",
    }
    return {
        "id": str(uuid.uuid4()), "name": RESIDENT_KEY_MANAGER, "type": IS7_TYPE,
        "displayName": "IS7 as Default Key Manager",
        "description": "Default key manager created for IS7 when tenant synchronization is enabled",
        "enabled": True, "tokenType": "DIRECT", "organization": domain,
        "permissions": {"permissionType": "PUBLIC", "roles": []}, "allowedOrganizations": ["ALL"],
        "clientRegistrationEndpoint": endpoints["client_registration_endpoint"],
        "introspectionEndpoint": endpoints["introspection_endpoint"], "tokenEndpoint": endpoints["token_endpoint"],
        "displayTokenEndpoint": endpoints["display_token_endpoint"], "revokeEndpoint": endpoints["revoke_endpoint"],
        "displayRevokeEndpoint": endpoints["display_revoke_endpoint"],
        "userInfoEndpoint": endpoints["userinfo_endpoint"], "authorizeEndpoint": endpoints["authorize_endpoint"],
        "scopeManagementEndpoint": endpoints["scope_endpoint"], "issuer": f"{prefix}/oauth2/token",
        "endpoints": [{"name": name, "value": value} for name, value in endpoints.items()],
        "certificates": {"type": "JWKS", "value": f"{prefix}/oauth2/jwks"},
        "availableGrantTypes": list(IS7_GRANT_TYPES), "enableTokenGeneration": True, "enableOAuthAppCreation": True,
        "enableMapOAuthConsumerApps": True, "enableSelfValidationJWT": True,
        "additionalProperties": {
            "Authentication": "MutualTLS", "MutualTLSOptions": "ServerWide", "IdentityUser": f"{admin}@{domain}",
            "TenantDomain": domain,
            "api_resource_management_endpoint": f"{prefix}/api/server/v1/api-resources",
            "is7_roles_endpoint": f"{prefix}/scim2/v2/Roles", "client_secret": "",
            **endpoints, "issuer": f"{prefix}/oauth2/token",
            "certificate_type": "JWKS", "certificate_value": f"{prefix}/oauth2/jwks",
        },
    }


def summary(manager: Mapping[str, Any]) -> dict[str, Any]:
    """KeyManagerInfoDTO: what the list shows of each key manager."""
    return {"id": manager["id"], "name": manager["name"], "type": manager["type"],
            "displayName": manager.get("displayName"), "description": manager.get("description"),
            "enabled": bool(manager.get("enabled", True))}


def dto_problem(dto: Any) -> str | None:
    """Why a KeyManagerDTO is refused with 400, or None. simulator: the texts of API Manager's bean validation and
    KeyManagersApiServiceImpl checks were not read; the rules are the DTO's (§7)."""
    if not isinstance(dto, dict):
        return "The request body is not a key manager."
    name, kind = dto.get("name"), dto.get("type")
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 100:
        return "name: size must be between 1 and 100"
    if not isinstance(kind, str) or not 1 <= len(kind) <= 45:
        return "type: size must be between 1 and 45"
    description = dto.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > 256):
        return "description: size must be between 0 and 256"
    if kind not in KNOWN_TYPES:
        return f"Key Manager Type {kind} is not configured in the server."
    token_type = dto.get("tokenType", "DIRECT")
    if token_type not in TOKEN_TYPES:
        return f"tokenType must be one of {', '.join(TOKEN_TYPES)}"
    properties = dto.get("additionalProperties") or {}
    if not isinstance(properties, dict):
        return "additionalProperties must be an object"
    if kind == IS7_TYPE:
        for required in ("api_resource_management_endpoint", "is7_roles_endpoint"):
            if not properties.get(required):
                return f"Required field {required} is missing in additionalProperties."
        authentication = properties.get("Authentication", "BasicAuth")  # a missing one means BasicAuth
        if authentication not in ("BasicAuth", "MutualTLS"):
            return "Authentication must be BasicAuth or MutualTLS."
        if authentication == "MutualTLS" and properties.get("MutualTLSOptions", "ServerWide") not in (
                "ServerWide", "TenantWide"):
            return "MutualTLSOptions must be ServerWide or TenantWide."
    return None


# --- The probe --------------------------------------------------------------------------------------------------


def probe_key_generation(manager: Mapping[str, Any], domain: str, config: KeyManagerConfig | None,
                         cert_pem: str | None, key_pem: str | None, client_name: str) -> KeyGeneration:
    """Register a client through the key manager's DCR endpoint and get a client-credentials token for it, as
    API Manager's WSO2-IS-7 connector does over mutual TLS (ServerWide: API Manager's own certificate). Never
    raises: the outcome is recorded, the tenant stays created (API Manager logs and carries on)."""
    properties = manager.get("additionalProperties") or {}
    identity_user = str(properties.get("IdentityUser") or "")
    if properties.get("Authentication") != "MutualTLS":
        # simulator: only the auto-configured MutualTLS key manager is probed; BasicAuth ones are left alone
        return KeyGeneration(domain, identity_user, "not attempted: the key manager does not use MutualTLS")
    if config is None:
        return KeyGeneration(domain, identity_user, "not attempted: no identity_server_base_url")
    if not (cert_pem and key_pem):
        return KeyGeneration(domain, identity_user, "not attempted: API Manager has no client certificate")
    try:
        context = client_context(config.ca_pem, cert_pem, key_pem)
    except (ssl.SSLError, ValueError, OSError) as exc:
        return KeyGeneration(domain, identity_user, f"failed: client certificate unusable: {exc}")
    calls: list[KeyCall] = []
    register = str(properties.get("client_registration_endpoint") or manager.get("clientRegistrationEndpoint"))
    body = json.dumps({"client_name": client_name, "grant_types": ["client_credentials"],
                       "ext_param_owner": identity_user}).encode()
    status, answer, error = _call(context, config.timeout, "POST", register, body,
                                  {"Content-Type": "application/json", "Accept": "application/json",
                                   USER_HEADER: identity_user})
    calls.append(KeyCall("POST", urlsplit(register).path, status, error))
    if status != 201:
        return KeyGeneration(domain, identity_user, _failed(status, error, answer), tuple(calls))
    if not isinstance(answer, dict) or not answer.get("client_id") or not answer.get("client_secret"):
        return KeyGeneration(domain, identity_user, "failed: registration answer without client_id/client_secret",
                             tuple(calls))
    client_id, client_secret = str(answer["client_id"]), str(answer["client_secret"])
    token_url = str(properties.get("token_endpoint") or manager.get("tokenEndpoint"))
    basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
    status, answer, error = _call(context, config.timeout, "POST", token_url,
                                  urlencode({"grant_type": "client_credentials"}).encode(),
                                  {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json",
                                   "Authorization": f"Basic {basic}"})
    calls.append(KeyCall("POST", urlsplit(token_url).path, status, error))
    if status != 200:
        return KeyGeneration(domain, identity_user, _failed(status, error, answer), tuple(calls), client_id)
    if not isinstance(answer, dict) or not answer.get("access_token"):
        return KeyGeneration(domain, identity_user, "failed: token answer without access_token", tuple(calls),
                             client_id)
    return KeyGeneration(domain, identity_user, "ok", tuple(calls), client_id)


def _failed(status: int | None, error: str | None, answer: Any) -> str:
    if status is None:
        return f"failed: {error}"
    detail = ""
    if isinstance(answer, dict):
        text = answer.get("description") or answer.get("error_description") or answer.get("message")
        detail = f" ({text})" if isinstance(text, str) and text else ""
    return f"failed {status}{detail}"


def _call(context: ssl.SSLContext, timeout: float, method: str, url: str, body: bytes,
          headers: dict[str, str]) -> tuple[int | None, Any, str | None]:
    """(status, JSON answer or text, None) or (None, None, why) when no answer came."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        return None, None, f"not an https URL: {url}"
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    connection = http.client.HTTPSConnection(parts.hostname, parts.port or 443, timeout=timeout, context=context)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        raw = response.read()
    except (OSError, http.client.HTTPException) as exc:
        return None, None, f"{type(exc).__name__}: {exc}"
    finally:
        connection.close()
    try:
        answer: Any = json.loads(raw) if raw else None
    except ValueError:
        answer = raw.decode("utf-8", "replace")
    return response.status, answer, None


# --- The admin REST API ---------------------------------------------------------------------------------------------


def error_body(code: int, message: str, description: str) -> bytes:
    """API Manager's ErrorDTO."""
    return json.dumps({"code": code, "message": message, "description": description, "moreInfo": "",
                       "error": []}).encode()


class AdminApi:
    """GET/POST /key-managers, GET/PUT/DELETE /key-managers/{id} over `managers` (tenant domain -> list of DTOs),
    always in the caller's tenant. `lock` guards `managers`."""

    def __init__(self, lock: Any, managers: dict[str, list[dict]]) -> None:
        self.lock = lock
        self.managers = managers

    def handle(self, method: str, path: str, body: bytes, tenant: str) -> tuple[int, bytes, str | None,
                                                                                 dict[str, str]]:
        rest = path[len(ADMIN_PREFIX):].strip("/")
        if "/" in rest:
            return 404, b"", None, {}
        if not rest:
            if method == "GET":
                return self._list(tenant)
            if method == "POST":
                return self._create(tenant, body)
            return 405, b"", None, {"Allow": "GET, POST"}
        if method == "GET":
            return self._get(tenant, rest)
        if method == "PUT":
            return self._update(tenant, rest, body)
        if method == "DELETE":
            return self._delete(tenant, rest)
        return 405, b"", None, {"Allow": "DELETE, GET, PUT"}

    @staticmethod
    def _json(status: int, document: Any, headers: dict[str, str] | None = None) -> tuple[int, bytes, str,
                                                                                            dict[str, str]]:
        return status, json.dumps(document).encode(), "application/json", headers or {}

    @staticmethod
    def _bad(description: str) -> tuple[int, bytes, str, dict[str, str]]:
        return 400, error_body(400, "Bad Request", description), "application/json", {}

    @staticmethod
    def _not_found(manager_id: str) -> tuple[int, bytes, str, dict[str, str]]:
        # simulator: ExceptionCodes.KEY_MANAGER_NOT_FOUND's code and text were not read
        return 404, error_body(404, "Key Manager not found", f"Key Manager not found for id {manager_id}"), \
            "application/json", {}

    @staticmethod
    def _conflict(name: str, tenant: str) -> tuple[int, bytes, str, dict[str, str]]:
        # simulator: ExceptionCodes.KEY_MANAGER_ALREADY_EXIST's code and text were not read
        return 409, error_body(409, "Key Manager Already Exists",
                               f"Key Manager Already Exists in tenant {tenant} with name {name}"), \
            "application/json", {}

    def _find(self, tenant: str, manager_id: str) -> dict | None:
        return next((m for m in self.managers.get(tenant, []) if m["id"] == manager_id), None)

    def _list(self, tenant: str) -> tuple[int, bytes, str, dict[str, str]]:
        with self.lock:
            items = [summary(m) for m in self.managers.get(tenant, [])]
        return self._json(200, {"count": len(items), "list": items})

    def _get(self, tenant: str, manager_id: str) -> tuple[int, bytes, str | None, dict[str, str]]:
        with self.lock:
            manager = self._find(tenant, manager_id)
            document = json.loads(json.dumps(manager)) if manager else None
        return self._json(200, document) if document else self._not_found(manager_id)

    @staticmethod
    def _parse(body: bytes) -> Any:
        try:
            return json.loads(body) if body else None
        except ValueError:
            return None

    def _create(self, tenant: str, body: bytes) -> tuple[int, bytes, str | None, dict[str, str]]:
        dto = self._parse(body)
        problem = dto_problem(dto)
        if problem:
            return self._bad(problem)
        with self.lock:
            managers = self.managers.setdefault(tenant, [])
            if any(m["name"] == dto["name"] for m in managers):
                return self._conflict(dto["name"], tenant)
            manager = {**dto, "id": str(uuid.uuid4()), "enabled": bool(dto.get("enabled", True)),
                       "tokenType": dto.get("tokenType", "DIRECT"),
                       "additionalProperties": dict(dto.get("additionalProperties") or {})}
            managers.append(manager)
            document = json.loads(json.dumps(manager))
        return self._json(201, document, {"Location": f"key-managers/{manager['id']}"})

    def _update(self, tenant: str, manager_id: str, body: bytes) -> tuple[int, bytes, str | None, dict[str, str]]:
        dto = self._parse(body)
        problem = dto_problem(dto)
        with self.lock:
            manager = self._find(tenant, manager_id)
            if manager is None:
                return self._not_found(manager_id)
            if problem:
                return self._bad(problem)
            if any(m["name"] == dto["name"] and m["id"] != manager_id for m in self.managers.get(tenant, [])):
                return self._conflict(dto["name"], tenant)
            manager.clear()
            manager.update({**dto, "id": manager_id, "enabled": bool(dto.get("enabled", True)),
                            "tokenType": dto.get("tokenType", "DIRECT"),
                            "additionalProperties": dict(dto.get("additionalProperties") or {})})
            document = json.loads(json.dumps(manager))
        return self._json(200, document)

    def _delete(self, tenant: str, manager_id: str) -> tuple[int, bytes, str | None, dict[str, str]]:
        with self.lock:
            manager = self._find(tenant, manager_id)
            if manager is None:
                return self._not_found(manager_id)
            self.managers[tenant].remove(manager)
        return 200, b"", None, {}
