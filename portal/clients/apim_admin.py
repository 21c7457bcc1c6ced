"""API Manager's admin REST API for key managers (`/api/am/admin/v4/key-managers`, wso2-apis.md §7): the typed
results and the answer parsing `ApiManagerClient.list_key_managers` and friends use.

Key managers live in a tenant: the API answers for the tenant of the user who calls it, so the portal calls it as
that tenant's admin, `<admin>@<domain>`, with HTTP Basic (real API Manager wants an OAuth2 token with the
apim:admin scopes; Basic works where API Manager's REST APIs accept it). A tenant created with
`auto_configure_key_manager` and `skip_create_resident_key_manager` should have exactly one key manager of type
WSO2-IS-7 (named "Resident Key Manager") using MutualTLS, ServerWide, with IdentityUser `<admin>@<domain>`;
`KeyManager` exposes those settings directly.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from portal.clients.errors import (
    PRODUCT_APIM,
    AlreadyExists,
    Cause,
    PermissionDenied,
    UpstreamError,
    error_class,
    parse_retry_after,
)

__all__ = ["ADMIN_SCOPE", "KEY_MANAGER", "KEY_MANAGERS_PATH", "KeyManager", "KeyManagerSummary", "key_manager",
           "rest_error", "summaries"]

KEY_MANAGERS_PATH = "/api/am/admin/v4/key-managers"
KEY_MANAGER = f"{KEY_MANAGERS_PATH}/{{key_manager_id}}"  # a URL template: transport.expand quotes the id
ADMIN_SCOPE = "apim:admin"
IS7_TYPE = "WSO2-IS-7"


@dataclass(frozen=True)
class KeyManagerSummary:
    """One entry of the key manager list (KeyManagerInfoDTO)."""

    id: str
    name: str
    type: str
    display_name: str | None = None
    description: str | None = None
    enabled: bool = True


@dataclass(frozen=True)
class KeyManager(KeyManagerSummary):
    """A full KeyManagerDTO. `additional_properties` holds the connector's settings; `raw` is the whole document
    as API Manager sent it (for a PUT that changes one field and keeps the rest)."""

    token_type: str | None = None
    additional_properties: Mapping[str, Any] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def authentication(self) -> str:
        """How the WSO2-IS-7 connector signs in to IS: "MutualTLS" or "BasicAuth" (what a missing value means)."""
        return str(self.additional_properties.get("Authentication") or "BasicAuth")

    @property
    def mutual_tls_options(self) -> str | None:
        return _text(self.additional_properties.get("MutualTLSOptions"))

    @property
    def identity_user(self) -> str | None:
        """The `WSO2-Identity-User` the connector sends with mutual TLS: `<tenant admin>@<tenant domain>`."""
        return _text(self.additional_properties.get("IdentityUser"))

    def endpoint(self, name: str) -> str | None:
        """An endpoint by its additional property name, e.g. "token_endpoint", "client_registration_endpoint"."""
        return _text(self.additional_properties.get(name))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _bad_shape(what: str, target: str) -> UpstreamError:
    return UpstreamError(Cause.BAD_RESPONSE, f"API Manager's key manager answer is not in the expected shape: {what}.",
                         product=PRODUCT_APIM, target=target)


def _document(body: bytes, target: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise _bad_shape("not JSON", target) from None


def _summary_fields(item: Any, target: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise _bad_shape("a key manager is not an object", target)
    for key in ("id", "name", "type"):
        if not isinstance(item.get(key), str) or not item[key]:
            raise _bad_shape(f"a key manager without {key}", target)
    enabled = item.get("enabled", True)
    return {"id": item["id"], "name": item["name"], "type": item["type"],
            "display_name": _text(item.get("displayName")), "description": _text(item.get("description")),
            "enabled": enabled if isinstance(enabled, bool) else True}


def summaries(body: bytes, target: str) -> list[KeyManagerSummary]:
    """The list answer {"count", "list": [...]}."""
    document = _document(body, target)
    if not isinstance(document, dict) or not isinstance(document.get("list", []), list):
        raise _bad_shape("the list is not {count, list}", target)
    return [KeyManagerSummary(**_summary_fields(item, target)) for item in document.get("list") or []]


def key_manager(body: bytes, target: str) -> KeyManager:
    """One KeyManagerDTO."""
    document = _document(body, target)
    fields = _summary_fields(document, target)
    properties = document.get("additionalProperties") or {}
    if not isinstance(properties, dict):
        raise _bad_shape("additionalProperties is not an object", target)
    return KeyManager(**fields, token_type=_text(document.get("tokenType")), additional_properties=dict(properties),
                      raw=document)


def rest_error(status: int, headers: Mapping[str, str], body: bytes, target: str, *, username: str,
               operation: str) -> UpstreamError:
    """API Manager's ErrorDTO {"code", "message", "description", "moreInfo", "error"} as a typed error: 401 says the
    tenant admin's credentials were refused, 403 is PermissionDenied (the apim:admin scope), 409 AlreadyExists."""
    code = message = description = None
    try:
        document = json.loads(body) if body else None
    except ValueError:
        document = None
    if isinstance(document, dict):
        raw_code = document.get("code")
        code = str(raw_code) if isinstance(raw_code, str | int) and not isinstance(raw_code, bool) else None
        message = _text(document.get("message"))
        description = _text(document.get("description"))
    lowered = {k.lower(): v for k, v in headers.items()}
    common = {"product": PRODUCT_APIM, "status": status, "code": code, "description": description, "target": target,
              "correlation_id": None, "retry_after": parse_retry_after(lowered.get("retry-after"))}
    if status == 401:
        return UpstreamError(Cause.HTTP_ERROR, f"API Manager refused the credentials of {username!r} for "
                             f"{operation} (is it the tenant admin, <admin>@<domain>, with the current password, "
                             "and is the tenant active?).", **common)
    kind = error_class(status, code)
    if kind is PermissionDenied:
        return PermissionDenied(Cause.HTTP_ERROR, f"API Manager refused {operation}: {username!r} lacks the "
                                f"{ADMIN_SCOPE} scope (the tenant's admin role has it).", permission=ADMIN_SCOPE,
                                **common)
    if kind is AlreadyExists:
        return AlreadyExists(Cause.HTTP_ERROR, message or "A key manager with that name already exists.", **common)
    return UpstreamError(Cause.HTTP_ERROR, message or f"HTTP {status} without an API Manager error body.", **common)
