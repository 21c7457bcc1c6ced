"""Token validation (POST /v1/token/validate): interoperability with jwcrypto in both directions, every attack
refused with its reason code, the key life cycle (passive keys validate, retired ones do not), and EXTERNAL
tenants whose keys come from a real local HTTPS OpenID provider's JWKS, cached and refreshed at a bounded rate."""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from jwcrypto import jwk, jwt as jwcrypto_jwt
from jwcrypto.common import JWException
from jwt.algorithms import RSAAlgorithm

from portal.extensions import db as _db
from portal.models import JwksCache, SigningKey
from portal.models.base import utcnow
from simulators import pki
from tests.api_helpers import Api, make_api
from tests.oidc_server import Idp, Route
from tests.token_helpers import (
    ALGORITHMS,
    AUDIENCE,
    HMAC_BYTES,
    RSA_ALGORITHMS,
    b64json,
    b64url,
    claims_for,
    discovery,
    external_body,
    hmac_key_for,
    hs_token,
    issue,
    jwcrypto_sign,
    pem_of,
    public_pem_of,
    register,
    tenant_body,
    validate,
)


@pytest.fixture(scope="module")
def rsa_private():
    """Two RSA keys for the whole module (generation is the slow part of these tests)."""
    return pki.rsa_key(), pki.rsa_key()


def _kid(api: Api, tenant_id: str, status: str = "active") -> str:
    keys = api.get(f"/v1/tenant/{tenant_id}/keys").get_json()["keys"]
    return next(k["kid"] for k in keys if k["status"] == status)


# --- interoperability with jwcrypto ---------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", RSA_ALGORITHMS)
def test_jwcrypto_accepts_portal_tokens_with_only_the_published_jwks(api, algorithm):
    register(api, tenant_body("interop", algorithm, rsaKeySize=2048))
    token = issue(api, "interop")
    meta = discovery(api.client, "interop")
    published = api.client.get(meta["jwks_uri"].removeprefix("http://localhost"))
    assert published.status_code == 200
    document = published.get_json()
    keyset = jwk.JWKSet.from_json(published.get_data(as_text=True))

    verified = jwcrypto_jwt.JWT(jwt=token, key=keyset, algs=[algorithm],
                                check_claims={"iss": meta["issuer"], "aud": AUDIENCE, "exp": None, "nbf": None})
    claims = json.loads(verified.claims)
    assert claims["TENANTID"] == "interop" and claims["iss"] == meta["issuer"] == "http://localhost/t/interop"
    assert json.loads(verified.header) == {"alg": algorithm, "kid": document["keys"][0]["kid"], "typ": "JWT"}
    # The verifier is not vacuous: the same token with an altered payload, or checked for another issuer, fails.
    head, _payload, signature = token.split(".")
    forged = f"{head}.{b64json({**claims, 'authorities': ['ROLE_ADMIN']})}.{signature}"
    with pytest.raises(JWException):
        jwcrypto_jwt.JWT(jwt=forged, key=keyset, algs=[algorithm])
    with pytest.raises(JWException):
        jwcrypto_jwt.JWT(jwt=token, key=keyset, algs=[algorithm], check_claims={"iss": "http://localhost/t/other"})


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_portal_validates_tokens_jwcrypto_signs_with_the_tenant_key(api, rsa_private, algorithm):
    key = hmac_key_for(algorithm) if algorithm in HMAC_BYTES else pem_of(rsa_private[0])
    register(api, tenant_body("signedelsewhere", algorithm, signing_key=key))
    kid = _kid(api, "signedelsewhere")
    issuer = discovery(api.client, "signedelsewhere")["issuer"]
    claims = claims_for("signedelsewhere", issuer, sub="batch-job", authorities=["ROLE_BATCH"])
    token = jwcrypto_sign(algorithm, key, kid, claims)

    verdict = validate(api, token)
    assert (verdict["valid"], verdict["reason"], verdict["tenantId"]) == (True, "ok", "signedelsewhere")
    assert verdict["claims"] == claims and verdict["header"]["kid"] == kid
    # The same library signing with another key of the same kind is refused.
    other = hmac_key_for(algorithm, "x") if algorithm in HMAC_BYTES else pem_of(rsa_private[1])
    assert validate(api, jwcrypto_sign(algorithm, other, kid, claims))["reason"] == "bad_signature"


