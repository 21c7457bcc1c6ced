"""The IS 7 simulator against wso2-apis.md §1/§2, over real HTTPS with client certificates (plain `requests`, so
these tests do not depend on the portal's own IS client)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
import tomli_w

from simulators.is7 import (
    API_PREFIX,
    FORBIDDEN_DESCRIPTION,
    LIST_TENANTS,
    MODIFY_TENANTS,
    UNAUTHORIZED_DESCRIPTION,
    Is7Simulator,
    SystemMapping,
    UserMapping,
    load_mappings,
    main,
)
from simulators.pki import Authority
from simulators.x509_names import (
    issuer_name,
    java_name as java_dn,  # the simulator's own rendering, as IS reads it
)

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class Caller:
    """requests with the portal's client certificate (files in tmp_path) and IS's CA, user "admin" by default."""

    def __init__(self, sim: Is7Simulator, pki, directory: Path, *, client=None, user: str | None = "admin"):
        client = pki.client if client is None else client
        self.base = sim.base_url + API_PREFIX
        ca = directory / "server-ca.pem"
        ca.write_text(pki.server_ca.cert_pem)
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = str(ca)
        if client is not False:
            self.session.cert = client.write(directory, f"client-{uuid.uuid4().hex[:6]}")
        if user:
            self.session.headers["WSO2-Identity-User"] = user

    def __call__(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.session.request(method, self.base + path, timeout=5, allow_redirects=False, **kwargs)


@pytest.fixture
def call(is7, pki, tmp_path):
    caller = Caller(is7, pki, tmp_path)
    yield caller
    caller.session.close()


def owner(**overrides):
    body = {"username": "kim", "password": "Kim#12345", "email": "kim@abc.com", "firstname": "Kim",
            "lastname": "Lee", "provisioningMethod": "inline-password"}
    body.update(overrides)
    return body


def create(call, domain="abc.com", **owner_overrides) -> requests.Response:
    return call("POST", "/tenants", json={"domain": domain, "owners": [owner(**owner_overrides)]})


def assert_api_error(response: requests.Response, status: int, code: str, message: str, description: str):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"code", "message", "description", "traceId"}
    assert (body["code"], body["message"], body["description"]) == (code, message, description)
    assert body["traceId"] == response.headers["X-WSO2-TraceId"]


# --- Authentication (§2) -------------------------------------------------------------------------------------


def test_a_mapped_certificate_and_user_list_tenants(call, is7):
    response = call("GET", "/tenants")
    assert response.status_code == 200
    assert response.json() == {"totalResults": 0, "startIndex": 1, "count": 0, "links": []}
    logged = is7.requests[-1]
    assert logged.user == "admin" and logged.decision.ok and logged.status == 200
    assert logged.client_thumbprint == is7.state.user_mappings[0].cert_thumbprint


def test_no_client_certificate_gets_the_valves_401(is7, pki, tmp_path):
    response = Caller(is7, pki, tmp_path, client=False)("GET", "/tenants")
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/json;charset=UTF-8"
    assert response.headers["WWW-Authenticate"] == "Bearer realm=127.0.0.1"
    body = response.json()
    assert body["code"] == 401 and isinstance(body["code"], int)
    assert body["message"] == "Unauthorized" and body["description"] == UNAUTHORIZED_DESCRIPTION
    assert body["traceId"] == response.headers["X-WSO2-TraceId"]
    assert is7.requests[-1].client_thumbprint is None


def test_the_user_must_be_listed_case_insensitively(is7, pki, tmp_path):
    assert Caller(is7, pki, tmp_path, user="ADMIN")("GET", "/tenants").status_code == 200
    response = Caller(is7, pki, tmp_path, user="bob")("GET", "/tenants")
    assert response.status_code == 401 and response.json()["code"] == 401
    assert "not in the allowed user list" in is7.requests[-1].decision.reason


def test_the_user_must_exist(is7, pki, tmp_path):
    issuer = java_dn(pki.client.cert.issuer)
    is7.set_mappings(user=[UserMapping(issuer, "*", ("*",))])
    caller = Caller(is7, pki, tmp_path, user="ghost")
    assert caller("GET", "/tenants").status_code == 401
    assert "ghost does not exist" in is7.requests[-1].decision.reason
    is7.add_user("ghost")
    assert caller("GET", "/tenants").status_code == 200


def test_without_the_header_the_system_mappings_apply(is7, pki, tmp_path):
    caller = Caller(is7, pki, tmp_path, user=None)
    assert caller("GET", "/tenants").status_code == 200
    assert is7.requests[-1].decision.kind == "system"
    is7.set_mappings(system=[])
    assert caller("GET", "/tenants").status_code == 401
    is7.set_mappings(system=[SystemMapping(java_dn(pki.client.cert.issuer), pki.client.thumbprint, "*")])
    assert caller("GET", "/tenants").status_code == 200  # anonymous server-to-server call
    assert is7.requests[-1].decision.user is None


def test_issuer_order_spacing_and_key_case_do_not_matter_but_value_case_does(is7, pki, tmp_path):
    openssl_order = "o = Tenant Portal tests ,  cn=Tenant Portal test client CA"
    is7.set_mappings(user=[UserMapping(openssl_order, pki.client.thumbprint, ("admin",))])
    caller = Caller(is7, pki, tmp_path)
    assert caller("GET", "/tenants").status_code == 200
    is7.set_mappings(user=[UserMapping(openssl_order.replace("Portal", "portal"), pki.client.thumbprint, ("admin",))])
    assert caller("GET", "/tenants").status_code == 401


def test_awkward_issuer_names_match_in_their_java_form(tmp_path):
    """An escaped comma and an emailAddress, as IS reads them from Java's getIssuerDN().getName()."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "LK"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Corp, Inc."),
                      x509.NameAttribute(NameOID.COMMON_NAME, "Awkward CA"),
                      x509.NameAttribute(NameOID.EMAIL_ADDRESS, "ca@example.com")])
    client_ca = Authority(name)
    server_ca = Authority("server CA")
    server, client = server_ca.server(), client_ca.client("portal")
    issuer = java_dn(client.cert.issuer)
    assert issuer == 'EMAILADDRESS=ca@example.com, CN=Awkward CA, O="Example Corp, Inc.", C=LK'
    with Is7Simulator(server_cert_pem=server.cert_pem, server_key_pem=server.key_pem, client_ca_pem=client_ca.cert_pem,
                      user_mappings=[UserMapping(issuer, client.thumbprint, ("admin",))]) as sim:
        ca_file = tmp_path / "ca.pem"
        ca_file.write_text(server_ca.cert_pem)
        response = requests.get(f"{sim.base_url}{API_PREFIX}/tenants", verify=str(ca_file),
                                cert=client.write(tmp_path, "awkward"), headers={"WSO2-Identity-User": "admin"},
                                timeout=5)
        assert response.status_code == 200
        assert sim.requests[-1].client_issuer == issuer


