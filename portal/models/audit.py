"""Append-only audit trail: who changed what, when, from where."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from portal.models.base import Base, JSONType, UTCDateTime, utcnow


class AuditEvent(Base):
    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(sa.String(64), index=True)  # username, "cli", "system" or an API client
    actor_id: Mapped[int | None] = mapped_column()
    action: Mapped[str] = mapped_column(sa.String(64), index=True)  # e.g. "admin.create"
    object_type: Mapped[str] = mapped_column(sa.String(32), index=True)
    object_id: Mapped[str | None] = mapped_column(sa.String(128))
    changes: Mapped[dict] = mapped_column(JSONType, default=dict)  # {field: {"before": .., "after": ..}}
    request_id: Mapped[str | None] = mapped_column(sa.String(128))
    ip: Mapped[str | None] = mapped_column(sa.String(64))
