"""Where an audit event's object is shown: the page of the tenant, certificate, mapping, administrator, API
client or bulk job it names (when it still exists), or the settings page it changed."""
from __future__ import annotations

from flask import url_for

from portal.models import AuditEvent

# Objects with a page each; linked only when they still exist (services.admin.audit.existing_objects).
_OWN_PAGE = {
    "tenant": lambda oid: url_for("tenants.detail", tenant_id=oid),
    "certificate": lambda oid: url_for("certificates.detail", cert_id=int(oid)),
    "thumbprint_mapping": lambda oid: url_for("certificates.mapping_edit", mapping_id=int(oid)),
    "admin": lambda oid: url_for("admins.detail", admin_id=int(oid)),
    "api_client": lambda oid: url_for("api_clients.index", _anchor=f"client-{oid}"),
    "bulk_job": lambda oid: url_for("bulk.job", job_id=int(oid)),
}
# Settings that always exist: the page where they are changed.
_SETTINGS_PAGE = {
    "sharing_settings": lambda oid: url_for("sharing.index"),
    "product_connection": lambda oid: url_for("sharing.connection_edit", product=oid),
    "setting": lambda oid: url_for("certificates.mapping_list"),
    "truststore": lambda oid: url_for("certificates.truststore_page"),
    "outbox": lambda oid: url_for("sync.index"),
}


def object_url(event: AuditEvent, existing: set[tuple[str, str]]) -> str | None:
    """The URL of the event's object, or None when it has no page (or no longer exists)."""
    own = _OWN_PAGE.get(event.object_type)
    if own is not None:
        return own(event.object_id) if (event.object_type, event.object_id) in existing else None
    settings = _SETTINGS_PAGE.get(event.object_type)
    if settings is None or (event.object_type == "product_connection" and not event.object_id):
        return None
    return settings(event.object_id)
