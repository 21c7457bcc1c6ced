"""Runtime settings kept in the database so every worker sees the same value (not app.config)."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from portal.encryption import EncryptedText
from portal.models.base import Base, JSONType, UTCDateTime, utcnow


class Setting(Base):
    __tablename__ = "setting"

    key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    value: Mapped[dict | list | str | int | bool | None] = mapped_column(JSONType)
    secret: Mapped[str | None] = mapped_column(EncryptedText)  # e.g. a WSO2 password; never rendered
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
