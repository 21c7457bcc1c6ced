"""Bulk onboarding jobs: an uploaded file of tenants, validated (dry run) or applied, with progress."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from portal.encryption import EncryptedText
from portal.models.base import Base, JSONType, UTCDateTime, utcnow

BULK_STATES = ("pending", "running", "done", "failed")


class BulkJob(Base):
    """One run over an uploaded file. Counters are written every few rows while it runs, the per-row report at
    the end; `rows` and `report` are deferred so listing jobs never decrypts or loads them."""

    __tablename__ = "bulk_job"
    __table_args__ = (sa.CheckConstraint(f"status IN {BULK_STATES!r}", name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    filename: Mapped[str] = mapped_column(sa.String(255))
    file_format: Mapped[str] = mapped_column(sa.String(8))  # "csv" or "jsonl"
    dry_run: Mapped[bool] = mapped_column()
    check_connections: Mapped[bool] = mapped_column(default=False)
    source_job_id: Mapped[int | None] = mapped_column(sa.ForeignKey("bulk_job.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(sa.String(16), default="pending")
    rows: Mapped[str] = mapped_column(EncryptedText, deferred=True)  # the parsed rows as JSON: they hold secrets
    total: Mapped[int] = mapped_column(default=0)
    processed: Mapped[int] = mapped_column(default=0)
    created: Mapped[int] = mapped_column(default=0)  # dry run: rows that would be created
    skipped: Mapped[int] = mapped_column(default=0)  # identical tenant already registered
    conflicts: Mapped[int] = mapped_column(default=0)  # registered with different settings: left alone
    failed: Mapped[int] = mapped_column(default=0)  # invalid rows, duplicates, refused registrations
    # [{"row", "tenantId", "outcome", "errors"}]
    report: Mapped[list] = mapped_column(JSONType, default=list, deferred=True)
    error: Mapped[str | None] = mapped_column(sa.Text)
    created_by: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)  # last progress write
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
