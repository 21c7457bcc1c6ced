"""Blueprints for people: server-rendered pages. Each area has views.py (thin) and forms.py (shape only)."""
from flask import Flask


def register_blueprints(app: Flask) -> None:
    from portal.web.admins.views import bp as admins_bp
    from portal.web.api_clients.views import bp as api_clients_bp
    from portal.web.audit.views import bp as audit_bp
    from portal.web.auth.views import bp as auth_bp
    from portal.web.bulk.views import bp as bulk_bp
    from portal.web.certificates import bp as certificates_bp
    from portal.web.main.views import bp as main_bp
    from portal.web.mtls_check.views import bp as mtls_check_bp
    from portal.web.sharing import bp as sharing_bp
    from portal.web.sync import bp as sync_bp
    from portal.web.tenant_users.views import bp as tenant_users_bp
    from portal.web.tenants import key_manager, token_lab  # noqa: F401  (their routes live on the tenants blueprint)
    from portal.web.tenants.views import bp as tenants_bp

    # bulk before tenants so /tenants/bulk is never read as a tenant id
    for bp in (main_bp, auth_bp, admins_bp, audit_bp, bulk_bp, tenants_bp, api_clients_bp, certificates_bp,
               mtls_check_bp, sharing_bp, sync_bp, tenant_users_bp):
        app.register_blueprint(bp)
