"""The registration API's request body, validated field by field into a TenantSpec.

Both doors (the HTML form and POST /v1/tenant) hand this module the same dictionary, in the API's field names,
so a rule lives here once and both report the same message under the same field path
(e.g. "relationalSchema.dataSourceURL"). Nothing here touches the network or the database.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from portal.idp import registry
from portal.idp.base import ParseContext
from portal.idp.parsing import Errors as _Errors, text as _text
from portal.models.tenant import ALGORITHMS, PROVISIONING_METHODS
from portal.services.errors import ValidationError
from portal.services.tenants import fields as tenant_fields, secret_binding
from portal.services.tokens import signing_keys
from portal.services.tokens.signing_keys import RSA_KEY_SIZES

TENANT_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
DOMAIN_RE = re.compile(r"[a-z0-9._-]+")  # IS 7 TM-60007
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL_RE = re.compile(rf"[^@\s]{{1,64}}@{_LABEL}(?:\.{_LABEL})+")
OWNER_USERNAME_RE = re.compile(r"[A-Za-z0-9._@-]{1,255}")
RESERVED_DOMAINS = frozenset({"carbon.super"})
RESERVED_TENANT_IDS = frozenset({"new", "bulk", "decommissions"})  # page addresses under /tenants/
RESERVED_FIRST_LABELS = frozenset({"atom", "registry", "resource"})  # IS answers 500 for these


@dataclass(frozen=True)
class Owner:
    username: str
    email: str
    first_name: str | None
    last_name: str | None
    provisioning: str
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class TenantSpec:
    """A valid registration, secrets kept out of repr. `None` for a secret on update means "keep"."""

    tenant_id: str
    display_name: str
    domain: str
    owner: Owner | None
    client_id: str
    client_secret: str | None = field(repr=False)
    idp_type: str
    idp_settings: dict[str, Any]  # the non-secret settings of that type, in API field names
    idp_secret: str | None = field(repr=False)  # the family's one secret (dataSourcePassword, bindPassword)
    algorithm: str
    signing_key: str | None = field(repr=False)  # None: generate (or keep on update)
    rsa_key_size: int


@dataclass(frozen=True)
class Rules:
    """Deployment-dependent rules, from config and (for owners) from services.outbox.policy.owner_rules."""

    domain_suffix: str = "tenants.local"
    dotless_domains: bool = False
    allow_http_urls: bool = False
    owner_required: str | None = None  # why an owner is required (a message with {what}), or None
    invite_refused: str | None = None  # why invite-via-email cannot work now, or None


def parse(body: Any, rules: Rules, *, existing: dict[str, Any] | None = None) -> TenantSpec:
    """Validate a registration (existing=None) or a full update of an existing tenant.

    On update `existing` holds the stored tenantId, domain, which secrets are already set and where they go
    (idpSettings, ownerUsername), so a blank secret keeps the stored one, but only while its target is unchanged
    (services.secret_binding), and tenantId / tenantDomain cannot change (IS 7 has no rename)."""
    if isinstance(body, list):
        raise ValidationError({"": "Send one tenant per request: the body is a JSON array, expected one object."})
    if not isinstance(body, dict):
        raise ValidationError({"": "The body must be a JSON object with the tenant's fields."})
    errors = _Errors()
    for name in sorted(set(body) - tenant_fields.top_level()):
        errors.add(name, f"Unknown field {name!r}.")

    tenant_id = _tenant_id(body, errors, existing)
    display_name = _text(body, "displayName", errors, limit=255) or tenant_id or ""
    domain = _domain(body, tenant_id, rules, errors, existing)
    owner = _owner(body.get("owner"), errors, existing, rules)
    client_id, client_secret = _client(body, errors, existing)
    idp_type = _idp_type(body, errors)
    algorithm, signing_key, rsa_key_size = _signing(body, errors)

    settings: dict[str, Any] = {}
    idp_secret = None
    if idp_type:
        settings, idp_secret = _idp_settings(body, idp_type, algorithm, rules, errors, existing)

    if errors:
        raise ValidationError(dict(errors))
    return TenantSpec(
        tenant_id=tenant_id, display_name=display_name, domain=domain, owner=owner, client_id=client_id,
        client_secret=client_secret, idp_type=idp_type, idp_settings=settings, idp_secret=idp_secret,
        algorithm=algorithm, signing_key=signing_key, rsa_key_size=rsa_key_size,
    )


def _tenant_id(body: dict, errors: _Errors, existing: dict[str, Any] | None) -> str | None:
    tenant_id = _text(body, "tenantId", errors, required=existing is None, limit=64)
    if existing is not None:
        if tenant_id and tenant_id != existing["tenantId"]:
            errors.add("tenantId", "The tenant id cannot change.")
        return existing["tenantId"]
    if tenant_id and not TENANT_ID_RE.fullmatch(tenant_id):
        errors.add("tenantId", "Use 1 to 64 letters, digits, '_' or '-'.")
    elif tenant_id and tenant_id.lower() in RESERVED_TENANT_IDS:
        errors.add("tenantId", f"{tenant_id!r} is reserved by the portal; choose another tenant id.")
    return tenant_id


def _client(body: dict, errors: _Errors, existing: dict[str, Any] | None) -> tuple[str | None, str | None]:
    """(clientId, clientSecret): the tenant's OAuth client; a blank secret on update keeps the stored one."""
    client_id = _text(body, "clientId", errors, required=True, limit=255)
    if client_id and any(ch.isspace() for ch in client_id):
        errors.add("clientId", "The client id cannot contain spaces.")
    elif client_id and ":" in client_id:
        errors.add("clientId", "The client id cannot contain ':', which separates id and secret in HTTP Basic.")
    client_secret = _text(body, "clientSecret", errors, required=not (existing and existing.get("clientSecretSet")),
                          limit=512, strip=False, secret=True)
    return client_id, client_secret


