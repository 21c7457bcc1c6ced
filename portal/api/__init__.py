"""Blueprint for machines: the /v1 registration API, authenticated by X-API-AppId / X-API-Key.

Every route answers JSON; every error is an RFC 9457 problem body (application/problem+json).
"""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/v1")

# The modules register their routes and hooks on `bp`; imported last so they can import `bp` from here.
from portal.api import auth, openapi, problems, tenants, tokens  # noqa: E402,F401
