"""The token service: issue tokens per tenant (RFC 6749 client credentials and password grants) and validate
any tenant's token with that tenant's registered algorithm, issuer and keys.

Validation never trusts the token to say how it should be checked: the header's `alg` must equal the tenant's
registered algorithm (so `none`, or HS256 signed with an RSA public key, is refused before any key is used),
the key comes from the tenant's own active/passive keys by `kid` (or, for EXTERNAL tenants, from the issuer's
JWKS), and `exp`, `iat`, `iss` and `aud` are required. Every refusal has a reason code.
"""
from __future__ import annotations

import dataclasses
import hmac
import logging
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from flask import current_app

from portal.clients import user_stores
from portal.extensions import db
from portal.idp import registry
from portal.models import Tenant
from portal.models.base import utcnow
from portal.services.admin import audit
from portal.services.context import Actor
from portal.services.errors import Conflict, NotFound
from portal.services.tenants import service as tenants
from portal.services.tokens import entra as entra_rules, external_jwks, key_ring, signing_keys

log = logging.getLogger(__name__)

GRANT_TYPES = ("client_credentials", "password")
CLIENT_AUTHORITIES = ["ROLE_CLIENT"]
MAX_TOKEN_BYTES = 16384
# PyJWT refuses keys shorter than RFC 7518 allows instead of only warning (security.md section 2).
_JWT = jwt.PyJWT(options={"enforce_minimum_key_length": True})

# Reason codes of a refused token: stable strings that clients and the token lab show.
REASONS = {
    "malformed": "The token is not a well-formed JWS compact serialisation.",
    "unknown_tenant": "The token names no registered tenant (TENANTID claim or a tenant issuer).",
    "tenant_inactive": "The tenant is deactivated: its tokens are not accepted.",
    "algorithm_not_allowed": "The token's algorithm is not an algorithm tokens may use (for example 'none').",
    "algorithm_mismatch": "The token's algorithm is not the one registered for the tenant.",
    "missing_kid": "The token header has no kid, so no key of the tenant can be chosen.",
    "unknown_kid": "No active or passive key of the tenant has this kid.",
    "key_retired": "The key that signed the token is retired.",
    "jwks_unavailable": "The external issuer's JWKS could not be fetched and no earlier copy is cached.",
    "bad_signature": "The signature does not match: the token was altered or signed with another key.",
    "expired": "The token has expired (exp).",
    "not_yet_valid": "The token is not valid yet (nbf or iat in the future).",
    "wrong_issuer": "The issuer (iss) is not the tenant's issuer.",
    "wrong_audience": "The audience (aud) is not the expected audience.",
    "missing_claim": "A required claim (exp, iat, iss, aud) is missing.",
    "tenant_mismatch": "The TENANTID claim and the portal issuer URL (iss) name different tenants.",
    "invalid_claims": "A claim has the wrong type.",
    "bad_numeric_date": "exp, iat or nbf is not a JSON number between 0 and 253402300799 (RFC 7519 NumericDate, "
                        "up to the year 9999).",
    "key_rotated_out": "The provider no longer publishes the key that signed the token: it was rotated out of the "
                       "provider's JWKS, so its tokens are no longer accepted.",
    **entra_rules.REASONS,
}
NUMERIC_DATE_CLAIMS = ("exp", "iat", "nbf")
MAX_NUMERIC_DATE = 253402300799  # 9999-12-31T23:59:59Z


