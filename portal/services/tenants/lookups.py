"""Small reads and formats that several services share, kept below them so none has to import another for them
(key_ring used to import tenants for these while tenants imported key_ring)."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from portal.extensions import db
from portal.models import Tenant
from portal.services.errors import NotFound


def tenant(tenant_id: str) -> Tenant:
    """The registry's tenant by its id (case-insensitive); NotFound otherwise."""
    found = db.session.execute(sa.select(Tenant).where(Tenant.tenant_key == str(tenant_id).lower())
                               ).scalar_one_or_none()
    if found is None:
        raise NotFound(f"No tenant with id {tenant_id!r}.")
    return found


def iso(value: datetime | None) -> str | None:
    """UTC timestamps as the API writes them: ISO 8601 with Z."""
    return value.isoformat().replace("+00:00", "Z") if value else None
