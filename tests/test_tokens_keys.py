"""Signing keys through /v1/tenant/<id>/keys (list, rotate, retire, audit) and what the portal publishes for them:
/t/<id>/.well-known/jwks.json (RSA public keys only, never an HMAC key or a private member) and the discovery
document."""
from __future__ import annotations

import pytest
import sqlalchemy as sa
from jwcrypto import jwk

from portal.models import AuditEvent, SigningKey
from simulators import pki
from tests.api_helpers import Api
from tests.token_helpers import (
    external_body,
    hmac_key_for,
    issue,
    pem_of,
    register,
    tenant_body,
    validate,
)

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
KEY_VIEW = {"kid", "algorithm", "status", "bits", "generated", "createdAt", "passiveUntil", "retiredAt", "publicKeyPem"}


@pytest.fixture(scope="module")
def rsa_pems():
    return [pem_of(pki.rsa_key()) for _ in range(3)]


def _keys(api: Api, tenant_id: str) -> list[dict]:
    response = api.get(f"/v1/tenant/{tenant_id}/keys")
    assert response.status_code == 200
    return response.get_json()["keys"]


def _jwks(api: Api, tenant_id: str) -> dict:
    response = api.client.get(f"/t/{tenant_id}/.well-known/jwks.json")  # public: no API key
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Cache-Control"] == "public, max-age=300"  # verifiers may cache; no cookie is set
    assert "Set-Cookie" not in response.headers
    return response.get_json()


