"""The token endpoint (POST /oauth/token): each of the six algorithms end to end, RFC 6749 errors, the password
grant against a real PostgreSQL user store and the real slapd, the weak client secret flag and the failure limit."""
from __future__ import annotations

import secrets
import socket
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from argon2 import PasswordHasher

from portal.clients import user_stores
from simulators import pki
from tests.api_helpers import Api, make_api
from tests.ldap_server import Slapd
from tests.token_helpers import (
    ALGORITHMS,
    AUDIENCE,
    CLIENT_SECRET,
    active_kid,
    ask_token,
    basic,
    external_body,
    hmac_key_for,
    pem_of,
    register,
    tenant_body,
    validate,
)

PG_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
CLAIMS = {"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "TENANTID", "user_name", "authorities"}


def _error(response, status: int, error: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store" and response.headers["Pragma"] == "no-cache"
    body = response.get_json()
    assert body["error"] == error and body["error_description"], body
    return body


# --- each algorithm end to end --------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_each_algorithm_end_to_end(api, algorithm):
    tenant = register(api, tenant_body("Algo", algorithm))  # HS: a supplied key of the right length; RS: generated
    assert tenant["signingKey"]["generated"] is algorithm.startswith("RS")
    before = int(time.time())
    response = ask_token(api.client, "algo-client")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store" and response.headers["Pragma"] == "no-cache"
    body = response.get_json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 3600)

    verdict = validate(api, body["access_token"])
    assert (verdict["valid"], verdict["reason"], verdict["tenantId"]) == (True, "ok", "Algo")
    claims, header = verdict["claims"], verdict["header"]
    assert set(claims) >= CLAIMS
    assert claims["iss"] == "http://localhost/t/Algo" and claims["aud"] == AUDIENCE
    assert claims["sub"] == claims["user_name"] == "algo-client" and claims["authorities"] == ["ROLE_CLIENT"]
    assert claims["TENANTID"] == "Algo" and len(claims["jti"]) >= 16
    assert before <= claims["iat"] == claims["nbf"] <= int(time.time()) and claims["exp"] == claims["iat"] + 3600
    assert header["alg"] == algorithm and header["kid"] == active_kid(api, "Algo") == tenant["signingKey"]["kid"]
    # A second token is a different token (its own jti), signed with the same key.
    second = validate(api, ask_token(api.client, "algo-client").get_json()["access_token"])
    assert second["claims"]["jti"] != claims["jti"] and second["header"]["kid"] == header["kid"]


def test_public_base_url_sets_the_issuer(make_app):
    app = make_app(PUBLIC_BASE_URL="https://portal.example.com/")
    api = make_api(app)
    register(api, tenant_body("pubco"))
    token = ask_token(api.client, "pubco-client").get_json()["access_token"]
    verdict = validate(api, token)
    assert verdict["valid"] and verdict["claims"]["iss"] == "https://portal.example.com/t/pubco"
    meta = api.client.get("/t/pubco/.well-known/openid-configuration").get_json()
    assert meta["issuer"] == verdict["claims"]["iss"]
    assert meta["token_endpoint"] == "https://portal.example.com/oauth/token"


# --- RFC 6749 errors ---------------------------------------------------------------------------------------------


@pytest.fixture
def tenant(api) -> dict:
    return register(api, tenant_body("acme"))


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer some-token"},
    {"Authorization": "Basic !!!not-base64!!!"},
    {"Authorization": "Basic YWNtZS1jbGllbnQ="},  # "acme-client" with no colon and no secret
    {"Authorization": "Digest username=acme-client"},
], ids=["none", "bearer", "bad-base64", "no-colon", "digest"])
def test_missing_or_invalid_basic_authentication_is_invalid_client(api, tenant, headers):
    response = api.client.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=headers)
    _error(response, 401, "invalid_client")
    assert response.headers["WWW-Authenticate"].startswith("Basic ")


def test_client_secret_in_the_body_is_not_accepted(api, tenant):
    response = api.client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "acme-client",
                                                     "client_secret": CLIENT_SECRET})
    _error(response, 401, "invalid_client")


def test_wrong_secret_and_unknown_client_look_the_same(api, tenant):
    wrong = _error(ask_token(api.client, "acme-client", CLIENT_SECRET + "x"), 401, "invalid_client")
    unknown = _error(ask_token(api.client, "nobody-client"), 401, "invalid_client")
    empty = _error(ask_token(api.client, "acme-client", ""), 401, "invalid_client")
    assert wrong == unknown == empty
    for response in (ask_token(api.client, "acme-client", CLIENT_SECRET + "x"), ask_token(api.client, "x")):
        assert "WWW-Authenticate" in response.headers


