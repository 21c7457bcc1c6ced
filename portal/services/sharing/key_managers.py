"""Is the tenant's key manager there? The WSO2-IS-7 key manager API Manager should have made for a synced tenant,
checked through API Manager's admin REST API (`/api/am/admin/v4/key-managers`, wso2-apis.md §7), and repaired
where that is safe.

With `auto_configure_key_manager` (and `skip_create_resident_key_manager`), ISTenantSyncListener.onTenantCreate adds
one key manager per new tenant (apim-km-wso2is 2.x, WSO2IS7ConnectorConfiguration.getKeyManagerConfigurationDTO):
type WSO2-IS-7, MutualTLS, ServerWide, `IdentityUser = <tenant admin>@<domain>`, endpoints under
`<identity_server_base_url>/t/<domain>/`. Nothing in WSO2 checks that it did; a failure is only logged. So the
portal asks, after each create or sync job and on demand:

ok           exactly one WSO2-IS-7 key manager with those settings;
missing      none (repairable: the portal posts the connector's own DTO, unless the name is taken);
duplicate    more than one: reported, never deleted;
mismatch     one, with other settings: reported (which ones), never edited;
not_expected auto-configure is off (or sharing is off): no call is made;
unverifiable the portal holds no password of the tenant's admin in API Manager, or the tenant is inactive;
error        API Manager could not be asked, or refused.

Key managers live in the tenant, so the calls run as the tenant's admin `<owner>@<domain>` with the one password
the portal holds for that account in API Manager: the owner's password (inline-password owners, entered for both
products) or the generated API Manager admin password (invite-via-email owners). Never any other secret. A check is
stored (one row per tenant) and not audited; a repair is audited.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import current_app

from portal.clients.apim_admin import KeyManager, KeyManagerSummary
from portal.clients.errors import AlreadyExists, UpstreamError
from portal.extensions import db
from portal.models import KeyManagerCheck, SyncState, Tenant
from portal.models.base import utcnow
from portal.models.outbox import KEY_MANAGER_STATES
from portal.services.admin import audit
from portal.services.context import Actor
from portal.services.errors import Conflict
from portal.services.sharing import connections, service as sharing
from portal.services.sharing.connections import NotConfigured
from portal.services.tenants import service as tenants

log = logging.getLogger(__name__)

IS7_TYPE = "WSO2-IS-7"
RESIDENT_NAME = "Resident Key Manager"  # APIConstants.KeyManager.DEFAULT_KEY_MANAGER: the connector's name too
LABELS = {"ok": "ok", "missing": "missing", "duplicate": "duplicate", "mismatch": "settings differ",
          "unverifiable": "cannot be verified", "error": "could not be checked", "not_expected": "not expected"}
NAME_TAKEN = "holds the connector's name"  # in a "missing" detail: a repair's create would clash
PROBLEMS = ("missing", "duplicate", "mismatch")  # what a person must look at (reconcile lists them)
# The endpoints the connector writes, by additional property, as paths under <IS base>/t/<domain>/, with the
# KeyManagerDTO's own field for each (API Manager may answer either).
ENDPOINTS: dict[str, tuple[str, str | None]] = {
    "client_registration_endpoint": ("api/identity/oauth2/dcr/v1.1/register", "clientRegistrationEndpoint"),
    "token_endpoint": ("oauth2/token", "tokenEndpoint"),
    "introspection_endpoint": ("oauth2/introspect", "introspectionEndpoint"),
    "revoke_endpoint": ("oauth2/revoke", "revokeEndpoint"),
    "userinfo_endpoint": ("scim2/Me", "userInfoEndpoint"),
    "authorize_endpoint": ("oauth2/authorize", "authorizeEndpoint"),
    "api_resource_management_endpoint": ("api/server/v1/api-resources", None),
    "is7_roles_endpoint": ("scim2/v2/Roles", None),
}
JWKS_PATH = "oauth2/jwks"
SCOPES_PATH = "api/identity/oauth2/v1.0/scopes"
GRANT_TYPES = ["refresh_token", "urn:ietf:params:oauth:grant-type:saml2-bearer", "password", "client_credentials",
               "iwa:ntlm", "urn:ietf:params:oauth:grant-type:device_code", "authorization_code", "account_switch",
               "urn:ietf:params:oauth:grant-type:token-exchange", "organization_switch",
               "urn:ietf:params:oauth:grant-type:jwt-bearer"]


# --- What is expected ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """The key manager a tenant should have: from the sharing settings and the tenant's owner."""

    domain: str
    identity_user: str  # <owner>@<domain>
    identity_server_base_url: str

    def url(self, path: str) -> str:
        return f"{self.identity_server_base_url.rstrip('/')}/t/{self.domain}/{path}"