def test_a_tenant_user_is_forbidden_on_the_super_tenant_api(is7, pki, tmp_path):
    is7.set_mappings(user=[UserMapping(java_dn(pki.client.cert.issuer), pki.client.thumbprint, ("kim@abc.com",))])
    is7.add_user("kim@abc.com")
    response = Caller(is7, pki, tmp_path, user="kim@abc.com")("GET", "/tenants")
    assert response.status_code == 403
    assert response.json()["code"] == 403 and response.json()["message"] == "Forbidden"


def test_certificate_authentication_can_be_switched_off(is7, call):
    is7.configure(client_cert_auth=False)
    assert call("GET", "/tenants").status_code == 401


def test_a_client_certificate_from_an_unknown_ca_fails_the_handshake(is7, pki, tmp_path):
    stranger = Authority("Stranger CA").client("portal")
    with pytest.raises(requests.exceptions.SSLError, match="(?i)unknown.ca"):
        Caller(is7, pki, tmp_path, client=stranger)("GET", "/tenants")
    assert is7.requests == []  # refused before HTTP


def test_required_client_certificates_fail_the_handshake_without_one(pki, tmp_path):
    with Is7Simulator(server_cert_pem=pki.server.cert_pem, server_key_pem=pki.server.key_pem,
                      client_ca_pem=pki.client_ca.cert_pem, require_client_certificate=True) as sim, \
            pytest.raises(requests.exceptions.SSLError):
        Caller(sim, pki, tmp_path, client=False)("GET", "/tenants")


def test_the_incoming_correlation_id_becomes_the_trace_id(call):
    response = call("GET", "/tenants/nope", headers={"activityid": "corr-123"})
    assert response.headers["X-WSO2-TraceId"] == "corr-123" and response.json()["traceId"] == "corr-123"
    generated = call("GET", "/tenants/nope").json()["traceId"]
    assert UUID.match(generated)


# --- Tenant management API (§1) --------------------------------------------------------------------------------


def test_create_answers_201_with_an_empty_body_and_an_absolute_location(call, is7):
    response = create(call)
    assert response.status_code == 201
    assert response.content == b""
    location = response.headers["Location"]
    prefix = f"https://127.0.0.1:{is7.port}/api/server/v1/tenants/"
    assert location.startswith(prefix) and UUID.match(location[len(prefix):])
    tenant_id = location[len(prefix):]
    got = call("GET", f"/tenants/{tenant_id}").json()
    assert got["id"] == tenant_id and got["domain"] == "abc.com" and got["lifecycleStatus"] == {"activated": True}
    assert got["owners"][0]["username"] == "kim" and UUID.match(got["owners"][0]["id"])
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?Z$", got["createdDate"])
    assert "name" not in got
    by_domain = call("GET", "/tenants/domain/abc.com").json()
    assert by_domain["id"] == tenant_id and by_domain["name"] == "abc.com"  # blank name filled with the domain
    assert call("GET", f"/tenants/{tenant_id}/owners").json() == [got["owners"][0]]
    assert is7.state.user_exists("kim@abc.com")  # the owner can now be named in WSO2-Identity-User


def test_head_on_a_domain_is_200_when_taken_and_404_when_free(call):
    create(call)
    taken, free = call("HEAD", "/tenants/domain/abc.com"), call("HEAD", "/tenants/domain/free.com")
    assert (taken.status_code, free.status_code) == (200, 404)
    assert taken.content == b"" and free.content == b""
    assert call("HEAD", "/tenants/domain/carbon.super").status_code == 200


def test_a_duplicate_domain_or_carbon_super_is_400_tm_60009(call):
    assert create(call).status_code == 201
    for domain in ("abc.com", "carbon.super"):
        assert_api_error(create(call, domain), 400, "TM-60009", "Unable to add tenant.",
                         f"A tenant with same domain {domain} already exist. Please use a different domain name.")