def test_tenantid_must_name_the_clients_tenant(api, tenant):
    register(api, tenant_body("other"))
    assert ask_token(api.client, "acme-client", TENANTID="acme").status_code == 200
    assert ask_token(api.client, "acme-client", TENANTID="ACME").status_code == 200  # ids ignore case
    _error(ask_token(api.client, "acme-client", TENANTID="nobody"), 401, "invalid_client")
    _error(ask_token(api.client, "acme-client", TENANTID="other"), 401, "invalid_client")


def test_grant_type_errors(api, tenant):
    _error(ask_token(api.client, "acme-client", grant_type="authorization_code"), 400, "unsupported_grant_type")
    _error(ask_token(api.client, "acme-client", grant_type="refresh_token"), 400, "unsupported_grant_type")
    _error(ask_token(api.client, "acme-client", grant_type=""), 400, "invalid_request")
    response = api.client.post("/oauth/token", data={"scope": "x"}, headers=basic("acme-client", CLIENT_SECRET))
    _error(response, 400, "invalid_request")


def test_parameters_must_be_form_encoded(api, tenant):
    response = api.client.post("/oauth/token", json={"grant_type": "client_credentials"},
                               headers=basic("acme-client", CLIENT_SECRET))
    assert "x-www-form-urlencoded" in _error(response, 400, "invalid_request")["error_description"]
    response = api.client.post("/oauth/token", data="grant_type=client_credentials", content_type="text/plain",
                               headers=basic("acme-client", CLIENT_SECRET))
    _error(response, 400, "invalid_request")


def test_only_post_is_allowed(api, tenant):
    response = api.client.get("/oauth/token?grant_type=client_credentials", headers=basic("acme-client", CLIENT_SECRET))
    assert response.status_code == 405 and "POST" in response.headers["Allow"]


def test_deactivated_tenant_gets_no_token(api, tenant):
    assert api.post("/v1/tenant/acme/deactivate").status_code == 200
    _error(ask_token(api.client, "acme-client"), 401, "invalid_client")
    assert api.post("/v1/tenant/acme/activate").status_code == 200
    assert ask_token(api.client, "acme-client").status_code == 200


def test_external_tenant_is_an_unauthorized_client(api):
    register(api, external_body("ext", "https://idp.example.com", pem_of(pki.rsa_key()), skipConnectionCheck=True))
    _error(ask_token(api.client, "ext-client"), 400, "unauthorized_client")
    _error(ask_token(api.client, "ext-client", CLIENT_SECRET + "!"), 401, "invalid_client")


def test_a_client_id_shared_by_two_tenants_needs_tenantid(api):
    register(api, tenant_body("one", clientId="shared-client", clientSecret="first-secret-0123456789abcdef"))
    register(api, tenant_body("two", clientId="shared-client", clientSecret="second-secret-0123456789abcdef"))
    assert "TENANTID" in _error(ask_token(api.client, "shared-client", "first-secret-0123456789abcdef"), 400,
                                "invalid_request")["error_description"]
    for tenant_id, secret in (("one", "first-secret-0123456789abcdef"), ("two", "second-secret-0123456789abcdef")):
        response = ask_token(api.client, "shared-client", secret, TENANTID=tenant_id)
        assert response.status_code == 200
        assert validate(api, response.get_json()["access_token"])["claims"]["TENANTID"] == tenant_id
    _error(ask_token(api.client, "shared-client", "first-secret-0123456789abcdef", TENANTID="two"), 401,
           "invalid_client")


def test_password_grant_needs_username_and_password(api, tenant):
    _error(ask_token(api.client, "acme-client", grant_type="password", password="pw"), 400, "invalid_request")
    _error(ask_token(api.client, "acme-client", grant_type="password", username="alice"), 400, "invalid_request")
    _error(ask_token(api.client, "acme-client", grant_type="password", username="alice", password=""), 400,
           "invalid_request")


# --- weak client secrets, failure limit ---------------------------------------------------------------------


