"""The registration API's request body, validated field by field into a TenantSpec.

Both doors (the HTML form and POST /v1/tenant) hand this module the same dictionary, in the API's field names,
so a rule lives here once and both report the same message under the same field path
(e.g. "relationalSchema.dataSourceURL"). Nothing here touches the network or the database.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from portal.clients import jdbc, ldap
from portal.models.tenant import ALGORITHMS, IDP_TYPES, PROVISIONING_METHODS
from portal.services.errors import ValidationError
from portal.services import secret_binding, signing_keys
from portal.services.signing_keys import RSA_KEY_SIZES

PLACEHOLDER = "string"  # what the seed's sample requests put in every field
TENANT_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
DOMAIN_RE = re.compile(r"[a-z0-9._-]+")  # IS 7 TM-60007
EMAIL_RE = re.compile(r"[^@\s]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+")
OWNER_USERNAME_RE = re.compile(r"[A-Za-z0-9._@-]{1,255}")
RESERVED_DOMAINS = frozenset({"carbon.super"})
RESERVED_TENANT_IDS = frozenset({"new", "bulk", "decommissions"})  # page addresses under /tenants/
RESERVED_FIRST_LABELS = frozenset({"atom", "registry", "resource"})  # IS answers 500 for these

RELATIONAL = ("ORACLE", "POSTGRES")
SCHEMA_OF = {"ORACLE": "relationalSchema", "POSTGRES": "relationalSchema", "LDAP": "ldapSchema",
             "EXTERNAL": "oidcSchema"}
TOP_LEVEL = frozenset({
    "tenantId", "displayName", "tenantDomain", "owner", "clientId", "clientSecret", "identityProviderType",
    "supportAlgorithm", "signingKey", "rsaKeySize", "relationalSchema", "ldapSchema", "jwkSetUrl", "issuer",
    "oidcSchema", "skipConnectionCheck",
})
SCHEMA_FIELDS = {
    "relationalSchema": frozenset({"dataSourceURL", "dataSourceUserName", "dataSourcePassword"}),
    "ldapSchema": frozenset({"ldapURLForDirectoryService", "directoryServiceDomainName",
                             "directoryServiceRootDistinguishedName", "bindDN", "bindPassword", "startTLS"}),
    "oidcSchema": frozenset({"authUrl", "accessTokenUrl", "scope"}),
    "owner": frozenset({"username", "email", "firstName", "lastName", "provisioningMethod", "password"}),
}
# Secrets: never echoed in messages, never stored in clear, never returned.
SECRET_PATHS = frozenset({"clientSecret", "signingKey", "relationalSchema.dataSourcePassword",
                          "ldapSchema.bindPassword", "owner.password"})


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
    idp_secret: str | None = field(repr=False)  # dataSourcePassword or bindPassword
    algorithm: str
    signing_key: str | None = field(repr=False)  # None: generate (or keep on update)
    rsa_key_size: int


@dataclass(frozen=True)
class Rules:
    """Deployment-dependent rules, from config and (for owners) from services.sync.owner_rules."""

    domain_suffix: str = "tenants.local"
    dotless_domains: bool = False
    allow_http_urls: bool = False
    owner_required: str | None = None  # why an owner is required (a message with {what}), or None
    invite_refused: str | None = None  # why invite-via-email cannot work now, or None


class _Errors(dict):
    def add(self, path: str, message: str) -> None:
        self.setdefault(path, message)


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
    for name in sorted(set(body) - TOP_LEVEL):
        errors.add(name, f"Unknown field {name!r}.")

    tenant_id = _text(body, "tenantId", errors, required=existing is None, limit=64)
    if existing is not None:
        if tenant_id and tenant_id != existing["tenantId"]:
            errors.add("tenantId", "The tenant id cannot change.")
        tenant_id = existing["tenantId"]
    elif tenant_id and not TENANT_ID_RE.fullmatch(tenant_id):
        errors.add("tenantId", "Use 1 to 64 letters, digits, '_' or '-'.")
    elif tenant_id and tenant_id.lower() in RESERVED_TENANT_IDS:
        errors.add("tenantId", f"{tenant_id!r} is reserved by the portal; choose another tenant id.")

    display_name = _text(body, "displayName", errors, limit=255) or tenant_id or ""
    domain = _domain(body, tenant_id, rules, errors, existing)
    owner = _owner(body.get("owner"), errors, existing, rules)

    client_id = _text(body, "clientId", errors, required=True, limit=255)
    if client_id and any(ch.isspace() for ch in client_id):
        errors.add("clientId", "The client id cannot contain spaces.")
    elif client_id and ":" in client_id:
        errors.add("clientId", "The client id cannot contain ':', which separates id and secret in HTTP Basic.")
    client_secret = _text(body, "clientSecret", errors, required=not (existing and existing.get("clientSecretSet")),
                          limit=512, strip=False, secret=True)

    idp_type = _text(body, "identityProviderType", errors, required=True, limit=16)
    if idp_type:
        idp_type = idp_type.upper()
        if idp_type not in IDP_TYPES:
            errors.add("identityProviderType", f"Choose one of {', '.join(IDP_TYPES)}.")
            idp_type = None

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

    settings: dict[str, Any] = {}
    idp_secret = None
    if idp_type:
        for other in {"relationalSchema", "ldapSchema", "oidcSchema"} - {SCHEMA_OF[idp_type]}:
            if body.get(other) is not None:
                errors.add(other, f"{other} does not apply to identityProviderType {idp_type}; remove it.")
        if idp_type != "EXTERNAL":
            for name in ("jwkSetUrl", "issuer"):
                if body.get(name) not in (None, ""):
                    errors.add(name, f"{name} applies only to identityProviderType EXTERNAL; remove it.")
        secret_set = bool(existing and existing.get("idpSecretSet") and existing.get("identityProviderType") == idp_type)
        stored = (existing or {}).get("idpSettings") or {} if secret_set else None
        if idp_type in RELATIONAL:
            settings, idp_secret = _relational(body, idp_type, errors, stored)
        elif idp_type == "LDAP":
            settings, idp_secret = _ldap(body, errors, stored)
        else:
            settings = _external(body, algorithm, rules, errors)

    if errors:
        raise ValidationError(dict(errors))
    return TenantSpec(
        tenant_id=tenant_id, display_name=display_name, domain=domain, owner=owner, client_id=client_id,
        client_secret=client_secret, idp_type=idp_type, idp_settings=settings, idp_secret=idp_secret,
        algorithm=algorithm, signing_key=signing_key, rsa_key_size=rsa_key_size,
    )


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


def _text(obj: dict, name: str, errors: _Errors, *, path: str | None = None, required: bool = False,
          limit: int = 255, strip: bool = True, secret: bool = False) -> str | None:
    """A string field: None when absent or blank; a type, length or placeholder problem is recorded."""
    path = path or name
    value = obj.get(name)
    if value is None:
        if required:
            errors.add(path, "This field is required.")
        return None
    if not isinstance(value, str):
        errors.add(path, "Must be a string.")
        return None
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: valid JSON ("\ud800"), but nothing downstream can store it
            errors.add(path, "Must be valid Unicode text.")
            return None
    if strip:
        value = value.strip()
    if value == "":
        if required:
            errors.add(path, "This field is required.")
        return None
    if value == PLACEHOLDER:
        errors.add(path, f'"{PLACEHOLDER}" is the sample request\'s placeholder; enter the real value.')
        return None
    if len(value) > limit:
        errors.add(path, f"At most {limit} characters.")
        return None
    if not secret and any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        errors.add(path, "Control characters are not allowed.")
        return None
    return value


def _object(body: dict, name: str, errors: _Errors, *, required: bool) -> dict | None:
    value = body.get(name)
    if value is None:
        if required:
            errors.add(name, "This section is required.")
        return None
    if not isinstance(value, dict):
        errors.add(name, "Must be an object.")
        return None
    for extra in sorted(set(value) - SCHEMA_FIELDS[name]):
        errors.add(f"{name}.{extra}", f"Unknown field {extra!r}.")
    return value


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
    for extra in sorted(set(value) - SCHEMA_FIELDS["owner"]):
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


def _relational(body: dict, idp_type: str, errors: _Errors, stored: dict | None) -> tuple[dict, str | None]:
    """stored: the stored settings when a password is stored for this type (a blank one may keep it), else None."""
    schema = _object(body, "relationalSchema", errors, required=True)
    if schema is None:
        return {}, None
    url = _text(schema, "dataSourceURL", errors, path=jdbc.URL_FIELD, required=True, limit=2048)
    user = _text(schema, "dataSourceUserName", errors, path=jdbc.USER_FIELD, required=True, limit=128)
    password = _text(schema, "dataSourcePassword", errors, path=jdbc.PASSWORD_FIELD, required=stored is None,
                     limit=512, strip=False, secret=True)
    if url and secret_binding.url_has_password(url):
        errors.add(jdbc.URL_FIELD, secret_binding.URL_PASSWORD_MESSAGE)  # never parsed, echoed or stored
        url = None
    if stored is not None and (problem := secret_binding.refusal(
            stored=True, entered=password is not None,
            before=secret_binding.jdbc_target(stored.get("dataSourceURL"), stored.get("dataSourceUserName")),
            after=secret_binding.jdbc_target(url or schema.get("dataSourceURL"), user))):
        errors.add(jdbc.PASSWORD_FIELD, problem)
    if url:
        try:
            target = jdbc.parse_jdbc_url(url)
        except ValueError as exc:
            errors.add(jdbc.URL_FIELD, str(exc))
        else:
            if target.kind != jdbc.expected_kind(idp_type):
                errors.add(jdbc.URL_FIELD, f"identityProviderType is {idp_type} but this is not a "
                                           f"{'PostgreSQL' if idp_type == 'POSTGRES' else 'Oracle'} JDBC URL.")
    return {"dataSourceURL": url, "dataSourceUserName": user}, password


def _ldap(body: dict, errors: _Errors, stored: dict | None) -> tuple[dict, str | None]:
    """stored: the stored settings when a bind password is stored (a blank one may keep it), else None."""
    schema = _object(body, "ldapSchema", errors, required=True)
    if schema is None:
        return {}, None
    url = _text(schema, "ldapURLForDirectoryService", errors, path=ldap.URL_FIELD, required=True, limit=2048)
    domain = _text(schema, "directoryServiceDomainName", errors, path=ldap.DOMAIN_FIELD, required=True, limit=253)
    root = _text(schema, "directoryServiceRootDistinguishedName", errors, path=ldap.ROOT_DN_FIELD, required=True,
                 limit=1024)
    bind_dn = _text(schema, "bindDN", errors, path=ldap.BIND_DN_FIELD, limit=1024)
    password = _text(schema, "bindPassword", errors, path=ldap.PASSWORD_FIELD, limit=512, strip=False, secret=True)
    start_tls = schema.get("startTLS", False)
    if not isinstance(start_tls, bool):
        errors.add("ldapSchema.startTLS", "Must be true or false.")
        start_tls = False
    secret_set = stored is not None and bool(stored.get("bindDN"))
    if secret_set and bind_dn and (problem := secret_binding.refusal(
            stored=True, entered=password is not None,
            before=secret_binding.ldap_target(stored.get("ldapURLForDirectoryService"), bool(stored.get("startTLS")),
                                              stored.get("bindDN")),
            after=secret_binding.ldap_target(url or schema.get("ldapURLForDirectoryService"), start_tls, bind_dn))):
        errors.add(ldap.PASSWORD_FIELD, problem)
    if url and domain and root:
        # A stored password counts for the pairing rule: on update a blank password keeps it.
        check_password = password or ("(stored)" if secret_set and bind_dn else None)
        _, problems, _ = ldap.validate_settings(url, domain, root, bind_dn, check_password, start_tls)
        for path, message in problems.items():
            errors.add(path, message)
    settings = {"ldapURLForDirectoryService": url, "directoryServiceDomainName": domain,
                "directoryServiceRootDistinguishedName": root, "bindDN": bind_dn, "startTLS": start_tls}
    return settings, password if bind_dn else None


def _external(body: dict, algorithm: str, rules: Rules, errors: _Errors) -> dict:
    jwks = _url(body, "jwkSetUrl", "jwkSetUrl", rules, errors)
    issuer = _url(body, "issuer", "issuer", rules, errors)
    schema = _object(body, "oidcSchema", errors, required=True)
    auth = token = scope = None
    if schema is not None:
        auth = _url(schema, "authUrl", "oidcSchema.authUrl", rules, errors)
        token = _url(schema, "accessTokenUrl", "oidcSchema.accessTokenUrl", rules, errors)
        scope = _text(schema, "scope", errors, path="oidcSchema.scope", required=True, limit=1024)
        if scope and not re.fullmatch(r"[\x21\x23-\x5B\x5D-\x7E]+( [\x21\x23-\x5B\x5D-\x7E]+)*", scope):
            errors.add("oidcSchema.scope", "Scopes are space-separated tokens, e.g. \"openid profile\" (RFC 6749 3.3).")
    if algorithm.startswith("HS"):
        errors.add("supportAlgorithm", f"An EXTERNAL provider signs with its own RSA keys published in its JWKS; "
                                       f"{algorithm} cannot be verified that way. Choose RS256, RS384 or RS512.")
    return {"jwkSetUrl": jwks, "issuer": issuer, "oidcSchema": {"authUrl": auth, "accessTokenUrl": token,
                                                                "scope": scope}}


def _url(obj: dict, name: str, path: str, rules: Rules, errors: _Errors) -> str | None:
    value = _text(obj, name, errors, path=path, required=True, limit=2048)
    if value is None:
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        errors.add(path, "Not a valid URL.")
        return None
    allowed = ("https", "http") if rules.allow_http_urls else ("https",)
    if parts.scheme not in allowed:
        errors.add(path, "Use an https:// URL." if not rules.allow_http_urls else "Use an http(s):// URL.")
    elif not parts.hostname:
        errors.add(path, "The URL needs a host name.")
    elif "@" in parts.netloc:
        errors.add(path, "Credentials are not allowed in the URL.")
    elif parts.fragment:
        errors.add(path, "The URL cannot have a #fragment.")
    return value
