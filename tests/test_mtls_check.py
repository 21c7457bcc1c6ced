"""The live "Test mutual TLS to IS 7" check against the IS 7 simulator: it succeeds, then fails for each TLS cause
and for 401s, each with the right explanation; and the page that runs it."""
from __future__ import annotations

import datetime
import re
import socket

import pytest

from portal.services.certificates import mappings, mtls_check, service as certificates
from portal.services.certificates.cert_auth import SystemMapping, UserMapping
from portal.services.certificates.mtls_check import Mappings, check_is_mtls
from portal.services.certificates.service import java_dn
from portal.services.context import Actor
from portal.services.errors import ValidationError
from simulators.is7 import Is7Simulator
from simulators.pki import Authority
from tests.fixtures.accounts import create_admin, csrf_token, login

TIMEOUT = 2.0


@pytest.fixture(scope="module")
def issuer(pki):
    return java_dn(pki.client.cert.issuer)


@pytest.fixture(scope="module")
def portal_mappings(pki, issuer):
    """What the portal holds: the same mappings the simulator (IS) is configured with."""
    return Mappings(user=[UserMapping(issuer, pki.client.thumbprint, ("admin",))],
                    system=[SystemMapping(issuer, pki.client.thumbprint, "admin")])


@pytest.fixture
def is7(pki, portal_mappings):
    with Is7Simulator(server_cert_pem=pki.server.cert_pem, server_key_pem=pki.server.key_pem,
                      client_ca_pem=pki.client_ca.cert_pem, user_mappings=portal_mappings.user,
                      system_mappings=portal_mappings.system) as sim:
        yield sim


def check(sim_or_url, pki, user="admin", *, explain=None, cert=None, key=None, ca=None, timeout=TIMEOUT,
          no_certificate=False):
    base = sim_or_url if isinstance(sim_or_url, str) else sim_or_url.base_url
    cert_pem = None if no_certificate else (cert or pki.client.cert_pem)
    key_pem = None if no_certificate else (key or pki.client.key_pem)
    return check_is_mtls(base, cert_pem, key_pem, ca or pki.server_ca.cert_pem, user, timeout, explain=explain)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- Success ---------------------------------------------------------------------------------------------------------


def test_the_check_succeeds_and_says_how(is7, pki, issuer, portal_mappings):
    is7.add_tenant("abc.com")
    result = check(is7, pki, explain=portal_mappings)
    assert result.ok and result.status == 200 and result.cause is None
    assert "accepted the portal's client certificate as 'admin'" in result.summary and "1 tenant" in result.summary
    assert f"Issuer, as IS reads it: {issuer}" in result.steps
    assert f"SHA-256 thumbprint: {pki.client.thumbprint}" in result.steps
    assert result.decision.ok and result.decision.mapping_index == 0
    call = is7.requests[-1]
    assert (call.method, call.path, call.query, call.user) == ("GET", "/api/server/v1/tenants", "limit=1", "admin")


def test_without_a_user_the_system_mappings_let_it_in(is7, pki):
    result = check(is7, pki, user="")
    assert result.ok and "through a system mapping" in result.summary
    assert "No WSO2-Identity-User header; IS uses its system thumbprint mappings." in result.steps


# --- TLS causes ---------------------------------------------------------------------------------------------------


def test_no_client_certificate_when_is_asks_but_does_not_require_one(is7, pki, portal_mappings):
    result = check(is7, pki, explain=portal_mappings, no_certificate=True)
    assert not result.ok and result.status == 401
    assert result.cause == "no_client_certificate"
    assert "sent no client certificate" in result.summary
    assert "The portal presents no client certificate." in result.steps


def test_no_client_certificate_when_is_requires_one(pki):
    with Is7Simulator(server_cert_pem=pki.server.cert_pem, server_key_pem=pki.server.key_pem,
                      client_ca_pem=pki.client_ca.cert_pem, require_client_certificate=True) as sim:
        result = check(sim, pki, no_certificate=True)
    assert not result.ok and result.status is None
    assert result.cause == "no_client_certificate"
    assert "requires a client certificate" in result.summary
    assert "Upload the portal's client certificate" in result.summary