class OAuthError(Exception):
    """An RFC 6749 section 5.2 error response."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


@dataclass(frozen=True)
class IssuedToken:
    access_token: str = field(repr=False)
    expires_in: int
    tenant_id: str
    kid: str
    algorithm: str

    def response(self) -> dict[str, Any]:
        return {"access_token": self.access_token, "token_type": "Bearer", "expires_in": self.expires_in}


@dataclass(frozen=True)
class Verdict:
    valid: bool
    reason: str  # "ok" or a key of REASONS
    tenant_id: str | None = None
    header: dict[str, Any] = field(default_factory=dict)
    claims: dict[str, Any] = field(default_factory=dict)  # verified claims when valid, else the unverified ones
    decided_by: str | None = None  # the rule that decided, in a short sentence, when there is one to name

    @property
    def message(self) -> str:
        return "The token is valid." if self.valid else REASONS.get(self.reason, self.reason)

    def response(self) -> dict[str, Any]:
        return {"valid": self.valid, "reason": self.reason, "message": self.message, "tenantId": self.tenant_id,
                "header": self.header, "claims": self.claims, "decidedBy": self.decided_by}


def public_root(base_url: str) -> str:
    """The portal's public address: PUBLIC_BASE_URL wins over the request's, so issuers never depend on it.
    Without it, the request's address counts, and outside debug and testing the app answers only to TRUSTED_HOSTS
    (config.apply_trusted_hosts): a forged Host never gets this far."""
    return (current_app.config.get("PUBLIC_BASE_URL") or base_url).rstrip("/")


def root_from_request() -> bool:
    """Whether absolute URLs are built from the request (no PUBLIC_BASE_URL): such answers must not be cached."""
    return not current_app.config.get("PUBLIC_BASE_URL")


def issuer_for(tenant_id: str, base_url: str) -> str:
    """The portal's issuer URL for a tenant."""
    return f"{public_root(base_url)}/t/{tenant_id}"


# --- issuing -----------------------------------------------------------------------------------------------


def issue(client_id: str, client_secret: str, params: Mapping[str, str], base_url: str) -> IssuedToken:
    """POST /oauth/token: authenticate the client, run the grant, sign with the tenant's active key."""
    grant_type = params.get("grant_type") or ""
    if not grant_type:
        raise OAuthError("invalid_request", "grant_type is required.")
    if grant_type not in GRANT_TYPES:
        raise OAuthError("unsupported_grant_type", f"Use grant_type {' or '.join(GRANT_TYPES)}.")
    tenant = _authenticate_client(client_id, client_secret, params.get("TENANTID"))
    if not registry.issues_tokens(tenant.idp_type):
        raise OAuthError("unauthorized_client", f"Tokens of an {tenant.idp_type} tenant are issued by its own "
                                                "identity provider, not by this portal.")
    if grant_type == "client_credentials":
        return _sign(tenant, client_id, client_id, CLIENT_AUTHORITIES, base_url)
    username, password = params.get("username") or "", params.get("password") or ""
    if not username or not password:
        raise OAuthError("invalid_request", "The password grant needs username and password.")
    if len(username) > 255 or len(password) > 1024:
        raise OAuthError("invalid_grant", "The username or password is wrong.")
    checked = _check_user(db.session.get(Tenant, tenant.pk), username, password)
    if checked.unavailable:
        log.warning("password grant for tenant %s: %s", tenant.tenant_id, checked.reason)
        raise OAuthError("temporarily_unavailable", "The tenant's user store cannot be reached; try again later.",
                         503)
    if not checked.ok:
        log.info("password grant refused for tenant %s: %s", tenant.tenant_id, checked.reason)
        raise OAuthError("invalid_grant", "The username or password is wrong.")
    return _sign(tenant, username, client_id, checked.roles, base_url)


def lab_issue(tenant_id: str, actor: Actor, base_url: str) -> IssuedToken:
    """The token lab's test token: a client-credentials token for the tenant without its client secret, for an
    administrator who may already see everything about the tenant. Audited, since it is a working token."""
    found = key_ring.lookup(tenant_key=str(tenant_id).lower()[:64], limit=1)
    if not found:
        raise NotFound(f"No tenant with id {tenant_id!r}.")
    tenant = found[0]
    if not registry.issues_tokens(tenant.idp_type):
        raise Conflict(f"Tokens of an {tenant.idp_type} tenant are issued by its own identity provider; paste one "
                       "of them below to validate it.", {})
    if not tenant.active:
        raise Conflict("The tenant is deactivated: no token is issued for it.", {})
    issued = _sign(tenant, tenant.client_id, tenant.client_id, CLIENT_AUTHORITIES, base_url)
    audit.record(actor, "tenant.token_test_issue", "tenant", tenant.tenant_id,
                 {"kid": {"before": None, "after": issued.kid}})
    db.session.commit()
    return issued