def connector_dto(expected: Expected) -> dict[str, Any]:
    """The KeyManagerDTO of WSO2IS7ConnectorConfiguration.getKeyManagerConfigurationDTO (apim-km-wso2is 2.x), as the
    admin REST API takes it: what API Manager itself would have made for this tenant."""
    endpoints = {name: expected.url(path) for name, (path, _) in ENDPOINTS.items() if not name.startswith(("api_",
                                                                                                          "is7_"))}
    endpoints.update(display_token_endpoint=expected.url("oauth2/token"),
                     display_revoke_endpoint=expected.url("oauth2/revoke"), scope_endpoint=expected.url(SCOPES_PATH))
    issuer, jwks = expected.url("oauth2/token"), expected.url(JWKS_PATH)
    return {
        "name": RESIDENT_NAME, "displayName": "IS7 as Default Key Manager",
        "description": "Default key manager created for IS7 when tenant synchronization is enabled",
        "type": IS7_TYPE, "enabled": True, "tokenType": "DIRECT",
        "permissions": {"permissionType": "PUBLIC", "roles": []}, "allowedOrganizations": ["ALL"],
        "clientRegistrationEndpoint": endpoints["client_registration_endpoint"],
        "introspectionEndpoint": endpoints["introspection_endpoint"], "tokenEndpoint": endpoints["token_endpoint"],
        "displayTokenEndpoint": endpoints["display_token_endpoint"], "revokeEndpoint": endpoints["revoke_endpoint"],
        "displayRevokeEndpoint": endpoints["display_revoke_endpoint"],
        "userInfoEndpoint": endpoints["userinfo_endpoint"], "authorizeEndpoint": endpoints["authorize_endpoint"],
        "scopeManagementEndpoint": endpoints["scope_endpoint"], "issuer": issuer,
        "endpoints": [{"name": name, "value": value} for name, value in endpoints.items()],
        "certificates": {"type": "JWKS", "value": jwks},
        "availableGrantTypes": list(GRANT_TYPES), "enableTokenGeneration": True, "enableOAuthAppCreation": True,
        "enableMapOAuthConsumerApps": True, "enableSelfValidationJWT": True,
        "additionalProperties": {
            "TenantDomain": expected.domain, "Authentication": "MutualTLS", "MutualTLSOptions": "ServerWide",
            "IdentityUser": expected.identity_user,
            "api_resource_management_endpoint": expected.url(ENDPOINTS["api_resource_management_endpoint"][0]),
            "is7_roles_endpoint": expected.url(ENDPOINTS["is7_roles_endpoint"][0]), "client_secret": "",
            **endpoints, "issuer": issuer, "certificate_type": "JWKS", "certificate_value": jwks,
            "grant_types": list(GRANT_TYPES), "enable_oauth_app_creation": True,
            "enable_map_oauth_consumer_apps": True, "enable_token_generation": True, "self_validate_jwt": True,
        },
    }


# --- Judging what API Manager holds --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    status: str
    detail: str
    key_manager_id: str | None = None
    repairable: bool = False


def _endpoint(manager: KeyManager, name: str, field_name: str | None) -> str | None:
    """An endpoint as the additional property, else the DTO's own field, else the `endpoints` list."""
    value = manager.endpoint(name)
    if value:
        return value
    raw: Mapping[str, Any] = manager.raw or {}
    if field_name and isinstance(raw.get(field_name), str) and raw[field_name]:
        return raw[field_name]
    for item in raw.get("endpoints") or []:
        if isinstance(item, dict) and item.get("name") == name and isinstance(item.get("value"), str):
            return item["value"]
    return None


def _jwks(manager: KeyManager) -> str | None:
    value = manager.endpoint("certificate_value")
    if value:
        return value
    certificates = (manager.raw or {}).get("certificates")
    if isinstance(certificates, dict) and isinstance(certificates.get("value"), str):
        return certificates["value"]
    return None


