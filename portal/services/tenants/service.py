"""The tenant registry. register_tenant, update_tenant and set_tenant_active are the only ways a tenant changes;
the HTML form and the /v1 API both call them, and each commits the change with its audit entry."""
from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm  # noqa: F401 - sa.orm.defer
from flask import current_app
from sqlalchemy.exc import IntegrityError

from portal.clients.checks import CheckResult
from portal.extensions import db
from portal.idp import checks as idp_checks, registry
from portal.models import SigningKey, Tenant
from portal.models.base import utcnow
from portal.services.admin import audit
from portal.services.context import Actor
from portal.services.errors import CheckFailed, Conflict, NotFound, ValidationError
from portal.services.outbox import decommission, policy, store
from portal.services.tenants import fields as tenant_fields, schema_sharing, spec as tenant_spec
from portal.services.tenants.spec import TenantSpec
from portal.services.tokens import key_ring, signing_keys


@dataclass
class Registration:
    tenant: Tenant
    check: CheckResult | None  # None when the check was skipped
    warnings: list[str] = dataclasses.field(default_factory=list)  # e.g. a user-store schema shared (schema_sharing)


def rules() -> tenant_spec.Rules:
    config = current_app.config
    owners = policy.owner_rules()
    return tenant_spec.Rules(domain_suffix=config["TENANT_DOMAIN_SUFFIX"],
                             dotless_domains=bool(config["TENANT_DOTLESS_DOMAINS"]),
                             allow_http_urls=bool(config["OIDC_ALLOW_HTTP"]),
                             owner_required=owners.required, invite_refused=owners.invite_refused)


def apim_admin_password() -> str:
    """API Manager's tenant admin password for an invite-via-email owner (SOAP addTenant cannot invite): 144 random
    bits as 24 URL-safe characters, plus an upper-case letter, a digit and a symbol for WSO2's usual password rules.
    27 characters: WSO2's default user-store pattern, ^[\\S]{5,30}$, allows at most 30."""
    return (secrets.token_urlsafe(18) + secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") + secrets.choice("23456789")
            + secrets.choice("#$%&*+=?@!"))


def get_tenant(tenant_id: str) -> Tenant:
    tenant = db.session.execute(
        sa.select(Tenant).where(Tenant.tenant_key == str(tenant_id).lower())
    ).scalar_one_or_none()
    if tenant is None:
        raise NotFound(f"No tenant with id {tenant_id!r}.")
    return tenant


# --- changes ----------------------------------------------------------------------------------------------


def register_tenant(body: Any, actor: Actor, *, skip_check: bool = False) -> Registration:
    """Validate, check the identity provider for real, store the tenant and its first signing key, audit."""
    spec = tenant_spec.parse(body, rules())
    _refuse_duplicates(spec)
    warnings = schema_sharing.check(spec.idp_type, spec.idp_settings, spec.idp_secret)
    key = _key_for(spec)
    check = _check(spec, skip_check)
    tenant = Tenant(tenant_id=spec.tenant_id, tenant_key=spec.tenant_id.lower(), domain=spec.domain, active=True)
    _apply(tenant, spec)
    key_ring.install(tenant, key)
    _record_check(tenant, check)
    db.session.add(tenant)
    _commit_new(tenant, actor, "tenant.register", None)
    return Registration(tenant, check, warnings)


def update_tenant(tenant_id: str, body: Any, actor: Actor, *, skip_check: bool = False,
                  confirm_algorithm_change: bool = True) -> Registration:
    """Replace the tenant's mutable fields. A blank secret keeps the stored one; tenantId and domain stay.
    A new algorithm rotates the signing key (the old one stays passive for the grace period, key_ring.install);
    the edit form asks for confirm_algorithm_change first (the API's explicit new value is its own confirmation)."""
    tenant = get_tenant(tenant_id)
    decommission.refuse_change(tenant, "edited")
    spec = tenant_spec.parse(body, rules(), existing=existing_view(tenant))
    if spec.algorithm != tenant.support_algorithm and not confirm_algorithm_change:
        raise ValidationError({"supportAlgorithm": key_ring.change_warning(tenant, spec.algorithm)})
    warnings = _store_sharing(tenant, spec)
    before = _audit_view(tenant)
    owner_before = store.owner_fingerprint(tenant)
    new_key = None
    if spec.signing_key or spec.algorithm != tenant.support_algorithm:
        new_key = _key_for(spec)
    settings_changed = (spec.idp_type, spec.idp_settings) != (tenant.idp_type, tenant.idp_settings) or (
        spec.idp_secret is not None and spec.idp_secret != tenant.idp_secret)
    settings_changed = settings_changed or spec.algorithm != tenant.support_algorithm
    check = None
    if settings_changed and not skip_check:  # a rename must not depend on the provider being up
        check = _check(spec, False, stored_secret=tenant.idp_secret if spec.idp_type == tenant.idp_type else None)
    _apply(tenant, spec)
    if new_key is not None:
        key_ring.install(tenant, new_key)
    if check is not None:
        _record_check(tenant, check)
    elif settings_changed:
        _record_check(tenant, None)
    changes = audit.diff(before, _audit_view(tenant), tenant_fields.audit_secret_names())
    if changes:
        audit.record(actor, "tenant.update", "tenant", tenant.tenant_id, changes)
    store.enqueue_owner_change(tenant, owner_before, actor)  # the outbox job commits with the change
    db.session.commit()
    return Registration(tenant, check, warnings)