# --- attacks ------------------------------------------------------------------------------------------------

HS_KEY = hmac_key_for("HS256")


@pytest.fixture
def victims(api, rsa_private):
    """An HS256 tenant and an RS256 tenant (supplied key), with what an attacker might know about them."""
    register(api, tenant_body("hsco", "HS256", signing_key=HS_KEY))
    register(api, tenant_body("rsco", "RS256", signing_key=pem_of(rsa_private[0])))
    register(api, tenant_body("otherco", "HS256", signing_key=hmac_key_for("HS256", "o")))
    attacker = rsa_private[1]
    return {"hs_kid": _kid(api, "hsco"), "rs_kid": _kid(api, "rsco"), "other_kid": _kid(api, "otherco"),
            "rs_private": pem_of(rsa_private[0]), "rs_public": public_pem_of(rsa_private[0]),
            "attacker_private": pem_of(attacker),
            "attacker_jwk": RSAAlgorithm.to_jwk(attacker.public_key(), as_dict=True)}


def _hs(victims, **claims) -> str:
    return hs_token(HS_KEY.encode(), claims_for("hsco", **claims), kid=victims["hs_kid"])


def _unsigned(header: dict, claims: dict) -> str:
    return f"{b64json(header)}.{b64json(claims)}."


ATTACKS = {
    "alg-none": (lambda v: _unsigned({"alg": "none", "typ": "JWT", "kid": v["hs_kid"]}, claims_for("hsco")),
                 "algorithm_not_allowed"),
    "alg-None-capitalised": (lambda v: _unsigned({"alg": "None", "kid": v["rs_kid"]}, claims_for("rsco")),
                             "algorithm_not_allowed"),
    "alg-ES256": (lambda v: _unsigned({"alg": "ES256", "kid": v["hs_kid"]}, claims_for("hsco")) + b64url(b"s" * 64),
                  "algorithm_not_allowed"),
    "rs-to-hs-with-public-key-pem": (
        lambda v: hs_token(v["rs_public"].encode(), claims_for("rsco"), kid=v["rs_kid"]), "algorithm_mismatch"),
    "hs512-for-hs256-tenant": (
        lambda v: hs_token(hmac_key_for("HS512").encode(), claims_for("hsco"), kid=v["hs_kid"], alg="HS512"),
        "algorithm_mismatch"),
    "rs512-for-rs256-tenant": (
        lambda v: jwcrypto_sign("RS512", v["rs_private"], v["rs_kid"], claims_for("rsco")), "algorithm_mismatch"),
    "expired": (lambda v: _hs(v, iat=int(time.time()) - 7200, nbf=int(time.time()) - 7200,
                              exp=int(time.time()) - 120), "expired"),
    "not-yet-valid": (lambda v: _hs(v, nbf=int(time.time()) + 600), "not_yet_valid"),
    "issued-in-the-future": (lambda v: _hs(v, iat=int(time.time()) + 600), "not_yet_valid"),
    "wrong-issuer": (lambda v: _hs(v, iss="https://attacker.example/t/hsco"), "wrong_issuer"),
    "wrong-audience": (lambda v: _hs(v, aud="some-other-service"), "wrong_audience"),
    "unknown-kid": (lambda v: hs_token(HS_KEY.encode(), claims_for("hsco"), kid="hs-000000000000000000000000"),
                    "unknown_kid"),
    "kid-and-key-of-another-tenant": (
        lambda v: hs_token(hmac_key_for("HS256", "o").encode(), claims_for("hsco"), kid=v["other_kid"]),
        "unknown_kid"),
    "embedded-jwk-header": (
        lambda v: jwcrypto_sign("RS256", v["attacker_private"], v["rs_kid"], claims_for("rsco"),
                                jwk=v["attacker_jwk"]), "bad_signature"),
    "jku-header": (
        lambda v: jwcrypto_sign("RS256", v["attacker_private"], v["rs_kid"], claims_for("rsco"),
                                jku="https://attacker.example/jwks.json"), "bad_signature"),
    "no-kid": (lambda v: hs_token(HS_KEY.encode(), claims_for("hsco")), "missing_kid"),
    "wrong-secret": (lambda v: hs_token(b"guessed-guessed-guessed-guessed!", claims_for("hsco"), kid=v["hs_kid"]),
                     "bad_signature"),
    "missing-exp": (lambda v: _hs(v, exp=None), "missing_claim"),
    "missing-iat": (lambda v: _hs(v, iat=None), "missing_claim"),
    "missing-iss": (lambda v: _hs(v, iss=None), "missing_claim"),
    "missing-aud": (lambda v: _hs(v, aud=None), "missing_claim"),
    "tenantid-names-another-tenant": (lambda v: _hs(v, TENANTID="otherco"), "tenant_mismatch"),
    "tenantid-blank-with-tenant-issuer": (lambda v: _hs(v, TENANTID=""), "tenant_mismatch"),
    "unknown-tenant": (lambda v: _hs(v, TENANTID="nobody", iss="http://localhost/t/nobody"), "unknown_tenant"),
    "no-tenant-named": (lambda v: _hs(v, TENANTID=None, iss="https://attacker.example/"), "unknown_tenant"),
    # NumericDate claims (RFC 7519 section 2) are JSON numbers; absurd ones would make a token valid for ever.
    "exp-as-a-string": (lambda v: _hs(v, exp=str(int(time.time()) + 600)), "bad_numeric_date"),
    "exp-1e20": (lambda v: _hs(v, exp=1e20), "bad_numeric_date"),
    "exp-after-the-year-9999": (lambda v: _hs(v, exp=253402300800), "bad_numeric_date"),
    "exp-true": (lambda v: _hs(v, exp=True), "bad_numeric_date"),
    "exp-nan": (lambda v: _hs(v, exp=float("nan")), "bad_numeric_date"),
    "iat-as-a-string": (lambda v: _hs(v, iat="0"), "bad_numeric_date"),
    "iat-negative": (lambda v: _hs(v, iat=-1), "bad_numeric_date"),
    "nbf-as-a-list": (lambda v: _hs(v, nbf=[0]), "bad_numeric_date"),
    "nbf-false": (lambda v: _hs(v, nbf=False), "bad_numeric_date"),
}


