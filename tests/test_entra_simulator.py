"""The Entra ID simulator over real HTTPS (a subprocess, tests/entra_fixtures.py): discovery for a GUID, a domain,
`organizations` and `common`; the key sets; v1 and v2 tokens as each resource's manifest decides; Graph's nonce;
rotation and retirement; the /_sim/token control; Entra's error bodies. Signatures are checked here with
`cryptography` alone; tests/test_entra_interop.py checks them with jwcrypto."""
from __future__ import annotations

import base64
import hashlib
import json
import time

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from simulators.entra import EntraError, EntraSimulator, main
from simulators.entra_directory import (
    API_MULTI,
    API_V1,
    API_V2,
    CONTOSO,
    CONTOSO_DOMAIN,
    DAEMON,
    FABRIKAM,
    FABRIKAM_DAEMON,
    MSA_TID,
    ConfigError,
    Registry,
    default_config,
    service_principal_oid,
)
from simulators.pki import Authority

FOREIGN = "0badc0de-0000-4000-8000-000000000001"


def b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def parts(token: str) -> tuple[dict, dict]:
    header, payload, _ = token.split(".")
    return json.loads(b64decode(header)), json.loads(b64decode(payload))


def public_key(jwk: dict) -> rsa.RSAPublicKey:
    number = lambda name: int.from_bytes(b64decode(jwk[name]), "big")  # noqa: E731
    return rsa.RSAPublicNumbers(number("e"), number("n")).public_key()


