"""The Entra ID simulator's tokens checked by an INDEPENDENT library, jwcrypto (neither the portal's PyJWT nor the
simulator's own JWS code): keys come from the JWKS named by discovery, as a relying party finds them, so the
simulator cannot share a mistake with the portal's validator."""
from __future__ import annotations

import base64
import hashlib
import json

import pytest
from jwcrypto import jwk, jws, jwt

from simulators.entra_directory import API_MULTI, API_V1, API_V2, CONTOSO, CONTOSO_DOMAIN, DAEMON, FABRIKAM

ALGS = ["RS256"]


def key_set(sim, discovery_url: str) -> tuple[dict, jwk.JWKSet]:
    """The discovery document and the key set its jwks_uri names."""
    document = sim.session.get(discovery_url, timeout=10).json()
    return document, jwk.JWKSet.from_json(sim.session.get(document["jwks_uri"], timeout=10).text)


def validate(token: str, keys: jwk.JWKSet | jwk.JWK, **expected: str) -> dict:
    checked = jwt.JWT(jwt=token, key=keys, algs=ALGS, check_claims={"exp": None, "nbf": None, **expected})
    return json.loads(checked.claims)


def test_a_v2_token_validates_against_the_v2_discovery_of_its_directory(entra_sim):
    document, keys = key_set(entra_sim, f"{entra_sim.base_url}/{CONTOSO_DOMAIN}/v2.0/.well-known/openid-configuration")
    token = entra_sim.token(DAEMON, entra_sim.app("daemon")["clientSecret"], f"api://{API_V2}/.default")
    claims = validate(token, keys, iss=document["issuer"], aud=API_V2)
    assert claims["ver"] == "2.0" and claims["azp"] == DAEMON


def test_a_v1_token_validates_against_the_v1_discovery_of_its_directory(entra_sim):
    document, keys = key_set(entra_sim, f"{entra_sim.base_url}/{CONTOSO}/.well-known/openid-configuration")
    audience = entra_sim.app(API_V1)["appIdUri"]
    token = entra_sim.token(DAEMON, entra_sim.app("daemon")["clientSecret"], f"{audience}/.default")
    claims = validate(token, keys, iss=document["issuer"], aud=audience)
    assert document["issuer"] == f"https://sts.windows.net/{CONTOSO}/" and claims["ver"] == "1.0"


def test_a_multi_tenant_token_validates_through_the_template_and_the_key_issuer(entra_sim):
    document, keys = key_set(entra_sim, f"{entra_sim.base_url}/organizations/v2.0/.well-known/openid-configuration")
    token = entra_sim.token(DAEMON, entra_sim.app("daemon")["clientSecret"], f"api://{API_MULTI}/.default", FABRIKAM)
    kid = jwt.JWT(jwt=token).token.jose_header["kid"]
    unverified_tid = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))["tid"]
    issuer = document["issuer"].replace("{tenantid}", unverified_tid)
    claims = validate(token, keys, iss=issuer, aud=API_MULTI)
    assert claims["tid"] == FABRIKAM and issuer == f"{entra_sim.base_url}/{FABRIKAM}/v2.0"
    assert keys.get_key(kid)["issuer"] == document["issuer"]  # signing-key issuer: the same template


def test_a_token_from_another_directory_fails_that_directorys_issuer(entra_sim):
    document, keys = key_set(entra_sim, f"{entra_sim.base_url}/{CONTOSO}/v2.0/.well-known/openid-configuration")
    token = entra_sim.mint(directory=FABRIKAM, resource=API_MULTI)
    with pytest.raises(jwt.JWTInvalidClaimValue):
        validate(token, keys, iss=document["issuer"], aud=API_MULTI)


def test_a_graph_token_does_not_verify_but_its_nonce_hash_shows_why(entra_sim):
    _, keys = key_set(entra_sim, f"{entra_sim.base_url}/{CONTOSO}/.well-known/openid-configuration")
    token = entra_sim.token(DAEMON, entra_sim.app("daemon")["clientSecret"], "https://graph.microsoft.com/.default")
    key = keys.get_key(jwt.JWT(jwt=token).token.jose_header["kid"])
    assert key is not None  # the key is published: the signature itself is what fails
    with pytest.raises(jws.InvalidJWSSignature):
        validate(token, key)
    # What Graph does: replace the plain nonce by base64url(SHA-256(nonce)) in the header, then verify.
    header, payload, signature = token.split(".")
    members = json.loads(base64.urlsafe_b64decode(header + "=="))
    members["nonce"] = base64.urlsafe_b64encode(hashlib.sha256(members["nonce"].encode()).digest()).rstrip(b"=")\
        .decode()
    hashed = base64.urlsafe_b64encode(json.dumps(members, separators=(",", ":")).encode()).rstrip(b"=").decode()
    claims = validate(f"{hashed}.{payload}.{signature}", keys, aud="https://graph.microsoft.com")
    assert claims["appid"] == DAEMON


def test_rotation_is_followed_by_refetching_and_retirement_ends_old_tokens(entra_sim):
    url = f"{entra_sim.base_url}/{CONTOSO}/v2.0/.well-known/openid-configuration"
    _, cached = key_set(entra_sim, url)
    secret, scope = entra_sim.app("daemon")["clientSecret"], f"{API_V2}/.default"
    before = entra_sim.token(DAEMON, secret, scope)
    old_kid = jwt.JWT(jwt=before).token.jose_header["kid"]
    entra_sim.rotate()
    after = entra_sim.token(DAEMON, secret, scope)
    assert cached.get_key(jwt.JWT(jwt=after).token.jose_header["kid"]) is None
    with pytest.raises(jwt.JWKeyNotFound):
        validate(after, cached)
    _, fresh = key_set(entra_sim, url)
    validate(after, fresh)
    validate(before, fresh)
    entra_sim.retire(old_kid)
    _, current = key_set(entra_sim, url)
    assert current.get_key(old_kid) is None
    with pytest.raises(jwt.JWKeyNotFound):
        validate(before, current)


def test_expired_and_wrong_audience_tokens_are_refused(entra_sim):
    _, keys = key_set(entra_sim, f"{entra_sim.base_url}/{CONTOSO}/v2.0/.well-known/openid-configuration")
    with pytest.raises(jwt.JWTExpired):
        validate(entra_sim.mint(expires_in=-600, iat=1, nbf=1), keys)
    with pytest.raises(jwt.JWTInvalidClaimValue):
        validate(entra_sim.mint(aud="api://someone-else"), keys, aud=API_V2)


def test_published_certificates_hold_the_published_keys(entra_sim):
    for key in json.loads(entra_sim.session.get(f"{entra_sim.base_url}/common/discovery/keys").text)["keys"]:
        from_cert = jwk.JWK.from_pem(
            b"-----BEGIN CERTIFICATE-----\n" + key["x5c"][0].encode() + b"\n-----END CERTIFICATE-----\n")
        assert from_cert.thumbprint() == jwk.JWK(**{k: key[k] for k in ("kty", "n", "e")}).thumbprint()
