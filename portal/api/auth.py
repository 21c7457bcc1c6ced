"""API-key authentication for /v1 and the actor recorded in the audit trail for API calls."""
from __future__ import annotations

import logging

from flask import current_app, g, request

from portal.access import PUBLIC, access_of
from portal.api import bp
from portal.errors import problem
from portal.hardening import request_id
from portal.services import api_clients
from portal.services.context import Actor

log = logging.getLogger(__name__)

APP_ID_HEADER = "X-API-AppId"
KEY_HEADER = "X-API-Key"
UNAUTHORIZED_TITLE = "Missing or invalid API credentials"


@bp.before_request
def require_api_key():
    """Runs for every matched /v1 route: only views marked @public (the OpenAPI document) skip the key check."""
    view = current_app.view_functions.get(request.endpoint or "")
    if view is not None and access_of(view) == PUBLIC:
        return None
    app_id, key = request.headers.get(APP_ID_HEADER), request.headers.get(KEY_HEADER)
    client = api_clients.authenticate(app_id, key)
    if client is None:
        missing = [name for name, value in ((APP_ID_HEADER, app_id), (KEY_HEADER, key)) if not value]
        if missing:
            detail = f"Send the {' and '.join(missing)} header{'s' if len(missing) > 1 else ''} of an API client."
        else:
            detail = (f"The {APP_ID_HEADER} and {KEY_HEADER} headers do not name an active API client: "
                      "the app id is unknown, the key is wrong, or the client was revoked.")
        log.info("API call refused: %s", "missing credentials" if missing else "bad or revoked credentials")
        return problem(401, UNAUTHORIZED_TITLE, detail)
    g.api_client = client
    return None


def current_client() -> api_clients.CallingClient:
    return g.api_client


def api_actor() -> Actor:
    """Who is acting, for the audit trail: the API client, with the request id and address."""
    return Actor(name=f"api:{current_client().app_id}", role="api", request_id=request_id(),
                 ip=request.remote_addr)