def verifies(token: str, jwks: dict, *, signing_header: bytes | None = None) -> bool:
    """RS256 over `header.payload` (or over `signing_header` instead of the token's header) with the key the
    token's kid names; False when no such key is published or the signature does not match."""
    header, payload, signature = token.split(".")
    kid = json.loads(b64decode(header))["kid"]
    key = next((k for k in jwks["keys"] if k["kid"] == kid), None)
    if key is None:
        return False
    signed = b64url(signing_header) if signing_header else header
    try:
        public_key(key).verify(b64decode(signature), f"{signed}.{payload}".encode(), padding.PKCS1v15(),
                               hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def secret(sim, name: str) -> str:
    return sim.app(name)["clientSecret"]


def error_of(response, status: int, error: str, code: int) -> dict:
    """Entra's error JSON, checked member by member."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "error_description", "error_codes", "timestamp", "trace_id", "correlation_id",
                         "error_uri"}
    assert body["error"] == error and body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    assert f"Trace ID: {body['trace_id']}" in body["error_description"]
    assert f"Correlation ID: {body['correlation_id']}" in body["error_description"]
    assert body["timestamp"].endswith("Z") and f"Timestamp: {body['timestamp']}" in body["error_description"]
    return body


# --- Discovery --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("segment", "path", "issuer"), [
    (CONTOSO, CONTOSO, CONTOSO), (CONTOSO.upper(), CONTOSO, CONTOSO), (CONTOSO_DOMAIN, CONTOSO, CONTOSO),
    ("contoso.example", CONTOSO, CONTOSO), ("common", "common", "{tenantid}"),
    ("organizations", "organizations", "{tenantid}"), ("Common", "common", "{tenantid}"),
    ("consumers", "consumers", MSA_TID)])
def test_discovery_names_the_directory_guid_or_the_multi_tenant_template(entra_sim, segment, path, issuer):
    """A directory's GUID (whatever named it) in endpoints and issuers; the aliases keep their name in the
    endpoints and publish the literal {tenantid} template; consumers is the personal-account directory."""
    base = entra_sim.base_url
    v2 = entra_sim.session.get(f"{base}/{segment}/v2.0/.well-known/openid-configuration").json()
    assert v2["issuer"] == f"{base}/{issuer}/v2.0"
    assert v2["jwks_uri"] == f"{base}/{path}/discovery/v2.0/keys"
    assert v2["token_endpoint"] == f"{base}/{path}/oauth2/v2.0/token"
    assert v2["authorization_endpoint"] == f"{base}/{path}/oauth2/v2.0/authorize"
    assert v2["id_token_signing_alg_values_supported"] == ["RS256"]
    v1 = entra_sim.session.get(f"{base}/{segment}/.well-known/openid-configuration").json()
    assert v1["issuer"] == f"https://sts.windows.net/{issuer}/"
    assert v1["jwks_uri"] == f"{base}/{path}/discovery/keys"
    assert v1["token_endpoint"] == f"{base}/{path}/oauth2/token"
    assert entra_sim.session.get(v2["jwks_uri"]).json()["keys"]


def test_an_unknown_directory_gets_aadsts90002_and_a_malformed_one_900023(entra_sim):
    base = entra_sim.base_url
    for path in ("v2.0/.well-known/openid-configuration", ".well-known/openid-configuration",
                 "discovery/v2.0/keys", "discovery/keys", "oauth2/v2.0/authorize"):
        response = entra_sim.session.get(f"{base}/{FOREIGN}/{path}", headers={"client-request-id": "abc-123"})
        assert error_of(response, 400, "invalid_tenant", 90002)["correlation_id"] == "abc-123"
    error_of(entra_sim.session.get(f"{base}/nowhere.example/discovery/keys"), 400, "invalid_tenant", 90002)
    error_of(entra_sim.session.get(f"{base}/not_a_tenant/discovery/keys"), 400, "invalid_request", 900023)
    assert entra_sim.session.get(f"{base}/{CONTOSO}/no/such/endpoint").status_code == 404


# --- Keys -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("segment", "issuer_tenant"), [
    (CONTOSO, CONTOSO), (CONTOSO_DOMAIN, CONTOSO), (FABRIKAM, FABRIKAM),
    ("common", "{tenantid}"), ("organizations", "{tenantid}")])
def test_every_key_set_publishes_rsa_keys_with_their_certificate_and_issuer(entra_sim, segment, issuer_tenant):
    for v2 in (True, False):
        keys = entra_sim.jwks(segment, v2=v2)["keys"]
        assert keys
        for key in keys:
            assert set(key) == {"kty", "use", "kid", "x5t", "n", "e", "x5c", "issuer"}
            assert (key["kty"], key["use"], key["e"]) == ("RSA", "sig", "AQAB")
            assert key["issuer"] == f"{entra_sim.base_url}/{issuer_tenant}/v2.0"
            der = base64.b64decode(key["x5c"][0])
            cert = x509.load_der_x509_certificate(der)
            assert key["kid"] == key["x5t"] == b64url(hashlib.sha1(der).digest())
            assert cert.public_key().public_numbers() == public_key(key).public_numbers()
            assert cert.public_key().key_size == 2048


# --- Tokens -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("resource", [f"api://{API_V2}", API_V2, API_V2.upper()])
def test_a_v2_resource_gets_v2_tokens(entra_sim, resource):
    token = entra_sim.token(DAEMON, secret(entra_sim, "daemon"), f"{resource}/.default")
    header, claims = parts(token)
    assert header == {"typ": "JWT", "alg": "RS256", "x5t": header["kid"], "kid": entra_sim.keys()["signer"]}
    assert claims["ver"] == "2.0" and claims["iss"] == f"{entra_sim.base_url}/{CONTOSO}/v2.0"
    assert (claims["aud"], claims["azp"], claims["azpacr"], claims["tid"]) == (API_V2, DAEMON, "1", CONTOSO)
    assert claims["roles"] == ["Tenant.Read", "Tenant.Write"]
    assert claims["oid"] == claims["sub"] == service_principal_oid(CONTOSO, DAEMON)
    assert "appid" not in claims and claims["uti"]
    assert claims["iat"] == claims["nbf"] and claims["exp"] - claims["iat"] == 3600 + 300  # iat is backdated 5 min
    assert abs(claims["exp"] - 3600 - time.time()) < 60
    assert verifies(token, entra_sim.jwks(CONTOSO))


@pytest.mark.parametrize(("resource", "audience"), [
    (f"api://{CONTOSO_DOMAIN}/legacy-api", f"api://{CONTOSO_DOMAIN}/legacy-api"),
    (f"api://{API_V1}", f"api://{API_V1}"), (API_V1, API_V1)])
def test_a_v1_resource_gets_v1_tokens_even_from_the_v2_endpoint(entra_sim, resource, audience):
    token = entra_sim.token(DAEMON, secret(entra_sim, "daemon"), f"{resource}/.default")
    _, claims = parts(token)
    assert claims["ver"] == "1.0" and claims["iss"] == f"https://sts.windows.net/{CONTOSO}/"
    assert (claims["aud"], claims["appid"], claims["appidacr"], claims["tid"]) == (audience, DAEMON, "1", CONTOSO)
    assert claims["roles"] == ["Legacy.Read"] and "azp" not in claims
    assert verifies(token, entra_sim.jwks(CONTOSO, v2=False))


def test_the_v1_endpoint_takes_a_resource_and_still_follows_the_manifest(entra_sim):
    response = entra_sim.session.post(f"{entra_sim.base_url}/{CONTOSO_DOMAIN}/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": DAEMON, "client_secret": secret(entra_sim, "daemon"),
        "resource": f"api://{API_V2}"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["resource"] == f"api://{API_V2}" and body["expires_in"].isdigit() and body["expires_on"].isdigit()
    assert parts(body["access_token"])[1]["ver"] == "2.0"


def test_the_v2_endpoint_answer_and_http_basic_client_authentication(entra_sim):
    response = entra_sim.request_token(DAEMON, secret(entra_sim, "daemon"), f"api://{API_V2}/.default", basic=True)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"token_type", "expires_in", "ext_expires_in", "access_token"}
    assert body["token_type"] == "Bearer" and 3500 < body["expires_in"] <= 3600
    assert response.headers["Cache-Control"] == "no-store, no-cache"


def test_a_multi_tenant_app_is_issued_tokens_by_the_directory_that_consented(entra_sim):
    token = entra_sim.token(DAEMON, secret(entra_sim, "daemon"), f"api://{API_MULTI}/.default", FABRIKAM)
    _, claims = parts(token)
    assert (claims["tid"], claims["iss"]) == (FABRIKAM, f"{entra_sim.base_url}/{FABRIKAM}/v2.0")
    assert claims["oid"] == service_principal_oid(FABRIKAM, DAEMON) != service_principal_oid(CONTOSO, DAEMON)
    assert verifies(token, entra_sim.jwks("common"))
    own = entra_sim.token(FABRIKAM_DAEMON, secret(entra_sim, "fabrikam-daemon"), f"{API_MULTI}/.default")
    assert parts(own)[1]["tid"] == FABRIKAM and parts(own)[1]["azp"] == FABRIKAM_DAEMON


def test_client_credentials_errors_are_entras(entra_sim):
    daemon, request = secret(entra_sim, "daemon"), entra_sim.request_token
    error_of(request(DAEMON, "wrong", f"{API_V2}/.default"), 401, "invalid_client", 7000215)
    error_of(request(DAEMON, None, f"{API_V2}/.default"), 401, "invalid_client", 7000218)
    error_of(request(FOREIGN, "x", f"{API_V2}/.default", CONTOSO), 400, "unauthorized_client", 700016)
    error_of(request(FABRIKAM_DAEMON, secret(entra_sim, "fabrikam-daemon"), f"{API_V2}/.default", CONTOSO),
             400, "unauthorized_client", 700016)  # a single-tenant client outside its home
    error_of(request(FABRIKAM_DAEMON, secret(entra_sim, "fabrikam-daemon"), f"{API_V2}/.default"),
             400, "invalid_resource", 500011)  # a single-tenant resource of another directory
    error_of(request(DAEMON, daemon, f"{API_V2}/.default", FABRIKAM), 400, "invalid_resource", 500011)
    error_of(request(DAEMON, daemon, "api://nothing/.default"), 400, "invalid_resource", 500011)
    error_of(request(DAEMON, daemon, f"api://{API_V2}/Tenant.Read"), 400, "invalid_scope", 70011)
    error_of(request(DAEMON, daemon, f"{API_V2}/.default {API_V1}/.default"), 400, "invalid_scope", 70011)
    for alias in ("common", "organizations", "consumers"):
        error_of(request(DAEMON, daemon, f"{API_V2}/.default", alias), 400, "invalid_request", 50059)
    error_of(request(DAEMON, daemon, f"{API_V2}/.default", FOREIGN), 400, "invalid_request", 90002)


def test_malformed_token_requests_are_entras_errors(entra_sim):
    url = f"{entra_sim.base_url}/{CONTOSO}/oauth2/v2.0/token"
    post = entra_sim.session.post
    error_of(post(url, data={"client_id": DAEMON}), 400, "invalid_request", 900144)
    error_of(post(url, json={"grant_type": "client_credentials"}), 400, "invalid_request", 900144)
    error_of(post(url, data={"grant_type": "password"}), 400, "unsupported_grant_type", 70003)
    error_of(post(url, data={"grant_type": "client_credentials"}), 400, "invalid_request", 900144)
    error_of(post(url, data={"grant_type": "client_credentials", "client_id": DAEMON,
                             "client_secret": secret(entra_sim, "daemon")}), 400, "invalid_request", 900144)
    error_of(entra_sim.session.get(url), 400, "invalid_request", 900561)
    error_of(entra_sim.session.get(f"{entra_sim.base_url}/{CONTOSO}/oauth2/v2.0/authorize"), 400, "login_required",
             50058)


# --- Graph ------------------------------------------------------------------------------------------------------


def test_a_graph_token_carries_a_nonce_that_only_graph_can_undo(entra_sim):
    token = entra_sim.token(DAEMON, secret(entra_sim, "daemon"), "https://graph.microsoft.com/.default")
    header, claims = parts(token)
    assert list(header) == ["typ", "nonce", "alg", "x5t", "kid"]
    assert (claims["aud"], claims["ver"], claims["appid"]) == ("https://graph.microsoft.com", "1.0", DAEMON)
    assert claims["iss"] == f"https://sts.windows.net/{CONTOSO}/" and claims["app_displayname"] == "daemon"
    jwks = entra_sim.jwks(CONTOSO)
    assert not verifies(token, jwks)
    graph_view = json.dumps({**header, "nonce": b64url(hashlib.sha256(header["nonce"].encode()).digest())},
                            separators=(",", ":")).encode()
    assert verifies(token, jwks, signing_header=graph_view)


# --- Rotation and the /_sim controls ----------------------------------------------------------------------------


def test_rotation_without_notice_and_retirement(entra_sim):
    daemon, scope = secret(entra_sim, "daemon"), f"{API_V2}/.default"
    before = entra_sim.token(DAEMON, daemon, scope)
    old_kid = parts(before)[0]["kid"]
    old_jwks = entra_sim.jwks(CONTOSO)
    new_kid = entra_sim.rotate()
    assert new_kid != old_kid
    after = entra_sim.token(DAEMON, daemon, scope)
    assert parts(after)[0]["kid"] == new_kid
    assert not verifies(after, old_jwks)  # a cached key set does not know the new key
    jwks = entra_sim.jwks(CONTOSO)
    assert {k["kid"] for k in jwks["keys"]} >= {old_kid, new_kid}
    assert verifies(before, jwks) and verifies(after, jwks)
    entra_sim.retire(old_kid)
    for segment in (CONTOSO, "common"):
        assert old_kid not in {k["kid"] for k in entra_sim.jwks(segment)["keys"]}
    assert not verifies(before, entra_sim.jwks(CONTOSO)) and verifies(after, entra_sim.jwks(CONTOSO))
    keys = entra_sim.keys()
    assert keys["signer"] == new_kid and old_kid in keys["retired"] and old_kid not in keys["published"]
    post = entra_sim.session.post
    assert post(f"{entra_sim.base_url}/_sim/retire", params={"kid": new_kid}).status_code == 409
    assert post(f"{entra_sim.base_url}/_sim/retire", params={"kid": old_kid}).status_code == 404


def test_sim_token_mints_what_a_test_asks_for(entra_sim):
    base = entra_sim.base_url
    header, claims = parts(entra_sim.mint())
    assert (claims["ver"], claims["aud"], claims["azp"], claims["tid"]) == ("2.0", API_V2, DAEMON, CONTOSO)
    assert header["kid"] == entra_sim.keys()["signer"]
    _, v1 = parts(entra_sim.mint(version="1.0"))
    assert (v1["iss"], v1["appid"], v1["aud"]) == (f"https://sts.windows.net/{CONTOSO}/", DAEMON, f"api://{API_V2}")
    _, foreign = parts(entra_sim.mint(tid=FOREIGN))
    assert (foreign["tid"], foreign["iss"]) == (FOREIGN, f"{base}/{FOREIGN}/v2.0")
    _, elsewhere = parts(entra_sim.mint(directory=FOREIGN, resource=f"api://{API_MULTI}"))
    assert (elsewhere["tid"], elsewhere["aud"]) == (FOREIGN, API_MULTI)
    _, expired = parts(entra_sim.mint(expires_in=-60))
    assert expired["exp"] < time.time()
    _, odd = parts(entra_sim.mint(aud="api://someone-else", roles=None, extra=[1, 2]))
    assert odd["aud"] == "api://someone-else" and "roles" not in odd and odd["extra"] == [1, 2]
    graph_header, graph = parts(entra_sim.mint(resource="https://graph.microsoft.com"))
    assert "nonce" in graph_header and graph["aud"] == "https://graph.microsoft.com"
    assert parts(entra_sim.mint(header={"typ": None, "cty": "x"}))[0] == {
        "alg": "RS256", "x5t": header["kid"], "kid": header["kid"], "cty": "x"}
    assert verifies(entra_sim.mint(directory=FABRIKAM, resource=API_MULTI), entra_sim.jwks(FABRIKAM))
    for bad in ({"nonsense": 1}, {"kid": "unknown"}, {"version": "3.0"}, {"directory": "nowhere.example"}, [1]):
        response = entra_sim.session.post(f"{base}/_sim/token", json=bad)
        assert response.status_code == 400 and response.json()["error"]


def test_a_retired_key_can_still_sign_a_minted_token(entra_sim):
    old = entra_sim.keys()["signer"]
    entra_sim.rotate()
    entra_sim.retire(old)
    token = entra_sim.mint(kid=old)
    assert parts(token)[0]["kid"] == old and not verifies(token, entra_sim.jwks(CONTOSO))


# --- In process: the config, the command line's config writer, the controls -----------------------------------


def test_the_default_config_is_written_by_the_command_line_and_loads(tmp_path, capsys):
    assert main(["--write-default-config", str(tmp_path / "entra.json")]) == 0
    written = json.loads((tmp_path / "entra.json").read_text())
    assert written == default_config() and str(tmp_path) in capsys.readouterr().out
    registry = Registry(written)
    assert registry.resource(f"api://{API_MULTI}", FABRIKAM).client_id == API_MULTI
    assert registry.resource(f"api://{API_V2}", FABRIKAM) is None and registry.client(FABRIKAM_DAEMON, CONTOSO) is None


@pytest.mark.parametrize(("change", "message"), [
    (lambda c: c["directories"][0].update(tid="contoso"), "not a GUID"),
    (lambda c: c["directories"][1]["apps"].append(dict(c["directories"][0]["apps"][0])), "used twice"),
    (lambda c: c["directories"][0]["apps"][0].update(accessTokenAcceptedVersion=3), "1, 2 or null"),
    (lambda c: c["servicePrincipals"].append({"tid": FABRIKAM, "clientId": API_V2}), "multi-tenant app"),
    (lambda c: c["directories"][0]["apps"][0].pop("clientSecret"), "clientSecret"),
])
def test_config_mistakes_are_refused_with_the_reason(change, message):
    config = default_config()
    change(config)
    with pytest.raises(ConfigError, match=message):
        Registry(config)


def test_the_in_process_controls():
    ca = Authority("Entra test CA")
    server = ca.server()
    with EntraSimulator(server_cert_pem=server.cert_pem, server_key_pem=server.key_pem) as sim:
        assert sim.authority.startswith("https://127.0.0.1:")
        daemon = sim.registry.by_name("daemon").secret
        first = sim.keys()["signer"]
        assert parts(sim.token(DAEMON, daemon, f"{API_V2}/.default"))[0]["kid"] == first
        with pytest.raises(EntraError) as refused:
            sim.token(DAEMON, "wrong", f"{API_V2}/.default")
        assert (refused.value.status, refused.value.code) == (401, 7000215)
        second = sim.rotate()
        assert sim.keys() == {"signer": second, "published": [first, second], "retired": []}
        with pytest.raises(ValueError, match="rotate first"):
            sim.retire(second)
        sim.retire(first)
        assert [k["kid"] for k in sim.jwks(CONTOSO)["keys"]] == [second]
        _, claims = parts(sim.mint(version=1, claims={"tid": FOREIGN}))
        assert claims["iss"] == f"https://sts.windows.net/{FOREIGN}/"