def test_server_certificate_not_trusted(is7, pki):
    result = check(is7, pki, ca=Authority("Not IS's CA").cert_pem)
    assert not result.ok and result.cause == "server_not_trusted"
    assert "does not trust IS's server certificate" in result.summary
    assert any("CERTIFICATE_VERIFY_FAILED" in step for step in result.steps)


def test_server_certificate_for_another_host(pki):
    server = pki.server_ca.server(hosts=("is.example.test",))
    with Is7Simulator(server_cert_pem=server.cert_pem, server_key_pem=server.key_pem,
                      client_ca_pem=pki.client_ca.cert_pem) as sim:
        result = check(sim, pki)
    assert result.cause == "server_name_mismatch" and "not valid for the host" in result.summary


def test_client_ca_unknown_to_is(is7, pki):
    stranger = Authority("A CA IS does not know").client("tenant-portal")
    result = check(is7, pki, cert=stranger.cert_pem, key=stranger.key_pem)
    assert not result.ok and result.cause == "client_ca_unknown"
    assert "client-truststore" in result.summary
    assert is7.requests == []


def test_key_does_not_match_certificate(is7, pki):
    other = pki.client_ca.client("someone-else")
    result = check(is7, pki, key=other.key_pem)
    assert not result.ok and result.cause == "key_mismatch"
    assert "does not match" in result.summary
    assert is7.requests == []  # raised before connecting


def test_expired_client_certificate(is7, pki):
    expired = pki.client_ca.client("tenant-portal", days=1,
                                   not_before=datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=5))
    result = check(is7, pki, cert=expired.cert_pem, key=expired.key_pem)
    assert result.cause == "client_certificate_rejected"
    assert any(step.startswith("Warning: the client certificate expired") for step in result.steps)


def test_timeout(is7, pki):
    is7.set_latency(1.0)
    result = check(is7, pki, timeout=0.25)
    assert not result.ok and result.cause == "timeout"
    assert "did not answer within 0.25 s" in result.summary


def test_refused(pki):
    result = check(f"https://127.0.0.1:{free_port()}", pki)
    assert not result.ok and result.cause == "refused" and "refused" in result.summary


