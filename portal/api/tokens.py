"""/v1/token/validate, /v1/tenant/<id>/keys and /client-secret: token validation, signing-key rotation and
generated client secrets, for machines."""
from __future__ import annotations

from flask import jsonify, request

from portal.access import machine
from portal.api.auth import api_actor, current_client, requires_scope
from portal.api.blueprint import bp
from portal.api.bodies import read_json_body
from portal.api.problems import ApiProblem
from portal.services.admin import api_clients
from portal.services.tenants import service as tenants
from portal.services.tokens import key_ring, service as tokens

VALIDATE_FIELDS = {"token", "audience", "tenantId"}


@bp.post("/token/validate")
@machine
@requires_scope("validate")
def validate_token():
    body = read_json_body()
    if not isinstance(body, dict):
        raise ApiProblem(400, "Send a JSON object such as {\"token\": \"eyJ...\"}.")
    errors = {name: "Unknown field." for name in body if name not in VALIDATE_FIELDS}
    for name in VALIDATE_FIELDS:
        if name in body and not isinstance(body[name], str):
            errors[name] = "Must be a string."
    if not body.get("token"):
        errors.setdefault("token", "The token to validate is required.")
    if errors:
        raise ApiProblem(400, f"{len(errors)} field{'s' if len(errors) > 1 else ''} refused.", errors)
    verdict = tokens.validate(body["token"], request.url_root, audience=body.get("audience") or None,
                              tenant_hint=body.get("tenantId") or None)
    if verdict.tenant_id is not None and not api_clients.permits_tenant(current_client(), verdict.tenant_id):
        verdict = tokens.Verdict(False, "unknown_tenant")  # outside the client's limit: as if not registered
    return jsonify(verdict.response())


@bp.post("/tenant/<tenant_id>/client-secret")
@machine
@requires_scope("secrets")
def generate_client_secret(tenant_id: str):
    """A new random client secret, returned this once."""
    response = jsonify({"clientSecret": tenants.new_client_secret(tenant_id, api_actor())})
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/tenant/<tenant_id>/keys")
@machine
@requires_scope("read")
def list_keys(tenant_id: str):
    return jsonify({"keys": key_ring.key_views(tenants.get_tenant(tenant_id))})


@bp.post("/tenant/<tenant_id>/keys/rotate")
@machine
@requires_scope("keys")
def rotate_key(tenant_id: str):
    body = read_json_body() if request.content_length else {}
    if not isinstance(body, dict) or set(body) - {"signingKey", "rsaKeySize"}:
        raise ApiProblem(400, "Send {} to generate a key, or {\"signingKey\": \"...\"} to supply one.")
    size = body.get("rsaKeySize", 2048)
    if not isinstance(size, int) or isinstance(size, bool):
        raise ApiProblem(400, "rsaKeySize must be 2048, 3072 or 4096.", {"rsaKeySize": "Must be an integer."})
    supplied = body.get("signingKey")
    if "signingKey" in body and not isinstance(supplied, str):  # null too: the document says string; omit it instead
        raise ApiProblem(400, "signingKey must be a string.", {"signingKey": "Must be a string; leave it out to "
                                                                              "generate a key."})
    key_ring.rotate(tenant_id, api_actor(), supplied=supplied, key_size=size)
    response = jsonify({"keys": key_ring.key_views(tenants.get_tenant(tenant_id))})
    response.status_code = 201
    return response


@bp.post("/tenant/<tenant_id>/keys/<kid>/retire")
@machine
@requires_scope("keys")
def retire_key(tenant_id: str, kid: str):
    key_ring.retire(tenant_id, kid, api_actor())
    return jsonify({"keys": key_ring.key_views(tenants.get_tenant(tenant_id))})