def set_tenant_active(tenant_id: str, active: bool, actor: Actor) -> Tenant:
    tenant = get_tenant(tenant_id)
    decommission.refuse_change(tenant, "activated" if active else "deactivated")
    if tenant.active == active:
        return tenant
    before = _audit_view(tenant)
    tenant.active = active
    audit.record(actor, "tenant.activate" if active else "tenant.deactivate", "tenant", tenant.tenant_id,
                 audit.diff(before, _audit_view(tenant), tenant_fields.audit_secret_names()))
    store.enqueue(tenant, "activate" if active else "deactivate", actor)
    db.session.commit()
    return tenant


def new_client_secret(tenant_id: str, actor: Actor) -> str:
    """Replace the client secret with a long random one made here (256 bits: nothing to guess, so a plain
    constant-time comparison is all a token request needs). Returned once; only its being set is shown later."""
    tenant = get_tenant(tenant_id)
    secret = secrets.token_urlsafe(32)
    tenant.client_secret, tenant.client_secret_weak = secret, False
    audit.record(actor, "tenant.client_secret_generate", "tenant", tenant.tenant_id,
                 {"clientSecret": {"changed": True}})
    db.session.commit()
    return secret


def recheck_tenant(tenant_id: str, actor: Actor) -> CheckResult:
    """Run the stored settings' check again; a pass marks an unverified tenant verified."""
    tenant = get_tenant(tenant_id)
    result = idp_checks.run(tenant.idp_type, tenant.idp_settings, tenant.idp_secret, tenant.support_algorithm,
                            client=(tenant.client_id, tenant.client_secret) if tenant.client_secret else None)
    before = _audit_view(tenant)
    _record_check(tenant, result)
    audit.record(actor, "tenant.check", "tenant", tenant.tenant_id,
                 {**audit.diff(before, _audit_view(tenant), tenant_fields.audit_secret_names()),
                  "result": {"before": None, "after": result.summary}})
    db.session.commit()
    return result


def test_connection(body: Any, tenant_id: str | None = None) -> CheckResult:
    """The form's "Test connection": validate what was typed, then connect, without storing anything.
    On an edit form a blank password means the stored one."""
    existing = None
    stored = None
    if tenant_id:
        tenant = get_tenant(tenant_id)
        existing = existing_view(tenant)
        stored = tenant.idp_secret
    try:
        spec = tenant_spec.parse(body, rules(), existing=existing)
    except ValidationError as exc:
        relevant = {k: v for k, v in exc.errors.items() if _is_idp_field(k)}
        if relevant:
            raise ValidationError(relevant) from None
        spec = None
    if spec is None:  # other fields are wrong, the provider's are fine: parse again leniently for the check
        spec = _lenient_spec(body, existing)
    secret = spec.idp_secret if spec.idp_secret is not None else stored
    return idp_checks.run(spec.idp_type, spec.idp_settings, secret, spec.algorithm, client=_client_of(spec))


# --- reading ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TenantQuery:
    q: str = ""
    idp_type: str = ""
    status: str = ""  # "", "active", "inactive", "unverified"
    after: str | None = None  # keyset cursors: tenant_key of the last / first row shown
    before: str | None = None
    limit: int = 50


DISPLAY_COLUMNS = (Tenant.tenant_id, Tenant.tenant_key, Tenant.display_name, Tenant.domain, Tenant.idp_type,
                   Tenant.support_algorithm, Tenant.active, Tenant.check_status, Tenant.created_at,
                   Tenant.decommission_requested_at)