def differences(manager: KeyManager, expected: Expected) -> list[str]:
    """What differs from the connector's settings, one phrase each."""
    found: list[str] = []
    if not manager.enabled:
        found.append("it is disabled")
    if manager.authentication != "MutualTLS":
        found.append(f"Authentication is {manager.authentication}, not MutualTLS")
    if manager.mutual_tls_options != "ServerWide":
        found.append(f"MutualTLSOptions is {manager.mutual_tls_options or 'not set'}, not ServerWide")
    if manager.identity_user != expected.identity_user:
        found.append(f"IdentityUser is {manager.identity_user or 'not set'}, not {expected.identity_user}")
    for name, (path, field_name) in ENDPOINTS.items():
        value, want = _endpoint(manager, name, field_name), expected.url(path)
        if value != want:
            found.append(f"{name} is {value or 'not set'}, not {want}")
    jwks, want = _jwks(manager), expected.url(JWKS_PATH)
    if jwks != want:
        found.append(f"the JWKS endpoint is {jwks or 'not set'}, not {want}")
    return found


def _named(items: Iterable[KeyManagerSummary]) -> str:
    return ", ".join(f"{m.name} ({m.type})" for m in items) or "none"


def judge(listed: list[KeyManagerSummary], one: KeyManager | None, expected: Expected) -> Verdict:
    """The verdict from the tenant's key manager list and, when there is exactly one WSO2-IS-7, that one in full."""
    is7 = [m for m in listed if m.type == IS7_TYPE]
    if not is7:
        taken = any(m.name == RESIDENT_NAME for m in listed)
        detail = (f"API Manager has no {IS7_TYPE} key manager for {expected.domain} (its key managers: "
                  f"{_named(listed)}).")
        if taken:
            detail += (f" A {RESIDENT_NAME} of another type {NAME_TAKEN}: "
                       "skip_create_resident_key_manager was not in effect when the tenant was created. Remove or "
                       "rename that key manager in API Manager's admin portal, then repair.")
        else:
            detail += (" auto_configure_key_manager or skip_create_resident_key_manager was probably not in effect "
                       "in API Manager when the tenant was created: check its deployment.toml (Sharing page).")
        return Verdict("missing", detail, repairable=not taken)
    if len(is7) > 1:
        return Verdict("duplicate", f"API Manager has {len(is7)} {IS7_TYPE} key managers for {expected.domain} "
                                    f"({', '.join(f'{m.name} [{m.id}]' for m in is7)}): keep one and delete the "
                                    "others in API Manager's admin portal; the portal changes none.")
    if one is None:  # deleted between the list and the read
        return Verdict("missing", f"The {IS7_TYPE} key manager of {expected.domain} disappeared while it was read.",
                       repairable=False)
    found = differences(one, expected)
    if found:
        return Verdict("mismatch", f"{one.name} differs from what API Manager's connector makes: "
                                   f"{'; '.join(found)}. Correct it in API Manager's admin portal; the portal "
                                   "edits no key manager.", one.id)
    return Verdict("ok", f"{one.name} ({IS7_TYPE}) signs in to IS 7 by mutual TLS as {expected.identity_user}, "
                         f"endpoints under {expected.url('')}.", one.id)


# --- Asking API Manager --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    """A tenant's facts for one check, read in a short transaction (no session stays open across the calls)."""

    tenant_pk: int
    tenant_id: str
    domain: str
    active: bool
    owner: str | None
    password: str | None = field(repr=False)
    password_source: str  # for the detail: which password the portal holds


def _target(tenant: Tenant) -> _Target:
    invite = tenant.owner_provisioning == "invite-via-email"
    password = tenant.apim_admin_password if invite else tenant.owner_password
    source = "the API Manager admin password generated for it" if invite else "the owner's password"
    return _Target(tenant.id, tenant.tenant_id, tenant.domain, tenant.active, tenant.owner_username, password, source)


def _verdict(target: _Target, expectation: sharing.KeyManagerExpectation) -> tuple[Verdict, Expected | None]:
    if not expectation.expected:
        return Verdict("not_expected", expectation.reason), None
    if not target.owner:
        return Verdict("unverifiable", "The tenant has no owner, so API Manager has no tenant admin to ask as."), None
    expected = Expected(target.domain, f"{target.owner}@{target.domain}", expectation.identity_server_base_url)
    if not target.active:
        return Verdict("unverifiable", "The tenant is deactivated: API Manager lets no user of it sign in, so its "
                                       "key managers cannot be read."), expected
    if not target.password:
        return Verdict("unverifiable", f"The portal holds no password of {expected.identity_user} in API Manager "
                                       f"({target.password_source} is not stored), so it cannot read the tenant's "
                                       "key managers."), expected
    if not expected.identity_server_base_url:
        return Verdict("error", "IS 7's base URL is not known: set identity_server_base_url on the Sharing page or "
                                "the IS 7 connection."), expected
    try:
        client = connections.apim_client()
    except (NotConfigured, UpstreamError, ValueError) as exc:
        return Verdict("error", f"API Manager cannot be asked: {getattr(exc, 'message', None) or exc}"), expected
    try:
        listed = client.list_key_managers(expected.identity_user, target.password)
        is7 = [m for m in listed if m.type == IS7_TYPE]
        one = client.get_key_manager(is7[0].id, expected.identity_user, target.password) if len(is7) == 1 else None
    except UpstreamError as exc:
        return Verdict("error", f"API Manager could not be asked for {expected.identity_user}'s key managers: "
                                f"{exc}"), expected
    finally:
        client.close()
    return judge(listed, one, expected), expected


