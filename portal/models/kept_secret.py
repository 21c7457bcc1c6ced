"""Secrets typed into a form whose submission failed or was only tested, kept for that form for a few minutes so
the administrator does not type them again (services/tenants/kept_secrets.py). Encrypted like every stored
secret, bound to the admin session that typed them (deleted with it) and to one form instance's random handle."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from portal.encryption import EncryptedText
from portal.models.base import Base, UTCDateTime, utcnow


class KeptSecret(Base):
    __tablename__ = "kept_secret"
    __table_args__ = (sa.UniqueConstraint("handle_hash", "field", name="uq_kept_secret_handle_field"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    handle_hash: Mapped[str] = mapped_column(sa.String(64), index=True)  # SHA-256 of the form's hidden handle
    session_id: Mapped[int] = mapped_column(sa.ForeignKey("admin_session.id", ondelete="CASCADE"), index=True)
    form_key: Mapped[str] = mapped_column(sa.String(80))  # "register" or "edit:<tenant key>"
    field: Mapped[str] = mapped_column(sa.String(64))  # the form field's name
    bound_to: Mapped[str | None] = mapped_column(sa.String(64))  # SHA-256 of where the secret goes, if anywhere
    value: Mapped[str] = mapped_column(EncryptedText)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