@dataclass
class TenantPage:
    tenants: list  # Tenant objects, or rows of DISPLAY_COLUMNS when listed for display
    next_after: str | None
    prev_before: str | None


def list_tenants(query: TenantQuery, *, for_display: bool = False) -> TenantPage:
    """Keyset-paged on tenant_key: one query per page, as fast on page 2,000 as on page 1.

    The encrypted columns are never loaded here (a page of 50 would decrypt 150 values nobody sees); touching one
    raises instead of quietly issuing a query per row. for_display returns plain rows of DISPLAY_COLUMNS (plus
    `verified`) for pages, rather than Tenant objects, from a statement built once per shape of query (which
    filters, which direction, page size) with the values bound per call: building it cost more than running it."""
    limit = max(1, min(query.limit, 500))
    q = query.q.strip().lower()
    backwards = query.before is not None and query.after is None
    shape = (bool(q), bool(query.idp_type), query.status, "before" if backwards else
             ("after" if query.after is not None else ""), limit)
    params = {"pattern": q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%",
              "idp_type": query.idp_type, "cursor": query.before if backwards else query.after}
    if for_display:
        stmt = _DISPLAY_STATEMENTS.get(shape)
        if stmt is None:
            # Plain rows of the listed columns: no ORM identity map, no secrets, a fraction of the cost per row.
            base = sa.select(*DISPLAY_COLUMNS, (Tenant.check_status == "passed").label("verified"))
            stmt = _DISPLAY_STATEMENTS[shape] = _page_statement(base, shape)
        rows = list(db.session.execute(stmt, params).all())
    else:
        # The secrets stay encrypted and unloaded: a page reports only whether each is set (column properties).
        base = sa.select(Tenant).options(
            *(sa.orm.defer(column, raiseload=True) for column in (
                Tenant.client_secret, Tenant.owner_password, Tenant.idp_secret)),
            sa.orm.selectinload(Tenant.keys).defer(SigningKey.secret, raiseload=True),  # one query per page
        )
        rows = list(db.session.execute(_page_statement(base, shape), params).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
        return TenantPage(rows, next_after=rows[-1].tenant_key if rows else None,
                          prev_before=rows[0].tenant_key if more and rows else None)
    return TenantPage(rows, next_after=rows[-1].tenant_key if more and rows else None,
                      prev_before=rows[0].tenant_key if query.after is not None and rows else None)


_DISPLAY_STATEMENTS: dict[tuple, sa.Select] = {}  # at most 2 × 2 × 4 statuses × 3 directions × page sizes


def _page_statement(stmt: sa.Select, shape: tuple) -> sa.Select:
    """The filters, keyset cursor and order of a page, with bound parameters pattern, idp_type and cursor."""
    has_q, has_type, status, direction, limit = shape
    if has_q:
        pattern = sa.bindparam("pattern")
        stmt = stmt.where(sa.or_(Tenant.tenant_key.like(pattern, escape="\\"),
                                 Tenant.domain.like(pattern, escape="\\"),
                                 Tenant.name_key.like(pattern, escape="\\")))
    if has_type:
        stmt = stmt.where(Tenant.idp_type == sa.bindparam("idp_type"))
    if status == "active":
        stmt = stmt.where(Tenant.active.is_(True))
    elif status == "inactive":
        stmt = stmt.where(Tenant.active.is_(False))
    elif status == "unverified":
        stmt = stmt.where(Tenant.check_status != "passed")
    if direction == "before":
        stmt = stmt.where(Tenant.tenant_key < sa.bindparam("cursor")).order_by(Tenant.tenant_key.desc())
    else:
        if direction == "after":
            stmt = stmt.where(Tenant.tenant_key > sa.bindparam("cursor"))
        stmt = stmt.order_by(Tenant.tenant_key)
    return stmt.limit(limit + 1)


def to_api(tenant: Tenant) -> dict[str, Any]:
    """The tenant in the registration API's field names, secrets replaced by whether they are set."""
    body = _stored_view(tenant)
    body.update({
        "clientSecretWeak": tenant.client_secret_weak,
        "status": "active" if tenant.active else "inactive",
        "verified": tenant.verified,
        "connectionCheck": {"status": tenant.check_status, "summary": tenant.check_summary,
                            "checkedAt": iso(tenant.checked_at)},
        "createdAt": iso(tenant.created_at),
        "updatedAt": iso(tenant.updated_at),
    })
    key = tenant.active_key
    body["signingKey"] = None if key is None else {
        "kid": key.kid, "algorithm": key.algorithm, "bits": key.key_bits, "generated": key.generated,
        "publicKeyPem": key.public_pem, "createdAt": iso(key.created_at)}
    if tenant.decommission_requested_at is not None:
        body["decommissioning"] = {"requestedAt": iso(tenant.decommission_requested_at),
                                   "requestedBy": tenant.decommission_requested_by}
    body.update(registry.get(tenant.idp_type).api_view(tenant.idp_settings or {}, tenant.idp_secret_set))
    return body


def _stored_view(tenant: Tenant) -> dict[str, Any]:
    """The common fields stored in Tenant columns (services/tenant_fields.py), in API names; a secret shows only as
    its *Set flag (the column's `<name>_set`); the owner's fields nest under owner, or owner is null."""
    body: dict[str, Any] = {}
    owner: dict[str, Any] = {}
    has_owner = bool(tenant.owner_username)
    for spec in tenant_fields.stored_common():
        if spec.section == "owner" and not has_owner:
            continue  # nothing of an absent owner is read (list pages render thousands of tenants)
        holder = owner if spec.section == "owner" else body
        if spec.secret:
            holder[tenant_fields.set_flag(spec)[-1]] = getattr(tenant, f"{spec.attribute}_set")
        else:
            holder[spec.name] = getattr(tenant, spec.attribute)
    body["owner"] = owner if has_owner else None
    return body


def existing_view(tenant: Tenant) -> dict[str, Any]:
    """What the validator needs to know of a stored tenant: fixed identifiers, which secrets are set and where each
    goes (the provider settings, the owner's user name), so a blank secret is kept only for an unchanged target."""
    return {"tenantId": tenant.tenant_id, "tenantDomain": tenant.domain, "identityProviderType": tenant.idp_type,
            "clientSecretSet": tenant.client_secret_set, "idpSecretSet": tenant.idp_secret_set,
            "ownerPasswordSet": tenant.owner_password_set, "idpSettings": dict(tenant.idp_settings or {}),
            "ownerUsername": tenant.owner_username}


def count_tenants() -> dict[str, int]:
    rows = db.session.execute(sa.select(Tenant.active, sa.func.count()).group_by(Tenant.active)).all()
    counts = {bool(active): n for active, n in rows}
    return {"active": counts.get(True, 0), "inactive": counts.get(False, 0)}


# --- internals ----------------------------------------------------------------------------------------------


def iso(value: datetime | None) -> str | None:
    """UTC timestamps as the API writes them: ISO 8601 with Z."""
    return value.isoformat().replace("+00:00", "Z") if value else None


def _refuse_duplicates(spec: TenantSpec) -> None:
    clash = db.session.execute(
        sa.select(Tenant.tenant_key, Tenant.domain).where(
            sa.or_(Tenant.tenant_key == spec.tenant_id.lower(), Tenant.domain == spec.domain))
    ).all()
    errors = {}
    for key, domain in clash:
        if key == spec.tenant_id.lower():
            errors["tenantId"] = f"A tenant with id {spec.tenant_id!r} already exists (ids are compared ignoring case)."
        if domain == spec.domain:
            errors["tenantDomain"] = f"The domain {spec.domain} is already used by another tenant."
    if errors:
        raise Conflict(" ".join(errors.values()), errors)


def _key_for(spec: TenantSpec) -> signing_keys.KeyMaterial:
    try:
        return signing_keys.make_key(spec.algorithm, spec.signing_key, spec.rsa_key_size)
    except signing_keys.KeyProblem as exc:
        raise ValidationError({"signingKey": str(exc)}) from None


def _store_sharing(tenant: Tenant, spec: TenantSpec) -> list[str]:
    """On update: the schema-sharing rule, when where the user store is or how it is reached changes (a tenant that
    shared before the rule existed can still be renamed; its page warns about it)."""
    if (spec.idp_type, spec.idp_settings) == (tenant.idp_type, tenant.idp_settings) and spec.idp_secret is None:
        return []
    secret = spec.idp_secret if spec.idp_secret is not None else (
        tenant.idp_secret if spec.idp_type == tenant.idp_type else None)
    return schema_sharing.check(spec.idp_type, spec.idp_settings, secret, exclude=tenant.tenant_key)


def _check(spec: TenantSpec, skip: bool, stored_secret: str | None = None) -> CheckResult | None:
    if skip:
        return None
    secret = spec.idp_secret if spec.idp_secret is not None else stored_secret
    result = idp_checks.run(spec.idp_type, spec.idp_settings, secret, spec.algorithm, client=_client_of(spec))
    if not result.ok:
        raise CheckFailed(result)
    return result


def _client_of(spec: TenantSpec) -> tuple[str, str] | None:
    """The client credentials typed in, for a check that asks the provider for a test token (never stored by it)."""
    return (spec.client_id, spec.client_secret) if spec.client_id and spec.client_secret else None


def _record_check(tenant: Tenant, result: CheckResult | None) -> None:
    if result is None:
        tenant.check_status, tenant.check_summary = "unchecked", "Registered without a connection check."
    else:
        tenant.check_status = "passed" if result.ok else "failed"
        tenant.check_summary = result.summary[:2000]
    tenant.checked_at = utcnow() if result is not None else None


def _apply(tenant: Tenant, spec: TenantSpec) -> None:
    tenant.display_name = spec.display_name
    tenant.name_key = spec.display_name.lower()
    tenant.client_id = spec.client_id
    if spec.client_secret is not None:
        tenant.client_secret = spec.client_secret
        tenant.client_secret_weak = tenant_spec.client_secret_weakness(
            spec.client_secret, spec.client_id, tenant.tenant_id) is not None
    if spec.owner is None:
        tenant.owner_username = tenant.owner_email = tenant.owner_first_name = tenant.owner_last_name = None
        tenant.owner_provisioning = tenant.owner_password = tenant.apim_admin_password = None
    else:
        tenant.owner_username, tenant.owner_email = spec.owner.username, spec.owner.email
        tenant.owner_first_name, tenant.owner_last_name = spec.owner.first_name, spec.owner.last_name
        tenant.owner_provisioning = spec.owner.provisioning
        if spec.owner.provisioning == "invite-via-email":
            tenant.owner_password = None
            if tenant.apim_admin_password is None:  # kept across edits: API Manager already has it
                tenant.apim_admin_password = apim_admin_password()
        else:
            tenant.apim_admin_password = None
            if spec.owner.password is not None:
                tenant.owner_password = spec.owner.password
    if spec.idp_type != tenant.idp_type:
        tenant.idp_secret = None
    tenant.idp_type = spec.idp_type
    tenant.idp_settings = spec.idp_settings
    tenant.user_store = schema_sharing.store_key(spec.idp_type, spec.idp_settings)
    if spec.idp_secret is not None:
        tenant.idp_secret = spec.idp_secret
    elif not registry.get(spec.idp_type).keeps_secret(spec.idp_settings):
        tenant.idp_secret = None  # e.g. an anonymous LDAP bind: no password to keep
    tenant.support_algorithm = spec.algorithm


def _audit_view(tenant: Tenant) -> dict[str, Any]:
    key = tenant.active_key
    view = {tenant_fields.audit_name(f): getattr(tenant, f.attribute) for f in tenant_fields.stored_common()}
    view.update({"signingKeyId": key.kid if key else None, "status": "active" if tenant.active else "inactive",
                 "connectionCheck": tenant.check_status})
    view.update(registry.get(tenant.idp_type).audit_view(tenant.idp_settings or {}, tenant.idp_secret))
    return view


def _commit_new(tenant: Tenant, actor: Actor, action: str, before: dict | None) -> None:
    db.session.flush()
    audit.record(actor, action, "tenant", tenant.tenant_id,
                 audit.diff(before, _audit_view(tenant), tenant_fields.audit_secret_names()))
    store.enqueue(tenant, "create", actor)  # committed with the tenant: the products hear of it exactly when it exists
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()  # a concurrent registration won the race for the id or domain
        raise Conflict(f"A tenant with id {tenant.tenant_id!r} or domain {tenant.domain} already exists.",
                       {"tenantId": "A tenant with this id or domain already exists."}) from None


def _is_idp_field(path: str) -> bool:
    return path.split(".")[0] in {"identityProviderType", "supportAlgorithm", *registry.all_keys()}


def _lenient_spec(body: dict, existing: dict | None) -> TenantSpec:
    """Fill the non-provider fields with valid stand-ins so only the provider's settings decide the check."""
    stand_in = {**body, "tenantId": (existing or {}).get("tenantId", "check"), "clientId": "check",
                "clientSecret": "check", "displayName": None, "owner": None, "signingKey": None, "rsaKeySize": 2048}
    if existing is None:
        stand_in["tenantDomain"] = None
    else:
        stand_in.pop("tenantDomain", None)
    lenient = dataclasses.replace(rules(), owner_required=None, invite_refused=None)
    return tenant_spec.parse(stand_in, lenient, existing=existing)