@pytest.mark.parametrize(("domain", "code", "description"), [
    ("", "TM-60004", "Provided domain name is empty."),
    ("nodot", "TM-60005", "You should have an extension to your domain."),
    (".abc.com", "TM-60006", "Invalid domain. Domain should not start with '.'"),
    ("ABC.com", "TM-60007", ("The tenant domain ABC.com contains one or more illegal characters. The valid "
                             "characters are lowercase letters, numbers, '.', '-' and '_'.")),
    ("a b.com", "TM-60007", ("The tenant domain a b.com contains one or more illegal characters. The valid "
                             "characters are lowercase letters, numbers, '.', '-' and '_'.")),
])
def test_domain_rules(call, is7, domain, code, description):
    is7.configure(public_cloud_setup=True)
    assert_api_error(create(call, domain), 400, code, "Unable to add tenant.", description)


def test_dotless_domains_are_accepted_by_default(call, is7):
    """public_cloud_setup is false unless configured (carbon-multitenancy 124b1e6f)."""
    assert create(call, "nodot").status_code == 201
    is7.configure(public_cloud_setup=True)
    assert_api_error(create(call, "other"), 400, "TM-60005", "Unable to add tenant.",
                     "You should have an extension to your domain.")


def test_a_bad_email_is_a_500_tm_65002(call):
    assert_api_error(create(call, email="not-an-email"), 500, "TM-65002", "Unable to add tenant.",
                     "Invalid email address is provided.")
    assert_api_error(create(call, email="a,b@abc.com"), 500, "TM-65002", "Unable to add tenant.",
                     "Wrong characters in the email.")


def test_inline_password_needs_a_password_and_invite_does_not(call, is7):
    assert_api_error(create(call, password="  "), 400, "TM-60013", "Unable to add tenant.",
                     "Required parameter password is not specified.")
    invited = owner(provisioningMethod="invite-via-email")
    del invited["password"]
    assert call("POST", "/tenants", json={"domain": "inv.com", "owners": [invited]}).status_code == 201
    claims = is7.tenant("inv.com").owner.claims
    assert claims["http://wso2.org/claims/identity/tenantAdminAskPassword"] == "true"


def test_no_owners_is_tm_60012(call):
    for body in ({"domain": "abc.com"}, {"domain": "abc.com", "owners": []}):
        assert_api_error(call("POST", "/tenants", json=body), 400, "TM-60012", "Unable to add tenant.",
                         "Required parameter owner is not specified.")


def test_unknown_tenants_are_400_not_404(call):
    assert_api_error(call("GET", "/tenants/missing-id"), 400, "TM-60014", "Unable to retrieve tenant.",
                     "Tenant cannot be found for the provided id: missing-id.")
    assert_api_error(call("GET", "/tenants/domain/nope.com"), 400, "TM-60015", "Unable to retrieve tenant.",
                     "Tenant cannot be found for the provided domain: nope.com.")
    assert_api_error(call("GET", "/tenants/missing-id/owners"), 400, "TM-60014", "Unable to retrieve tenant.",
                     "Tenant cannot be found for the provided id: missing-id.")
    assert_api_error(call("PUT", "/tenants/missing-id/lifecycle-status", json={"activated": False}), 400,
                     "TM-60014", "Error while updating the tenant.",
                     "Tenant cannot be found for the provided id: missing-id.")


def test_lifecycle_status_answers_200_with_the_uri_as_a_json_string(call, is7):
    tenant_id = create(call).headers["Location"].rsplit("/", 1)[1]
    response = call("PUT", f"/tenants/{tenant_id}/lifecycle-status", json={"activated": False})
    assert response.status_code == 200 and "Location" not in response.headers
    assert response.json() == f"{is7.base_url}/api/server/v1/tenants/{tenant_id}"
    assert call("GET", f"/tenants/{tenant_id}").json()["lifecycleStatus"] == {"activated": False}


def test_owner_read_and_update(call):
    tenant_id = create(call, additionalClaims=[{"claim": "http://wso2.org/claims/mobile", "value": "0771234567"},
                                               {"claim": "http://wso2.org/claims/country", "value": " "}]
                       ).headers["Location"].rsplit("/", 1)[1]
    owner_id = call("GET", f"/tenants/{tenant_id}/owners").json()[0]["id"]
    info = call("GET", f"/tenants/{tenant_id}/owners/{owner_id}", params={
        "additionalClaims": "http://wso2.org/claims/mobile,http://wso2.org/claims/country"}).json()
    assert info == {"id": owner_id, "username": "kim", "email": "kim@abc.com", "firstname": "Kim", "lastname": "Lee",
                    "additionalClaims": [{"claim": "http://wso2.org/claims/mobile", "value": "0771234567"}]}
    update = call("PUT", f"/tenants/{tenant_id}/owners/{owner_id}",
                  json={"email": "kim@new.com", "firstname": "", "lastname": "Perera"})
    assert update.status_code == 200 and update.content == b""
    info = call("GET", f"/tenants/{tenant_id}/owners/{owner_id}").json()
    assert (info["email"], info["firstname"], info["lastname"]) == ("kim@new.com", "Kim", "Perera")
    wrong = call("GET", f"/tenants/{tenant_id}/owners/someone-else")
    assert wrong.status_code == 400 and wrong.json()["code"] == "TM-60020" and tenant_id in wrong.json()["description"]
    bad = call("PUT", f"/tenants/{tenant_id}/owners/{owner_id}", json={"email": "broken"})
    assert bad.status_code == 400 and bad.json()["code"] == "TM-60002"


