"""Blueprint for machines: the /v1 registration API, authenticated by X-API-AppId / X-API-Key.

Every route answers JSON; every error is an RFC 9457 problem body (application/problem+json).
"""
from __future__ import annotations

from flask import Flask

from portal.api.blueprint import bp


def register_api(app: Flask) -> None:
    """The machine blueprints, registered after the people's ones and exempt from CSRF: /v1 callers authenticate
    with API keys and OAuth clients with their client secret, not cookies; published keys are public."""
    from portal.api.oauth import bp as oauth_bp
    from portal.extensions import csrf

    for blueprint in (bp, oauth_bp):
        csrf.exempt(blueprint)
        app.register_blueprint(blueprint)

# The modules register their routes and hooks on `bp` (portal/api/blueprint.py) when imported.
from portal.api import auth, openapi, problems, tenants, tokens  # noqa: E402,F401