def test_weak_client_secret_is_flagged(api):
    register(api, tenant_body("weak", clientId="order", clientSecret="order"))
    register(api, tenant_body("strong", clientSecret=secrets.token_urlsafe(32)))
    assert api.get("/v1/tenant/weak").get_json()["clientSecretWeak"] is True
    assert api.get("/v1/tenant/strong").get_json()["clientSecretWeak"] is False
    # Flagged, not refused: the registration API's own sample secret still works.
    assert ask_token(api.client, "order", "order").status_code == 200


def test_repeated_failed_client_authentication_is_rate_limited(make_app):
    app = make_app(RATELIMIT_ENABLED=True, TOKEN_FAILURE_LIMIT_PER_IP="3 per minute")
    api = make_api(app)
    register(api, tenant_body("limited"))
    attacker, other = app.test_client(), app.test_client()
    attacker.environ_base["REMOTE_ADDR"] = "203.0.113.9"
    other.environ_base["REMOTE_ADDR"] = "198.51.100.7"
    for _ in range(4):  # successes do not count against the limit
        assert ask_token(attacker, "limited-client").status_code == 200
    codes = [ask_token(attacker, "limited-client", f"guess-{i}").status_code for i in range(5)]
    assert codes[:3] == [401, 401, 401] and codes[3:] == [429, 429], codes
    refused = ask_token(attacker, "limited-client")
    assert refused.status_code == 429  # even the right secret, for now
    assert refused.get_json()["error"] == "temporarily_unavailable" and 0 < int(refused.headers["Retry-After"]) <= 60
    assert ask_token(other, "limited-client").status_code == 200  # another address is not affected


# --- password grant: a real PostgreSQL user store ---------------------------------------------------------------


def _postgres_tenant(tenant_id: str, url: str, store: dict, **overrides) -> dict:
    body = {"tenantId": tenant_id, "clientId": f"{tenant_id}-client", "clientSecret": CLIENT_SECRET,
            "identityProviderType": "POSTGRES", "supportAlgorithm": "HS384", "signingKey": hmac_key_for("HS384"),
            "relationalSchema": {"dataSourceURL": url, "dataSourceUserName": store["role"],
                                 "dataSourcePassword": store["password"]}}
    body.update(overrides)
    return body


def test_password_grant_against_a_real_postgresql_user_store(api, pg_store):
    url = f"jdbc:postgresql://127.0.0.1:5432/{pg_store['database']}?currentSchema=people"
    tenant = register(api, _postgres_tenant("pgco", url, pg_store))
    assert tenant["verified"] is True  # the connection check ran and provisioned um_user, um_role, um_user_role
    hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)  # the hash carries its own parameters
    with psycopg.connect(host="127.0.0.1", port=5432, dbname=pg_store["database"], user=pg_store["role"],
                         password=pg_store["password"]) as conn:
        bob = conn.execute("INSERT INTO people.um_user (user_name, credential) VALUES (%s, %s) RETURNING id",
                           ("bob", hasher.hash("bob's long password"))).fetchone()[0]
        conn.execute("INSERT INTO people.um_user (user_name, credential) VALUES (%s, %s)",
                     ("carol", hasher.hash("carol's long password")))
        roles = [conn.execute("INSERT INTO people.um_role (role_name) VALUES (%s) RETURNING id", (name,)).fetchone()[0]
                 for name in ("ROLE_ORDERS", "ROLE_AUDIT")]
        for role in roles:
            conn.execute("INSERT INTO people.um_user_role (user_id, role_id) VALUES (%s, %s)", (bob, role))

    response = ask_token(api.client, "pgco-client", grant_type="password", username="bob",
                         password="bob's long password", TENANTID="pgco")
    assert response.status_code == 200, response.get_data(as_text=True)
    verdict = validate(api, response.get_json()["access_token"])
    assert verdict["valid"] and verdict["header"]["alg"] == "HS384"
    claims = verdict["claims"]
    assert (claims["sub"], claims["user_name"], claims["TENANTID"]) == ("bob", "bob", "pgco")
    assert claims["authorities"] == ["ROLE_AUDIT", "ROLE_ORDERS"] and claims["client_id"] == "pgco-client"

    carol = ask_token(api.client, "pgco-client", grant_type="password", username="carol",
                      password="carol's long password", TENANTID="pgco")
    assert validate(api, carol.get_json()["access_token"])["claims"]["authorities"] == []

    wrong = _error(ask_token(api.client, "pgco-client", grant_type="password", username="bob",
                             password="bob's wrong password", TENANTID="pgco"), 400, "invalid_grant")
    unknown = _error(ask_token(api.client, "pgco-client", grant_type="password", username="mallory",
                               password="bob's long password", TENANTID="pgco"), 400, "invalid_grant")
    injected = _error(ask_token(api.client, "pgco-client", grant_type="password", username="bob' OR '1'='1",
                                password="x", TENANTID="pgco"), 400, "invalid_grant")
    assert wrong == unknown == injected  # nothing tells which part was wrong
    # The wrong client secret is refused before the user store is asked.
    _error(ask_token(api.client, "pgco-client", "nope", grant_type="password", username="bob",
                     password="bob's long password", TENANTID="pgco"), 401, "invalid_client")


