"""Carrying one outbox job to the products (a worker thread, no transaction open).

`deliver` is idempotent, since a job can run more than once (at-least-once): look up before create, a duplicate
that matches counts as done, the lifecycle is set only when it differs. With sharing off the portal writes both
products; with a direction on it writes the source, waits for the other product to catch up, and repairs it if it
did not (IS's listener never retries an HTTP error; API Manager rolls its own change back when IS refuses it).
Delivery is level-triggered: it acts on the tenant's CURRENT row (`desired_now`), never on the payload.

`deliver_decommission` deactivates, then deletes, in each product: absent -> "absent"; otherwise deactivate (read
again: a product whose own sync rolled the change back still has it active, and that is retried), then delete:
IS 7's metadata DELETE answers 400 TM-60016 when tenant deletion is disabled; API Manager's SOAP deleteTenant
reports success and does nothing in that case. So the product is read once more: gone -> "deleted", still there ->
"deactivated". Neither product's listener propagates a delete, so each is asked itself.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

import sqlalchemy as sa

from portal.clients.errors import DeletionDisabled, UpstreamError
from portal.extensions import db
from portal.models import Tenant
from portal.services.outbox.policy import DIRECTIONS, Settings, current_direction
from portal.services.outbox.products import (
    PRODUCTS,
    DeliveryError,
    DeliveryFailed,
    Desired,
    LeaseLost,
    Remote,
    Side,
    label,
)
from portal.services.sharing import connections

TENANT_COLUMNS = (Tenant.domain, Tenant.display_name, Tenant.active, Tenant.owner_username, Tenant.owner_email,
                  Tenant.owner_first_name, Tenant.owner_last_name, Tenant.owner_provisioning, Tenant.owner_password,
                  Tenant.apim_admin_password)


def desired_now(tenant_pk: int, payload: Mapping[str, Any]) -> Desired | None:
    """The tenant's current row (None when it is gone). From the payload only what the change was: whether the
    owner's password changed."""
    row = db.session.execute(sa.select(*TENANT_COLUMNS).where(Tenant.id == tenant_pk)).first()
    if row is None:
        return None
    return Desired(domain=row.domain, name=row.display_name, active=bool(row.active), username=row.owner_username,
                   email=row.owner_email, firstname=row.owner_first_name, lastname=row.owner_last_name,
                   provisioning=row.owner_provisioning,
                   password=row.owner_password if row.owner_provisioning != "invite-via-email" else None,
                   apim_password=row.apim_admin_password,
                   password_changed=bool(payload.get("passwordChanged")))


@contextmanager
def calling(side: Side | str) -> Iterator[None]:
    """Turn a client's typed error into a DeliveryError naming the product (and, for a 401, whether IS 7 saw the
    portal's client certificate: then its certificate mappings refused the call)."""
    product = side if isinstance(side, str) else side.key
    try:
        yield
    except (DeliveryError, LeaseLost):
        raise
    except UpstreamError as exc:
        certificate = False if isinstance(side, str) else side.presents_certificate
        raise DeliveryError.from_upstream(product, exc, certificate=certificate) from exc


def _owner_matches(remote: Remote, desired: Desired) -> bool:
    return not remote.owner or not desired.username or remote.owner.lower() == desired.username.lower()


def ensure(side: Side, desired: Desired, *, owner_update: bool) -> Remote:
    """Make one product hold the tenant as desired, idempotently: look up; create when absent (a create refused
    because it exists meanwhile counts as done when the tenant found matches); update the owner when asked; set
    the lifecycle only when it differs. The result's `changed` says whether anything was written."""
    with calling(side):
        remote = side.read(desired.domain)
        created = False
        if remote is None:
            try:
                remote = side.create(desired)
                created = remote.changed = True
            except UpstreamError as exc:
                if exc.status is None:
                    raise  # no answer: the create may or may not have happened; the next attempt looks again
                remote = side.read(desired.domain)  # a duplicate: done if it is the same tenant (checked below)
                if remote is None:
                    raise
        if not _owner_matches(remote, desired):
            raise DeliveryError(side.key, f"{label(side.key)} already has tenant {desired.domain} with "
                                f"owner {remote.owner!r}, not {desired.username!r}. Resolve it on the reconcile "
                                "page.", retryable=False, fix="reconcile")
        if owner_update and not created:
            side.update_owner(desired, remote)
            remote.changed = True
        if remote.active != desired.active:
            side.set_active(desired, remote)
            remote.changed = True
    return remote


