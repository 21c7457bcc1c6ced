"""/v1/tenant: register, list, read, update, activate, deactivate and decommission tenants.

Views only turn HTTP into a call of the tenants service and its result back into JSON; every rule about a
tenant lives in the service, so the form and the API refuse the same things with the same messages.
"""
from __future__ import annotations

import re
from typing import Any

from flask import Response, jsonify, request, url_for

from portal.access import machine
from portal.api.auth import api_actor, current_client, requires_scope
from portal.api.blueprint import bp
from portal.api.bodies import read_json_body
from portal.api.problems import ApiProblem
from portal.idp import registry
from portal.services.admin import api_clients
from portal.services.errors import ValidationError
from portal.services.outbox import decommission
from portal.services.tenants import fields as tenant_fields, service as tenants

SKIP_CHECK_FIELD = tenant_fields.SKIP_CHECK
STATUSES = ("active", "inactive", "unverified")
DEFAULT_LIMIT, MAX_LIMIT = 50, 500
MAX_QUERY_LENGTH = 255
CURSOR_RE = re.compile(r"[a-z0-9_-]{1,64}")  # a tenant key: the `after` cursor is the last key of the page
LIST_PARAMETERS = ("q", "identityProviderType", "status", "limit", "after")


# --- request bodies --------------------------------------------------------------------------------------


def tenant_body() -> tuple[Any, bool]:
    """The registration body and whether the caller asked to skip the connection check."""
    body = read_json_body()
    skip = False
    if isinstance(body, dict) and SKIP_CHECK_FIELD in body:
        skip = body.pop(SKIP_CHECK_FIELD)
        if not isinstance(skip, bool):
            raise ValidationError({SKIP_CHECK_FIELD: "Must be true or false."})
    return body, skip


def _tenant_response(tenant, status: int = 200) -> Response:
    response = jsonify(tenants.to_api(tenant))
    response.status_code = status
    return response


# --- query parameters ------------------------------------------------------------------------------------


def _list_query() -> tuple[tenants.TenantQuery, dict[str, str]]:
    """The list's query parameters, each checked; returns the query and the parameters to carry into `next`."""
    args = request.args
    errors: dict[str, str] = {}
    for name in sorted(set(args) - set(LIST_PARAMETERS)):
        errors[name] = f"Unknown query parameter; use {', '.join(LIST_PARAMETERS)}."
    for name in LIST_PARAMETERS:
        if len(args.getlist(name)) > 1:
            errors[name] = "Give this parameter once."
    q = args.get("q", "")
    if len(q) > MAX_QUERY_LENGTH:
        errors.setdefault("q", f"At most {MAX_QUERY_LENGTH} characters.")
    idp_type = args.get("identityProviderType")
    if idp_type is not None and idp_type not in registry.names():
        errors.setdefault("identityProviderType", f"Choose one of {', '.join(registry.names())}.")
    status = args.get("status")
    if status is not None and status not in STATUSES:
        errors.setdefault("status", f"Choose one of {', '.join(STATUSES)}.")
    limit = DEFAULT_LIMIT
    if (limit_text := args.get("limit")) is not None:
        if re.fullmatch(r"[0-9]{1,3}", limit_text) and 1 <= int(limit_text) <= MAX_LIMIT:
            limit = int(limit_text)
        else:
            errors.setdefault("limit", f"A whole number from 1 to {MAX_LIMIT}.")
    after = args.get("after")
    if after is not None and not CURSOR_RE.fullmatch(after):
        errors.setdefault("after", "Not a cursor: pass on the `next` link of the previous page as it is.")
    if errors:
        raise ValidationError(errors)
    carry = {name: args[name] for name in ("q", "identityProviderType", "status", "limit") if name in args}
    query = tenants.TenantQuery(q=q, idp_type=idp_type or "", status=status or "", after=after, limit=limit)
    return query, carry


# --- routes ----------------------------------------------------------------------------------------------


@bp.post("/tenant")
@machine
@requires_scope("register")
def create_tenant():
    body, skip = tenant_body()
    client = current_client()
    if isinstance(body, dict) and not api_clients.may_register(client, body.get("tenantId")):
        raise ApiProblem(403, f"This API client may only register tenants whose id matches "
                              f"'{client.tenant_pattern}'.", {"tenantId": "Outside this API client's tenant limit."})
    with api_clients.registering_as(client):
        registration = tenants.register_tenant(body, api_actor(), skip_check=skip)
    response = _tenant_response(registration.tenant, 201)
    response.headers["Location"] = url_for("api.get_tenant", tenant_id=registration.tenant.tenant_id)
    return response


@bp.get("/tenant")
@machine
@requires_scope("read")
def list_tenants():
    query, carry = _list_query()
    with api_clients.tenants_visible_to(current_client()):  # a limited client lists only its tenants
        page = tenants.list_tenants(query)
    next_url = url_for("api.list_tenants", **carry, after=page.next_after) if page.next_after else None
    return jsonify({"items": [tenants.to_api(tenant) for tenant in page.tenants], "next": next_url})


@bp.get("/tenant/<tenant_id>")
@machine
@requires_scope("read")
def get_tenant(tenant_id: str):
    return _tenant_response(tenants.get_tenant(tenant_id))


@bp.put("/tenant/<tenant_id>")
@machine
@requires_scope("update")
def update_tenant(tenant_id: str):
    body, skip = tenant_body()
    return _tenant_response(tenants.update_tenant(tenant_id, body, api_actor(), skip_check=skip).tenant)


@bp.post("/tenant/<tenant_id>/activate")
@machine
@requires_scope("update")
def activate_tenant(tenant_id: str):
    return _tenant_response(tenants.set_tenant_active(tenant_id, True, api_actor()))


@bp.post("/tenant/<tenant_id>/deactivate")
@machine
@requires_scope("update")
def deactivate_tenant(tenant_id: str):
    return _tenant_response(tenants.set_tenant_active(tenant_id, False, api_actor()))


@bp.delete("/tenant/<tenant_id>")
@machine
@requires_scope("decommission")
def decommission_tenant(tenant_id: str):
    """202: decommissioning is queued (the call is its own confirmation); the worker deactivates the tenant in both
    products, deletes it where allowed and removes it from the registry. Repeating the call changes nothing."""
    record = decommission.request(tenant_id, api_actor(), check_confirm=False)
    response = jsonify(decommission_body(record))
    response.status_code = 202
    response.headers["Location"] = url_for("api.get_tenant", tenant_id=record.tenant_id)
    return response


def decommission_body(record) -> dict[str, Any]:
    done = record.completed_at is not None  # nothing to do in the products: removed at once
    return {"tenantId": record.tenant_id, "tenantDomain": record.domain,
            "status": "decommissioned" if done else "decommissioning",
            "requestedAt": tenants.iso(record.requested_at), "requestedBy": record.requested_by,
            "outcomes": {"is": record.is_outcome, "apim": record.apim_outcome}}
