"""Certificates for mutual TLS between API Manager, IS 7 and the portal, and IS 7's thumbprint mappings."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from portal.encryption import EncryptedText
from portal.models.base import Base, JSONType, UTCDateTime, utcnow

# apim: API Manager's public certificate; is: IS 7's; ca: a trust anchor; client: the portal's own client
# certificate, the only one stored with its private key.
CERTIFICATE_ROLES = ("apim", "is", "ca", "client")
MAPPING_KINDS = ("user", "system")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Certificate(Base):
    """One X.509 certificate, kept as DER; the columns beside it are derived from the DER at upload so lists,
    lint and explanations need no re-parsing."""

    __tablename__ = "certificate"
    __table_args__ = (
        sa.UniqueConstraint("role", "thumbprint", name="uq_certificate_role_thumbprint"),
        sa.CheckConstraint(_in("role", CERTIFICATE_ROLES), name="role"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    role: Mapped[str] = mapped_column(sa.String(16), index=True)
    label: Mapped[str] = mapped_column(sa.String(128))
    der: Mapped[bytes] = mapped_column(sa.LargeBinary)
    thumbprint: Mapped[str] = mapped_column(sa.String(95))  # SHA-256, "AA:BB:..." as IS compares it
    subject_dn: Mapped[str] = mapped_column(sa.Text)  # Java's getSubjectDN().getName()
    issuer_dn: Mapped[str] = mapped_column(sa.Text)  # Java's getIssuerDN().getName(): what trusted_issuer matches
    not_after: Mapped[datetime] = mapped_column(UTCDateTime)
    private_key: Mapped[str | None] = mapped_column(EncryptedText)  # role "client" only: PKCS#8 PEM, never shown
    created_by: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ThumbprintMapping(Base):
    """A `user_thumbprint_mapping` or `system_thumbprint_mapping` of IS 7's deployment.toml. IS takes the first
    match, so `position` orders each kind's list (gaps allowed; ties broken by id)."""

    __tablename__ = "thumbprint_mapping"
    __table_args__ = (
        sa.CheckConstraint(_in("kind", MAPPING_KINDS), name="kind"),
        sa.Index("ix_thumbprint_mapping_kind_position", "kind", "position"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(8))
    position: Mapped[int] = mapped_column()
    trusted_issuer: Mapped[str] = mapped_column(sa.Text)
    cert_thumbprint: Mapped[str] = mapped_column(sa.String(255), default="")
    allowed_usernames: Mapped[list] = mapped_column(JSONType, default=list)  # kind "user"
    allowed_system_user: Mapped[str] = mapped_column(sa.String(255), default="")  # kind "system"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