def test_each_attack_is_refused_with_its_reason(api, victims, subtests):
    """One set of tenants for every attack (subtests report each one on its own)."""
    for attack, (make, reason) in ATTACKS.items():
        with subtests.test(attack=attack):
            verdict = validate(api, make(victims))
            assert (verdict["valid"], verdict["reason"]) == (False, reason), verdict
            assert verdict["message"] and verdict["message"] != "The token is valid."


def test_the_genuine_tokens_of_the_attacked_tenants_are_valid(api, victims):
    """The control for the attacks above: the same recipes without the flaw pass."""
    assert validate(api, _hs(victims))["valid"]
    assert validate(api, jwcrypto_sign("RS256", victims["rs_private"], victims["rs_kid"], claims_for("rsco")))["valid"]
    # Leeway: a token that expired a few seconds ago still passes (TOKEN_LEEWAY 30 s, capped at 60).
    assert validate(api, _hs(victims, exp=int(time.time()) - 5))["valid"]
    # NumericDate may have a fraction (RFC 7519 section 2), and the year 9999 is still accepted.
    assert validate(api, _hs(victims, exp=time.time() + 600.5, iat=time.time()))["valid"]
    assert validate(api, _hs(victims, exp=253402300799))["valid"]


def test_tampered_payload_is_refused(api, victims):
    token = issue(api, "hsco")
    head, payload, signature = token.split(".")
    claims = validate(api, token)["claims"]
    for change in ({"authorities": ["ROLE_ADMIN"]}, {"exp": claims["exp"] + 86400}, {"sub": "root"}):
        forged = f"{head}.{b64json({**claims, **change})}.{signature}"
        assert validate(api, forged)["reason"] == "bad_signature"
    assert validate(api, f"{head}.{payload}.{b64url(b'not the signature')}")["reason"] == "bad_signature"
    assert validate(api, f"{head}.{payload}.")["reason"] == "bad_signature"


JUNK = ["junk", "a.b", "a.b.c", "...", "eyJhbGciOiJIUzI1NiJ9..", "Bearer ", "Bearer  x.y", "x" * 20000 + ".y.z",
        b64url(b"[1,2]") + "." + b64json({}) + ".sig", b64json({"alg": "HS256"}) + ".not-json!." + b64url(b"s"),
        b64json({"alg": "HS256"}) + "." + b64url(b"[1]") + ".sig", "a.b.c.d.e", "\u00e9t\u00e9.\u00e9t\u00e9.x"]