def _store(tenant_pk: int, verdict: Verdict, *, repaired: bool = False) -> KeyManagerCheck:
    """Upsert the tenant's row (another check may have written it meanwhile: then this one wins)."""
    now = utcnow()
    for attempt in range(2):
        row = db.session.get(KeyManagerCheck, tenant_pk, populate_existing=True)
        if row is None:
            row = KeyManagerCheck(tenant_id=tenant_pk)
            db.session.add(row)
        row.status, row.detail, row.key_manager_id, row.checked_at = (verdict.status, verdict.detail[:4000],
                                                                      verdict.key_manager_id, now)
        if repaired:
            row.repaired_at = now
        try:
            db.session.flush()
            return row
        except sa.exc.IntegrityError:
            db.session.rollback()
            if attempt:
                raise
    raise AssertionError("unreachable")


def _check(tenant: Tenant) -> tuple[KeyManagerCheck, Verdict, Expected | None, _Target]:
    target = _target(tenant)
    expectation = sharing.key_manager_expectation()
    db.session.commit()  # end the read transaction: nothing stays open across the calls to API Manager
    verdict, expected = _verdict(target, expectation)
    row = _store(target.tenant_pk, verdict)
    db.session.commit()
    return row, verdict, expected, target


def check(tenant_id: str) -> KeyManagerCheck:
    """Ask API Manager about the tenant (registration id) and store the result; not audited (it changes nothing)."""
    row, _, _, _ = _check(tenants.get_tenant(tenant_id))
    return row


def repair(tenant_id: str, actor: Actor) -> KeyManagerCheck:
    """Create the missing key manager with the connector's DTO, as the tenant's admin; audited. Only for "missing"
    with auto-configure on and the name free (Conflict otherwise): a duplicate or a mismatch is never touched."""
    tenant = tenants.get_tenant(tenant_id)
    row, verdict, expected, target = _check(tenant)
    if verdict.status != "missing" or not verdict.repairable or expected is None or not target.password:
        raise Conflict(f"Nothing to repair safely: the key manager is {LABELS[row.status]}. {row.detail}")
    try:
        client = connections.apim_client()
    except (NotConfigured, UpstreamError, ValueError) as exc:
        raise Conflict(f"API Manager cannot be asked: {getattr(exc, 'message', None) or exc}") from None
    try:
        created = client.create_key_manager(connector_dto(expected), expected.identity_user, target.password)
    except AlreadyExists as exc:
        raise Conflict(f"API Manager already has a key manager named {RESIDENT_NAME} in {expected.domain} ({exc}): "
                       "check again.") from None
    except UpstreamError as exc:
        _store(target.tenant_pk, Verdict("error", f"API Manager refused to create the key manager: {exc}"))
        db.session.commit()
        raise Conflict(f"API Manager refused to create the key manager: {exc}") from None
    finally:
        client.close()
    after, _ = _verdict(target, sharing.key_manager_expectation())
    row = _store(target.tenant_pk, after, repaired=True)
    audit.record(actor, "tenant.key_manager_repair", "tenant", target.tenant_id,
                 {"key_manager": {"before": "missing", "after": after.status},
                  "key_manager_id": {"before": None, "after": created.id}})
    db.session.commit()
    return row


