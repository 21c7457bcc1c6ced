"""Helpers for the token service tests (test_tokens_*.py): registering tenants through /v1, asking /oauth/token,
validating through /v1/token/validate, and making JWS by hand or with jwcrypto, an independent JOSE library."""
from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import time
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwcrypto import jwk, jwt as jwcrypto_jwt

from tests.api_helpers import Api, ldap_body

HMAC_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
RSA_ALGORITHMS = ("RS256", "RS384", "RS512")
ALGORITHMS = ("HS256", "HS384", "HS512", *RSA_ALGORITHMS)
AUDIENCE = "tenant-services"  # the portal's default TOKEN_AUDIENCE
BASE = "http://localhost"  # what the Flask test client's requests use as url_root
CLIENT_SECRET = "Zq8-long-random-client-secret-4f1c9e7d2b"


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64json(value: Any) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def hmac_key_for(algorithm: str, tag: str = "k") -> str:
    """A shared secret exactly as long as RFC 7518 asks for the algorithm."""
    need = HMAC_BYTES[algorithm]
    return (tag + "-" + "0123456789abcdef" * 8)[:need]


def pem_of(private: rsa.RSAPrivateKey) -> str:
    return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode()


def public_pem_of(private: rsa.RSAPrivateKey) -> str:
    return private.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def tenant_body(tenant_id: str, algorithm: str = "HS256", signing_key: str | None = None, **overrides: Any) -> dict:
    """An LDAP tenant (connection check skipped) with a known client secret; HS tenants get a key of the right
    length unless told otherwise, RS tenants a generated key pair unless a PEM is given."""
    if signing_key is None and algorithm in HMAC_BYTES:
        signing_key = hmac_key_for(algorithm)
    body = ldap_body(tenant_id, **{"supportAlgorithm": algorithm, "clientSecret": CLIENT_SECRET, **overrides})
    if signing_key is not None:
        body["signingKey"] = signing_key
    return body


def external_body(tenant_id: str, issuer: str, signing_key: str, **overrides: Any) -> dict:
    """An EXTERNAL tenant (tokens from its own provider). The supplied RSA PEM only spares generating a key pair
    the registration stores anyway."""
    body = {"tenantId": tenant_id, "clientId": f"{tenant_id}-client", "clientSecret": CLIENT_SECRET,
            "identityProviderType": "EXTERNAL", "supportAlgorithm": "RS256", "signingKey": signing_key,
            "jwkSetUrl": issuer + "/jwks", "issuer": issuer,
            "oidcSchema": {"authUrl": issuer + "/authorize", "accessTokenUrl": issuer + "/token", "scope": "openid"}}
    body.update(overrides)
    return body


def register(api: Api, body: dict) -> dict:
    response = api.post("/v1/tenant", json=body)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def ask_token(client, client_id: str, secret: str = CLIENT_SECRET, **form: str):
    """POST /oauth/token with HTTP Basic client authentication and a form body."""
    form.setdefault("grant_type", "client_credentials")
    return client.post("/oauth/token", data=form, headers=basic(client_id, secret))


def issue(api: Api, tenant_id: str, secret: str = CLIENT_SECRET, **form: str) -> str:
    response = ask_token(api.client, f"{tenant_id.lower()}-client", secret, **form)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["access_token"]


def validate(api: Api, token: str, **extra: str) -> dict:
    response = api.post("/v1/token/validate", json={"token": token, **extra})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def active_kid(api: Api, tenant_id: str) -> str:
    keys = api.get(f"/v1/tenant/{tenant_id}/keys").get_json()["keys"]
    return next(k["kid"] for k in keys if k["status"] == "active")


def discovery(client, tenant_id: str) -> dict:
    response = client.get(f"/t/{tenant_id}/.well-known/openid-configuration")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def claims_for(tenant_id: str, issuer: str | None = None, **overrides: Any) -> dict[str, Any]:
    """The claims the portal puts in its tokens, valid now; `overrides` set or (with None) drop claims."""
    now = int(time.time())
    claims = {"iss": issuer or f"{BASE}/t/{tenant_id}", "sub": "someone", "aud": AUDIENCE, "iat": now, "nbf": now,
              "exp": now + 600, "jti": "jti-" + str(now), "TENANTID": tenant_id, "user_name": "someone",
              "authorities": ["ROLE_CLIENT"]}
    for name, value in overrides.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def hs_token(secret: bytes, claims: dict, *, alg: str = "HS256", kid: str | None = None, **header: Any) -> str:
    """An HMAC JWS made by hand (PyJWT refuses some of the keys the attacks need, e.g. a public key PEM)."""
    head = {"alg": alg, "typ": "JWT", **header}
    if kid is not None:
        head["kid"] = kid
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    signing_input = f"{b64json(head)}.{b64json(claims)}"
    signature = hmac.new(secret, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64url(signature)}"


@functools.lru_cache(maxsize=32)
def jwk_for(algorithm: str, key: str) -> jwk.JWK:
    """jwcrypto's key: an oct key from the HMAC secret's bytes, or the RSA private key PEM (parsed once: RSA key
    checks are slow)."""
    if algorithm in HMAC_BYTES:
        return jwk.JWK(kty="oct", k=b64url(key.encode()))
    return jwk.JWK.from_pem(key.encode())


def jwcrypto_sign(algorithm: str, key: str, kid: str, claims: dict, **header: Any) -> str:
    token = jwcrypto_jwt.JWT(header={"alg": algorithm, "kid": kid, "typ": "JWT", **header}, claims=claims)
    token.make_signed_token(jwk_for(algorithm, key))
    return token.serialize()
