"""API-key authentication and scope authorization for /v1, and the actor recorded in the audit trail for API calls.

Deny by default: every /v1 view declares the one scope it needs with @requires_scope; a view without one answers
403 to every client (tests/test_api_scopes.py also fails on it), as a view without @roles does for people.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from flask import current_app, g, request

from portal.access import PUBLIC, access_of
from portal.api.blueprint import bp
from portal.errors import problem
from portal.hardening import request_id
from portal.services.admin import api_clients
from portal.services.context import Actor

log = logging.getLogger(__name__)

APP_ID_HEADER = "X-API-AppId"
KEY_HEADER = "X-API-Key"
UNAUTHORIZED_TITLE = "Missing or invalid API credentials"
FORBIDDEN_TITLE = "Forbidden"
TENANT_ID_ARG = "tenant_id"


def requires_scope(name: str) -> Callable[[Callable], Callable]:
    """The scope an API client needs for this operation (one of api_clients.SCOPES)."""
    if name not in api_clients.SCOPES:
        raise ValueError(f"unknown API scope {name!r}")

    def decorate(view: Callable) -> Callable:
        view._api_scope = name
        return view

    return decorate


def scope_of(view: Callable) -> str | None:
    return getattr(view, "_api_scope", None)


def tenant_not_found(tenant_id: str):
    """The very answer of a tenant that does not exist (problems.py's NotFound), for one outside a client's limit."""
    return problem(404, "Not found", f"No tenant with id {tenant_id!r}.")


@bp.before_request
def require_api_key():
    """Runs for every matched /v1 route: only views marked @public (the OpenAPI document) skip the key check."""
    view = current_app.view_functions.get(request.endpoint or "")
    if view is not None and access_of(view) == PUBLIC:
        return None
    app_id, key = request.headers.get(APP_ID_HEADER), request.headers.get(KEY_HEADER)
    client = api_clients.authenticate(app_id, key)
    if isinstance(client, api_clients.Refusal):
        missing = [name for name, value in ((APP_ID_HEADER, app_id), (KEY_HEADER, key)) if not value]
        if missing:
            detail = f"Send the {' and '.join(missing)} header{'s' if len(missing) > 1 else ''} of an API client."
        else:
            detail = client.detail
        log.info("API call refused: %s", "missing credentials" if missing else client.reason)
        return problem(401, UNAUTHORIZED_TITLE, detail)
    g.api_client = client
    if view is None:
        return None
    needed = scope_of(view)
    if needed not in client.scopes:
        log.info("API call refused: client %s lacks scope %s for %s", client.app_id, needed, request.endpoint)
        if needed is None:  # a route nobody declared a scope for: closed to everyone
            return problem(403, FORBIDDEN_TITLE, "This operation declares no scope, so no API client may call it.")
        return problem(403, FORBIDDEN_TITLE, f"This API client lacks the scope '{needed}'.", requiredScope=needed)
    tenant_id = (request.view_args or {}).get(TENANT_ID_ARG)
    if tenant_id is not None and not api_clients.permits_tenant(client, tenant_id):
        return tenant_not_found(tenant_id)
    return None


def current_client() -> api_clients.CallingClient:
    return g.api_client


def api_actor() -> Actor:
    """Who is acting, for the audit trail: the API client, with the request id and address."""
    return Actor(name=f"api:{current_client().app_id}", role="api", request_id=request_id(),
                 ip=request.remote_addr)
