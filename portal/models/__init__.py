"""Typed SQLAlchemy 2.x models, one module per aggregate. Importing this package registers them all."""
from portal.models.admin import ROLES, AdminSession, AdminUser
from portal.models.api_client import ApiClient
from portal.models.audit import AuditEvent
from portal.models.base import Base
from portal.models.bulk import BulkJob
from portal.models.certificate import Certificate as Certificate, ThumbprintMapping as ThumbprintMapping
from portal.models.kept_secret import KeptSecret
from portal.models.outbox import (
    Decommission as Decommission,
    KeyManagerCheck as KeyManagerCheck,
    OutboxJob as OutboxJob,
    SyncState as SyncState,
)
from portal.models.setting import Setting
from portal.models.sharing import ProductConnection as ProductConnection, SharingSettings as SharingSettings
from portal.models.tenant import ALGORITHMS, PROVISIONING_METHODS, JwksCache, SigningKey, Tenant

__all__ = ["ALGORITHMS", "PROVISIONING_METHODS", "ROLES", "AdminSession", "AdminUser", "ApiClient",
           "AuditEvent", "Base", "BulkJob", "JwksCache", "KeptSecret", "Setting", "SigningKey", "Tenant"]