def _closed_port() -> int:
    """A local port nothing listens on (bound and released, so the kernel refuses connections to it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_password_grant_with_an_unreachable_user_store_is_503(api, pg_store):
    url = f"jdbc:postgresql://127.0.0.1:{_closed_port()}/{pg_store['database']}"
    register(api, {**_postgres_tenant("pgdown", url, pg_store), "skipConnectionCheck": True})
    response = ask_token(api.client, "pgdown-client", grant_type="password", username="bob",
                         password="bob's long password", TENANTID="pgdown")
    body = _error(response, 503, "temporarily_unavailable")
    assert pg_store["password"] not in body["error_description"]


# --- password grant: the real slapd -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def directory_user(slapd: Slapd) -> Iterator[dict]:
    """A user with a password and two groups naming it as a member, added to the session's slapd as its admin and
    removed afterwards (names are unique, so nothing else in the directory is disturbed)."""
    from ldap3 import Connection, Server

    tag = uuid.uuid4().hex[:8]
    user = {"uid": f"tok-{tag}", "password": "tok-" + secrets.token_urlsafe(12),
            "groups": sorted([f"tok-readers-{tag}", f"tok-writers-{tag}"])}
    user["dn"] = f"uid={user['uid']},{slapd.users_dn}"
    group_dns = [f"cn={name},{slapd.groups_dn}" for name in user["groups"]]
    conn = Connection(Server(slapd.host, port=slapd.ldap_port), user=slapd.admin_dn, password=slapd.admin_password,
                      auto_bind=True)
    try:
        assert conn.add(user["dn"], ["inetOrgPerson"], {"uid": user["uid"], "cn": "Token User", "sn": "User",
                                                        "userPassword": user["password"]}), conn.result
        for dn, name in zip(group_dns, user["groups"], strict=True):
            assert conn.add(dn, ["groupOfNames"], {"cn": name, "member": [user["dn"]]}), conn.result
        yield user
    finally:
        for dn in [*group_dns, user["dn"]]:
            conn.delete(dn)
        conn.unbind()


def _ldap_tenant(api: Api, slapd: Slapd, tenant_id: str = "dirco", **schema) -> dict:
    settings = {"ldapURLForDirectoryService": slapd.ldap_url, "directoryServiceDomainName": slapd.domain_name,
                "directoryServiceRootDistinguishedName": slapd.root_dn, "bindDN": slapd.admin_dn,
                "bindPassword": slapd.admin_password, "startTLS": False, **schema}
    return register(api, tenant_body(tenant_id, "RS256", ldapSchema=settings, skipConnectionCheck=False))


def test_password_grant_against_the_real_slapd(api, slapd, directory_user):
    assert _ldap_tenant(api, slapd)["verified"] is True
    response = ask_token(api.client, "dirco-client", grant_type="password", username=directory_user["uid"],
                         password=directory_user["password"], TENANTID="dirco")
    assert response.status_code == 200, response.get_data(as_text=True)
    verdict = validate(api, response.get_json()["access_token"])
    assert verdict["valid"] and verdict["header"]["alg"] == "RS256"
    assert verdict["claims"]["user_name"] == verdict["claims"]["sub"] == directory_user["uid"]
    assert verdict["claims"]["authorities"] == directory_user["groups"]
    # The directory's own seeded user and group, readable by the tenant's service account.
    alice = ask_token(api.client, "dirco-client", grant_type="password", username="alice",
                      password=slapd.user_password, TENANTID="dirco")
    assert validate(api, alice.get_json()["access_token"])["claims"]["authorities"] == ["admins"]


def test_ldap_password_grant_refusals(api, slapd, directory_user):
    _ldap_tenant(api, slapd)

    def attempt(username: str, password: str):
        return ask_token(api.client, "dirco-client", grant_type="password", username=username, password=password,
                         TENANTID="dirco")

    wrong = _error(attempt(directory_user["uid"], directory_user["password"] + "x"), 400, "invalid_grant")
    unknown = _error(attempt("nobody-here", directory_user["password"]), 400, "invalid_grant")
    wildcard = _error(attempt("*", directory_user["password"]), 400, "invalid_grant")  # no filter injection
    assert wrong == unknown == wildcard
    _error(attempt(directory_user["uid"], ""), 400, "invalid_request")
    # Below the endpoint too: an empty password never reaches a bind (LDAP would call it an anonymous success).
    settings = {"ldapURLForDirectoryService": slapd.ldap_url, "directoryServiceRootDistinguishedName": slapd.root_dn}
    check = user_stores.check_ldap(settings, None, directory_user["uid"], "", ca_file=None, timeout=2)
    assert (check.ok, check.reason, check.unavailable) == (False, "empty password", False)


@pytest.mark.parametrize("transport", ["ldaps", "starttls"])
def test_ldap_password_grant_over_tls(make_app, slapd, directory_user, transport):
    """The user's password crosses the wire only inside TLS verified against the configured CA."""
    app = make_app(LDAP_CA_FILE=slapd.ca_file)
    api = make_api(app)
    url, start_tls = (slapd.ldaps_url, False) if transport == "ldaps" else (slapd.ldap_url, True)
    assert _ldap_tenant(api, slapd, ldapURLForDirectoryService=url, startTLS=start_tls)["verified"] is True
    response = ask_token(api.client, "dirco-client", grant_type="password", username=directory_user["uid"],
                         password=directory_user["password"], TENANTID="dirco")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert validate(api, response.get_json()["access_token"])["claims"]["authorities"] == directory_user["groups"]


