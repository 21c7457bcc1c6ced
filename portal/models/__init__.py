"""Typed SQLAlchemy 2.x models, one module per aggregate. Importing this package registers them all."""
from portal.models.admin import ROLES, AdminSession, AdminUser
from portal.models.audit import AuditEvent
from portal.models.base import Base
from portal.models.setting import Setting

__all__ = ["ROLES", "AdminSession", "AdminUser", "AuditEvent", "Base", "Setting"]
