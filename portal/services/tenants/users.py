"""A tenant's own users, in the store its password grant reads: for POSTGRES and ORACLE tenants the um_user table
(list, add, disable, enable, reset the password: argon2 hashes, as the grant expects), for LDAP tenants the
directory (search and show, read-only). Which store and whether it may be changed is the identity-provider
family's answer (IdpFamily.tenant_users).

Every change is audited on the tenant (action tenant_user.*, the user name as the changed value; a password only
as "[redacted]"). Passwords are hashed here and never logged, audited, echoed or read back.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from flask import current_app

from portal.clients.tenant_users import DirectoryUser, NoSuchUser, StoreUser, UserExists
from portal.clients.user_stores import StoreUnavailable
from portal.extensions import db
from portal.idp import registry
from portal.models import Tenant
from portal.services.admin import audit, passwords
from portal.services.context import Actor
from portal.services.errors import Conflict, NotFound, ServiceError, ValidationError
from portal.services.tenants.service import get_tenant

PAGE_SIZE = 50
MAX_USERNAME = 255
# Printable, no spaces or control characters: what a person types at a sign-in prompt.
_USERNAME = re.compile(r"^[^\s\x00-\x1f\x7f]+$")
MANAGE, BROWSE = "manage", "browse"


class StoreUnreachable(ServiceError):
    """The tenant's store could not be reached or refused the statement; nothing was changed."""

    status = 503


@dataclass
class UserList:
    tenant: Tenant
    access: str  # MANAGE (relational) or BROWSE (directory)
    query: str = ""
    users: list[StoreUser] | list[DirectoryUser] = field(default_factory=list)
    next_after: str | None = None  # the name to continue after, when there are more


def access_of(tenant: Tenant) -> str | None:
    """MANAGE when the portal may change the tenant's users, BROWSE when it may only read them, None otherwise."""
    return registry.get(tenant.idp_type).users_access


def _store(tenant_id: str, *, writable: bool = False):
    tenant = get_tenant(tenant_id)
    family = registry.get(tenant.idp_type)
    if family.users_access is None:
        raise NotFound(f"Tenant {tenant.tenant_id} ({tenant.idp_type}) keeps no users the portal can show: they "
                       "sign in at their own identity provider.")
    if writable and family.users_access != MANAGE:
        raise ValidationError(f"Tenant {tenant.tenant_id}'s users live in its {tenant.idp_type} directory: the "
                              "portal shows them but does not change them.")
    try:
        store = family.tenant_users(tenant.idp_type, tenant.idp_settings or {}, tenant.idp_secret, current_app.config)
    except (KeyError, ValueError) as exc:  # settings stored before a rule existed, or by hand
        raise ValidationError(f"Tenant {tenant.tenant_id}'s identity provider settings cannot be used ({exc}): "
                              "fix them on the Edit page.") from None
    return tenant, store


def _unreachable(tenant: Tenant, exc: StoreUnavailable) -> StoreUnreachable:
    return StoreUnreachable(f"Tenant {tenant.tenant_id}'s user store could not be used: {exc.reason}. "
                            "Nothing was changed.")


# --- reading ------------------------------------------------------------------------------------------------


def list_users(tenant_id: str, query: str = "", after: str | None = None) -> UserList:
    """A page of the tenant's users whose name starts with `query` (relational), or the directory's people whose
    uid, cn or mail start with it (LDAP)."""
    tenant, store = _store(tenant_id)
    query = (query or "").strip()[:MAX_USERNAME]
    try:
        if not store.writable:
            return UserList(tenant, BROWSE, query, store.search(query, limit=PAGE_SIZE))
        users = store.list(query, after, limit=PAGE_SIZE + 1)
    except StoreUnavailable as exc:
        raise _unreachable(tenant, exc) from None
    more = len(users) > PAGE_SIZE
    users = users[:PAGE_SIZE]
    return UserList(tenant, MANAGE, query, users, users[-1].username if more else None)


def show_user(tenant_id: str, username: str) -> tuple[Tenant, StoreUser | DirectoryUser]:
    tenant, store = _store(tenant_id)
    try:
        return tenant, (store.get(username) if store.writable else store.show(username))
    except NoSuchUser:
        raise NotFound(f"Tenant {tenant.tenant_id} has no user {username!r}.") from None
    except StoreUnavailable as exc:
        raise _unreachable(tenant, exc) from None


# --- changing -----------------------------------------------------------------------------------------------


def _check_password(password: str, confirm: str, username: str) -> dict[str, str]:
    if not password:
        return {"password": "Enter a password."}
    if problem := passwords.policy_error(password, username):
        return {"password": problem}
    if password != confirm:
        return {"confirm": "The two passwords differ."}
    return {}


def add_user(tenant_id: str, username: str, password: str, confirm: str, actor: Actor) -> str:
    """Add a user with this password to the tenant's store; returns the stored name."""
    tenant, store = _store(tenant_id, writable=True)
    username = (username or "").strip()
    errors: dict[str, str] = {}
    if not username:
        errors["username"] = "Enter a user name."
    elif len(username) > MAX_USERNAME:
        errors["username"] = f"Use at most {MAX_USERNAME} characters."
    elif not _USERNAME.match(username):
        errors["username"] = "Use no spaces or control characters."
    errors.update(_check_password(password, confirm, username))
    if errors:
        raise ValidationError(errors)
    try:
        store.add(username, passwords.hash_password(password))
    except UserExists:
        raise Conflict(f"Tenant {tenant.tenant_id} already has a user {username}.",
                       {"username": "This user name is taken in the tenant's store."}) from None
    except StoreUnavailable as exc:
        raise _unreachable(tenant, exc) from None
    _audit(actor, "tenant_user.create", tenant, {"user": {"before": None, "after": username},
                                                 "password": {"before": None, "after": audit.REDACTED}})
    return username


def set_disabled(tenant_id: str, username: str, disabled: bool, actor: Actor) -> bool:
    """Disable (the password grant refuses the user) or enable again; False when it already was so."""
    tenant, store = _store(tenant_id, writable=True)
    try:
        changed = store.set_disabled(username, disabled)
    except NoSuchUser:
        raise NotFound(f"Tenant {tenant.tenant_id} has no user {username!r}.") from None
    except StoreUnavailable as exc:
        raise _unreachable(tenant, exc) from None
    if changed:
        _audit(actor, "tenant_user.disable" if disabled else "tenant_user.enable", tenant,
               {"user": {"before": username, "after": username},
                "disabled": {"before": not disabled, "after": disabled}})
    return changed


def reset_password(tenant_id: str, username: str, password: str, confirm: str, actor: Actor) -> None:
    """A new password for the user (a disabled user stays disabled)."""
    tenant, store = _store(tenant_id, writable=True)
    if errors := _check_password(password, confirm, username):
        raise ValidationError(errors)
    try:
        store.set_credential(username, passwords.hash_password(password))
    except NoSuchUser:
        raise NotFound(f"Tenant {tenant.tenant_id} has no user {username!r}.") from None
    except StoreUnavailable as exc:
        raise _unreachable(tenant, exc) from None
    _audit(actor, "tenant_user.reset_password", tenant, {"user": {"before": username, "after": username},
                                                         "password": {"before": audit.REDACTED,
                                                                      "after": audit.REDACTED}})


def _audit(actor: Actor, action: str, tenant: Tenant, changes: dict) -> None:
    audit.record(actor, action, "tenant", tenant.tenant_id, changes)
    db.session.commit()

