"""Machine clients of the /v1 API, authenticated by X-API-AppId and X-API-Key, each limited to its scopes and,
optionally, to some tenants."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from portal.models.base import Base, UTCDateTime, utcnow

# One scope per kind of power; every /v1 operation requires exactly one (portal/api/auth.py).
SCOPES = ("read", "register", "update", "secrets", "keys", "validate", "decommission")
TENANT_SCOPES = ("all", "own", "pattern")  # every tenant, tenants this client registered, tenant ids matching a glob


class ApiClient(Base):
    """The key is shown once; only its SHA-256 is kept (it is 256 random bits, so a slow hash adds nothing).
    After a rotation the previous key's digest is kept until the overlap ends, so callers can switch over."""

    __tablename__ = "api_client"
    __table_args__ = (
        sa.CheckConstraint("tenant_scope IN ('all', 'own', 'pattern')", name="tenant_scope"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[str] = mapped_column(sa.String(64), unique=True)
    name: Mapped[str] = mapped_column(sa.String(128))
    key_hash: Mapped[str] = mapped_column(sa.String(64))
    created_by: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    scopes: Mapped[str] = mapped_column(sa.String(128), default="read", server_default="read")  # space-separated
    tenant_scope: Mapped[str] = mapped_column(sa.String(16), default="all", server_default="all")
    tenant_pattern: Mapped[str | None] = mapped_column(sa.String(64))  # fnmatch-style, for tenant_scope "pattern"
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the current key's expiry; None: never
    key_rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    previous_key_hash: Mapped[str | None] = mapped_column(sa.String(64))
    previous_key_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # end of the rotation overlap

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @property
    def scope_list(self) -> list[str]:
        return [name for name in SCOPES if name in self.scopes.split()]

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= utcnow()

    @property
    def overlap_open(self) -> bool:
        return self.previous_key_expires_at is not None and self.previous_key_expires_at > utcnow()