def _authenticate_client(client_id: str, client_secret: str, tenant_hint: str | None) -> key_ring.TenantRow:
    """The tenant whose client id and secret these are, compared in constant time. Portal-made secrets are 256
    random bits, so a plain comparison is as strong as a hash check and costs microseconds per request."""
    if tenant_hint:
        candidates = key_ring.lookup(tenant_key=tenant_hint.lower()[:64])
    else:
        candidates = key_ring.lookup(client_id=client_id[:255])
        if len(candidates) > 1:
            raise OAuthError("invalid_request", "Several tenants use this client id: send TENANTID.")
    tenant = candidates[0] if candidates else None
    good = tenant is not None and hmac.compare_digest(tenant.client_id.encode(), client_id.encode())
    expected = tenant.client_secret if tenant is not None else secrets.token_urlsafe(32)
    good = hmac.compare_digest(expected.encode(), client_secret.encode()) and good
    if not good:
        raise OAuthError("invalid_client", "Client authentication failed.", 401)
    if not tenant.active:
        raise OAuthError("invalid_client", "The tenant is deactivated.", 401)
    return tenant


def _check_user(tenant: Tenant, username: str, password: str) -> user_stores.UserCheck:
    """The tenant's identity-provider family looks the user up in its store (database or directory)."""
    family = registry.get(tenant.idp_type)
    if not family.password_grant:
        return user_stores.UserCheck(False, username, reason=f"{tenant.idp_type} has no password grant")
    return family.user_lookup(tenant.idp_type, tenant.idp_settings or {}, tenant.idp_secret, username, password,
                              current_app.config)


def _sign(tenant: key_ring.TenantRow, subject: str, client_id: str, authorities: list[str],
          base_url: str) -> IssuedToken:
    key = tenant.key  # the active key; its secret is decrypted only if this process has not parsed it yet
    if key is None or key.algorithm != tenant.algorithm:
        raise OAuthError("server_error", "The tenant has no active signing key.", 500)
    cfg = current_app.config
    now = int(time.time())
    lifetime = int(cfg["TOKEN_LIFETIME"])
    claims = {
        "iss": issuer_for(tenant.tenant_id, base_url), "sub": subject, "aud": cfg["TOKEN_AUDIENCE"],
        "iat": now, "nbf": now, "exp": now + lifetime, "jti": uuid.uuid4().hex,
        "TENANTID": tenant.tenant_id, "user_name": subject, "authorities": list(authorities), "client_id": client_id,
    }
    token = _JWT.encode(claims, key_ring.signing_object(key), algorithm=key.algorithm, headers={"kid": key.kid})
    return IssuedToken(token, lifetime, tenant.tenant_id, key.kid, key.algorithm)


# --- validating --------------------------------------------------------------------------------------------