def test_malformed_tokens_are_refused(api, subtests):
    for junk in JUNK:
        with subtests.test(junk=junk[:40]):
            verdict = validate(api, junk)
            assert (verdict["valid"], verdict["reason"], verdict["tenantId"]) == (False, "malformed", None)


def test_validate_accepts_a_bearer_prefix_and_refuses_bad_request_shapes(api, victims):
    token = issue(api, "hsco")
    assert validate(api, "Bearer " + token)["valid"]
    for body, field in (({}, "token"), ({"token": ""}, "token"), ({"token": 5}, "token"),
                        ({"token": token, "colour": "red"}, "colour"), ({"token": token, "audience": 1}, "audience")):
        response = api.post("/v1/token/validate", json=body)
        assert response.status_code == 400 and field in response.get_json()["errors"]
    assert api.client.post("/v1/token/validate", json={"token": token}).status_code == 401  # no API key


def test_an_inactive_tenants_tokens_are_refused(api, victims):
    token = issue(api, "hsco")
    assert api.post("/v1/tenant/hsco/deactivate").status_code == 200
    assert validate(api, token)["reason"] == "tenant_inactive"
    assert api.post("/v1/tenant/hsco/activate").status_code == 200
    assert validate(api, token)["valid"]


def test_audience_can_be_chosen_by_the_caller(api, victims):
    token = issue(api, "hsco")
    assert validate(api, token, audience=AUDIENCE)["valid"]
    assert validate(api, token, audience="billing")["reason"] == "wrong_audience"


# --- key life cycle -----------------------------------------------------------------------------------------


def test_passive_key_validates_after_rotation_and_retired_key_does_not(api, victims):
    old_token, old_kid = issue(api, "hsco"), victims["hs_kid"]
    assert api.post("/v1/tenant/hsco/keys/rotate", json={}).status_code == 201
    new_token = issue(api, "hsco")
    new_kid = _kid(api, "hsco")
    assert new_kid != old_kid and _kid(api, "hsco", "passive") == old_kid
    assert validate(api, new_token)["header"]["kid"] == new_kid
    assert validate(api, old_token)["valid"]  # passive: tokens it signed keep validating

    response = api.post(f"/v1/tenant/hsco/keys/{old_kid}/retire")
    assert response.status_code == 200
    assert {k["kid"]: k["status"] for k in response.get_json()["keys"]}[old_kid] == "retired"
    assert validate(api, old_token)["reason"] == "key_retired"
    assert validate(api, new_token)["valid"]


def test_rsa_rotation_keeps_the_old_token_valid_until_retired(api, victims, rsa_private):
    old_token = issue(api, "rsco")
    assert api.post("/v1/tenant/rsco/keys/rotate", json={"signingKey": pem_of(rsa_private[1])}).status_code == 201
    assert validate(api, old_token)["valid"]
    assert validate(api, issue(api, "rsco"))["header"]["kid"] == _kid(api, "rsco") != victims["rs_kid"]
    assert api.post(f"/v1/tenant/rsco/keys/{victims['rs_kid']}/retire").status_code == 200
    assert validate(api, old_token)["reason"] == "key_retired"


def test_passive_key_past_its_grace_period_counts_as_retired(app, api, victims):
    old_token = issue(api, "hsco")
    api.post("/v1/tenant/hsco/keys/rotate", json={})
    assert validate(api, old_token)["valid"]
    with app.app_context():
        key = _db.session.execute(sa.select(SigningKey).where(SigningKey.kid == victims["hs_kid"])).scalar_one()
        assert key.status == "passive" and key.passive_until > utcnow() + timedelta(hours=23)
        key.passive_until = utcnow() - timedelta(seconds=1)
        _db.session.commit()
    assert validate(api, old_token)["reason"] == "key_retired"
    views = {k["kid"]: k for k in api.get("/v1/tenant/hsco/keys").get_json()["keys"]}
    assert views[victims["hs_kid"]]["status"] == "retired" and views[victims["hs_kid"]]["retiredAt"]