def test_ldap_password_grant_refuses_an_untrusted_directory_certificate(api, slapd, directory_user):
    register(api, tenant_body("untrusted", ldapSchema={
        "ldapURLForDirectoryService": slapd.ldaps_url, "directoryServiceDomainName": slapd.domain_name,
        "directoryServiceRootDistinguishedName": slapd.root_dn, "bindDN": slapd.admin_dn,
        "bindPassword": slapd.admin_password}))  # the app has no LDAP_CA_FILE: the test CA is not trusted
    response = ask_token(api.client, "untrusted-client", grant_type="password", username=directory_user["uid"],
                         password=directory_user["password"], TENANTID="untrusted")
    _error(response, 503, "temporarily_unavailable")


def test_ldap_password_grant_with_the_directory_down_is_503(api, slapd):
    register(api, tenant_body("gone", ldapSchema={
        "ldapURLForDirectoryService": f"ldap://127.0.0.1:{_closed_port()}", "directoryServiceDomainName": "example.com",
        "directoryServiceRootDistinguishedName": slapd.root_dn}))
    response = ask_token(api.client, "gone-client", grant_type="password", username="alice",
                         password=slapd.user_password, TENANTID="gone")
    _error(response, 503, "temporarily_unavailable")


def test_form_encoded_basic_credentials_are_accepted(app, db):
    """RFC 6749 2.3.1: clients such as Authlib form-encode the secret before Basic; others send it as it is."""
    from urllib.parse import quote_plus

    from tests.test_tenants_service import ldap_body as service_ldap_body, register as register_directly

    secret = "s3cret+with%odd:chars and spaces"
    with app.app_context():
        register_directly(service_ldap_body(tenantId="enc", clientId="enc-client+1", clientSecret=secret))
    client = app.test_client()
    for user, password in (("enc-client+1", secret), (quote_plus("enc-client+1"), quote_plus(secret))):
        response = client.post("/oauth/token", data={"grant_type": "client_credentials", "TENANTID": "enc"},
                               auth=(user, password))
        assert response.status_code == 200, response.json
    wrong = client.post("/oauth/token", data={"grant_type": "client_credentials", "TENANTID": "enc"},
                        auth=("enc-client+1", quote_plus(secret) + "x"))
    assert wrong.status_code == 401 and wrong.json["error"] == "invalid_client"


def test_client_id_with_a_colon_is_refused_at_registration(app, db):
    from portal.services.errors import ValidationError
    from tests.test_tenants_service import ldap_body as service_ldap_body, register as register_directly

    with app.app_context(), pytest.raises(ValidationError) as caught:
        register_directly(service_ldap_body(tenantId="colon", clientId="a:b"))
    assert "':'" in caught.value.errors["clientId"]