def _caught_up(side: Side, remote: Remote | None, desired: Desired, owner_update: bool) -> bool:
    if remote is None or remote.active != desired.active:
        return False
    if owner_update and side.observes_owner:
        return (remote.email, remote.firstname or None, remote.lastname or None) == (
            desired.email, desired.firstname or None, desired.lastname or None)
    return True


def _await(side: Side, desired: Desired, owner_update: bool, seconds: float, cfg: Settings,
           heartbeat: Callable[[], None]) -> Remote | None:
    """Poll the target product until it holds the change or `seconds` pass (0: look once)."""
    deadline = time.monotonic() + seconds
    while True:
        with calling(side):
            remote = side.read(desired.domain)
        if _caught_up(side, remote, desired, owner_update) or time.monotonic() >= deadline:
            return remote
        heartbeat()
        time.sleep(min(cfg.poll_interval, max(0.0, deadline - time.monotonic())))


class JobInHand(Protocol):
    op: str
    payload: dict
    steps: dict  # product -> "done", updated as delivery goes


def deliver(taken: JobInHand, sides: Mapping[str, Side], direction: str, cfg: Settings, desired: Desired, *,
            heartbeat: Callable[[], None] = lambda: None) -> None:
    """Carry one job to the products, as the tenant is now (`desired`, read when the job runs); progress is
    recorded in `taken.steps`. Raises DeliveryFailed."""
    owner_update = taken.op == "update_owner"
    errors: dict[str, DeliveryError] = {}
    if direction in DIRECTIONS:
        source_key, target_key = DIRECTIONS[direction]
        try:
            source, target = sides[source_key], sides[target_key]
            fired = False  # did our write make the source product's own sync push to the target?
            if taken.steps.get(source_key) != "done":
                fired = ensure(source, desired, owner_update=owner_update).changed
                taken.steps[source_key] = "done"
                heartbeat()
            if taken.steps.get(target_key) != "done":
                remote = _await(target, desired, owner_update, cfg.verify_seconds if fired else 0.0, cfg, heartbeat)
                if not _caught_up(target, remote, desired, owner_update):
                    ensure(target, desired, owner_update=owner_update)  # repair what the product's sync missed
                elif owner_update and (not target.observes_owner or desired.password_changed):
                    with calling(target):  # what a read cannot confirm is written again (idempotent)
                        target.update_owner(desired, remote)
                # The source may have undone its change when the target refused it (API Manager does): look again.
                ensure(source, desired, owner_update=False)
                taken.steps[target_key] = "done"
        except DeliveryError as exc:
            errors[exc.product] = exc
    else:  # sharing off: the portal writes both products itself
        for key in PRODUCTS:
            if taken.steps.get(key) == "done":
                continue
            try:
                ensure(sides[key], desired, owner_update=owner_update)
                taken.steps[key] = "done"
            except DeliveryError as exc:
                errors[key] = exc
            heartbeat()
    if errors:
        raise DeliveryFailed(errors)


# --- Decommission: deactivate, then delete ----------------------------------------------------------------------