def _idp_type(body: dict, errors: _Errors) -> str | None:
    idp_type = _text(body, "identityProviderType", errors, required=True, limit=16)
    if idp_type:
        idp_type = idp_type.upper()
        if registry.find(idp_type) is None:
            errors.add("identityProviderType", f"Choose one of {', '.join(registry.names())}.")
            idp_type = None
    return idp_type


def _signing(body: dict, errors: _Errors) -> tuple[str, str | None, int]:
    """(supportAlgorithm, signingKey, rsaKeySize); the key is prechecked against the algorithm."""
    algorithm = _text(body, "supportAlgorithm", errors, limit=8) or "HS256"
    if algorithm.upper() in ALGORITHMS:
        algorithm = algorithm.upper()
    else:
        errors.add("supportAlgorithm", f"Choose one of {', '.join(ALGORITHMS)}.")
    signing_key = _text(body, "signingKey", errors, limit=16384, strip=False, secret=True)
    rsa_key_size = body.get("rsaKeySize", 2048)
    if isinstance(rsa_key_size, str) and rsa_key_size.isascii() and rsa_key_size.isdigit() and len(rsa_key_size) < 6:
        rsa_key_size = int(rsa_key_size)  # isdigit() alone passes "²" and 5000-digit strings, which int() refuses
    if isinstance(rsa_key_size, bool) or rsa_key_size not in RSA_KEY_SIZES:
        errors.add("rsaKeySize", f"Choose {', '.join(map(str, RSA_KEY_SIZES))}.")
        rsa_key_size = 2048
    if signing_key and "supportAlgorithm" not in errors and (problem := signing_keys.precheck(algorithm, signing_key)):
        errors.add("signingKey", problem)
    return algorithm, signing_key, rsa_key_size


def default_domain(tenant_id: str, rules: Rules) -> str:
    label = re.sub(r"[^a-z0-9-]+", "-", tenant_id.lower()).strip("-") or "tenant"
    return f"{label}.{rules.domain_suffix}" if rules.domain_suffix else label


# --- fields -----------------------------------------------------------------------------------------------


def client_secret_weakness(secret: str, client_id: str, tenant_id: str) -> str | None:
    """Why a client secret chosen by an administrator is easy to guess, or None. Weak secrets are accepted (the
    registration API's own sample uses "order") but flagged on the tenant, so they can be found and replaced."""
    if len(secret) < 16:
        return f"The client secret has {len(secret)} characters; use at least 16 random ones (32 is better)."
    if secret.lower() in {client_id.lower(), tenant_id.lower()}:
        return "The client secret equals the client id or tenant id."
    if len(set(secret)) < 6:
        return "The client secret repeats a few characters; use a random value."
    return None


