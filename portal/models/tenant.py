"""Tenants, their signing keys, and the settings of their identity provider."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, column_property, mapped_column, relationship

from portal.encryption import EncryptedText
from portal.models.base import Base, JSONType, UTCDateTime, utcnow

ALGORITHMS = ("HS256", "HS384", "HS512", "RS256", "RS384", "RS512")
PROVISIONING_METHODS = ("inline-password", "invite-via-email")
CHECK_STATES = ("unchecked", "passed", "failed")
KEY_STATES = ("active", "passive", "retired")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Tenant(Base):
    """One tenant as the registration API describes it. Secrets live in encrypted columns and never leave the
    service layer: views and the API see `*_set` booleans instead."""

    __tablename__ = "tenant"
    __table_args__ = (
        sa.CheckConstraint(_in("support_algorithm", ALGORITHMS), name="support_algorithm"),
        sa.CheckConstraint(_in("check_status", CHECK_STATES), name="check_status"),
        # Keyset pagination walks tenant_key; the pattern-ops indexes serve prefix search on PostgreSQL.
        sa.Index("ix_tenant_key_pattern", "tenant_key", postgresql_ops={"tenant_key": "varchar_pattern_ops"}),
        sa.Index("ix_tenant_domain_pattern", "domain", postgresql_ops={"domain": "varchar_pattern_ops"}),
        sa.Index("ix_tenant_name_key_pattern", "name_key", postgresql_ops={"name_key": "varchar_pattern_ops"}),
        sa.Index("ix_tenant_idp_type_key", "idp_type", "tenant_key"),
        sa.Index("ix_tenant_active_key", "active", "tenant_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(64))  # as registered: "TIBCO"
    tenant_key: Mapped[str] = mapped_column(sa.String(64), unique=True)  # lower-case: ids are unique ignoring case
    display_name: Mapped[str] = mapped_column(sa.String(255))
    name_key: Mapped[str] = mapped_column(sa.String(255))  # lower-case display name, for search
    domain: Mapped[str] = mapped_column(sa.String(253), unique=True)

    owner_username: Mapped[str | None] = mapped_column(sa.String(255))
    owner_email: Mapped[str | None] = mapped_column(sa.String(320))
    owner_first_name: Mapped[str | None] = mapped_column(sa.String(255))
    owner_last_name: Mapped[str | None] = mapped_column(sa.String(255))
    owner_provisioning: Mapped[str | None] = mapped_column(sa.String(32))
    owner_password: Mapped[str | None] = mapped_column(EncryptedText)  # inline-password only, for IS provisioning
    # invite-via-email owners: API Manager's SOAP addTenant has no ask-password path, so the portal generates the
    # API Manager tenant admin's password. Sent only to API Manager, never shown.
    apim_admin_password: Mapped[str | None] = mapped_column(EncryptedText)

    client_id: Mapped[str] = mapped_column(sa.String(255), index=True)
    client_secret: Mapped[str] = mapped_column(EncryptedText)
    # Flagged at save time (short, common, or equal to the client id): shown as a warning, never a secret itself.
    client_secret_weak: Mapped[bool] = mapped_column(default=False, server_default=sa.false())

    idp_type: Mapped[str] = mapped_column(sa.String(16))
    idp_settings: Mapped[dict] = mapped_column(JSONType, default=dict)  # the type's settings, secrets excluded
    idp_secret: Mapped[str | None] = mapped_column(EncryptedText)  # dataSourcePassword or LDAP bindPassword
    # Relational tenants: their user store (server, database, schema) as a key, to find tenants sharing one
    # (services/tenants/schema_sharing.py); None for other types.
    user_store: Mapped[str | None] = mapped_column(sa.String(64), index=True)

    support_algorithm: Mapped[str] = mapped_column(sa.String(8), default="HS256")

    active: Mapped[bool] = mapped_column(default=True)
    check_status: Mapped[str] = mapped_column(sa.String(16), default="unchecked")
    check_summary: Mapped[str | None] = mapped_column(sa.Text)
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # Set when an administrator confirmed decommissioning: the worker deactivates the tenant in both products,
    # deletes it where allowed, then removes this row. Until then the tenant cannot be edited.
    decommission_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decommission_requested_by: Mapped[str | None] = mapped_column(sa.String(64))

    # The API client that registered the tenant (None: a person, bulk or the CLI): an API client limited to its
    # own tenants sees only these. Stamped by services.api_clients when the tenant is first flushed.
    registered_by_client_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("api_client.id", ondelete="SET NULL"), index=True)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    # Whether each secret is set, computed by the database: lists report it without decrypting anything.
    client_secret_set: Mapped[bool] = column_property(client_secret.column.is_not(None))
    owner_password_set: Mapped[bool] = column_property(owner_password.column.is_not(None))
    idp_secret_set: Mapped[bool] = column_property(idp_secret.column.is_not(None))

    keys: Mapped[list[SigningKey]] = relationship(
        back_populates="tenant", cascade="all, delete-orphan", order_by="SigningKey.id"
    )

    @property
    def verified(self) -> bool:
        return self.check_status == "passed"

    @property
    def active_key(self) -> SigningKey | None:
        return next((k for k in self.keys if k.status == "active"), None)


class SigningKey(Base):
    """A tenant's token-signing key: an HMAC secret or an RSA private key, encrypted at rest."""

    __tablename__ = "signing_key"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "kid", name="uq_signing_key_tenant_kid"),
        sa.CheckConstraint(_in("status", KEY_STATES), name="status"),
        sa.CheckConstraint(_in("algorithm", ALGORITHMS), name="algorithm"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(sa.ForeignKey("tenant.id", ondelete="CASCADE"), index=True)
    kid: Mapped[str] = mapped_column(sa.String(64))
    algorithm: Mapped[str] = mapped_column(sa.String(8))
    status: Mapped[str] = mapped_column(sa.String(16), default="active")
    secret: Mapped[str] = mapped_column(EncryptedText)  # HS: the key text; RS: the private key PEM
    public_pem: Mapped[str | None] = mapped_column(sa.Text)  # RS only
    key_bits: Mapped[int] = mapped_column()  # HS: bytes * 8; RS: modulus size
    generated: Mapped[bool] = mapped_column(default=False)  # made by the portal rather than supplied
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    passive_until: Mapped[datetime | None] = mapped_column(UTCDateTime)  # end of the grace period once passive
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    tenant: Mapped[Tenant] = relationship(back_populates="keys")

    def status_at(self, now: datetime) -> str:
        """The status that counts: a passive key whose grace period is over is retired even before a sweep
        writes it down, so validation never depends on a background job having run."""
        if self.status == "passive" and self.passive_until is not None and self.passive_until <= now:
            return "retired"
        return self.status


class JwksCache(Base):
    """The last good JWK set of an EXTERNAL tenant's issuer, shared by every worker process through the
    database, with the bookkeeping that rate-limits refreshes (one fetch per cool-down, whoever wins)."""

    __tablename__ = "jwks_cache"

    tenant_id: Mapped[int] = mapped_column(sa.ForeignKey("tenant.id", ondelete="CASCADE"), primary_key=True)
    url: Mapped[str] = mapped_column(sa.String(2048))
    jwks: Mapped[dict | None] = mapped_column(JSONType)  # the last set that passed validation
    fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # when `jwks` was fetched
    attempted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # last fetch attempt, good or bad
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    fetch_count: Mapped[int] = mapped_column(default=0, server_default="0")
