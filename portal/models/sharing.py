"""How the portal reaches IS 7 and API Manager, and which of the two products shares tenants with the other."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from portal.encryption import EncryptedText
from portal.models.base import Base, JSONType, UTCDateTime, utcnow

PRODUCTS = ("is", "apim")
AUTH_METHODS = ("mtls", "basic")
# One column, three values: "both directions at once" has no spelling, so it cannot be stored.
DIRECTIONS = ("off", "apim_to_is", "is_to_apim")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class ProductConnection(Base):
    """The portal's own connection to one product (IS 7 or API Manager): at most one row per product."""

    __tablename__ = "product_connection"
    __table_args__ = (
        sa.CheckConstraint(_in("product", PRODUCTS), name="product"),
        sa.CheckConstraint(_in("auth", AUTH_METHODS), name="auth"),
        # API Manager's SOAP admin service and notify API take Basic only.
        sa.CheckConstraint("product = 'is' OR auth = 'basic'", name="apim_basic"),
        sa.CheckConstraint("connect_timeout > 0 AND read_timeout > 0", name="timeouts"),
    )

    product: Mapped[str] = mapped_column(sa.String(8), primary_key=True)
    base_url: Mapped[str] = mapped_column(sa.String(2048))
    auth: Mapped[str] = mapped_column(sa.String(8))
    username: Mapped[str] = mapped_column(sa.String(255), default="")
    password: Mapped[str | None] = mapped_column(EncryptedText)  # never rendered
    identity_user: Mapped[str] = mapped_column(sa.String(255), default="")  # WSO2-Identity-User for IS mTLS
    trust_roles: Mapped[list] = mapped_column(JSONType, default=list)  # certificate roles the portal trusts
    connect_timeout: Mapped[float] = mapped_column(sa.Float, default=5.0)
    read_timeout: Mapped[float] = mapped_column(sa.Float, default=30.0)
    updated_by: Mapped[str] = mapped_column(sa.String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SharingSettings(Base):
    """The single row (id 1) holding the sharing direction and the settings of each direction.

    The settings of the direction not chosen are kept, so switching back does not lose them."""

    __tablename__ = "sharing_settings"
    __table_args__ = (
        sa.CheckConstraint("id = 1", name="singleton"),
        sa.CheckConstraint(_in("direction", DIRECTIONS), name="direction"),
        # API Manager would create a resident key manager that clashes with the auto-configured one.
        sa.CheckConstraint("skip_create_resident_key_manager OR NOT auto_configure_key_manager",
                           name="skip_resident_when_auto"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False, default=1)
    direction: Mapped[str] = mapped_column(sa.String(16), default="off")
    # IS 7 -> API Manager (TenantSyncListener on IS calls API Manager's notify endpoint)
    apim_username: Mapped[str] = mapped_column(sa.String(255), default="")
    apim_password: Mapped[str | None] = mapped_column(EncryptedText)
    # API Manager -> IS 7 ([[apim.tenant_sharing]] on API Manager calls IS's tenant API)
    identity_server_base_url: Mapped[str] = mapped_column(sa.String(2048), default="")
    is_username: Mapped[str] = mapped_column(sa.String(255), default="")
    is_password: Mapped[str | None] = mapped_column(EncryptedText)
    auto_configure_key_manager: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    skip_create_resident_key_manager: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    dotless_domains: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    updated_by: Mapped[str] = mapped_column(sa.String(64), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