def _domain(body: dict, tenant_id: str | None, rules: Rules, errors: _Errors, existing: dict | None) -> str:
    """The IS 7 domain rules (wso2-apis.md §1), so a tenant the portal accepts is one IS accepts."""
    given = _text(body, "tenantDomain", errors, limit=253)
    if existing is not None:
        if given and given != existing["tenantDomain"]:
            errors.add("tenantDomain", "The tenant domain cannot change: Identity Server 7 cannot rename a tenant.")
        return existing["tenantDomain"]
    if given is None:
        if not tenant_id:
            return ""
        given = default_domain(tenant_id, rules)
        if given in RESERVED_DOMAINS or given.split(".")[0] in RESERVED_FIRST_LABELS:  # e.g. tenantId "atom"
            errors.add("tenantDomain", f"The domain derived from the tenant id, {given}, is reserved by the Identity "
                                       "Server; enter another tenantDomain.")
        return given
    if given.startswith("."):
        errors.add("tenantDomain", "The domain cannot start with a dot.")
    elif not DOMAIN_RE.fullmatch(given):
        errors.add("tenantDomain", "Use lower-case letters, digits, '.', '_' and '-' only.")
    elif "." not in given and not rules.dotless_domains:
        errors.add("tenantDomain", "The domain needs a dot, e.g. example.com (dot-less domains are switched off).")
    elif given in RESERVED_DOMAINS or given.split(".")[0] in RESERVED_FIRST_LABELS:
        errors.add("tenantDomain", f"{given} is reserved by the Identity Server; choose another domain.")
    elif given.endswith(".") or ".." in given:
        errors.add("tenantDomain", "The domain cannot end with a dot or contain an empty label.")
    return given


def _owner(value: Any, errors: _Errors, existing: dict | None, rules: Rules) -> Owner | None:
    if value is None or (isinstance(value, dict) and not any(v not in (None, "") for v in value.values())
                         and rules.owner_required):
        if rules.owner_required:  # an empty owner object is no owner either
            errors.add("owner.username", rules.owner_required.format(what="user name"))
            errors.add("owner.email", rules.owner_required.format(what="email"))
        return None
    if not isinstance(value, dict):
        errors.add("owner", "Must be an object.")
        return None
    for extra in sorted(set(value) - tenant_fields.section_fields("owner")):
        errors.add(f"owner.{extra}", f"Unknown field {extra!r}.")
    username = _text(value, "username", errors, path="owner.username", required=True)
    if username and not OWNER_USERNAME_RE.fullmatch(username):
        errors.add("owner.username", "Use letters, digits, '.', '_', '@' or '-'.")
    email = _text(value, "email", errors, path="owner.email", required=True, limit=320)
    if email and not EMAIL_RE.fullmatch(email):
        errors.add("owner.email", "Enter a valid email address, e.g. admin@example.com.")
    first = _text(value, "firstName", errors, path="owner.firstName")
    last = _text(value, "lastName", errors, path="owner.lastName")
    password = _text(value, "password", errors, path="owner.password", limit=256, strip=False, secret=True)
    method = _text(value, "provisioningMethod", errors, path="owner.provisioningMethod", limit=32)
    method = method.lower() if method else ("inline-password" if password else "invite-via-email")
    if method not in PROVISIONING_METHODS:
        errors.add("owner.provisioningMethod", f"Choose {' or '.join(PROVISIONING_METHODS)}.")
    elif method == "inline-password" and not password and not (existing and existing.get("ownerPasswordSet")):
        errors.add("owner.password", "An inline-password owner needs a password (or choose invite-via-email).")
    elif method == "inline-password" and (problem := secret_binding.account_refusal(
            stored=bool(existing and existing.get("ownerPasswordSet")), entered=password is not None,
            before=(existing or {}).get("ownerUsername"), after=username)):
        errors.add("owner.password", problem)
    elif method == "invite-via-email" and password:
        errors.add("owner.password", "invite-via-email sends the owner a link to set a password; leave it empty.")
    elif method == "invite-via-email" and rules.invite_refused:
        errors.add("owner.provisioningMethod", rules.invite_refused)
    return Owner(username or "", email or "", first, last, method, password)


def _idp_settings(body: dict, idp_type: str, algorithm: str, rules: Rules, errors: _Errors,
                  existing: dict | None) -> tuple[dict[str, Any], str | None]:
    """The chosen type's settings, parsed by its family; another family's keys in the body are refused."""
    family = registry.get(idp_type)
    for other in registry.families():
        if other is family:
            continue
        for name in other.keys:
            if name in family.keys:
                continue
            if name in other.objects and body.get(name) is not None:
                errors.add(name, f"{name} does not apply to identityProviderType {idp_type}; remove it.")
            elif name not in other.objects and body.get(name) not in (None, ""):
                errors.add(name, f"{name} applies only to identityProviderType {' or '.join(other.types)}; "
                                 "remove it.")
    secret_set = bool(existing and existing.get("idpSecretSet") and existing.get("identityProviderType") == idp_type)
    stored = (existing or {}).get("idpSettings") or {} if secret_set else None
    context = ParseContext(algorithm=algorithm, allow_http_urls=rules.allow_http_urls, stored=stored)
    return family.parse(idp_type, body, context, errors)
