"""The OpenAPI 3.1 document of the /v1 API, served at /v1/openapi.json.

Built as a plain dict so tests can validate real responses against the same schemas clients read. The request
schemas state what the server checks structurally (types, required fields, unknown fields, enumerations); rules
a JSON Schema cannot express (the JDBC URL grammar, the placeholder "string", a real connection check) are in
the descriptions, and a body that breaks them gets a 400 problem naming the field.
"""
from __future__ import annotations

import re
from typing import Any

from flask import current_app, jsonify

from portal.access import public
from portal.api import openapi_paths
from portal.api.auth import APP_ID_HEADER, KEY_HEADER, scope_of
from portal.api.blueprint import bp
from portal.api.tenants import SKIP_CHECK_FIELD
from portal.idp import registry
from portal.idp.base import IdpFamily
from portal.idp.schema import Schema, nullable as _nullable, ref as _ref, text as _text
from portal.models.outbox import DECOMMISSION_OUTCOMES
from portal.models.tenant import ALGORITHMS, PROVISIONING_METHODS
from portal.services.admin import api_clients
from portal.services.tenants.spec import EMAIL_RE, OWNER_USERNAME_RE, TENANT_ID_RE
from portal.services.tokens import service as tokens
from portal.services.tokens.signing_keys import RSA_KEY_SIZES

PROBLEM_MEDIA = "application/problem+json"
PLACEHOLDER_NOTE = ' The sample requests\' placeholder "string" is refused.'


# --- request bodies --------------------------------------------------------------------------------------


def _common_properties(update: bool) -> dict[str, Schema]:
    keep = " On update, leave it out (or null) to keep the stored value." if update else ""
    return {
        "tenantId": _text(
            "Unique tenant id, compared ignoring case: 1 to 64 letters, digits, '_' or '-'. It cannot change: on "
            "update it may be left out or repeated unchanged." + PLACEHOLDER_NOTE,
            pattern=f"^{TENANT_ID_RE.pattern}$"),
        "displayName": _nullable(_text("Display name; defaults to the tenant id.", 255)),
        "tenantDomain": _nullable(_text(
            "The WSO2 tenant domain: lower-case letters, digits, '.', '_' and '-', no leading dot, and a dot "
            "unless dot-less domains are switched on. Defaults to '<tenantid>.<configured suffix>'. It cannot "
            "change after registration.", 253)),
        "owner": {"oneOf": [_ref("OwnerRequest"), {"type": "null"}],
                  "description": "The tenant owner created in the Identity Server. Required (400 on "
                                 "owner.username / owner.email) while a product connection is configured: the "
                                 "tenant is then written to IS 7, which creates every tenant with its owner."},
        "clientId": _text("The tenant's OAuth client id (no spaces)." + PLACEHOLDER_NOTE, 255, pattern=r"^\S+$"),
        "clientSecret": (_nullable if update else (lambda s: s))(_text(
            "The tenant's OAuth client secret. Stored encrypted and never returned." + keep + PLACEHOLDER_NOTE,
            512, writeOnly=True)),
        "supportAlgorithm": {
            "type": ["string", "null"], "enum": [*ALGORITHMS, None], "default": "HS256",
            "description": "Token signing algorithm (case-insensitive). EXTERNAL providers sign with their own "
                           "RSA keys, so they need RS256, RS384 or RS512."},
        "signingKey": _nullable(_text(
            "For HS*: the shared secret, at least as long as the hash (32, 48 or 64 bytes for HS256, HS384, "
            "HS512). For RS*: a PEM RSA private key of at least 2048 bits. Left out, the portal generates one "
            "(on update: keeps the current key unless the algorithm changes). Stored encrypted, never returned.",
            16384, writeOnly=True)),
        "rsaKeySize": {
            "anyOf": [{"type": "integer", "enum": list(RSA_KEY_SIZES)},
                      {"type": "string", "pattern": "^0*(" + "|".join(map(str, RSA_KEY_SIZES)) + ")$"}],
            "default": 2048, "description": "Size of the RSA key the portal generates for RS* when no signingKey "
                                            "is given."},
        SKIP_CHECK_FIELD: {
            "type": "boolean", "default": False,
            "description": "Store the tenant without the connection check. It is then shown as unverified "
                           "(connectionCheck.status 'unchecked') until a check passes."},
    }