def deliver_decommission(taken: JobInHand, sides: Mapping[str, Side], direction: str, desired: Desired,
                         connected: frozenset[str] | None, *, heartbeat: Callable[[], None] = lambda: None) -> None:
    """Deactivate, then delete, in each product; outcomes go to taken.steps["outcomes"] (product -> outcome) and
    notes to taken.steps["notes"]. The source product of a sharing direction first: its own sync may follow.
    Raises DeliveryFailed."""
    order = list(DIRECTIONS.get(direction, PRODUCTS))
    outcomes = taken.steps.setdefault("outcomes", {})
    notes = taken.steps.setdefault("notes", {})
    errors: dict[str, DeliveryError] = {}
    for key in order:
        if taken.steps.get(key) == "done":
            continue
        if connected is not None and key not in connected:
            outcomes[key], notes[key] = "absent", (f"No {label(key)} connection is configured: the portal "
                                                   "never wrote the tenant there.")
            taken.steps[key] = "done"
            continue
        try:
            outcomes[key], note = _decommission_one(sides[key], desired)
        except DeliveryError as exc:
            errors[key] = exc
            continue
        if note:
            notes[key] = note
        taken.steps[key] = "done"
        heartbeat()
    if errors:
        raise DeliveryFailed(errors)


def _decommission_one(side: Side, desired: Desired) -> tuple[str, str | None]:
    name = label(side.key)
    off = dataclasses.replace(desired, active=False)
    with calling(side):
        remote = side.read(desired.domain)
        if remote is None:
            return "absent", None
        if remote.active is not False:
            side.set_active(off, remote)
            remote = side.read(desired.domain)
            if remote is None:
                return "deleted", None
            if remote.active is not False:
                raise DeliveryError(side.key, f"{name} still has tenant {desired.domain} active after the "
                                    "deactivation (its own sync may have rolled it back); it is tried again.",
                                    retryable=True)
        note = None
        try:
            side.delete(desired.domain, remote)
        except DeletionDisabled as exc:  # IS 7: 400 TM-60016, Tenant.TenantDelete is off
            note = (f"{name} refused the deletion ({exc.code}: tenant deletion is disabled there); the tenant is "
                    "kept deactivated.")
        if side.read(desired.domain) is None:
            return "deleted", None
        return "deactivated", note or (f"{name} reported the deletion done but still has the tenant (deletion is "
                                       "disabled there); it is kept deactivated.")


# --- Clients, per worker thread ---------------------------------------------------------------------------


class Products:
    """Clients for both products, built on first use and rebuilt after `ttl` seconds so edited connection settings
    take effect. One instance per worker thread: clients are not shared between threads."""

    def __init__(self, ttl: float = 60.0, direction_ttl: float = 5.0) -> None:
        self.ttl = ttl
        self.direction_ttl = direction_ttl
        self._built: dict[str, tuple[float, Side]] = {}
        self._direction: tuple[float, str] | None = None

    def direction(self) -> str:
        """The sharing direction, read again every few seconds. A job delivered under the old direction just
        after a switch still converges: both modes end with the tenant right in both products."""
        if self._direction is None or time.monotonic() - self._direction[0] > self.direction_ttl:
            self._direction = (time.monotonic(), current_direction())
        return self._direction[1]

    def side(self, product: str) -> Side:
        built = self._built.get(product)
        if built is None or time.monotonic() - built[0] > self.ttl:
            if built is not None:
                built[1].client.close()
            try:
                side = PRODUCTS[product].side(PRODUCTS[product].client())
            except connections.NotConfigured as exc:  # set up later, the next attempt goes through
                raise DeliveryError(product, exc.message, retryable=True, fix="connection") from None
            except UpstreamError as exc:  # the stored certificate or key cannot be loaded
                error = DeliveryError.from_upstream(product, exc)
                error.fix = error.fix or "connection"
                raise error from None
            except ValueError as exc:  # a stored value the client refuses
                raise DeliveryError(product, f"The {label(product)} connection is unusable: {exc}",
                                    retryable=False, fix="connection") from None
            built = (time.monotonic(), side)
            self._built[product] = built
        return built[1]

    def close(self) -> None:
        for _, side in self._built.values():
            side.client.close()
        self._built.clear()


class LazySides(dict):
    """Build a product's client only when delivery reaches it, so an unconfigured product fails only its step."""

    def __init__(self, products: Products) -> None:
        super().__init__()
        self.products = products

    def __missing__(self, key: str) -> Side:
        side = self.products.side(key)
        self[key] = side
        return side