def test_metadata_delete_needs_tenant_deletion(call, is7):
    tenant_id = create(call).headers["Location"].rsplit("/", 1)[1]
    assert_api_error(call("DELETE", f"/tenants/{tenant_id}/metadata"), 400, "TM-60016",
                     "Unable to delete the tenant metadata.",
                     "Tenant deletion property Tenant.TenantDelete is not enabled in carbon.xml file.")
    is7.configure(tenant_deletion=True)
    response = call("DELETE", f"/tenants/{tenant_id}/metadata")
    assert response.status_code == 204 and response.content == b""
    assert call("HEAD", "/tenants/domain/abc.com").status_code == 404


def test_unknown_paths_and_methods(call):
    assert call("GET", "/nothing").status_code == 404
    response = call("DELETE", "/tenants")
    assert response.status_code == 405 and response.headers["Allow"] == "GET, POST"


# --- Listing ---------------------------------------------------------------------------------------------------


@pytest.fixture
def many(is7):
    for i in range(120):
        is7.add_tenant(f"t{i:03d}.example.com")
    is7.add_tenant("other.org")
    return is7


def test_limit_defaults_to_15_and_is_clamped_to_100(call, many):
    page = call("GET", "/tenants").json()
    assert (page["totalResults"], page["startIndex"], page["count"], len(page["tenants"])) == (121, 1, 15, 15)
    assert page["links"] == [{"href": "/api/server/v1/tenants?offset=15&limit=15", "rel": "next"}]
    assert call("GET", "/tenants", params={"limit": 500}).json()["count"] == 100


def test_paging_links_and_start_index(call, many):
    page = call("GET", "/tenants", params={"limit": 10, "offset": 115}).json()
    assert page["startIndex"] == 116 and page["count"] == 6
    assert page["links"] == [{"href": "/api/server/v1/tenants?offset=105&limit=10", "rel": "previous"}]
    middle = call("GET", "/tenants", params={"limit": 10, "offset": 5}).json()
    assert [link["rel"] for link in middle["links"]] == ["next", "previous"]
    assert middle["links"][1]["href"] == "/api/server/v1/tenants?offset=0&limit=5"  # a short previous page


def test_negative_limit_and_offset(call):
    assert_api_error(call("GET", "/tenants", params={"limit": -1}), 400, "TM-60010",
                     "Unable to list existing tenants.", "Limit should not be negative.")
    assert_api_error(call("GET", "/tenants", params={"offset": -1}), 400, "TM-60011",
                     "Unable to list existing tenants.", "Offset should not be negative.")


def test_sort_order_is_case_sensitive(call, many):
    def first(order):
        return call("GET", "/tenants", params={"limit": 1, "sortOrder": order}).json()["tenants"][0]

    assert first("DESC")["domain"] == "t119.example.com"
    assert first("desc")["domain"] == "other.org"  # silently ascending
    assert first("ASC")["domain"] == "other.org"


@pytest.mark.parametrize(("expression", "count"), [
    ("domainName sw t11", 10), ("domainName ew .org", 1), ("domainName eq t007.example.com", 1),
    ("domainName co 99", 1), ("DOMAINNAME SW t0", 100),
])
def test_filters(call, many, expression, count):
    page = call("GET", "/tenants", params={"filter": expression, "limit": 100}).json()
    assert page["totalResults"] == count


def test_filter_links_carry_the_encoded_filter(call, many):
    page = call("GET", "/tenants", params={"filter": "domainName sw t0", "limit": 10}).json()
    assert page["links"][0]["href"] == "/api/server/v1/tenants?offset=10&limit=10&filter=domainName+sw+t0"


def test_an_empty_page_omits_tenants(call, many):
    page = call("GET", "/tenants", params={"filter": "domainName eq none.com"}).json()
    assert page == {"totalResults": 0, "startIndex": 1, "count": 0, "links": []}


@pytest.mark.parametrize(("expression", "code"), [
    ("domainName sw", "TM-60022"), ("domainName  sw abc", "TM-60022"), ("username eq abc", "TM-60023"),
    ("domainName like abc", "TM-60024"), ("domainName eq abc*", "TM-60007"),
])
def test_filter_errors(call, expression, code):
    response = call("GET", "/tenants", params={"filter": expression})
    assert response.status_code == 400 and response.json()["code"] == code
    assert response.json()["message"] == "Unable to list existing tenants."


# --- Faults, latency, log, command line -------------------------------------------------------------------------


def test_injected_failures_are_used_once_and_match_method_and_prefix(call, is7):
    is7.push_fault("POST", "/api/server/v1/tenants", 503)
    is7.push_fault("GET", "/api/server/v1/tenants/domain", 500, body={"code": "TM-65003", "message": "Unable to "
                   "retrieve tenant.", "description": "boom"})
    assert call("GET", "/tenants").status_code == 200  # neither fault matches
    failed = call("GET", "/tenants/domain/abc.com")
    assert failed.status_code == 500 and failed.json()["code"] == "TM-65003"
    assert failed.json()["traceId"] == failed.headers["X-WSO2-TraceId"]
    assert create(call).status_code == 503
    assert create(call).status_code == 201


def test_an_injected_reset_drops_the_connection(call, is7):
    is7.push_fault(None, "/api/server/v1/tenants", "reset")
    with pytest.raises(requests.exceptions.ConnectionError):
        call("GET", "/tenants")
    assert is7.requests[-1].status == "reset"
    assert call("GET", "/tenants").status_code == 200


def test_latency_is_added_to_every_answer(call, is7):
    is7.set_latency(0.3)
    started = time.monotonic()
    call("GET", "/tenants")
    assert time.monotonic() - started >= 0.3
    with pytest.raises(ValueError):
        is7.push_fault("GET", "/", 42)


