"""Entra ID tokens through POST /v1/token/validate: the simulator (its own process, real HTTPS, reached through the
outbound policy) issues v1 and v2 tokens; each refusal has its own reason and every answer names the rule that
decided. jwcrypto checks the same tokens independently, so the simulator cannot share a mistake with the portal."""
from __future__ import annotations

import base64
import json

import pytest
import requests
import sqlalchemy as sa
from jwcrypto import jwk, jwt as jwcrypto_jwt

from portal.models import JwksCache, Tenant
from portal.services.tokens import entra as entra_rules
from portal.services.tokens.service import REASONS
from simulators.entra_directory import API_MULTI, API_V2, CONTOSO, DAEMON, FABRIKAM, FABRIKAM_DAEMON
from tests.api_helpers import make_api
from tests.entra_helpers import LEGACY_URI, app_for, entra_body, legacy, multi_tenant, single_tenant

DAEMON_SECRET = "Sim8Q~daemon-secret"
FABRIKAM_SECRET = "Sim8Q~fabrikam-daemon-secret"


@pytest.fixture
def portal(make_app, entra_sim):
    """Three Entra tenants registered through the API, each after a passing connection check against the
    simulator. JWKS_LIFESPAN 0: every validation reads the key set again, so a retirement shows at once."""
    app = app_for(make_app, entra_sim, JWKS_LIFESPAN=0)
    api = make_api(app)
    for body in (single_tenant(entra_sim.authority), legacy(entra_sim.authority),
                 multi_tenant(entra_sim.authority)):
        response = api.post("/v1/tenant", json=body)
        assert response.status_code == 201, response.get_data(as_text=True)
        assert response.get_json()["verified"] is True
    return api


def validate(api, token: str, tenant_id: str) -> dict:
    response = api.post("/v1/token/validate", json={"token": token, "tenantId": tenant_id})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def test_v2_token_of_the_tenants_directory_is_valid(portal, entra_sim):
    token = entra_sim.token(DAEMON, DAEMON_SECRET, f"api://{API_V2}/.default")
    verdict = validate(portal, token, "contoso-api")
    assert (verdict["valid"], verdict["reason"]) == (True, "ok")
    assert (verdict["claims"]["ver"], verdict["claims"]["tid"], verdict["claims"]["aud"]) == ("2.0", CONTOSO, API_V2)
    assert verdict["decidedBy"] == f"v2.0 issuer for directory {CONTOSO}, the tenant's directory; client {DAEMON}"


def test_v1_token_of_a_verified_domain_tenant_is_valid(portal, entra_sim):
    token = entra_sim.token(DAEMON, DAEMON_SECRET, f"{LEGACY_URI}/.default")
    verdict = validate(portal, token, "contoso-legacy")
    assert verdict["valid"], verdict
    assert verdict["claims"]["iss"] == f"https://sts.windows.net/{CONTOSO}/"
    assert verdict["claims"]["appid"] == DAEMON and verdict["claims"]["aud"] == LEGACY_URI
    assert verdict["decidedBy"].startswith(f"v1.0 issuer for directory {CONTOSO}, the tenant's directory "
                                           "(contoso.onmicrosoft.com)")


def test_multi_tenant_allow_list(portal, entra_sim):
    allowed = validate(portal, entra_sim.token(FABRIKAM_DAEMON, FABRIKAM_SECRET, f"api://{API_MULTI}/.default"),
                       "partners")
    assert allowed["valid"], allowed
    assert allowed["decidedBy"].startswith(f"v2.0 issuer for directory {FABRIKAM}, which is on the allow-list")
    outside = validate(portal, entra_sim.token(DAEMON, DAEMON_SECRET, f"api://{API_MULTI}/.default"), "partners")
    assert (outside["valid"], outside["reason"]) == (False, "directory_not_allowed")
    assert CONTOSO in outside["decidedBy"] and "allow-list" in outside["decidedBy"]


def test_any_directory_accepts_every_directory_and_says_so(portal, entra_sim):
    body = entra_body("anyone", entra_sim.authority, directory="common", audiences=[API_MULTI], anyDirectory=True)
    assert portal.post("/v1/tenant", json=body).status_code == 201
    for client, secret, tid in ((DAEMON, DAEMON_SECRET, CONTOSO), (FABRIKAM_DAEMON, FABRIKAM_SECRET, FABRIKAM)):
        verdict = validate(portal, entra_sim.token(client, secret, f"api://{API_MULTI}/.default"), "anyone")
        assert verdict["valid"], verdict
        assert verdict["decidedBy"].startswith(f"v2.0 issuer for directory {tid}, accepted because the tenant "
                                               "accepts any directory")


def test_graph_token_is_refused_for_what_it_is(portal, entra_sim):
    token = entra_sim.token(DAEMON, DAEMON_SECRET, "https://graph.microsoft.com/.default")
    assert "nonce" in json.loads(_segment(token, 0))
    verdict = validate(portal, token, "contoso-api")
    assert (verdict["valid"], verdict["reason"]) == (False, "graph_token")
    assert "only Graph" in verdict["decidedBy"] and "nobody else can validate" in verdict["message"]


def test_v1_token_where_only_v2_is_accepted(portal, entra_sim):
    token = entra_sim.mint(directory=CONTOSO, client_id=DAEMON, resource=f"api://{API_V2}", version="1.0")
    verdict = validate(portal, token, "contoso-api")
    assert (verdict["valid"], verdict["reason"]) == (False, "version_not_accepted")
    assert verdict["decidedBy"] == "v1.0 token, but the tenant accepts only v2.0"