def test_an_algorithm_change_keeps_the_old_key_passive_until_it_retires(api, victims, rsa_private):
    """An algorithm change is a rotation (issue 16): the old key stays passive and its tokens validate, with its own
    algorithm only, until it retires; then validation pins the new algorithm."""
    old_token = issue(api, "hsco")
    response = api.put("/v1/tenant/hsco", json=tenant_body("hsco", "RS256", signing_key=pem_of(rsa_private[1])))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert validate(api, old_token)["valid"]
    statuses = {k["kid"]: k["status"] for k in api.get("/v1/tenant/hsco/keys").get_json()["keys"]}
    assert statuses[victims["hs_kid"]] == "passive" and list(statuses.values()).count("active") == 1
    new = validate(api, issue(api, "hsco"))
    assert new["valid"] and new["header"]["alg"] == "RS256"
    assert api.post(f"/v1/tenant/hsco/keys/{victims['hs_kid']}/retire").status_code == 200
    assert validate(api, old_token)["reason"] == "algorithm_mismatch"
    assert validate(api, hs_token(HS_KEY.encode(), claims_for("hsco", iat=int(time.time())), kid=victims["hs_kid"],
                                  alg="HS256"))["reason"] == "algorithm_mismatch"


def test_grace_period_comes_from_the_configuration(make_app):
    app = make_app(KEY_GRACE_PERIOD=7200, TOKEN_LIFETIME=600)
    api = make_api(app)
    register(api, tenant_body("graceco"))
    token = issue(api, "graceco")
    assert validate(api, token)["claims"]["exp"] - validate(api, token)["claims"]["iat"] == 600
    api.post("/v1/tenant/graceco/keys/rotate", json={})
    passive = next(k for k in api.get("/v1/tenant/graceco/keys").get_json()["keys"] if k["status"] == "passive")
    with app.app_context():
        until = _db.session.execute(sa.select(SigningKey.passive_until).where(SigningKey.kid == passive["kid"])
                                    ).scalar_one()
    assert timedelta(seconds=7000) < until - utcnow() <= timedelta(seconds=7200)


# --- EXTERNAL tenants -----------------------------------------------------------------------------------------