def test_the_request_log_keeps_what_tests_assert_on(call, is7):
    create(call, "log.com")
    entry = is7.requests[-1]
    assert (entry.method, entry.path, entry.status) == ("POST", "/api/server/v1/tenants", 201)
    assert entry.json()["domain"] == "log.com" and entry.headers["wso2-identity-user"] == "admin"
    is7.clear_log()
    assert is7.requests == []


def test_concurrent_creates_of_one_domain_create_one_tenant(is7, pki, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    callers = []
    for i in range(8):
        (tmp_path / str(i)).mkdir()
        callers.append(Caller(is7, pki, tmp_path / str(i)))
    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(lambda c: create(c, "race.com").status_code, callers))
    assert statuses == [201] + [400] * 7
    assert len([t for t in is7.state.tenants.values() if t.domain == "race.com"]) == 1


def test_mappings_load_from_the_deployment_toml_block(tmp_path):
    document = {"client_certificate_based_authentication": {
        "enable": True,
        "user_thumbprint_mapping": [{"trusted_issuer": "CN=A", "cert_thumbprint": "AA:BB",
                                     "allowed_username": ["admin", "kim@abc.com"]}],
        "system_thumbprint_mapping": [{"trusted_issuer": "CN=A", "cert_thumbprint": "*",
                                       "allowed_system_user": "admin"}]}}
    path = tmp_path / "mappings.toml"
    path.write_text(tomli_w.dumps(document))
    assert load_mappings(path) == ([UserMapping("CN=A", "AA:BB", ("admin", "kim@abc.com"))],
                                   [SystemMapping("CN=A", "*", "admin")])


def test_the_command_line_explains_itself(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0 and "--client-ca" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["--port", "0"])  # neither certificates nor --demo-pki
    assert exit_info.value.code == 2 and "--demo-pki" in capsys.readouterr().err