def test_wrong_audience_names_the_accepted_ones(portal, entra_sim):
    token = entra_sim.token(DAEMON, DAEMON_SECRET, f"api://{API_MULTI}/.default")  # v2, Contoso, another API
    verdict = validate(portal, token, "contoso-api")
    assert (verdict["valid"], verdict["reason"]) == (False, "wrong_audience")
    assert verdict["decidedBy"] == f"audience must be one of {API_V2}"


def test_other_directory_and_forged_issuer(portal, entra_sim):
    foreign = entra_sim.mint(directory=FABRIKAM, client_id=FABRIKAM_DAEMON, resource=f"api://{API_MULTI}")
    assert validate(portal, foreign, "contoso-api")["reason"] == "wrong_directory"
    forged = entra_sim.mint(directory=CONTOSO, client_id=DAEMON, resource=f"api://{API_V2}",
                            iss=f"https://sts.windows.net/{CONTOSO}/")  # a v1 issuer on a v2 token
    verdict = validate(portal, forged, "contoso-api")
    assert verdict["reason"] == "wrong_issuer" and f"{entra_sim.authority}/{CONTOSO}/v2.0" in verdict["decidedBy"]
    assert validate(portal, entra_sim.mint(directory=CONTOSO, client_id=DAEMON, resource=f"api://{API_V2}",
                                           ver=None), "contoso-api")["reason"] == "bad_version"
    assert validate(portal, entra_sim.mint(directory=CONTOSO, client_id=DAEMON, resource=f"api://{API_V2}",
                                           tid=None), "contoso-api")["reason"] == "missing_tid"


def test_rotation_is_followed_and_a_retired_key_is_refused_with_its_own_reason(portal, entra_sim):
    old = entra_sim.token(DAEMON, DAEMON_SECRET, f"api://{API_V2}/.default")
    assert validate(portal, old, "contoso-api")["valid"]
    old_kid = json.loads(_segment(old, 0))["kid"]
    new_kid = entra_sim.rotate()
    fresh = entra_sim.token(DAEMON, DAEMON_SECRET, f"api://{API_V2}/.default")
    assert json.loads(_segment(fresh, 0))["kid"] == new_kid
    assert validate(portal, fresh, "contoso-api")["valid"]  # an unknown kid refreshes the shared cache
    assert validate(portal, old, "contoso-api")["valid"]  # both published
    entra_sim.retire(old_kid)
    verdict = validate(portal, old, "contoso-api")
    assert (verdict["valid"], verdict["reason"]) == (False, "key_rotated_out")
    assert "rotated out" in REASONS["key_rotated_out"]
    assert validate(portal, fresh, "contoso-api")["valid"]


def test_the_cache_keeps_each_keys_issuer_member(portal, entra_sim, db):
    assert validate(portal, entra_sim.token(FABRIKAM_DAEMON, FABRIKAM_SECRET, f"api://{API_MULTI}/.default"),
                    "partners")["valid"]
    tenant = db.session.execute(sa.select(Tenant).where(Tenant.tenant_key == "partners")).scalar_one()
    row = db.session.get(JwksCache, tenant.id)
    assert row.jwks["keys"] and all(key["issuer"] == f"{entra_sim.authority}/{{tenantid}}/v2.0"
                                    for key in row.jwks["keys"])


@pytest.mark.parametrize(("key_issuer", "version", "refused"), [
    (None, "2.0", False),
    ("https://login.example/{tenantid}/v2.0", "2.0", False),  # the multi-tenant template, tid put in
    (f"https://login.example/{CONTOSO}/v2.0", "2.0", False),
    (f"https://login.example/{CONTOSO}/v2.0", "1.0", False),  # a v1 token: the v2 form of its issuer counts
    (f"https://login.example/{FABRIKAM}/v2.0", "2.0", True),  # another directory's key
    ("https://elsewhere.example/{tenantid}/v2.0", "1.0", True),
])
def test_a_keys_issuer_member_must_name_the_tokens_issuer(key_issuer, version, refused):
    preset = {"directory": "organizations", "authority": "https://login.example", "tokenVersions": ["1.0", "2.0"],
              "audiences": [API_MULTI], "allowedDirectories": [CONTOSO], "anyDirectory": False}
    plan = entra_rules.plan(preset, {"alg": "RS256"}, {"ver": version, "tid": CONTOSO, "aud": API_MULTI}, None, None)
    assert plan.reason == ""
    refusal = entra_rules.key_issuer_refusal(key_issuer, plan, preset["authority"])
    assert (refusal is not None) == refused, refusal
    if refused:
        assert plan.issuer in refusal


def test_jwcrypto_agrees_with_the_portal(portal, entra_sim):
    """An independent JOSE library verifies the same simulator tokens with the published keys and Entra's issuer
    rules, so a mistake shared by the simulator and the portal would show here."""
    cases = [(entra_sim.token(DAEMON, DAEMON_SECRET, f"api://{API_V2}/.default"), "contoso-api",
              f"{entra_sim.authority}/{CONTOSO}/v2.0", API_V2),
             (entra_sim.token(DAEMON, DAEMON_SECRET, f"{LEGACY_URI}/.default"), "contoso-legacy",
              f"https://sts.windows.net/{CONTOSO}/", LEGACY_URI)]
    keyset = jwk.JWKSet.from_json(requests.get(f"{entra_sim.authority}/{CONTOSO}/discovery/v2.0/keys",
                                               verify=entra_sim.ca_bundle_path, timeout=10).text)
    for token, tenant_id, issuer, audience in cases:
        checked = jwcrypto_jwt.JWT(jwt=token, key=keyset, algs=["RS256"],
                                   check_claims={"iss": issuer, "aud": audience, "exp": None})
        claims = json.loads(checked.claims)
        assert validate(portal, token, tenant_id)["claims"] == claims


def _segment(token: str, index: int) -> str:
    part = token.split(".")[index]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode()