def after_delivery(tenant_pk: int) -> None:
    """The worker's hook after a create or sync job completed: check, store, log. Never raises: the delivery is
    already recorded and a failed check must not undo it. Off with KEY_MANAGER_CHECK_AFTER_SYNC = False; when no key
    manager is expected and the tenant was never checked, nothing is written (no extra transaction per job)."""
    if not current_app.config.get("KEY_MANAGER_CHECK_AFTER_SYNC", True):
        return
    try:
        if not sharing.key_manager_expectation().expected and db.session.get(KeyManagerCheck, tenant_pk) is None:
            db.session.rollback()
            return
        tenant = db.session.get(Tenant, tenant_pk)
        if tenant is None:
            db.session.rollback()
            return
        row, _, _, _ = _check(tenant)
        if row.status in PROBLEMS or row.status == "error":
            log.warning("key manager of tenant %s: %s: %s", tenant_pk, row.status, row.detail)
    except Exception:  # noqa: BLE001 - the hook's promise: the delivery stands whatever happens here
        log.exception("key manager check of tenant %s failed", tenant_pk)
        db.session.rollback()


# --- Many tenants --------------------------------------------------------------------------------------------------


@dataclass
class Summary:
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[tuple[str, str, str]] = field(default_factory=list)  # (tenant id, status, detail)
    repaired: list[str] = field(default_factory=list)

    def add(self, tenant_id: str, row: KeyManagerCheck) -> None:
        self.counts[row.status] = self.counts.get(row.status, 0) + 1
        if row.status not in ("ok", "not_expected"):
            self.problems.append((tenant_id, row.status, row.detail or ""))


    @property
    def problem_count(self) -> int:
        return len(self.problems)

    def lines(self) -> list[str]:
        """The summary as text, for the CLI: counts first, then one line per tenant that needs a look."""
        total = sum(self.counts.values())
        counts = ", ".join(f"{status} {self.counts[status]}" for status in KEY_MANAGER_STATES
                           if status in self.counts) or "nothing to check"
        head = f"Checked {total} synced tenant(s): {counts}."
        if self.repaired:
            head += f" Repaired: {', '.join(self.repaired)}."
        return [head] + [f"- {tenant_id}: {status}: {detail}" for tenant_id, status, detail in self.problems]


def synced_tenant_ids() -> list[str]:
    """Registration ids of the tenants API Manager holds as the registry has them (its sync state is synced)."""
    return list(db.session.execute(
        sa.select(Tenant.tenant_id).join(SyncState, SyncState.tenant_id == Tenant.id)
        .where(SyncState.product == "apim", SyncState.status == "synced").order_by(Tenant.tenant_key)).scalars())


def check_all(*, repair_missing: bool = False, actor: Actor | None = None) -> Summary:
    """Check every synced tenant (the CLI); with repair_missing, repair those that are safely repairable."""
    summary = Summary()
    for tenant_id in synced_tenant_ids():
        row = check(tenant_id)
        if repair_missing and row.status == "missing":
            try:
                row = repair(tenant_id, actor or Actor.cli())
                summary.repaired.append(tenant_id)
            except Conflict:
                db.session.rollback()
        summary.add(tenant_id, row)
    return summary


# --- Views ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class View:
    """The tenant page's key manager section."""

    status: str | None  # None: never checked
    label: str
    detail: str | None
    key_manager_id: str | None
    checked_at: datetime | None
    repaired_at: datetime | None
    expectation: str
    can_repair: bool


def view(tenant: Tenant) -> View:
    row = db.session.get(KeyManagerCheck, tenant.id)
    expectation = sharing.key_manager_expectation()
    if row is None:
        return View(None, "not checked yet", None, None, None, None, expectation.reason, False)
    # Repair is offered for a stored "missing" that was judged repairable; the repair itself checks again first.
    can_repair = row.status == "missing" and expectation.expected and NAME_TAKEN not in (row.detail or "")
    return View(row.status, LABELS[row.status], row.detail, row.key_manager_id, row.checked_at,
                row.repaired_at, expectation.reason, can_repair)


def states_by_tenant(tenant_pks: Iterable[int] | None = None) -> dict[int, KeyManagerCheck]:
    """Stored checks by tenant primary key (all, or those given): one query, for reconcile."""
    query = sa.select(KeyManagerCheck)
    if tenant_pks is not None:
        query = query.where(KeyManagerCheck.tenant_id.in_(list(tenant_pks)))
    return {row.tenant_id: row for row in db.session.execute(query).scalars()}


def states_by_domain() -> dict[str, tuple[str, str]]:
    """domain -> (status, detail) of every stored check: reconcile's key manager column."""
    rows = db.session.execute(sa.select(Tenant.domain, KeyManagerCheck.status, KeyManagerCheck.detail)
                              .join(KeyManagerCheck, KeyManagerCheck.tenant_id == Tenant.id)).all()
    return {domain: (status, detail or "") for domain, status, detail in rows}