def test_the_command_line_starts_a_working_simulator(tmp_path):
    root = Path(__file__).resolve().parent.parent
    process = subprocess.Popen([sys.executable, "-m", "simulators.is7", "--port", "0", "--demo-pki",
                                str(tmp_path)], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = None
        for _ in range(10):
            line = process.stdout.readline()
            match = re.search(r"on (https://\S+)/api/server/v1", line)
            if match:
                base = match.group(1)
                break
        assert base, process.stderr.read() if process.poll() is not None else "no start-up line"
        response = requests.get(f"{base}/api/server/v1/tenants", timeout=5, verify=str(tmp_path / "server-ca.pem"),
                                cert=(str(tmp_path / "client.pem"), str(tmp_path / "client-key.pem")),
                                headers={"WSO2-Identity-User": "admin"})
        assert response.status_code == 200 and json.loads(response.text)["totalResults"] == 0
        assert (tmp_path / "client-key.pem").stat().st_mode & 0o777 == 0o600
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()
        process.stderr.close()


# --- Basic authentication, tenant numbers, downtime (issue 5) ------------------------------------------------------


def basic_caller(sim, pki, directory: Path, auth) -> Caller:
    caller = Caller(sim, pki, directory, client=False, user=None)
    caller.session.auth = auth
    return caller


def test_basic_authentication_for_a_super_tenant_user(is7, pki, tmp_path):
    assert basic_caller(is7, pki, tmp_path, ("admin", "admin"))("GET", "/tenants").status_code == 200
    assert is7.requests[-1].basic_user == "admin" and is7.requests[-1].decision is None
    response = basic_caller(is7, pki, tmp_path, ("admin", "wrong"))("GET", "/tenants")
    assert response.status_code == 401 and response.json()["code"] == 401
    assert response.headers["WWW-Authenticate"] == "Bearer realm=127.0.0.1"
    is7.add_basic_user("portal", "Portal#1")
    assert basic_caller(is7, pki, tmp_path, ("portal", "Portal#1"))("GET", "/tenants").status_code == 200
    bearer = Caller(is7, pki, tmp_path, client=False, user=None)
    assert bearer("GET", "/tenants", headers={"Authorization": "Bearer abc"}).status_code == 401


def test_a_tenant_owner_authenticates_but_is_forbidden(is7, pki, tmp_path):
    admin = basic_caller(is7, pki, tmp_path, ("admin", "admin"))
    assert create(admin).status_code == 201
    response = basic_caller(is7, pki, tmp_path, ("kim@abc.com", "Kim#12345"))("GET", "/tenants")
    assert response.status_code == 403 and response.json()["message"] == "Forbidden"


def test_a_presented_certificate_decides_alone(is7, pki, tmp_path):
    """The certificate handler (priority 10) wins over Basic (100) and does not fall back to it."""
    caller = Caller(is7, pki, tmp_path, user="bob")  # bob is not in the mapping's allowed_username
    caller.session.auth = ("admin", "admin")
    assert caller("GET", "/tenants").status_code == 401
    is7.configure(client_cert_auth=False)  # with certificate authentication off, Basic is used
    assert caller("GET", "/tenants").status_code == 200 and is7.requests[-1].basic_user == "admin"


def test_tenants_get_integer_numbers_as_in_is(is7, call):
    seeded = is7.add_tenant("seed.com")
    create(call, "abc.com")
    create(call, "xyz.com")
    assert (seeded.number, is7.tenant("abc.com").number, is7.tenant("xyz.com").number) == (1, 2, 3)


def test_downtime_refuses_connections_until_the_simulator_comes_back(is7, call):
    port = is7.port
    is7.go_down()
    with pytest.raises(requests.exceptions.ConnectionError):
        call("GET", "/tenants")
    is7.come_up()
    assert is7.port == port and call("GET", "/tenants").status_code == 200


# --- IS's TenantSyncListener (§3) ---------------------------------------------------------------------------------


@pytest.fixture
def receiver(pki):
    """An API Manager simulator to receive the listener's events (its request log keeps them)."""
    from simulators.apim import ApimSimulator

    server = pki.server_ca.server()
    with ApimSimulator(server_cert_pem=server.cert_pem, server_key_pem=server.key_pem) as sim:
        yield sim


def listen(is7, receiver, pki, **overrides) -> None:
    from simulators.is7 import TenantSyncConfig

    settings = {"username": "admin", "password": "admin", "ca_pem": pki.server_ca.cert_pem, "retry_delay": 0.02}
    settings.update(overrides)
    is7.configure_tenant_sync(TenantSyncConfig(receiver.notify_url, **settings))


def test_the_listener_posts_section_3s_payload(is7, call, receiver, pki):
    listen(is7, receiver, pki)
    before = int(time.time())
    create(call)
    assert is7.wait_for_sync(5)
    sent = receiver.requests[-1]
    assert (sent.method, sent.path, sent.status) == ("POST", "/internal/data/v1/notify", 200)
    assert sent.headers["content-type"] == "application/json; charset=UTF-8"
    assert sent.headers["x-wso2-key-manager"] == "TENANT_MANAGEMENT"
    assert sent.basic_user == "admin"
    payload = sent.json()
    assert list(payload) == ["iss", "jti", "iat", "events"]
    assert payload["iss"] == is7.base_url and uuid.UUID(payload["jti"]).version == 4
    assert isinstance(payload["iat"], int) and before <= payload["iat"] <= int(time.time())
    number = is7.tenant("abc.com").number
    assert payload["events"] == {"https://schemas.identity.wso2.org/events/tenant/event-type/tenantCreated": {
        "initiatorType": "SYSTEM", "action": "CREATE", "tenant": {
            "id": str(number), "domain": "abc.com", "ref": f"{is7.base_url}/api/server/v1/tenants/{number}",
            "owners": [{"username": "kim", "password": "Kim#12345", "email": "kim@abc.com", "firstname": "Kim",
                        "lastname": "Lee"}]}}}
    assert receiver.tenant("abc.com").active is True


def test_update_and_lifecycle_events(is7, call, receiver, pki):
    tenant_id = create(call).headers["Location"].rsplit("/", 1)[1]
    owner_id = call("GET", f"/tenants/{tenant_id}/owners").json()[0]["id"]
    listen(is7, receiver, pki)
    call("PUT", f"/tenants/{tenant_id}/owners/{owner_id}", json={"email": "kim@new.com", "firstname": "",
                                                               "lastname": "Perera"})
    call("PUT", f"/tenants/{tenant_id}/lifecycle-status", json={"activated": False})
    assert is7.wait_for_sync(5)
    update, deactivate = is7.sync_events
    key = "https://schemas.identity.wso2.org/events/tenant/event-type/"
    number = is7.tenant("abc.com").number
    assert update["events"][key + "tenantOwnerUpdated"]["tenant"]["owners"] == [
        {"email": "kim@new.com", "firstname": "Kim", "lastname": "Perera"}]  # no username, no unchanged password
    assert deactivate["events"] == {key + "tenantActivated": {"initiatorType": "SYSTEM", "action": "DEACTIVATE",
                                                              "tenant": {"id": str(number), "domain": "abc.com",
                                                                         "ref": f"{is7.base_url}/api/server/v1/"
                                                                                f"tenants/{number}",
                                                                         "lifecycleStatus": {"activated": False}}}}


def test_a_disabled_listener_and_seeded_tenants_send_nothing(is7, call, receiver, pki):
    listen(is7, receiver, pki, enable=False)
    create(call)
    is7.add_tenant("seed.com")
    assert is7.wait_for_sync(5) and is7.sync_events == [] and receiver.requests == []


def test_the_command_line_offers_the_listener(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "--notify-endpoint" in out and "--basic-user" in out


# --- Handler lines (issue 12) ------------------------------------------------------------------------------------


def test_without_the_config_table_master_is_off_and_the_backport_on(is7, pki, tmp_path):
    """No [client_certificate_based_authentication]: master never runs the certificate handler (Basic decides);
    the backports default to on and load no mapping, so a presented certificate gets 401 even with good Basic."""
    caller = Caller(is7, pki, tmp_path)
    caller.session.auth = ("admin", "admin")
    is7.configure(client_cert_auth=None)
    assert caller("GET", "/tenants").status_code == 200 and is7.requests[-1].decision is None
    is7.set_handler_line("backport")
    assert caller("GET", "/tenants").status_code == 401
    assert "mapping is not configured" in is7.requests[-1].decision.reason
    is7.configure(client_cert_auth=False)  # an explicit enable = false turns the backport off too
    assert caller("GET", "/tenants").status_code == 200 and is7.requests[-1].basic_user == "admin"


def test_the_backport_logs_certificates_when_asked_and_master_never(is7, call, pki):
    is7.configure(log_client_cert_info=True)
    assert call("GET", "/tenants").status_code == 200
    assert is7.cert_info_log == []  # master does not read LogClientCertInfoEnabled
    is7.set_handler_line("backport")
    assert call("GET", "/tenants").status_code == 200
    assert len(is7.cert_info_log) == 1 and pki.client.thumbprint in is7.cert_info_log[0]
    assert issuer_name(pki.client.cert) in is7.cert_info_log[0]


def test_backport_user_thumbprints_are_case_sensitive_and_users_unchecked(is7, pki, tmp_path):
    issuer = issuer_name(pki.client.cert)
    is7.set_mappings(user=[UserMapping(issuer, pki.client.thumbprint.lower(), ("*",))])
    ghost = Caller(is7, pki, tmp_path, user="ghost")
    admin = Caller(is7, pki, tmp_path, user="admin")
    assert admin("GET", "/tenants").status_code == 200  # master ignores case
    assert ghost("GET", "/tenants").status_code == 401  # master: ghost does not exist
    is7.set_handler_line("backport")
    assert admin("GET", "/tenants").status_code == 401  # backport: lower case never equals IS's upper case
    is7.set_mappings(user=[UserMapping(issuer, pki.client.thumbprint, ("*",))])
    assert ghost("GET", "/tenants").status_code == 200  # backport: no user-existence check
    with pytest.raises(ValueError):
        is7.set_handler_line("1.9")


def test_the_command_line_offers_the_handler_line(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "--handler-line {master,backport}" in out and "--client-cert-auth {enabled,disabled,absent}" in out
    assert "--log-client-cert-info" in out


# --- Resource permissions (identity.xml.j2) -----------------------------------------------------------------------


def test_a_user_without_the_tenant_permissions_gets_the_valves_403(is7, pki, tmp_path):
    is7.add_basic_user("viewer", "Viewer#1", permissions=[LIST_TENANTS])
    is7.add_basic_user("nobody", "Nobody#1", permissions=["/permission/admin/login"])
    admin = basic_caller(is7, pki, tmp_path, ("admin", "admin"))
    viewer = basic_caller(is7, pki, tmp_path, ("viewer", "Viewer#1"))
    nobody = basic_caller(is7, pki, tmp_path, ("nobody", "Nobody#1"))
    assert create(admin).status_code == 201
    tenant_id = admin("GET", "/tenants/domain/abc.com").json()["id"]
    assert viewer("GET", "/tenants").status_code == 200
    assert viewer("HEAD", "/tenants/domain/abc.com").status_code == 200
    for response in (viewer("PUT", f"/tenants/{tenant_id}/lifecycle-status", json={"activated": False}),
                     nobody("GET", "/tenants"), nobody("POST", "/tenants", json={}),
                     viewer("DELETE", f"/tenants/{tenant_id}/metadata")):
        assert response.status_code == 403
        assert response.headers["Content-Type"] == "application/json;charset=UTF-8"
        body = response.json()
        assert body == {"code": 403, "message": "Forbidden", "description": FORBIDDEN_DESCRIPTION,
                        "traceId": response.headers["X-WSO2-TraceId"]}
        assert "WWW-Authenticate" not in response.headers
    assert admin("GET", f"/tenants/{tenant_id}").json()["lifecycleStatus"] == {"activated": True}
    is7.add_basic_user("operator", "Operator#1", permissions=["/permission/protected/manage"])  # a parent grants
    operator = basic_caller(is7, pki, tmp_path, ("operator", "Operator#1"))
    assert operator("PUT", f"/tenants/{tenant_id}/lifecycle-status", json={"activated": False}).status_code == 200


def test_a_certificate_user_needs_the_permissions_too(is7, pki, tmp_path):
    is7.add_user("reader", permissions=[LIST_TENANTS])
    is7.set_mappings(user=[UserMapping(issuer_name(pki.client.cert), pki.client.thumbprint, ("reader",))])
    reader = Caller(is7, pki, tmp_path, user="reader")
    assert reader("GET", "/tenants").status_code == 200
    assert create(reader).status_code == 201  # POST needs only the list permission (sic, identity.xml.j2)
    tenant_id = reader("GET", "/tenants/domain/abc.com").json()["id"]
    response = reader("PUT", f"/tenants/{tenant_id}/lifecycle-status", json={"activated": False})
    assert response.status_code == 403 and response.json()["code"] == 403
    assert MODIFY_TENANTS.startswith("/permission/protected/manage/")


# --- The key manager's endpoints: DCR and token under /t/{domain} --------------------------------------------------


class Tenanted:
    """requests against https://…/t/<domain>/… with a client certificate and/or Basic."""

    def __init__(self, sim: Is7Simulator, pki, directory: Path, *, user: str | None = None, client=None, auth=None):
        self.base = sim.base_url
        ca = directory / "server-ca.pem"
        ca.write_text(pki.server_ca.cert_pem)
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = str(ca)
        if client is not False:
            self.session.cert = (pki.client if client is None else client).write(
                directory, f"kmclient-{uuid.uuid4().hex[:6]}")
        if user:
            self.session.headers["WSO2-Identity-User"] = user
        self.session.auth = auth

    def register(self, domain: str, name: str = "km-app", **extra) -> requests.Response:
        return self.session.post(f"{self.base}/t/{domain}/api/identity/oauth2/dcr/v1.1/register",
                                 json={"client_name": name, "grant_types": ["client_credentials"], **extra},
                                 timeout=5)


def token(sim: Is7Simulator, pki, directory: Path, domain: str, client_id: str, secret: str,
          grant: str = "client_credentials", cert: bool = False) -> requests.Response:
    ca = directory / "server-ca.pem"
    ca.write_text(pki.server_ca.cert_pem)
    return requests.post(f"{sim.base_url}/t/{domain}/oauth2/token", data={"grant_type": grant},
                         auth=(client_id, secret), verify=str(ca), timeout=5,
                         cert=pki.client.write(directory, "tok") if cert else None)


@pytest.fixture
def acme(is7, call, pki):
    """Tenant acme.com, owner admin (inline password), and the portal's certificate mapped to any user."""
    assert create(call, "acme.com", username="admin", email="admin@acme.com").status_code == 201
    is7.set_mappings(user=[UserMapping(issuer_name(pki.client.cert), "*", ("*",))])
    return is7


def test_dcr_and_token_for_a_tenant_admin_over_mtls(acme, pki, tmp_path):
    km = Tenanted(acme, pki, tmp_path, user="admin@acme.com")
    response = km.register("acme.com", "apim_km_acme", redirect_uris=[])
    assert response.status_code == 201, response.text
    app = response.json()
    assert set(app) == {"client_id", "client_secret", "client_name", "redirect_uris", "grant_types"}
    assert app["client_name"] == "apim_km_acme" and app["grant_types"] == ["client_credentials"]
    assert app["redirect_uris"] == []
    assert [a.client_name for a in acme.applications("acme.com")] == ["apim_km_acme"]
    assert acme.applications("acme.com")[0].owner == "admin@acme.com"
    logged = acme.requests[-1]
    assert logged.path == "/t/acme.com/api/identity/oauth2/dcr/v1.1/register" and logged.decision.ok
    assert logged.decision.user == "admin@acme.com" and logged.status == 201

    issued = token(acme, pki, tmp_path, "acme.com", app["client_id"], app["client_secret"], cert=True)
    assert issued.status_code == 200, issued.text
    body = issued.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600 and body["scope"] == "default"
    assert UUID.match(body["access_token"])
    assert acme.requests[-1].decision is None  # the token endpoint is not behind the REST valve
    assert [t.client_id for t in acme.tokens] == [app["client_id"]]

    duplicate = km.register("acme.com", "apim_km_acme")
    assert duplicate.status_code == 409
    assert duplicate.json() == {"error": "invalid_client_metadata", "error_description":
                                "Application with the name apim_km_acme already exist in the system"}


def test_dcr_refuses_a_user_of_another_tenant_and_unknown_tenants(acme, pki, tmp_path, call):
    assert create(call, "globex.org", username="owner", email="owner@globex.org").status_code == 201
    response = Tenanted(acme, pki, tmp_path, user="owner@globex.org").register("acme.com")
    assert response.status_code == 403 and response.json()["code"] == 403
    response = Tenanted(acme, pki, tmp_path, user="admin").register("acme.com")  # super admin, other tenant
    assert response.status_code == 403
    response = Tenanted(acme, pki, tmp_path, user="admin@nowhere.com").register("nowhere.com")
    assert response.status_code == 404
    assert response.json() == {"code": 404, "message": "invalid tenant domain : nowhere.com",
                               "description": "invalid tenant domain : nowhere.com"}
    tenant_id = call("GET", "/tenants/domain/acme.com").json()["id"]
    assert call("PUT", f"/tenants/{tenant_id}/lifecycle-status", json={"activated": False}).status_code == 200
    assert Tenanted(acme, pki, tmp_path, user="admin@acme.com").register("acme.com").status_code == 404
    assert acme.applications("acme.com") == []


def test_dcr_with_a_mapping_limited_to_admin_refuses_the_key_managers_user(acme, pki, tmp_path):
    """The auto-configured key manager calls as admin@acme.com; a mapping listing only "admin" gets a 401."""
    issuer = issuer_name(pki.client.cert)
    acme.set_mappings(user=[UserMapping(issuer, pki.client.thumbprint, ("admin",))])
    response = Tenanted(acme, pki, tmp_path, user="admin@acme.com").register("acme.com")
    assert response.status_code == 401 and response.json()["code"] == 401
    assert response.json()["description"] == UNAUTHORIZED_DESCRIPTION
    assert "not in the allowed user list" in acme.requests[-1].decision.reason
    assert acme.applications("acme.com") == []


def test_dcr_with_basic_as_the_tenant_admin(is7, pki, tmp_path, call):
    assert create(call, "acme.com", username="admin", email="admin@acme.com", password="Acme#1234").status_code == 201
    basic = Tenanted(is7, pki, tmp_path, client=False, auth=("admin@acme.com", "Acme#1234"))
    assert basic.register("acme.com", "basic-app").status_code == 201
    wrong = Tenanted(is7, pki, tmp_path, client=False, auth=("admin@acme.com", "nope"))
    assert wrong.register("acme.com", "other").status_code == 401
    bad = basic.session.post(f"{is7.base_url}/t/acme.com/api/identity/oauth2/dcr/v1.1/register", json={},
                             timeout=5)
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_client_metadata"


def test_the_token_endpoint_refuses_unknown_clients(acme, pki, tmp_path):
    app = Tenanted(acme, pki, tmp_path, user="admin@acme.com").register("acme.com").json()
    unknown = token(acme, pki, tmp_path, "acme.com", "nope", "x")
    assert unknown.status_code == 401 and unknown.json()["error"] == "invalid_client"
    assert "nope" in unknown.json()["error_description"]
    wrong = token(acme, pki, tmp_path, "acme.com", app["client_id"], "wrong-secret")
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    elsewhere = token(acme, pki, tmp_path, "carbon.super", app["client_id"], app["client_secret"])
    assert elsewhere.status_code == 401  # registered in acme.com, not in the super tenant
    grant = token(acme, pki, tmp_path, "acme.com", app["client_id"], app["client_secret"], grant="password")
    assert grant.status_code == 400 and grant.json()["error"] == "unsupported_grant_type"
    assert token(acme, pki, tmp_path, "nowhere.com", app["client_id"], app["client_secret"]).status_code == 404
    assert acme.tokens == []
