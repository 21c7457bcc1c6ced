"""Reconcile: the registry, IS 7 and API Manager side by side, what differs, and the fixes.

Level-triggered, like a Kubernetes controller (security.md §6): the comparison is made from what each system holds
now, not from the events that should have got it there, so a lost or duplicated event heals. Both products are read
page by page (IS: 100 tenants a page; API Manager: its paginated SOAP list). A product that cannot be read is
reported as such, and nothing is flagged missing from it.

Fixes, each audited:
- push: queue a "sync" job that makes both products hold the tenant as the registry has it (create where missing,
  status aligned); the worker delivers it like any change;
- adopt: take a product's activation into the registry (which then queues the change for the other product);
- import: a tenant the products have and the registry lacks is registered through the ordinary registration (the
  form is prefilled from the products; the identity provider settings are the registry's own and must be given).

A domain the registry lacks because it was decommissioned (services.outbox.decommission) is no stray: a product
that does not delete (deletion disabled) keeps it deactivated, which is what decommissioning asked. Such rows are
shown as decommissioned, with no import; only one still active in a product is a difference.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from portal.clients.errors import UpstreamError
from portal.extensions import db
from portal.models import Decommission, OutboxJob, Tenant
from portal.services.admin import audit
from portal.services.context import Actor
from portal.services.errors import NotFound, ServiceError, ValidationError
from portal.services.outbox import decommission, store
from portal.services.outbox.products import LABELS, PRODUCTS, Remote, label, open_side
from portal.services.outbox.reads import OPEN_JOB_STATES
from portal.services.sharing import key_managers
from portal.services.sharing.connections import NotConfigured
from portal.services.tenants import service as tenants

FIX_ACTIONS = ("push", *(f"adopt_{key}" for key in PRODUCTS))


class ProductUnavailable(ServiceError):
    """A product had to be read for a fix and could not be."""

    status = 502


@dataclass(frozen=True)
class Seen:
    """One tenant as one system holds it."""

    active: bool | None
    owner: str | None = None
    email: str | None = None
    firstname: str | None = None
    lastname: str | None = None
    name: str | None = None
    tenant_id: str | None = None  # registry only


@dataclass(frozen=True)
class Issue:
    kind: str  # "missing", "unregistered", "status", "owner"
    product: str | None
    text: str


@dataclass(frozen=True)
class Fix:
    action: str  # "push", "adopt_is", "adopt_apim", "import"
    label: str


@dataclass
class Row:
    domain: str
    registry: Seen | None
    products: dict[str, Seen | None]
    sync_open: bool = False  # jobs for this tenant are still on their way: differences may be in flight
    issues: list[Issue] = field(default_factory=list)
    fixes: list[Fix] = field(default_factory=list)
    decommissioned: Decommission | None = None  # not in the registry because it was decommissioned
    note: str | None = None  # what the row is, when it is no difference (a decommissioned tenant kept deactivated)
    key_manager: str | None = None  # the tenant's last key manager check (services.key_managers), None: never

    @property
    def tenant_id(self) -> str | None:
        return self.registry.tenant_id if self.registry else None


@dataclass
class Report:
    rows: list[Row]  # rows with an issue (every row with include_in_sync), by domain
    counts: dict[str, int]  # tenants read per system
    in_sync: int
    unreadable: dict[str, str]  # product -> why it could not be read
    decommissioned: int = 0  # decommissioned tenants a product keeps (deactivated): listed, not differences

    @property
    def drift(self) -> int:
        return sum(1 for row in self.rows if row.issues)


# --- Reading ---------------------------------------------------------------------------------------------------


def _seen(remote: Remote) -> Seen:
    return Seen(active=remote.active, owner=remote.owner, email=remote.email, firstname=remote.firstname,
                lastname=remote.lastname, name=remote.name)


def _read_product(product: str) -> dict[str, Seen]:
    """Every tenant of one product, by domain, read page by page. Raises NotConfigured or UpstreamError."""
    side = open_side(product)
    try:
        return {domain: _seen(remote) for domain, remote in side.read_all()}
    finally:
        side.client.close()


def _read_registry() -> tuple[dict[str, Seen], set[str]]:
    registry = {domain: Seen(active=active, owner=owner, name=name, tenant_id=tenant_id)
                for tenant_id, domain, active, owner, name in db.session.execute(
                    sa.select(Tenant.tenant_id, Tenant.domain, Tenant.active, Tenant.owner_username,
                              Tenant.display_name)).all()}
    in_flight = set(db.session.execute(
        sa.select(Tenant.domain).join(OutboxJob, OutboxJob.tenant_id == Tenant.id)
        .where(OutboxJob.status.in_(OPEN_JOB_STATES)).distinct()).scalars())
    return registry, in_flight


def compare(*, include_in_sync: bool = False) -> Report:
    """Read the three systems and list every tenant where they disagree."""
    registry, in_flight = _read_registry()
    products: dict[str, dict[str, Seen]] = {}
    unreadable: dict[str, str] = {}
    for product in PRODUCTS:
        try:
            products[product] = _read_product(product)
        except NotConfigured as exc:
            unreadable[product] = exc.message
        except (UpstreamError, ValueError) as exc:  # unreachable, refused, or a stored value the client refuses
            unreadable[product] = str(exc)
    rows: list[Row] = []
    in_sync = kept = 0
    domains = set(registry).union(*(set(p) for p in products.values()))
    gone = decommission.completed_by_domain(domains - set(registry))
    checked = key_managers.states_by_domain()
    for domain in sorted(domains):
        row = Row(domain, registry.get(domain), {p: products[p].get(domain) for p in products},
                  sync_open=domain in in_flight, decommissioned=gone.get(domain),
                  key_manager=checked.get(domain, (None, ""))[0])
        _judge(row)
        if row.key_manager in key_managers.PROBLEMS:
            row.issues.append(Issue("key_manager", "apim", f"Key manager {key_managers.LABELS[row.key_manager]}: "
                                                           f"{checked[domain][1]}"))
        if row.issues or row.decommissioned is not None:  # decommissioned rows are always listed
            rows.append(row)
            kept += row.decommissioned is not None and not row.issues
        else:
            in_sync += 1
            if include_in_sync:
                rows.append(row)
    counts = {"registry": len(registry), **{p: len(v) for p, v in products.items()}}
    return Report(rows, counts, in_sync, unreadable, kept)


def _judge(row: Row) -> None:
    """Issues and the fixes that resolve them."""
    reg = row.registry
    if reg is None and row.decommissioned is not None:
        when = f"{row.decommissioned.completed_at:%Y-%m-%d}"
        active_in = [label(p) for p, seen in row.products.items() if seen is not None and seen.active]
        if active_in:
            row.issues.append(Issue("decommissioned", None, f"Decommissioned on {when}, but still active in "
                                    f"{' and '.join(active_in)}: deactivate it there."))
        else:
            row.note = "decommissioned (kept deactivated: deletion disabled)"
        return
    if reg is None:
        holders = [label(p) for p, seen in row.products.items() if seen is not None]
        row.issues.append(Issue("unregistered", None, f"In {' and '.join(holders)} but not in the registry."))
        row.fixes.append(Fix("import", "Import into the registry"))
        return
    push = False
    for product, seen in row.products.items():
        name = label(product)
        if seen is None:
            row.issues.append(Issue("missing", product, f"Missing in {name}."))
            push = True
            continue
        if seen.active is not None and seen.active != reg.active:
            row.issues.append(Issue("status", product, f"{'Active' if seen.active else 'Inactive'} in {name}, "
                                    f"{'active' if reg.active else 'inactive'} in the registry."))
            push = True
            row.fixes.append(Fix(f"adopt_{product}", f"Take {name}'s status ({_state(seen.active)}) into the "
                                 "registry"))
        if seen.owner and reg.owner and seen.owner.lower() != reg.owner.lower():
            row.issues.append(Issue("owner", product, f"Owner {seen.owner!r} in {name}, {reg.owner!r} in the "
                                    "registry; WSO2 cannot rename an owner: resolve it in the product."))
    if push:
        row.fixes.insert(0, Fix("push", "Push the registry's tenant to the products"))


def _state(active: bool | None) -> str:
    return "active" if active else "inactive"


# --- Fixes -------------------------------------------------------------------------------------------------------


def fix(domain: str, action: str, actor: Actor) -> str:
    """Apply one fix to one tenant; returns a sentence for the page. Audited."""
    if action not in FIX_ACTIONS:
        raise ValidationError({"action": f"Choose one of: {', '.join(FIX_ACTIONS)}; import goes through the "
                                         "registration form."})
    tenant = db.session.execute(sa.select(Tenant).where(Tenant.domain == domain)).scalar_one_or_none()
    if tenant is None:
        raise NotFound(f"No tenant with domain {domain} in the registry.")
    decommission.refuse_change(tenant, "pushed or adopted")
    if action == "push":
        store.enqueue(tenant, "sync", actor)
        audit.record(actor, "reconcile.push", "tenant", tenant.tenant_id,
                     {"domain": {"before": None, "after": domain}})
        db.session.commit()
        return f"Queued: {tenant.tenant_id} will be pushed to IS 7 and API Manager as the registry has it."
    product = action.removeprefix("adopt_")
    try:
        seen = _product_view(product, domain)
    except (NotConfigured, UpstreamError) as exc:
        raise ProductUnavailable(f"{label(product)} could not be read: {exc}") from None
    if seen is None:
        raise NotFound(f"{label(product)} has no tenant {domain}: push it instead.")
    audit.record(actor, f"reconcile.adopt_{product}", "tenant", tenant.tenant_id,
                 {"status": {"before": _state(tenant.active), "after": _state(seen.active)}})
    tenants.set_tenant_active(tenant.tenant_id, bool(seen.active), actor)  # queues the change for the products
    db.session.commit()
    return (f"{tenant.tenant_id} is now {_state(seen.active)} in the registry, as in {label(product)}; "
            "the change is queued for the products.")


def fix_all(actor: Actor, report: Report | None = None) -> list[str]:
    """Push every registered tenant that is missing or differs (the CLI's --fix). Imports need a person."""
    report = report or compare()
    done = []
    for row in report.rows:
        if row.registry is not None and any(f.action == "push" for f in row.fixes) and not row.sync_open:
            done.append(fix(row.domain, "push", actor))
    return done


# --- Import ------------------------------------------------------------------------------------------------------

_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def import_prefill(domain: str) -> dict[str, Any]:
    """What the products know of a tenant the registry lacks, in the registration API's field names: the form is
    prefilled with it. The owner comes from API Manager when it has the tenant (it keeps email and names)."""
    seen: dict[str, Seen | None] = {}
    for product in PRODUCTS:
        try:
            seen[product] = _product_view(product, domain)
        except (NotConfigured, UpstreamError):  # a product that cannot be read just contributes nothing
            seen[product] = None
    if not any(seen.values()):
        raise NotFound(f"Neither IS 7 nor API Manager has a tenant {domain}.")
    present = [(PRODUCTS[key], found) for key, found in seen.items() if found is not None]
    owner_source = next((found for product, found in present if product.side.observes_owner), present[0][1])
    name = next((found.name for _, found in present if found.name and found.name != domain), None)
    tenant_id = _ID_UNSAFE.sub("-", domain).strip("-")[:64] or "imported"
    owner = {"username": owner_source.owner, "email": owner_source.email, "firstName": owner_source.firstname,
             "lastName": owner_source.lastname, "provisioningMethod": "invite-via-email"}
    return {"tenantId": tenant_id, "displayName": name or domain,
            "tenantDomain": domain, "owner": {k: v for k, v in owner.items() if v}}


def _product_view(product: str, domain: str) -> Seen | None:
    side = open_side(product)
    try:
        remote = side.read(domain)
        return None if remote is None else _seen(remote)
    finally:
        side.client.close()


def import_tenant(domain: str, body: dict[str, Any], actor: Actor, *, skip_check: bool = False):
    """Register a tenant the products already have: the products' facts (domain, owner) fill what `body` leaves
    out. The registration's own create job then finds the tenant in each product and counts it as done."""
    prefill = import_prefill(domain)
    merged = {**prefill, **body, "tenantDomain": domain}
    merged["owner"] = {**prefill.get("owner", {}), **(body.get("owner") or {})}
    registration = tenants.register_tenant(merged, actor, skip_check=skip_check)
    audit.record(actor, "reconcile.import", "tenant", registration.tenant.tenant_id,
                 {"domain": {"before": None, "after": domain}})
    db.session.commit()
    return registration


def lines(report: Report) -> Iterator[str]:
    """The report as text, for the CLI."""
    counts = ", ".join(f"{LABELS.get(k, k)}: {v}" for k, v in report.counts.items())
    yield (f"Tenants read: {counts}. In sync: {report.in_sync}. With differences: {report.drift}."
           + (f" Decommissioned, kept deactivated: {report.decommissioned}." if report.decommissioned else ""))
    for product, why in report.unreadable.items():
        yield f"! {label(product)} could not be read: {why}"
    for row in report.rows:
        who = row.tenant_id or "(not registered)"
        flight = " [sync in progress]" if row.sync_open else ""
        yield f"- {row.domain} {who}{flight}" + (f": {row.note}" if row.note else "")
        for issue in row.issues:
            yield f"    {issue.text}"
        for option in row.fixes:
            yield f"    fix: {option.action} ({option.label})"