@dataclass
class Provider:
    """An EXTERNAL tenant ("extco") whose issuer is a path on the local HTTPS OpenID provider, and the tools to
    sign its tokens, change what the provider serves, read the shared cache and move its clock back."""

    app: Any
    api: Api
    idp: Idp
    issuer: str
    key: Any  # the provider's signing key, published as kid "ext-1"

    @property
    def jwks_path(self) -> str:
        return self.issuer.removeprefix(self.idp.base) + "/jwks"

    def sign(self, kid: str = "ext-1", key: Any = None, **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": self.issuer, "sub": "svc", "aud": "extco-client", "iat": now, "exp": now + 300, **claims}
        return jwcrypto_sign("RS256", pem_of(key or self.key), kid, payload)

    def validate(self, token: str, **extra: str) -> dict:
        return validate(self.api, token, tenantId="extco", **extra)  # its tokens name no portal tenant

    def serve(self, *keys: tuple[str, Any]) -> None:
        self.idp.routes[self.jwks_path] = Route(body=json.dumps({"keys": [_public_jwk(k, kid) for kid, k in keys]})
                                                .encode(), content_type="application/jwk-set+json")

    def fetches(self) -> int:
        return sum(1 for path, _host in self.idp.https.server.requests if path == self.jwks_path)

    def cache(self) -> JwksCache:
        with self.app.app_context():
            row = _db.session.execute(sa.select(JwksCache)).scalar_one()
            _db.session.expunge(row)
            return row

    def age(self, seconds: int, *, fetched: bool = False) -> None:
        """Move the cache's clock back, as if `seconds` had passed since the last attempt (and fetch)."""
        with self.app.app_context():
            row = _db.session.execute(sa.select(JwksCache)).scalar_one()
            row.attempted_at -= timedelta(seconds=seconds)
            if fetched:
                row.fetched_at -= timedelta(seconds=seconds)
            _db.session.commit()


def _public_jwk(private: Any, kid: str) -> dict:
    return RSAAlgorithm.to_jwk(private.public_key(), as_dict=True) | {"kid": kid, "use": "sig"}


@pytest.fixture
def provider(make_app, idp: Idp, rsa_private) -> Provider:
    """An app allowed to reach the local provider and an EXTERNAL tenant registered against a fresh issuer path
    (the registration's connection check fetches discovery and JWKS for real)."""
    app = make_app(OIDC_ALLOWED_NETWORKS=["127.0.0.1/32"], OIDC_CA_BUNDLE=str(idp.pki.ca_pem))
    api = make_api(app)
    issuer = idp.add_tenant(f"/ext-{uuid.uuid4().hex[:8]}", [_public_jwk(rsa_private[0], "ext-1")])
    register(api, external_body("extco", issuer, pem_of(rsa_private[1])))
    return Provider(app, api, idp, issuer, rsa_private[0])


def test_external_token_signed_by_the_provider_validates(provider):
    checks_during_registration = provider.fetches()
    verdict = provider.validate(provider.sign(scope="orders"))
    assert (verdict["valid"], verdict["tenantId"], verdict["claims"]["scope"]) == (True, "extco", "orders")
    assert provider.fetches() == checks_during_registration + 1
    assert provider.validate(provider.sign())["valid"]
    assert provider.fetches() == checks_during_registration + 1  # the cached set serves the next token
    row = provider.cache()
    assert row.fetch_count == 1 and row.last_error is None and [k["kid"] for k in row.jwks["keys"]] == ["ext-1"]


def test_external_token_claims_are_checked_against_the_provider(provider, rsa_private):
    assert provider.validate(provider.sign(iss="https://elsewhere.example"))["reason"] == "wrong_issuer"
    assert provider.validate(provider.sign(aud="tenant-services"))["reason"] == "wrong_audience"  # aud: its clientId
    assert provider.validate(provider.sign(aud="tenant-services"), audience="tenant-services")["valid"]
    assert provider.validate(provider.sign(key=rsa_private[1]))["reason"] == "bad_signature"
    forged = hs_token(b"k" * 32, {"iss": provider.issuer, "aud": "extco-client", "exp": int(time.time()) + 60,
                                  "iat": int(time.time())}, kid="ext-1")
    assert provider.validate(forged)["reason"] == "algorithm_mismatch"
    assert provider.validate(provider.sign(exp=int(time.time()) - 300))["reason"] == "expired"


def test_unknown_kid_refreshes_once_then_waits_for_the_cooldown(provider, rsa_private):
    assert provider.validate(provider.sign())["valid"]
    before = provider.fetches()
    # The provider rotates; our copy is fresh, but a token with the new kid is seen after the cool-down.
    provider.serve(("ext-1", rsa_private[0]), ("ext-2", rsa_private[1]))
    provider.age(31)
    assert provider.validate(provider.sign("ext-2", rsa_private[1]))["valid"]
    assert provider.fetches() == before + 1 and provider.cache().fetch_count == 2
    # Another unknown kid right away: no fetch, within JWKS_REFRESH_COOLDOWN (30 s).
    for kid in ("ext-3", "ext-4"):
        assert provider.validate(provider.sign(kid, rsa_private[1]))["reason"] == "unknown_kid"
    assert provider.fetches() == before + 1 and provider.cache().fetch_count == 2


def test_provider_down_keeps_the_last_good_set(provider, idp):
    assert provider.validate(provider.sign())["valid"]
    idp.routes[provider.jwks_path] = Route(status=500, body=b'{"error": "down"}')
    provider.age(3600, fetched=True)  # older than JWKS_LIFESPAN: a scheduled refresh is due, and fails
    before = provider.fetches()
    assert provider.validate(provider.sign())["valid"]
    assert provider.fetches() == before + 1
    row = provider.cache()
    assert row.last_error and row.fetch_count == 1 and [k["kid"] for k in row.jwks["keys"]] == ["ext-1"]
    assert provider.validate(provider.sign("ext-9"))["reason"] == "unknown_kid"
    assert provider.fetches() == before + 1  # the failure also counts against the cool-down


def test_provider_down_before_any_fetch_is_jwks_unavailable(provider, idp):
    idp.routes[provider.jwks_path] = Route(status=503, body=b"{}")
    verdict = provider.validate(provider.sign())
    assert (verdict["valid"], verdict["reason"]) == (False, "jwks_unavailable")
    assert provider.cache().last_error
