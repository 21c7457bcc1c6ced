"""Two relational tenants (POSTGRES, ORACLE) whose user stores are one schema of one database.

Each tenant's users live in the user-store tables of its schema; two tenants on the same schema see, and may
overwrite, each other's users. With the same database credentials nothing separates them at all: that is refused,
at relationalSchema.dataSourceURL, by register_tenant and update_tenant (so by the form, the API and bulk alike).
With other credentials the database's grants may still separate them, so it is only warned about: on save and on
the tenant page.

Tenant.user_store keeps each relational tenant's store as an indexed key, so finding the others costs one index
lookup however many tenants there are. The schema is the one the driver uses: the URL's currentSchema, else
PostgreSQL's default search path ("public", when no schema named after the user exists) and Oracle's user schema
(the user name, upper-cased).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from portal.extensions import db
from portal.idp import jdbc_url
from portal.models import Tenant
from portal.services.errors import ValidationError

RELATIONAL = ("POSTGRES", "ORACLE")
URL_FIELD = jdbc_url.URL_FIELD  # where the refusal and the warning are shown


@dataclass(frozen=True)
class Store:
    """Where a relational tenant's users are: database server, database (or Oracle service / SID) and schema."""

    kind: str
    host: str
    port: int
    database: str
    schema: str

    def describe(self) -> str:
        return f"schema {self.schema} of database {self.database} on {self.host}:{self.port}"

    @property
    def key(self) -> str:
        """What Tenant.user_store holds (indexed): equal stores, equal keys."""
        return hashlib.sha256("\0".join((self.kind, self.host, str(self.port), self.database,
                                           self.schema)).encode()).hexdigest()


@dataclass(frozen=True)
class Sharer:
    tenant_id: str
    same_credentials: bool


def store_of(idp_type: str, settings: dict[str, Any] | None) -> Store | None:
    """The store a relational tenant's settings point at, or None (another type, or a URL that does not parse)."""
    if idp_type not in RELATIONAL or not settings:
        return None
    try:
        target = jdbc_url.parse_jdbc_url(settings.get("dataSourceURL") or "")
    except ValueError:
        return None
    user = str(settings.get("dataSourceUserName") or "")
    if target.kind == "oracle":
        schema = target.schema or user.upper()
        database = target.service_name or target.sid or ""
    else:
        schema = target.schema or "public"
        database = target.database or ""
    return Store(target.kind, target.host.rstrip(".").lower(), target.port, database, schema)


def store_key(idp_type: str, settings: dict[str, Any] | None) -> str | None:
    """The indexed key of a tenant's user store (Tenant.user_store), None when it has none."""
    store = store_of(idp_type, settings)
    return store.key if store is not None else None


def _user(kind: str, user: Any) -> str:
    text = str(user or "")
    return text.upper() if kind == "oracle" else text  # Oracle folds unquoted user names


def sharers(idp_type: str, settings: dict[str, Any], secret: str | None, *, exclude: str | None = None) -> list[Sharer]:
    """The other tenants on the same store, and whether each also uses the same user and password."""
    store = store_of(idp_type, settings)
    if store is None:
        return []
    query = sa.select(Tenant).where(Tenant.user_store == store.key).order_by(Tenant.tenant_key)
    if exclude is not None:
        query = query.where(Tenant.tenant_key != exclude)
    found = []
    user = _user(store.kind, settings.get("dataSourceUserName"))
    for other in db.session.execute(query).scalars():
        same = (_user(store.kind, (other.idp_settings or {}).get("dataSourceUserName")) == user
                and secret is not None and other.idp_secret == secret)
        found.append(Sharer(other.tenant_id, same))
    return found


def check(idp_type: str, settings: dict[str, Any], secret: str | None, *, exclude: str | None = None) -> list[str]:
    """Refuse a store shared with the same credentials (ValidationError at the URL); the warnings otherwise."""
    found = sharers(idp_type, settings, secret, exclude=exclude)
    store = store_of(idp_type, settings)
    same = [s.tenant_id for s in found if s.same_credentials]
    if same:
        raise ValidationError({URL_FIELD: (
            f"Tenant {', '.join(same)} already uses {store.describe()} with the same user and password: the two "
            "tenants would share one user store. Give this tenant its own schema (?currentSchema=...) or database.")})
    return [warning(store, found)] if found else []


def warning(store: Store, found: list[Sharer]) -> str:
    names = ", ".join(s.tenant_id for s in found)
    how = ("with the same user and password" if all(s.same_credentials for s in found) else
           "with other credentials" if not any(s.same_credentials for s in found) else "some with the same credentials")
    return (f"Tenant {names} also keeps its users in {store.describe()} ({how}): the tenants can see each other's "
            "users unless the database's grants keep them apart.")


def tenant_warnings(tenant: Tenant) -> list[str]:
    """For the tenant page: the other tenants sharing its store (with or without the same credentials, since one
    stored before this rule may share them)."""
    store = store_of(tenant.idp_type, tenant.idp_settings)
    if store is None:
        return []
    found = sharers(tenant.idp_type, tenant.idp_settings, tenant.idp_secret, exclude=tenant.tenant_key)
    return [warning(store, found)] if found else []
