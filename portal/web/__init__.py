"""Blueprints for people: server-rendered pages. Each area has views.py (thin) and forms.py (shape only)."""
from flask import Flask


def register_blueprints(app: Flask) -> None:
    from portal.web.admins.views import bp as admins_bp
    from portal.web.audit.views import bp as audit_bp
    from portal.web.auth.views import bp as auth_bp
    from portal.web.main.views import bp as main_bp

    for bp in (main_bp, auth_bp, admins_bp, audit_bp):
        app.register_blueprint(bp)