def _problem(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    return response.get_json()


# --- list, rotate, retire ---------------------------------------------------------------------------------------


def test_keys_are_listed_without_secrets(api, rsa_pems):
    register(api, tenant_body("hsco", "HS512"))
    register(api, tenant_body("rsco", "RS384", signing_key=rsa_pems[0]))
    (hs,) = _keys(api, "hsco")
    assert set(hs) == KEY_VIEW
    assert (hs["algorithm"], hs["status"], hs["bits"], hs["generated"], hs["publicKeyPem"]) == \
        ("HS512", "active", 512, False, None)
    assert hs["kid"].startswith("hs-") and hs["passiveUntil"] is None and hs["retiredAt"] is None
    (rs,) = _keys(api, "rsco")
    assert (rs["algorithm"], rs["bits"]) == ("RS384", 2048) and rs["publicKeyPem"].startswith("-----BEGIN PUBLIC KEY")
    # The RFC 7638 thumbprint is the kid: jwcrypto computes the same from the public key alone.
    assert rs["kid"] == jwk.JWK.from_pem(rs["publicKeyPem"].encode()).thumbprint()
    text = "".join(api.get(f"/v1/tenant/{t}/keys").get_data(as_text=True) for t in ("hsco", "rsco"))
    assert hmac_key_for("HS512") not in text and "PRIVATE KEY" not in text
    assert _problem(api.get("/v1/tenant/nobody/keys"), 404)
    assert api.client.get("/v1/tenant/hsco/keys").status_code == 401  # machines only, with an API key


def test_rotate_hmac_generated_and_supplied(api, db):
    register(api, tenant_body("hsco", "HS256"))
    first = _keys(api, "hsco")[0]["kid"]
    response = api.post("/v1/tenant/hsco/keys/rotate")  # no body: a generated key
    assert response.status_code == 201
    keys = response.get_json()["keys"]
    assert [k["status"] for k in keys] == ["active", "passive"] and keys[1]["kid"] == first
    assert keys[0]["generated"] is True and keys[0]["bits"] >= 256 and keys[1]["passiveUntil"]
    supplied = "s" * 40
    keys = api.post("/v1/tenant/hsco/keys/rotate", json={"signingKey": supplied}).get_json()["keys"]
    assert [k["status"] for k in keys] == ["active", "passive", "passive"]
    assert (keys[0]["generated"], keys[0]["bits"]) == (False, 320)
    stored = db.session.execute(sa.select(SigningKey.secret).where(SigningKey.kid == keys[0]["kid"])).scalar_one()
    assert stored == supplied  # decrypted by the model; the column itself holds ciphertext
    raw = db.session.execute(sa.text("SELECT secret FROM signing_key WHERE kid = :kid"), {"kid": keys[0]["kid"]})
    assert supplied not in raw.scalar_one()
    assert validate(api, issue(api, "hsco"))["header"]["kid"] == keys[0]["kid"]


def test_rotate_rsa_generated_and_supplied(api, rsa_pems):
    register(api, tenant_body("rsco", "RS256", signing_key=rsa_pems[0]))
    keys = api.post("/v1/tenant/rsco/keys/rotate", json={"rsaKeySize": 2048}).get_json()["keys"]
    assert (keys[0]["generated"], keys[0]["bits"], keys[1]["status"]) == (True, 2048, "passive")
    response = api.post("/v1/tenant/rsco/keys/rotate", json={"signingKey": rsa_pems[1]})
    assert response.status_code == 201
    keys = response.get_json()["keys"]
    assert keys[0]["generated"] is False
    assert keys[0]["kid"] == jwk.JWK.from_pem(rsa_pems[1].encode()).thumbprint()
    assert validate(api, issue(api, "rsco"))["header"]["kid"] == keys[0]["kid"]


@pytest.mark.parametrize(("algorithm", "body", "fragment"), [
    ("HS256", {"signingKey": "too-short"}, "at least 32 bytes"),
    ("HS384", {"signingKey": "x" * 40}, "at least 48 bytes"),
    ("HS256", {"signingKey": "-----BEGIN PRIVATE KEY-----" + "x" * 40}, "shared secret"),
    ("RS256", {"signingKey": "not a pem key at all, just text"}, "PEM private key"),
    ("RS256", {"signingKey": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}, "not a readable PEM"),
    ("RS256", {"rsaKeySize": 1024}, "2048"),
])
def test_a_bad_supplied_key_is_a_field_error(api, rsa_pems, algorithm, body, fragment):
    key = rsa_pems[0] if algorithm == "RS256" else None
    register(api, tenant_body("badkey", algorithm, signing_key=key))
    before = _keys(api, "badkey")
    problem = _problem(api.post("/v1/tenant/badkey/keys/rotate", json=body), 400)
    assert fragment in problem["errors"]["signingKey"]
    assert _keys(api, "badkey") == before  # nothing changed


@pytest.mark.parametrize("body", [
    [], {"signingKey": 5}, {"rsaKeySize": "2048"}, {"rsaKeySize": True}, {"colour": "red"},
])
def test_rotate_refuses_bad_request_shapes(api, body):
    register(api, tenant_body("shape"))
    assert _problem(api.post("/v1/tenant/shape/keys/rotate", json=body), 400)["detail"]
    assert len(_keys(api, "shape")) == 1


def test_supplying_a_key_the_tenant_already_has_conflicts(api):
    register(api, tenant_body("dup", "HS256", signing_key="d" * 32))
    api.post("/v1/tenant/dup/keys/rotate", json={})
    # HMAC kids are random, so the same secret again is a new row; RSA kids are thumbprints and clash.
    register(api, tenant_body("duprsa", "RS256", signing_key=pem_of(pki.rsa_key())))
    pem = pem_of(pki.rsa_key())
    assert api.post("/v1/tenant/duprsa/keys/rotate", json={"signingKey": pem}).status_code == 201
    problem = _problem(api.post("/v1/tenant/duprsa/keys/rotate", json={"signingKey": pem}), 409)
    assert "signingKey" in problem["errors"]


def test_retire_rules_and_audit(api, db):
    register(api, tenant_body("ret"))
    old = _keys(api, "ret")[0]["kid"]
    problem = _problem(api.post(f"/v1/tenant/ret/keys/{old}/retire"), 409)  # the active key signs new tokens
    assert "kid" in problem["errors"]
    api.post("/v1/tenant/ret/keys/rotate", json={})
    new = next(k["kid"] for k in _keys(api, "ret") if k["status"] == "active")
    response = api.post(f"/v1/tenant/ret/keys/{old}/retire")
    assert response.status_code == 200
    statuses = {k["kid"]: (k["status"], bool(k["retiredAt"])) for k in response.get_json()["keys"]}
    assert statuses == {new: ("active", False), old: ("retired", True)}
    assert api.post(f"/v1/tenant/ret/keys/{old}/retire").status_code == 200  # idempotent
    _problem(api.post("/v1/tenant/ret/keys/hs-unknown/retire"), 404)
    _problem(api.post("/v1/tenant/nobody/keys/rotate", json={}), 404)

    events = db.session.execute(sa.select(AuditEvent).where(AuditEvent.object_id == "ret",
                                                            AuditEvent.action.like("tenant.key_%"))
                                .order_by(AuditEvent.id)).scalars().all()
    assert [e.action for e in events] == ["tenant.key_rotate", "tenant.key_retire"]  # refusals are not recorded
    rotate, retire = events
    assert rotate.actor == retire.actor == f"api:{api.app_id}"
    assert rotate.changes["activeKid"] == {"before": old, "after": new}
    assert rotate.changes["passiveUntil"]["after"]
    assert retire.changes == {"kid": {"before": "passive", "after": "retired"}}


def test_external_tenant_has_no_keys_to_rotate_or_publish(api, rsa_pems):
    register(api, external_body("extco", "https://idp.example.com", rsa_pems[0], skipConnectionCheck=True))
    assert "EXTERNAL" in _problem(api.post("/v1/tenant/extco/keys/rotate", json={}), 409)["detail"]
    assert _problem(api.post("/v1/tenant/extco/keys/any-kid/retire"), 409)
    for document in ("jwks.json", "openid-configuration"):
        assert "https://idp.example.com" in _problem(api.client.get(f"/t/extco/.well-known/{document}"), 404)["detail"]


# --- published documents ----------------------------------------------------------------------------------------


def test_jwks_never_publishes_hmac_keys(api):
    for algorithm in ("HS256", "HS384", "HS512"):
        register(api, tenant_body(f"h{algorithm.lower()}", algorithm))
        api.post(f"/v1/tenant/h{algorithm.lower()}/keys/rotate", json={})
        document = api.client.get(f"/t/h{algorithm.lower()}/.well-known/jwks.json")
        assert document.status_code == 200 and document.get_json() == {"keys": []}
        assert hmac_key_for(algorithm) not in document.get_data(as_text=True)


def test_jwks_holds_public_rsa_keys_that_still_validate(api, rsa_pems):
    register(api, tenant_body("pub", "RS512", signing_key=rsa_pems[0]))
    (only,) = _jwks(api, "pub")["keys"]
    assert set(only) == {"kty", "use", "alg", "kid", "n", "e"} and not PRIVATE_MEMBERS & set(only)
    assert (only["kty"], only["use"], only["alg"]) == ("RSA", "sig", "RS512")
    assert jwk.JWK(**only).thumbprint() == only["kid"]
    assert not jwk.JWK(**only).has_private

    api.post("/v1/tenant/pub/keys/rotate", json={"signingKey": rsa_pems[1]})
    keys = _jwks(api, "pub")["keys"]
    assert [k["kid"] for k in keys] and {k["kid"] for k in keys} == {k["kid"] for k in _keys(api, "pub")}
    assert all(not PRIVATE_MEMBERS & set(k) for k in keys)
    api.post(f"/v1/tenant/pub/keys/{only['kid']}/retire")
    assert [k["kid"] for k in _jwks(api, "pub")["keys"]] == [_keys(api, "pub")[0]["kid"]]
    assert only["kid"] not in api.client.get("/t/pub/.well-known/jwks.json").get_data(as_text=True)


def test_unknown_tenant_documents_are_404(api):
    for document in ("jwks.json", "openid-configuration"):
        _problem(api.client.get(f"/t/nobody/.well-known/{document}"), 404)


def test_openid_configuration_fields(api):
    register(api, tenant_body("Meta", "HS384"))
    response = api.client.get("/t/meta/.well-known/openid-configuration")  # the id is matched ignoring case
    assert response.status_code == 200 and response.headers["Access-Control-Allow-Origin"] == "*"
    meta = response.get_json()
    assert meta["issuer"] == "http://localhost/t/Meta"
    assert meta["jwks_uri"] == "http://localhost/t/Meta/.well-known/jwks.json"
    assert meta["token_endpoint"] == "http://localhost/oauth/token"
    assert meta["grant_types_supported"] == ["client_credentials", "password"]  # an LDAP tenant
    assert meta["token_endpoint_auth_methods_supported"] == ["client_secret_basic"]
    assert meta["id_token_signing_alg_values_supported"] == ["HS384"]
    assert {"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "TENANTID", "user_name",
            "authorities"} <= set(meta["claims_supported"])
    assert {"response_types_supported", "subject_types_supported"} <= set(meta)
    # What it says is what the tokens carry.
    claims = validate(api, issue(api, "Meta"))["claims"]
    assert claims["iss"] == meta["issuer"]


def test_a_deactivated_tenant_publishes_nothing(api, rsa_pems):
    register(api, tenant_body("gone", "RS256", signing_key=rsa_pems[0]))
    assert _jwks(api, "gone")["keys"]
    assert api.post("/v1/tenant/gone/deactivate").status_code == 200
    for document in ("jwks.json", "openid-configuration"):
        response = api.client.get(f"/t/gone/.well-known/{document}")
        assert "deactivated" in _problem(response, 404)["detail"]
        assert "public" not in response.headers.get("Cache-Control", "")
    assert api.post("/v1/tenant/gone/activate").status_code == 200
    assert _jwks(api, "gone")["keys"]
