"""The products the outbox writes to, as one table: each product's key, label, client and delivery side.

A side wraps one product's client in the few operations delivery needs: `read` looks the tenant up, `create` /
`update_owner` / `set_active` / `delete` write it, each raising the client's typed errors (delivery turns them into
a DeliveryError naming the product). `Desired` is the tenant as the products must hold it, `Remote` as one product
has it. Delivery, the store, reconcile and the pages loop over PRODUCTS instead of naming products.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from portal.clients.api_manager import ApiManagerClient, ApimTenant, ApimTenantSpec
from portal.clients.errors import Cause, PermissionDenied, UpstreamError
from portal.clients.identity_server import IdentityServerClient, IsTenant, TenantOwnerSpec
from portal.models.outbox import FIX_HINTS, SYNC_PRODUCTS
from portal.services.sharing import connections

RETRYABLE_STATUSES = frozenset({408, 425, 429}) | frozenset(range(500, 600))
# No answer at all is retried (the product may be down, restarting, or behind a flaky proxy), except when the
# cause is certain to need a person: trust, names, keys and certificates do not fix themselves.
FINAL_CAUSES = frozenset({Cause.BAD_CREDENTIALS, Cause.KEY_MISMATCH, Cause.SERVER_NOT_TRUSTED,
                          Cause.SERVER_NAME_MISMATCH, Cause.CLIENT_CA_UNKNOWN, Cause.CLIENT_CERTIFICATE_REJECTED})


# --- Errors ------------------------------------------------------------------------------------------------


class LeaseLost(Exception):
    """Another worker took the job over (our lease expired): stop touching it."""


class DeliveryError(Exception):
    """One product refused or could not be reached. `retryable` says whether waiting can help."""

    def __init__(self, product: str, message: str, *, retryable: bool, code: str | None = None,
                 trace_id: str | None = None, status: int | None = None, retry_after: float | None = None,
                 fix: str | None = None) -> None:
        super().__init__(message)
        if fix is not None and fix not in FIX_HINTS:
            raise ValueError(f"unknown fix hint {fix!r}")
        self.product = product
        self.message = message
        self.retryable = retryable
        self.code = code
        self.trace_id = trace_id
        self.status = status
        self.retry_after = retry_after
        self.fix = fix

    @classmethod
    def from_upstream(cls, product: str, exc: UpstreamError, *, certificate: bool = False) -> DeliveryError:
        """Retry what waiting can fix: no answer (down, reset, timeout), 408/425/429 and 5xx. A 500 that the
        product explains with its own code (IS's TM-65002 for a bad email) will not change, but API Manager's SOAP
        faults and IS's listener errors also come as 500s, and the issue's rule is that a change arrives when the
        fault clears: so 5xx retries until the attempts run out. A 4xx is final until someone retries."""
        status = exc.status
        retryable = (exc.cause not in FINAL_CAUSES) if status is None else status in RETRYABLE_STATUSES
        message = str(exc)
        fix = None
        if status == 403:  # the user lacks the resource's permission (IS 7: identity.xml.j2's resource table)
            fix = "permission"
            message += " " + (exc.hint if isinstance(exc, PermissionDenied) else
                              f"The portal's {label(product)} user lacks a permission this call needs.")
        elif status == 401:  # with a client certificate, IS's certificate handler decides alone
            fix = "mappings" if certificate else "connection"
        elif status is None and not retryable:
            fix = "connection"
        return cls(product, message, retryable=retryable, code=exc.code, trace_id=exc.trace_id, status=status,
                   retry_after=exc.retry_after, fix=fix)


class DeliveryFailed(Exception):
    def __init__(self, errors: dict[str, DeliveryError]) -> None:
        super().__init__("; ".join(str(e) for e in errors.values()))
        self.errors = errors


# --- Tenants as wanted and as found ----------------------------------------------------------------------


@dataclass(frozen=True)
class Desired:
    """The tenant as the products must have it: the registry's row as it is when the job runs."""

    domain: str
    name: str | None
    active: bool
    username: str | None
    email: str | None
    firstname: str | None
    lastname: str | None
    provisioning: str | None
    password: str | None = field(default=None, repr=False)  # the owner's, inline-password only
    apim_password: str | None = field(default=None, repr=False)  # generated for invite-via-email owners
    password_changed: bool = False

    @property
    def apim_admin_password(self) -> str | None:
        """What API Manager's addTenant gets: SOAP has no ask-password path, so an invite-via-email owner's
        generated one."""
        if (self.provisioning or "inline-password") == "inline-password":
            return self.password
        return self.apim_password


@dataclass
class Remote:
    """A tenant as one product has it."""

    active: bool | None
    ref: str | None = None  # IS: the tenant's UUID
    owner: str | None = None
    email: str | None = None
    firstname: str | None = None
    lastname: str | None = None
    name: str | None = None  # IS: the tenant's display name
    changed: bool = False  # set by ensure() when it had to write: the product's own sync then fires


class Side(Protocol):
    """One product, in the few operations delivery needs."""

    key: str
    observes_owner: bool  # can a read tell whether the owner's email and names arrived?
    presents_certificate: bool  # does the portal call it with a client certificate (IS 7 mTLS)?
    client: IdentityServerClient | ApiManagerClient

    def read(self, domain: str) -> Remote | None: ...
    def read_all(self) -> Iterator[tuple[str, Remote]]: ...
    def create(self, desired: Desired) -> Remote: ...
    def update_owner(self, desired: Desired, remote: Remote) -> None: ...
    def set_active(self, desired: Desired, remote: Remote) -> None: ...
    def delete(self, domain: str, remote: Remote) -> None: ...


class IsSide:
    key = "is"
    observes_owner = False  # the tenant resource lists owners by id and username only

    def __init__(self, client: IdentityServerClient) -> None:
        self.client = client
        self.presents_certificate = bool(getattr(client, "presents_certificate", False))

    def read(self, domain: str) -> Remote | None:
        tenant = self.client.get_tenant_by_domain(domain)
        return None if tenant is None else self._remote(tenant)

    def read_all(self) -> Iterator[tuple[str, Remote]]:
        """Every tenant, page by page (100 a page)."""
        for tenant in self.client.iter_all_tenants():
            yield tenant.domain, self._remote(tenant)

    @staticmethod
    def _remote(tenant: IsTenant) -> Remote:
        owners = tenant.owners or ()
        return Remote(active=tenant.activated, ref=tenant.id, owner=owners[0].username if owners else None,
                      name=tenant.name)

    def create(self, desired: Desired) -> Remote:
        _need_owner(self.key, desired)
        method = desired.provisioning or "inline-password"
        owner = TenantOwnerSpec(username=desired.username, email=desired.email, firstname=desired.firstname,
                                lastname=desired.lastname, provisioning_method=method,
                                password=desired.password if method == "inline-password" else None)
        ref = self.client.create_tenant(desired.domain, owner, name=desired.name)
        return Remote(active=True, ref=ref, owner=desired.username)

    def update_owner(self, desired: Desired, remote: Remote) -> None:
        owners = self.client.get_owners(remote.ref)
        if not owners:
            raise DeliveryError(self.key, f"IS 7 lists no owner for tenant {desired.domain}.", retryable=False)
        self.client.update_owner(remote.ref, owners[0].id, email=desired.email or "",
                                 firstname=desired.firstname or "", lastname=desired.lastname or "",
                                 password=desired.password if desired.password_changed else None)

    def set_active(self, desired: Desired, remote: Remote) -> None:
        self.client.set_lifecycle(remote.ref, desired.active)
        remote.active = desired.active

    def delete(self, domain: str, remote: Remote) -> None:
        """DELETE /tenants/{id}/metadata; raises the client's typed error (TM-60016) when deletion is disabled."""
        self.client.delete_tenant_metadata(remote.ref)


class ApimSide:
    key = "apim"
    observes_owner = True  # getTenant returns the admin's email and names
    presents_certificate = False  # Basic over TLS

    def __init__(self, client: ApiManagerClient) -> None:
        self.client = client

    def read(self, domain: str) -> Remote | None:
        tenant = self.client.get_tenant(domain)
        return None if tenant is None else self._remote(tenant)

    def read_all(self) -> Iterator[tuple[str, Remote]]:
        """Every tenant, from the paginated SOAP list."""
        for tenant in self.client.iter_all_tenants():
            yield tenant.domain, self._remote(tenant)

    @staticmethod
    def _remote(tenant: ApimTenant) -> Remote:
        return Remote(active=tenant.active, ref=str(tenant.tenant_id), owner=tenant.admin, email=tenant.email,
                      firstname=tenant.firstname, lastname=tenant.lastname)

    def _spec(self, desired: Desired, *, password: str | None, active: bool) -> ApimTenantSpec:
        return ApimTenantSpec(domain=desired.domain, admin=desired.username, admin_password=password,
                              email=desired.email, firstname=desired.firstname, lastname=desired.lastname,
                              active=active)

    def create(self, desired: Desired) -> Remote:
        _need_owner(self.key, desired)
        password = desired.apim_admin_password
        if not password:
            raise DeliveryError(self.key, f"Tenant {desired.domain}'s owner has no password for API Manager (its "
                                "SOAP addTenant cannot invite): save the owner again so the portal generates one, "
                                "then retry.", retryable=False, fix="owner")
        self.client.add_tenant(self._spec(desired, password=password, active=True))
        return Remote(active=True, owner=desired.username, email=desired.email, firstname=desired.firstname,
                      lastname=desired.lastname)

    def update_owner(self, desired: Desired, remote: Remote) -> None:
        password = desired.password if desired.password_changed else None
        self.client.update_tenant(self._spec(desired, password=password, active=bool(remote.active)),
                                  tenant_id=int(remote.ref) if remote.ref else None)
        remote.email, remote.firstname, remote.lastname = desired.email, desired.firstname, desired.lastname

    def set_active(self, desired: Desired, remote: Remote) -> None:
        if desired.active:
            self.client.activate_tenant(desired.domain)
        else:
            self.client.deactivate_tenant(desired.domain)
        remote.active = desired.active

    def delete(self, domain: str, remote: Remote) -> None:
        """SOAP deleteTenant: may report success and do nothing (deletion disabled): the caller reads again."""
        self.client.delete_tenant(domain)


def _need_owner(product: str, desired: Desired) -> None:
    if not desired.username or not desired.email:
        raise DeliveryError(product, f"Tenant {desired.domain} has no owner (user name and email); "
                            f"{label(product)} needs one to create it. Add an owner, then retry.",
                            retryable=False, fix="owner")


# --- The registry -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Product:
    """One product the portal writes tenants to."""

    key: str  # as stored in sync_state.product and product_connection.product
    label: str
    client: Callable[[], IdentityServerClient | ApiManagerClient]  # from the stored connection; raises NotConfigured
    side: Callable[..., Side]  # the delivery side around that client


PRODUCTS: dict[str, Product] = {p.key: p for p in (
    Product("is", "IS 7", connections.is_client, IsSide),
    Product("apim", "API Manager", connections.apim_client, ApimSide),
)}
assert tuple(PRODUCTS) == SYNC_PRODUCTS
LABELS = {key: product.label for key, product in PRODUCTS.items()}  # key -> label, for the pages


def label(key: str) -> str:
    return PRODUCTS[key].label


def open_side(key: str) -> Side:
    """A side around a fresh client of the product (the caller closes `side.client`)."""
    product = PRODUCTS[key]
    return product.side(product.client())