def _type_property(types: tuple[str, ...]) -> Schema:
    return {"type": "string", "enum": list(types),
            "description": "Identity provider type (case-insensitive); decides which settings section applies."}


def _registration_variant(title: str, types: tuple[str, ...], sections: dict[str, Schema], update: bool,
                          optional: tuple[str, ...] = ()) -> Schema:
    properties = {**_common_properties(update), "identityProviderType": _type_property(types), **sections}
    required = ["identityProviderType", *(name for name in sections if name not in optional)]
    if not update:
        required = ["tenantId", "clientId", "clientSecret", *required]
    else:
        required = ["clientId", *required]
    return {"title": title, "type": "object", "additionalProperties": False, "properties": properties,
            "required": required}


def _request_variants(update: bool) -> list[Schema]:
    """One variant per identity-provider family (and title), each with that family's settings."""
    return [_registration_variant(title, types, sections, update, *optional)
            for family in registry.families() for title, types, sections, *optional in family.openapi_variants(update)]


def _owner_request() -> Schema:
    return {
        "type": "object", "additionalProperties": False, "required": ["username", "email"],
        "properties": {
            "username": _text("Owner user name: letters, digits, '.', '_', '@' or '-'.", 255,
                              pattern=f"^{OWNER_USERNAME_RE.pattern}$"),
            "email": _text("Owner email address.", 320, pattern=f"^{EMAIL_RE.pattern}$"),
            "firstName": _nullable(_text("First name.", 255)),
            "lastName": _nullable(_text("Last name.", 255)),
            "provisioningMethod": {
                "type": ["string", "null"], "enum": [*PROVISIONING_METHODS, None],
                "description": "inline-password (with password) or invite-via-email (the owner gets a link; "
                               "API Manager, whose SOAP addTenant cannot invite, gets a generated password that is "
                               "never returned). Defaults to inline-password when a password is given, else "
                               "invite-via-email. Refused with API Manager -> IS 7 sharing on: API Manager creates "
                               "the IS 7 owner with the password it was given."},
            "password": _nullable(_text("Owner password for inline-password. Stored encrypted, never returned.",
                                        256, writeOnly=True)),
        },
    }


# --- responses -------------------------------------------------------------------------------------------


def _timestamp(description: str, nullable: bool = False) -> Schema:
    return {"type": ["string", "null"] if nullable else "string", "format": "date-time", "description": description}


def _tenant_schema() -> Schema:
    nullable_text = {"type": ["string", "null"]}
    properties, required = _idp_responses()
    return {
        "type": "object", "additionalProperties": False,
        "description": "A tenant in the registration API's field names. Secrets are never returned: *Set flags "
                       "say whether one is stored.",
        "required": ["tenantId", "displayName", "tenantDomain", "clientId", "clientSecretSet", "clientSecretWeak",
                     "identityProviderType",
                     "supportAlgorithm", "status", "verified", "connectionCheck", "createdAt", "updatedAt",
                     "signingKey", "owner"],
        "properties": {
            "tenantId": {"type": "string"},
            "displayName": {"type": "string"},
            "tenantDomain": {"type": "string"},
            "clientId": {"type": "string"},
            "clientSecretSet": {"type": "boolean"},
            "clientSecretWeak": {"type": "boolean", "description": "The client secret is short or guessable: "
                                                                  "replace it with a long random value."},
            "identityProviderType": {"type": "string", "enum": list(registry.names())},
            "supportAlgorithm": {"type": "string", "enum": list(ALGORITHMS)},
            "status": {"type": "string", "enum": ["active", "inactive"]},
            "verified": {"type": "boolean", "description": "The last connection check passed."},
            "connectionCheck": {
                "type": "object", "additionalProperties": False, "required": ["status", "summary", "checkedAt"],
                "properties": {"status": {"type": "string", "enum": ["unchecked", "passed", "failed"]},
                               "summary": nullable_text,
                               "checkedAt": _timestamp("When the check ran; null when it was skipped.", True)}},
            "createdAt": _timestamp("Registration time (UTC)."),
            "updatedAt": _timestamp("Last change (UTC)."),
            "signingKey": {"oneOf": [_ref("SigningKey"), {"type": "null"}]},
            "owner": {"oneOf": [_ref("Owner"), {"type": "null"}]},
            "decommissioning": {
                "type": "object", "additionalProperties": False, "required": ["requestedAt", "requestedBy"],
                "description": "Present while the tenant is being decommissioned.",
                "properties": {"requestedAt": _timestamp("When it was asked for."),
                               "requestedBy": {"type": "string"}}},
            **properties,
        },
        # The settings section of the tenant's own type, and no other.
        "allOf": [_type_rule(family, required[family], properties) for family in registry.families()],
    }


