"""The paths of the /v1 OpenAPI document, by area: the tenant collection, one tenant, its keys and secret,
tokens and the document itself. Components they reference are built in portal.api.openapi."""
from __future__ import annotations

from portal.api.tenants import CURSOR_RE, DEFAULT_LIMIT, MAX_LIMIT, MAX_QUERY_LENGTH, SKIP_CHECK_FIELD, STATUSES
from portal.idp import registry
from portal.idp.schema import Schema, ref as _ref
from portal.services.tokens.signing_keys import RSA_KEY_SIZES


def _keys_ok(description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": _ref("SigningKeyList")}}}


def _errors(*names: str) -> dict[str, Schema]:
    codes = {"BadRequest": "400", "Unauthorized": "401", "Forbidden": "403", "NotFound": "404", "Conflict": "409",
             "PayloadTooLarge": "413", "UnsupportedMediaType": "415", "ServerError": "500"}
    return {codes[name]: {"$ref": f"#/components/responses/{name}"} for name in (*names, "Unauthorized",
                                                                                 "Forbidden", "ServerError")}


def _tenant_id_parameter() -> Schema:
    return {"name": "tenantId", "in": "path", "required": True, "description": "The tenant id (any case).",
            "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}}


def _tenant_ok(description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": _ref("Tenant")}}}


def _body(schema: str, description: str, examples: dict | None = None) -> Schema:
    media: Schema = {"schema": _ref(schema)}
    if examples:
        media["examples"] = examples
    return {"required": True, "description": description, "content": {"application/json": media}}


REGISTRATION_EXAMPLES = {
    "postgres": {"summary": "POSTGRES, as in the registration guide", "value": {
        "tenantId": "TIBCO", "clientId": "order", "clientSecret": "order", "identityProviderType": "POSTGRES",
        "supportAlgorithm": "HS256", "signingKey": "100f4c1f-f333-4c25-bd8c-e4809722b6a7",
        "relationalSchema": {"dataSourceURL": "jdbc:postgresql://localhost:5432/userdbll?currentSchema=userschemall",
                             "dataSourceUserName": "userll", "dataSourcePassword": "userll"}}},
    "external": {"summary": "EXTERNAL (an OpenID provider)", "value": {
        "tenantId": "acme", "clientId": "acme-portal", "clientSecret": "acme-client-secret",
        "identityProviderType": "EXTERNAL", "supportAlgorithm": "RS256",
        "jwkSetUrl": "https://login.acme.example/discovery/keys", "issuer": "https://login.acme.example/",
        "oidcSchema": {"authUrl": "https://login.acme.example/authorize",
                       "accessTokenUrl": "https://login.acme.example/token", "scope": "openid profile"},
        SKIP_CHECK_FIELD: True}},
}



def _list_parameters() -> list[Schema]:
    return [
        {"name": "q", "in": "query", "description": "Prefix of the tenant id, domain or display name "
                                                    "(case-insensitive).",
         "schema": {"type": "string", "maxLength": MAX_QUERY_LENGTH}},
        {"name": "identityProviderType", "in": "query", "schema": {"type": "string", "enum": list(registry.names())}},
        {"name": "status", "in": "query", "description": "unverified: the last connection check did not pass.",
         "schema": {"type": "string", "enum": list(STATUSES)}},
        {"name": "limit", "in": "query", "description": "Page size.",
         "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}},
        {"name": "after", "in": "query", "description": "Cursor: follow the `next` link of the previous page "
                                                        "rather than building it.",
         "schema": {"type": "string", "pattern": f"^{CURSOR_RE.pattern}$"}},
    ]


def _collection_paths() -> dict[str, Schema]:
    """Register and list."""
    return {
        "/v1/tenant": {
            "post": {
                "operationId": "registerTenant", "tags": ["tenants"], "summary": "Register one tenant",
                "description": "Validates the body, runs the identity provider's connection check (unless "
                               f"{SKIP_CHECK_FIELD} is true) and stores the tenant. One tenant per request: a JSON "
                               "array is refused.",
                "requestBody": _body("TenantRegistration", "The tenant, in the registration API's field names.",
                                     REGISTRATION_EXAMPLES),
                "responses": {
                    "201": {**_tenant_ok("Registered."), "headers": {"Location": {
                        "description": "The new tenant's URL.", "required": True,
                        "schema": {"type": "string", "format": "uri-reference"}}}},
                    **_errors("BadRequest", "Conflict", "PayloadTooLarge", "UnsupportedMediaType"),
                },
            },
            "get": {
                "operationId": "listTenants", "tags": ["tenants"], "summary": "List tenants, a page at a time",
                "description": "Ordered by tenant id (ignoring case); keyset-paged, so every page is as fast as "
                               "the first.",
                "parameters": _list_parameters(),
                "responses": {
                    "200": {"description": "A page of tenants.",
                            "content": {"application/json": {"schema": _ref("TenantList")}}},
                    **_errors("BadRequest"),
                },
            },
        },
    }


def _tenant_paths() -> dict[str, Schema]:
    """Read, update, decommission, activate and deactivate one tenant."""
    return {
        "/v1/tenant/{tenantId}": {
            "parameters": [_tenant_id_parameter()],
            "get": {"operationId": "getTenant", "tags": ["tenants"], "summary": "Read one tenant",
                    "responses": {"200": _tenant_ok("The tenant."), **_errors("NotFound")}},
            "put": {
                "operationId": "updateTenant", "tags": ["tenants"], "summary": "Replace a tenant's settings",
                "description": "A full update: fields left out are cleared, except secrets, which are kept when "
                               "left out. tenantId and tenantDomain cannot change. The connection check runs "
                               "again when the provider settings change. While a product connection is "
                               "configured the owner cannot be removed. Refused (409) while the tenant is being "
                               "decommissioned.",
                "requestBody": _body("TenantUpdate", "The tenant's new settings."),
                "responses": {"200": _tenant_ok("Updated."),
                              **_errors("BadRequest", "NotFound", "Conflict", "PayloadTooLarge",
                                        "UnsupportedMediaType")},
            },
            "delete": {
                "operationId": "decommissionTenant", "tags": ["tenants"], "summary": "Decommission a tenant",
                "description": "Queues the decommissioning (the call is its own confirmation; repeating it changes "
                               "nothing): the worker deactivates the tenant in IS 7 and API Manager, deletes it "
                               "where the product allows tenant deletion (otherwise it stays deactivated there), "
                               "then removes it from the registry; GET then answers 404. Until then the tenant "
                               "cannot be updated, activated or deactivated (409).",
                "responses": {
                    "202": {"description": "Decommissioning queued.",
                            "headers": {"Location": {"description": "The tenant's URL (404 once it is removed).",
                                                     "required": True,
                                                     "schema": {"type": "string", "format": "uri-reference"}}},
                            "content": {"application/json": {"schema": _ref("Decommission")}}},
                    **_errors("NotFound"),
                },
            },
        },
        "/v1/tenant/{tenantId}/activate": {
            "parameters": [_tenant_id_parameter()],
            "post": {"operationId": "activateTenant", "tags": ["tenants"], "summary": "Activate a tenant",
                     "responses": {"200": _tenant_ok("Active (idempotent)."), **_errors("NotFound", "Conflict")}},
        },
        "/v1/tenant/{tenantId}/deactivate": {
            "parameters": [_tenant_id_parameter()],
            "post": {"operationId": "deactivateTenant", "tags": ["tenants"], "summary": "Deactivate a tenant",
                     "responses": {"200": _tenant_ok("Inactive (idempotent)."), **_errors("NotFound", "Conflict")}},
        },
    }


def _key_paths() -> dict[str, Schema]:
    """The client secret and the token signing keys."""
    return {
        "/v1/tenant/{tenantId}/client-secret": {
            "parameters": [_tenant_id_parameter()],
            "post": {"operationId": "generateClientSecret", "tags": ["tokens"],
                     "summary": "Replace the client secret with a generated one",
                     "description": "256 random bits, returned in this response only; the old secret stops working.",
                     "responses": {"200": {"description": "The new secret.", "content": {"application/json": {
                         "schema": {"type": "object", "additionalProperties": False, "required": ["clientSecret"],
                                    "properties": {"clientSecret": {"type": "string", "minLength": 43}}}}}},
                                   **_errors("NotFound")}},
        },
        "/v1/tenant/{tenantId}/keys": {
            "parameters": [_tenant_id_parameter()],
            "get": {"operationId": "listSigningKeys", "tags": ["tokens"], "summary": "The tenant's signing keys",
                    "description": "Every key, newest first, with the status that counts now: a passive key "
                                   "whose grace period is over is retired. Public parts only.",
                    "responses": {"200": _keys_ok("The keys."), **_errors("NotFound")}},
        },
        "/v1/tenant/{tenantId}/keys/rotate": {
            "parameters": [_tenant_id_parameter()],
            "post": {
                "operationId": "rotateSigningKey", "tags": ["tokens"], "summary": "Rotate the signing key",
                "description": "A new active key for the tenant's algorithm (generated unless signingKey is given); "
                               "the previous active key turns passive and keeps validating for the grace period.",
                "requestBody": {"required": False, "content": {"application/json": {"schema": {
                    "type": "object", "additionalProperties": False, "properties": {
                        "signingKey": {"type": "string", "description": "HS: the shared secret; RS: a PEM private "
                                                                       "key. Omit to generate."},
                        "rsaKeySize": {"type": "integer", "enum": list(RSA_KEY_SIZES)}}}}}},
                "responses": {"201": _keys_ok("Rotated: the keys after the change."),
                              **_errors("BadRequest", "NotFound", "Conflict", "PayloadTooLarge",
                                        "UnsupportedMediaType")},
            },
        },
        "/v1/tenant/{tenantId}/keys/{kid}/retire": {
            "parameters": [_tenant_id_parameter(), {"name": "kid", "in": "path", "required": True,
                                                    "schema": {"type": "string", "maxLength": 64}}],
            "post": {"operationId": "retireSigningKey", "tags": ["tokens"], "summary": "Retire a passive key now",
                     "responses": {"200": _keys_ok("Retired (idempotent)."),
                                   **_errors("NotFound", "Conflict")}},
        },
    }


def _token_and_meta_paths() -> dict[str, Schema]:
    """Token validation and this document."""
    return {
        "/v1/token/validate": {
            "post": {
                "operationId": "validateToken", "tags": ["tokens"], "summary": "Validate a tenant's token",
                "description": "The tenant is found from the token (TENANTID claim or the portal's issuer URL, else "
                               "tenantId); the token must use that tenant's registered algorithm and one of its "
                               "active or passive keys (EXTERNAL: its issuer's JWKS); exp, iat, iss and aud are "
                               "required. A refused token is a 200 answer with valid false and a reason code.",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "additionalProperties": False, "required": ["token"], "properties": {
                        "token": {"type": "string", "description": "The JWT, with or without 'Bearer '."},
                        "audience": {"type": "string", "description": "Expected aud; default: the portal's "
                                                                      "TOKEN_AUDIENCE (EXTERNAL: the clientId)."},
                        "tenantId": {"type": "string", "description": "For tokens that name no tenant."}}}}}},
                "responses": {"200": {"description": "The verdict.", "content": {"application/json": {
                    "schema": _ref("TokenVerdict")}}},
                    **_errors("BadRequest", "PayloadTooLarge", "UnsupportedMediaType")},
            },
        },
        "/v1/openapi.json": {
            "get": {"operationId": "openapi", "tags": ["meta"], "summary": "This document", "security": [],
                    "responses": {"200": {"description": "The OpenAPI 3.1 document.",
                                          "content": {"application/json": {"schema": {"type": "object"}}}},
                                  "500": {"$ref": "#/components/responses/ServerError"}}},
        },
    }


def paths() -> dict[str, Schema]:
    """Every path of the document, in the order clients read them."""
    return {**_collection_paths(), **_tenant_paths(), **_key_paths(), **_token_and_meta_paths()}