def validate(token: str, base_url: str, *, audience: str | None = None, tenant_hint: str | None = None) -> Verdict:
    """Check any tenant's token. The tenant comes from the TENANTID claim, else from a portal issuer URL, else
    from `tenant_hint`; it then decides everything else."""
    token = (token or "").strip()
    if token.lower().startswith("bearer "):
        token = token[7:].strip()
    if not token or len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
        return Verdict(False, "malformed")
    try:  # one parse for the header and the claims (PyJWT checks each base64url character in Python)
        parsed = _JWT.decode_complete(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return Verdict(False, "malformed")
    header, unverified = parsed["header"], parsed["payload"]
    header = {k: v for k, v in header.items() if isinstance(k, str)}
    kid = header.get("kid")
    tenant = _tenant_of(unverified, base_url, tenant_hint, kid if isinstance(kid, str) else "")
    if tenant is None:
        return Verdict(False, "unknown_tenant", None, header, unverified)

    def refused(reason: str, decided_by: str | None = None) -> Verdict:
        return Verdict(False, reason, tenant.tenant_id, header, unverified, decided_by)

    if "TENANTID" in unverified:  # present: it must name this tenant, and agree with a portal issuer URL
        claimed, named_by_issuer = unverified["TENANTID"], _issuer_tenant(unverified, base_url)
        if not isinstance(claimed, str) or claimed.lower() != tenant.tenant_key or (
                named_by_issuer is not None and named_by_issuer.lower() != tenant.tenant_key):
            return refused("tenant_mismatch")
    if not tenant.active:
        return refused("tenant_inactive")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in signing_keys.HMAC_MIN_BYTES and not signing_keys.is_rsa(alg):
        return refused("algorithm_not_allowed")
    if alg != tenant.algorithm and _previous_algorithm_key(tenant, alg):
        tenant = dataclasses.replace(tenant, algorithm=alg)  # checked with the passive key's own algorithm only
    if alg != tenant.algorithm:
        return refused("algorithm_mismatch")
    if not isinstance(kid, str) or not kid:
        return refused("missing_kid")
    if not all(_numeric_date(unverified[name]) for name in NUMERIC_DATE_CLAIMS if name in unverified):
        return refused("bad_numeric_date")

    if registry.issues_tokens(tenant.idp_type):
        plan = _own_plan(tenant, base_url, audience)
    else:  # the provider's JWKS, not the portal's keys
        plan = _external_plan(db.session.get(Tenant, tenant.pk), kid, header, unverified, audience)
    if plan.key is None:
        return refused(plan.reason, plan.decided_by)
    try:
        claims = _JWT.decode(
            token, plan.key, algorithms=[tenant.algorithm], audience=plan.audience, issuer=plan.issuer,
            leeway=min(int(current_app.config["TOKEN_LEEWAY"]), 60),
            options={"require": ["exp", "iat", "iss", "aud"], "strict_aud": False},
        )
    except jwt.PyJWTError as exc:
        reason = _reason_of(exc)
        return refused(reason, plan.explain(reason))
    return Verdict(True, "ok", tenant.tenant_id, header, claims, plan.decided_by)


@dataclass(frozen=True)
class _Plan:
    """The key, issuer and audience a token is checked with, or (key None) the reason it is refused first."""

    key: Any
    reason: str = ""
    issuer: str | None = None
    audience: str | list[str] | None = None
    decided_by: str | None = None
    entra: entra_rules.Plan | None = None

    def explain(self, reason: str) -> str | None:
        return self.entra.explain(reason) if self.entra is not None else self.decided_by


def _own_plan(tenant: key_ring.TenantRow, base_url: str, audience: str | None) -> _Plan:
    key, reason = _own_key(tenant)
    issuer, aud = issuer_for(tenant.tenant_id, base_url), audience or current_app.config["TOKEN_AUDIENCE"]
    own = tenant.key
    decided = f"the tenant's {own.status_at(utcnow())} key {own.kid}, issuer {issuer}, audience {aud}" if own else None
    return _Plan(key, reason, issuer, aud, decided)


def _external_plan(tenant: Tenant, kid: str, header: dict, claims: dict, audience: str | None) -> _Plan:
    """An EXTERNAL tenant's token: the issuer's JWKS; with the Entra ID preset, Entra's rules first
    (services/tokens/entra.py), then the key's own issuer member."""
    settings = tenant.idp_settings or {}
    preset = settings.get("entraId")
    if not preset:
        found = external_jwks.key_for(tenant, kid)
        issuer, aud = settings.get("issuer") or "", audience or tenant.client_id
        return _Plan(found.key, found.reason, issuer, aud,
                     f"key {kid} of {settings.get('jwkSetUrl')}, issuer {issuer}, audience {aud}")
    rules = entra_rules.plan(preset, header, claims, None, audience)
    if rules.reason and rules.reason != "directory_unresolved":
        return _Plan(None, rules.reason, decided_by=rules.decided_by)
    found = external_jwks.key_for(tenant, kid)
    if rules.reason:  # a verified domain: the refresh that found the key also resolved the directory id
        rules = entra_rules.plan(preset, header, claims, found.directory_tid, audience)
        if rules.reason:
            return _Plan(None, rules.reason, decided_by=rules.decided_by)
    if found.key is None:
        return _Plan(None, found.reason, decided_by=f"key {kid} of {settings.get('jwkSetUrl')}")
    if refusal := entra_rules.key_issuer_refusal(found.key_issuer, rules, preset["authority"]):
        return _Plan(None, "key_issuer_mismatch", decided_by=refusal)
    return _Plan(found.key, "", rules.issuer, rules.audiences, rules.decided_by, rules)


def _numeric_date(value: Any) -> bool:
    """A JSON number (not a string, not true/false) in sane bounds: PyJWT accepts 1e20 as an exp (valid for ever),
    and refuses "1700000000" only as a generic decode error."""
    return (isinstance(value, int | float) and not isinstance(value, bool) and value == value
            and 0 <= value <= MAX_NUMERIC_DATE)


def _previous_algorithm_key(tenant: key_ring.TenantRow, alg: str) -> bool:
    """The token's kid is a passive key of the algorithm the tenant had before an algorithm change on edit: it
    keeps validating, with that algorithm only, until its grace period ends (key_ring.install)."""
    key = tenant.key
    return (registry.issues_tokens(tenant.idp_type) and key is not None and key.algorithm == alg
            and key.status_at(utcnow()) == "passive")


def _own_key(tenant: key_ring.TenantRow) -> tuple[Any, str]:
    """The verifying key for the kid the lookup joined: only an active or passive key in its grace period."""
    key = tenant.key
    if key is None:
        return None, "unknown_kid"
    status = key.status_at(utcnow())
    if status not in key_ring.USABLE:
        return None, "key_retired"
    if key.algorithm != tenant.algorithm:
        return None, "algorithm_mismatch"
    return key_ring.verifying_object(key), ""


def _tenant_of(claims: dict[str, Any], base_url: str, hint: str | None, kid: str) -> key_ring.TenantRow | None:
    claimed, named_by_issuer = claims.get("TENANTID"), _issuer_tenant(claims, base_url)
    name = claimed if isinstance(claimed, str) and claimed else named_by_issuer or hint
    if not name or len(name) > 64:
        return None
    found = key_ring.lookup(tenant_key=name.lower(), kid=kid, limit=1)
    return found[0] if found else None


def _issuer_tenant(claims: dict[str, Any], base_url: str) -> str | None:
    """The tenant id in a portal issuer URL (".../t/<tenantId>"), if the iss claim is one."""
    iss, prefix = claims.get("iss"), issuer_for("", base_url)
    return iss[len(prefix):] or None if isinstance(iss, str) and iss.startswith(prefix) else None


def _reason_of(exc: jwt.PyJWTError) -> str:
    """PyJWT's exception classes, most specific first, to reason codes."""
    for kind, reason in ((jwt.ExpiredSignatureError, "expired"), (jwt.ImmatureSignatureError, "not_yet_valid"),
                         (jwt.InvalidIssuerError, "wrong_issuer"), (jwt.InvalidAudienceError, "wrong_audience"),
                         (jwt.MissingRequiredClaimError, "missing_claim"), (jwt.InvalidSignatureError, "bad_signature"),
                         (jwt.InvalidAlgorithmError, "algorithm_mismatch"), (jwt.InvalidKeyError, "algorithm_mismatch"),
                         (jwt.DecodeError, "malformed")):
        if isinstance(exc, kind):
            return reason
    return "invalid_claims"


# --- publishing --------------------------------------------------------------------------------------------


def jwks_document(tenant_id: str) -> dict[str, Any]:
    """/t/<tenantId>/.well-known/jwks.json: the tenant's RSA public keys that still validate."""
    return key_ring.published_jwks(_issuing_tenant(tenant_id))


def discovery_document(tenant_id: str, base_url: str) -> dict[str, Any]:
    """/t/<tenantId>/.well-known/openid-configuration, enough for a JOSE library or API gateway to find keys."""
    tenant = _issuing_tenant(tenant_id)
    issuer = issuer_for(tenant.tenant_id, base_url)
    root = public_root(base_url)
    return {
        "issuer": issuer,
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "token_endpoint": f"{root}/oauth/token",
        "grant_types_supported": list(GRANT_TYPES) if registry.get(tenant.idp_type).password_grant
        else ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [tenant.support_algorithm],
        "token_endpoint_auth_signing_alg_values_supported": [tenant.support_algorithm],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "TENANTID", "user_name",
                             "authorities", "client_id"],
    }


def _issuing_tenant(tenant_id: str) -> Tenant:
    tenant = tenants.get_tenant(tenant_id)
    if not tenant.active:  # its tokens are refused, so nothing is published that would help verify them
        raise NotFound(f"Tenant {tenant.tenant_id} is deactivated.")
    if not registry.issues_tokens(tenant.idp_type):
        issuer = (tenant.idp_settings or {}).get("issuer") or "its provider"
        raise NotFound(f"Tenant {tenant.tenant_id} uses an {tenant.idp_type} identity provider; its keys are "
                       f"published by {issuer}.")
    return tenant
