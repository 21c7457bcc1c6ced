"""What the dashboard and readiness check report about this instance."""
from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from flask import current_app

from portal.extensions import db
from portal.models import AdminUser


@dataclass
class Overview:
    database: str
    admins_active: int
    admins_total: int
    rate_limit_storage: str
    encryption_key_source: str


def database_problem() -> str | None:
    try:
        db.session.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        db.session.rollback()
        return type(exc).__name__
    return None


def overview() -> Overview:
    cfg = current_app.config
    counts = db.session.execute(
        sa.select(sa.func.count(), sa.func.count().filter(AdminUser.active)).select_from(AdminUser)
    ).one()
    storage = cfg["RATELIMIT_STORAGE_URI"].split("://", 1)[0]
    return Overview(
        database=db.engine.dialect.name, admins_total=counts[0], admins_active=counts[1],
        rate_limit_storage="memory (per process)" if storage == "memory" else storage,
        encryption_key_source="instance/encryption.key" if cfg.get("ENCRYPTION_KEY_FILE") else "environment",
    )