def _sections_text() -> str:
    """e.g. "relationalSchema, ldapSchema, or jwkSetUrl + issuer + oidcSchema"."""
    parts = [" + ".join(family.keys) for family in registry.families()]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + ", or " + parts[-1]


def _idp_responses() -> tuple[dict[str, Schema], dict[IdpFamily, list[str]]]:
    """The tenant view's properties of every family, and what each family's tenants always have."""
    properties: dict[str, Schema] = {}
    required: dict[IdpFamily, list[str]] = {}
    for family in registry.families():
        props, needed = family.openapi_response()
        properties.update(props)
        required[family] = needed
    return properties, required


def _type_rule(family: IdpFamily, required: list[str], properties: dict[str, Schema]) -> Schema:
    types = list(family.types)
    others = [name for name in properties if name not in family.keys]
    then: Schema = {"required": required}
    if others:
        then["not"] = {"anyOf": [{"required": [name]} for name in others]}
    return {"if": {"properties": {"identityProviderType": {"enum": types} if len(types) > 1 else {"const": types[0]}}},
            "then": then}


def _signing_key_schema() -> Schema:
    return {
        "type": "object", "additionalProperties": False, "description": "The active signing key, public parts only.",
        "required": ["kid", "algorithm", "bits", "generated", "publicKeyPem", "createdAt"],
        "properties": {
            "kid": {"type": "string"},
            "algorithm": {"type": "string", "enum": list(ALGORITHMS)},
            "bits": {"type": "integer", "description": "HS: key length in bits; RS: modulus size."},
            "generated": {"type": "boolean", "description": "Made by the portal rather than supplied."},
            "publicKeyPem": {"type": ["string", "null"], "description": "RS only: the public key."},
            "createdAt": _timestamp("When the key was created."),
        },
    }


def _key_list_schema() -> Schema:
    return {
        "type": "object", "additionalProperties": False, "required": ["keys"],
        "properties": {"keys": {"type": "array", "items": {
            "type": "object", "additionalProperties": False,
            "required": ["kid", "algorithm", "status", "bits", "generated", "createdAt", "passiveUntil", "retiredAt",
                         "publicKeyPem"],
            "properties": {
                "kid": {"type": "string"},
                "algorithm": {"type": "string", "enum": list(ALGORITHMS)},
                "status": {"type": "string", "enum": ["active", "passive", "retired"]},
                "bits": {"type": "integer"}, "generated": {"type": "boolean"},
                "createdAt": _timestamp("When the key was created."),
                "passiveUntil": _timestamp("Passive keys: when the grace period ends.", True),
                "retiredAt": _timestamp("Retired keys: since when.", True),
                "publicKeyPem": {"type": ["string", "null"]}}}}},
    }


def _verdict_schema() -> Schema:
    return {
        "type": "object", "additionalProperties": False,
        "required": ["valid", "reason", "message", "tenantId", "header", "claims", "decidedBy"],
        "properties": {
            "valid": {"type": "boolean"},
            "reason": {"type": "string", "enum": ["ok", *tokens.REASONS],
                       "description": "ok, or why the token is refused."},
            "message": {"type": "string"},
            "tenantId": {"type": ["string", "null"]},
            "header": {"type": "object"},
            "claims": {"type": "object", "description": "Verified claims when valid; unverified ones otherwise."},
            "decidedBy": {"type": ["string", "null"],
                          "description": "The rule that decided, in a sentence (e.g. which issuer form and "
                                         "directory rule accepted an Entra ID token), when there is one to name."},
        },
    }