def test_unreadable_client_certificate(is7, pki):
    result = check(is7, pki, cert="-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
    assert result.cause == "bad_credentials" and "not a readable PEM certificate" in result.summary


# --- 401s explained by the mappings --------------------------------------------------------------------------------


def test_401_user_not_in_allowed_username(is7, pki, portal_mappings):
    result = check(is7, pki, user="bob", explain=portal_mappings)
    assert not result.ok and result.status == 401 and result.code == "401" and result.cause == "unauthorized"
    assert result.summary == ("IS 7 answered 401. User mapping #1 was chosen, but 'bob' is not in its "
                              "allowed_username (admin); IS answers 401.")
    assert not result.decision.ok and result.decision.mapping_index == 0
    assert "user mapping #1: issuer matches." in result.steps
    assert "IS answered 401: Unauthorized Authorization failure. Authorization information was invalid or missing " \
           "from your request." in result.steps
    assert not any(step.startswith("Certificate issuer (as IS reads it)") for step in result.steps)  # not twice
    assert result.trace_id == is7.requests[-1].trace_id


def test_401_issuer_mismatch(is7, pki):
    # IS (the simulator) and the portal both hold a mapping for another issuer only.
    wrong = [UserMapping("CN=Some Other CA, O=Elsewhere", pki.client.thumbprint, ("admin",))]
    is7.set_mappings(user=wrong)
    result = check(is7, pki, explain=Mappings(user=wrong))
    assert result.status == 401
    assert "No user mapping has a trusted_issuer matching the certificate's issuer" in result.summary
    assert any("does not match" in step for step in result.steps)


def test_401_thumbprint_mismatch(is7, pki, issuer):
    other = [UserMapping(issuer, "AA:" * 31 + "AA", ("admin",))]
    is7.set_mappings(user=other)
    result = check(is7, pki, explain=Mappings(user=other))
    assert "none has the certificate's thumbprint" in result.summary


def test_401_when_the_portals_mappings_differ_from_is(is7, pki, portal_mappings):
    is7.set_mappings(user=[])  # IS lost its mappings; the portal still has them
    result = check(is7, pki, explain=portal_mappings)
    assert result.status == 401 and result.decision.ok
    assert "yet by the portal's mappings the call should pass: User mapping #1 lets 'admin' in." in result.summary
    assert "enable = true" in result.summary and "'admin' exists in IS" in result.summary


def test_401_when_the_user_does_not_exist_in_is(is7, pki, issuer):
    everyone = Mappings(user=[UserMapping(issuer, "*", ("*",))])
    is7.set_mappings(user=everyone.user)
    result = check(is7, pki, user="ghost", explain=everyone)
    assert result.status == 401 and "'ghost' exists in IS" in result.summary
    assert is7.requests[-1].decision.reason == "Authentication failed. User: ghost does not exist."


def test_401_without_mappings_to_explain(is7, pki):
    result = check(is7, pki, user="bob")
    assert result.cause == "unauthorized" and "No mappings were given" in result.summary


def test_403_for_a_tenant_user(is7, pki, issuer):
    is7.set_mappings(user=[UserMapping(issuer, pki.client.thumbprint, ("kim@abc.com",))])
    is7.add_user("kim@abc.com")
    result = check(is7, pki, user="kim@abc.com")
    assert result.status == 403 and result.cause == "forbidden" and "permission" in result.summary


def test_other_is_errors_are_reported_with_code_and_trace_id(is7, pki):
    is7.push_fault("GET", "/api/server/v1/tenants", 500, body={"code": "TM-65001", "message": "Unable to list "
                   "existing tenants.", "description": "Server encountered an error while listing the tenants."})
    result = check(is7, pki)
    assert result.status == 500 and result.code == "TM-65001" and result.cause == "http_error"
    assert "TM-65001" in result.summary and result.trace_id


@pytest.mark.parametrize(("base_url", "user", "timeout", "field"), [
    ("http://is:9443", "admin", 2.0, "base_url"), ("", "admin", 2.0, "base_url"),
    ("https://is:9443", "admin\nX", 2.0, "identity_user"), ("https://is:9443", "admin", 0, "timeout"),
    ("https://is:9443", "admin", 600, "timeout"),
])
def test_bad_input_is_a_validation_error_on_its_field(pki, base_url, user, timeout, field):
    with pytest.raises(ValidationError) as info:
        check_is_mtls(base_url, None, None, pki.server_ca.cert_pem, user, timeout)
    assert field in info.value.errors


# --- The page --------------------------------------------------------------------------------------------------------


def store_credentials(app, pki, *, with_mappings=True):
    """Upload what an admin would: the portal's client certificate + key, IS's CA, and a mapping."""
    actor = Actor(name="test-admin")
    with app.app_context():
        certificates.upload_certificate("client", pki.client.cert_pem.encode(), actor,
                                        key_data=pki.client.key_pem.encode())
        certificates.upload_certificate("ca", pki.server_ca.cert_pem.encode(), actor)
        if with_mappings:
            mappings.create_mapping("user", mappings.MappingInput(java_dn(pki.client.cert.issuer),
                                                                  pki.client.thumbprint, ("admin",)), actor)


def page_text(response) -> str:
    return response.get_data(as_text=True)


@pytest.mark.parametrize("role", ["admin", "operator", "auditor"])
def test_every_role_can_open_the_page(signed_in, role):
    response = signed_in(role).get("/mtls-check/")
    assert response.status_code == 200
    assert "Test mutual TLS to IS 7" in page_text(response)
    assert ("Only administrators can run the check." in page_text(response)) == (role != "admin")


def test_admin_runs_the_check_against_the_simulator(app, admin_client, is7, pki):
    store_credentials(app, pki)
    response = admin_client.post("/mtls-check/", data={"base_url": is7.base_url, "identity_user": "admin",
                                                       "timeout": "2"})
    text = page_text(response)
    assert response.status_code == 200
    assert "IS 7 accepted the call" in text
    assert "accepted the portal&#39;s client certificate as &#39;admin&#39;" in text
    assert pki.client.thumbprint in text
    assert is7.requests[-1].client_thumbprint == pki.client.thumbprint


def test_a_401_on_the_page_shows_the_explanation_from_the_stored_mappings(app, admin_client, is7, pki):
    store_credentials(app, pki)
    response = admin_client.post("/mtls-check/", data={"base_url": is7.base_url, "identity_user": "bob",
                                                       "timeout": "2"})
    text = page_text(response)
    assert "The call did not go through" in text
    assert "User mapping #1 was chosen, but &#39;bob&#39; is not in its allowed_username" in text
    assert re.search(r"<dt>HTTP status</dt><dd>401</dd>", text)
    assert is7.requests[-1].trace_id in text


def test_the_page_asks_for_credentials_first(admin_client, is7):
    response = admin_client.post("/mtls-check/", data={"base_url": is7.base_url, "timeout": "2"})
    assert "Upload the portal&#39;s client certificate (with its private key) first." in page_text(response)
    assert is7.requests == []


def test_the_page_asks_for_trust_first(app, admin_client, is7, pki):
    with app.app_context():
        certificates.upload_certificate("client", pki.client.cert_pem.encode(), Actor(name="t"),
                                        key_data=pki.client.key_pem.encode())
    response = admin_client.post("/mtls-check/", data={"base_url": is7.base_url, "timeout": "2"})
    assert "Upload IS 7&#39;s certificate, or the CA that issued it, first" in page_text(response)


def test_bad_input_is_shown_at_the_field(admin_client):
    response = admin_client.post("/mtls-check/", data={"base_url": "http://is:9443", "timeout": "2"})
    assert response.status_code == 400
    assert re.search(r'class="field-error" id="[^"]+">IS&#39;s base URL must start with https://',
                     page_text(response))
    response = admin_client.post("/mtls-check/", data={"base_url": "https://is:9443", "timeout": "soon"})
    assert response.status_code == 400


@pytest.mark.parametrize("role", ["auditor", "operator"])
def test_only_admins_may_run_it(signed_in, is7, role):
    response = signed_in(role).post("/mtls-check/", data={"base_url": is7.base_url, "timeout": "2"})
    assert response.status_code == 403
    assert is7.requests == []


def test_the_form_needs_a_csrf_token(make_app, is7, pki):
    app = make_app(WTF_CSRF_ENABLED=True)
    store_credentials(app, pki)
    create_admin(app, "csrf-admin")
    client = app.test_client()
    assert login(client, "csrf-admin", csrf_token=csrf_token(client)).status_code == 302
    data = {"base_url": is7.base_url, "identity_user": "admin", "timeout": "2"}
    assert client.post("/mtls-check/", data=data).status_code == 400
    assert is7.requests == []
    token = csrf_token(client, "/mtls-check/")
    response = client.post("/mtls-check/", data={**data, "csrf_token": token})
    assert response.status_code == 200 and "IS 7 accepted the call" in page_text(response)


def test_check_with_stored_uses_the_stored_mappings(app, is7, pki):
    store_credentials(app, pki)
    with app.app_context():
        result = mtls_check.check_with_stored(is7.base_url, "bob", 2.0)
    assert result.decision is not None and not result.decision.ok


def test_a_401_is_explained_by_the_handler_line_in_use(pki, issuer):
    """A lower-case thumbprint in a user mapping: master IS compares ignoring case, the 1.8.x/1.11.x backports do
    not. The simulator runs the backport line, and the check explains the 401 with the line the portal is set to."""
    lower = [UserMapping(issuer, pki.client.thumbprint.lower(), ("admin",))]
    with Is7Simulator(server_cert_pem=pki.server.cert_pem, server_key_pem=pki.server.key_pem,
                      client_ca_pem=pki.client_ca.cert_pem, user_mappings=lower, handler_line="backport") as sim:
        backport = check(sim, pki, explain=Mappings(user=lower, line="backport"))
        master = check(sim, pki, explain=Mappings(user=lower, line="master"))
    assert backport.status == master.status == 401
    assert not backport.decision.ok and "yet by the portal's mappings" not in backport.summary
    assert master.decision.ok and "yet by the portal's mappings the call should pass" in master.summary
