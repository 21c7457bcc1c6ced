"""Bulk onboarding jobs: an uploaded file of tenants, validated (dry run) or applied, with progress."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from portal.encryption import EncryptedText
from portal.models.base import Base, JSONType, UTCDateTime, utcnow

BULK_STATES = ("pending", "running", "done", "failed")


class BulkJob(Base):
    __tablename__ = "bulk_job"
    __table_args__ = (sa.CheckConstraint(f"status IN {BULK_STATES!r}", name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    filename: Mapped[str] = mapped_column(sa.String(255))
    dry_run: Mapped[bool] = mapped_column()
    check_connections: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(sa.String(16), default="pending")
    rows: Mapped[str] = mapped_column(EncryptedText)  # the parsed rows as JSON: they hold secrets
    total: Mapped[int] = mapped_column(default=0)
    processed: Mapped[int] = mapped_column(default=0)
    created: Mapped[int] = mapped_column(default=0)
    skipped: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    report: Mapped[list] = mapped_column(JSONType, default=list)  # [{"row", "tenantId", "outcome", "errors"}]
    error: Mapped[str | None] = mapped_column(sa.Text)
    created_by: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