def _owner_schema() -> Schema:
    return {
        "type": "object", "additionalProperties": False,
        "required": ["username", "email", "firstName", "lastName", "provisioningMethod", "passwordSet"],
        "properties": {
            "username": {"type": "string"}, "email": {"type": "string"},
            "firstName": {"type": ["string", "null"]}, "lastName": {"type": ["string", "null"]},
            "provisioningMethod": {"type": "string", "enum": list(PROVISIONING_METHODS)},
            "passwordSet": {"type": "boolean"},
        },
    }


def _decommission_schema() -> Schema:
    outcome = {"type": "string", "enum": list(DECOMMISSION_OUTCOMES),
               "description": "pending until the worker ran; deleted; deactivated (the product does not delete); "
                              "absent (it never had the tenant); failed."}
    return {
        "type": "object", "additionalProperties": False,
        "required": ["tenantId", "tenantDomain", "status", "requestedAt", "requestedBy", "outcomes"],
        "properties": {
            "tenantId": {"type": "string"}, "tenantDomain": {"type": "string"},
            "status": {"type": "string", "enum": ["decommissioning", "decommissioned"],
                       "description": "decommissioned: no product connection is configured, so the tenant was "
                                      "removed at once."},
            "requestedAt": _timestamp("When it was asked for."), "requestedBy": {"type": "string"},
            "outcomes": {"type": "object", "additionalProperties": False, "required": ["is", "apim"],
                         "properties": {"is": outcome, "apim": outcome}},
        },
    }


def _problem_schema() -> Schema:
    return {
        "type": "object", "additionalProperties": False, "required": ["type", "title", "status"],
        "description": "RFC 9457 problem details.",
        "properties": {
            "type": {"type": "string", "description": "Always about:blank: the status and title say it all."},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"},
            "request_id": {"type": ["string", "null"], "description": "Quote it when reporting a problem."},
            "errors": {"type": "object", "additionalProperties": {"type": "string"},
                       "description": "Messages keyed by the body's field path (e.g. relationalSchema.dataSourceURL) "
                                      "or by query parameter."},
            "requiredScope": {"type": "string", "enum": list(api_clients.SCOPES),
                              "description": "On 403: the scope the API client lacks for this operation."},
            "check": {"type": "object", "additionalProperties": False, "required": ["summary", "details"],
                      "description": "The failed connection check: its summary and the steps taken.",
                      "properties": {"summary": {"type": "string"},
                                     "details": {"type": "array", "items": {"type": "string"}}}},
        },
    }


# --- operations ------------------------------------------------------------------------------------------


def _problem_response(description: str) -> Schema:
    return {"description": description, "content": {PROBLEM_MEDIA: {"schema": _ref("Problem")}}}


RESPONSES = {
    "BadRequest": "Invalid: malformed JSON, a refused field (see `errors`), or a failed connection check (see "
                  "`check`).",
    "Unauthorized": f"{APP_ID_HEADER} or {KEY_HEADER} missing, wrong, or of a revoked client; or the key expired, "
                    "or it was replaced by a rotation whose overlap ended (`detail` says which).",
    "Forbidden": "The API client lacks the scope this operation requires (`requiredScope` names it; see "
                 "x-required-scope), or, when registering, the tenantId is outside its tenant limit.",
    "NotFound": "No tenant with this id, or none this API client may see: a client limited to some tenants gets "
                "this same answer for every other tenant.",
    "Conflict": "A tenant with this tenantId (ignoring case) or tenantDomain exists already (`errors` names the "
                "field), or the tenant is being decommissioned and cannot change.",
    "PayloadTooLarge": "The body is larger than the configured limit.",
    "UnsupportedMediaType": "The body is not sent as application/json.",
    "ServerError": "Unexpected error; logged with the request id.",
}


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)


def _route_scopes() -> dict[tuple[str, str], str | None]:
    """(method, OpenAPI path) -> the scope its view declares, read from the routes themselves so the document
    cannot disagree with what is enforced."""
    found: dict[tuple[str, str], str | None] = {}
    for rule in current_app.url_map.iter_rules():
        if not rule.endpoint.startswith(bp.name + "."):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: "{" + _camel(m.group(1)) + "}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            found[(method.lower(), path)] = scope_of(current_app.view_functions[rule.endpoint])
    return found


def _with_scopes(paths: dict[str, Schema]) -> dict[str, Schema]:
    """Each operation's required scope: `x-required-scope`, and the ApiKey requirement naming it (OpenAPI 3.1
    lets a non-OAuth requirement list the roles it needs)."""
    scopes = _route_scopes()
    for path, item in paths.items():
        for method, operation in item.items():
            if method == "parameters" or operation.get("security") == []:
                continue
            scope = scopes.get((method, path))
            if scope is None:
                continue  # undeclared: the route refuses everyone, and tests/test_api_scopes.py fails
            operation["x-required-scope"] = scope
            operation["security"] = [{"AppId": [], "ApiKey": [scope]}]
            operation["description"] = (operation.get("description", "") + f" Requires the `{scope}` scope.").strip()
    return paths


def document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "Tenant Portal registration API", "version": "1",
            "description": "Register and manage tenants. Authenticate every call (except this document) with the "
                           f"{APP_ID_HEADER} and {KEY_HEADER} headers of an API client created by an administrator "
                           "in the portal (API clients page) or with `flask --app portal create-api-client`. "
                           "Each operation requires one scope (x-required-scope: "
                           + ", ".join(api_clients.SCOPES) + "), chosen when the client is created; without it the "
                           "answer is 403 naming the scope (requiredScope). A client limited to some tenants "
                           "gets 404 for every other tenant, as if it did not exist, and lists only its own. "
                           "Errors are RFC 9457 problem bodies (application/problem+json)"
                           + (f"; request bodies are limited to {limit} bytes." if limit else "."),
        },
        "tags": [{"name": "tenants"}, {"name": "tokens"}, {"name": "meta"}],
        "security": [{"AppId": [], "ApiKey": []}],
        "paths": _with_scopes(openapi_paths.paths()),
        "components": {
            "securitySchemes": {
                "AppId": {"type": "apiKey", "in": "header", "name": APP_ID_HEADER,
                          "description": "The API client's app id (app_...)."},
                "ApiKey": {"type": "apiKey", "in": "header", "name": KEY_HEADER,
                           "description": "The API client's key, shown once when the client was created or its "
                                          "key rotated. Each operation's requirement lists the scope it needs: "
                                          + "; ".join(f"{name}: {text}" for name, text in
                                                      api_clients.SCOPE_LABELS.items()) + "."},
            },
            "responses": {name: _problem_response(text) for name, text in RESPONSES.items()},
            "schemas": {
                "TenantRegistration": {"oneOf": _request_variants(update=False),
                                       "description": "One tenant. The identityProviderType decides the section: "
                                                      + _sections_text() + "."},
                "TenantUpdate": {"oneOf": _request_variants(update=True)},
                "OwnerRequest": _owner_request(),
                **{name: schema for family in registry.families()
                   for name, schema in family.openapi_components().items()},
                "Tenant": _tenant_schema(),
                "TenantList": {
                    "type": "object", "additionalProperties": False, "required": ["items", "next"],
                    "properties": {"items": {"type": "array", "items": _ref("Tenant")},
                                   "next": {"type": ["string", "null"], "format": "uri-reference",
                                            "description": "The next page; null on the last page."}}},
                "SigningKey": _signing_key_schema(),
                "SigningKeyList": _key_list_schema(),
                "TokenVerdict": _verdict_schema(),
                "Owner": _owner_schema(),
                "Decommission": _decommission_schema(),
                "Problem": _problem_schema(),
            },
        },
    }


@bp.get("/openapi.json")
@public
def openapi_document():
    return jsonify(document())
