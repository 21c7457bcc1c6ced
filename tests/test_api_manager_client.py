"""The API Manager client against the simulator over real HTTPS: the SOAP envelopes it sends (namespaces, element
order, SOAPAction, Basic), what it makes of API Manager's answers and faults, its retries (idempotent calls only),
the notify call, and transport failures in plain words."""
from __future__ import annotations

import base64
import re
import socket
import time
import xml.etree.ElementTree as ET

import pytest

from portal.clients.api_manager import (
    BEANS_NS,
    SERVICES_NS,
    SOAP_ENV,
    ApiManagerClient,
    ApimTenant,
    ApimTenantSpec,
)
from portal.clients.apim_admin import KeyManager, KeyManagerSummary
from portal.clients.errors import AlreadyExists, Cause, PermissionDenied, UpstreamError
from simulators.apim import (
    HANDLER_ERROR,
    PERMISSION_MONITOR,
    ApimSimulator,
    envelope,
)
from simulators.apim_keys import is7_key_manager
from simulators.pki import Authority

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
SHORT = (2.0, 2.0)


@pytest.fixture(scope="module")
def ca():
    return Authority("API Manager test CA")


@pytest.fixture
def apim(ca):
    server = ca.server()
    with ApimSimulator(server_cert_pem=server.cert_pem, server_key_pem=server.key_pem) as sim:
        yield sim


def client_for(sim, ca, **overrides) -> ApiManagerClient:
    settings = {"ca_pem": ca.cert_pem, "username": "admin", "password": "admin", "timeout": SHORT, "backoff": 0.01}
    settings.update(overrides)
    return ApiManagerClient(settings.pop("base_url", sim.base_url), **settings)


@pytest.fixture
def client(apim, ca):
    with client_for(apim, ca) as c:
        yield c


def spec(domain="abc.com", **overrides) -> ApimTenantSpec:
    values = {"domain": domain, "admin": "kim", "admin_password": "Kim#12345", "email": f"kim@{domain}",
              "firstname": "Kim", "lastname": "Lee"}
    values.update(overrides)
    return ApimTenantSpec(**values)


def operation_element(entry) -> ET.Element:
    body = entry.xml().find(f"{{{SOAP_ENV}}}Body")
    assert body is not None and len(body) == 1
    return body[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- The envelopes ----------------------------------------------------------------------------------------------


def test_add_tenant_sends_the_admin_service_envelope_and_returns_the_uuid(apim, client):
    tenant_uuid = client.add_tenant(spec())
    assert UUID.match(tenant_uuid) and tenant_uuid == apim.tenant("abc.com").uuid
    sent = apim.requests[-1]
    assert (sent.method, sent.path, sent.operation, sent.status) == ("POST", "/services/TenantMgtAdminService",
                                                                     "addTenant", 200)
    assert sent.headers["content-type"] == "text/xml; charset=UTF-8"
    assert sent.headers["soapaction"] == '"urn:addTenant"'
    assert sent.headers["authorization"] == "Basic " + base64.b64encode(b"admin:admin").decode()
    text = sent.body.decode()
    # The prefixes of §6's sample, declared once on the envelope.
    assert f'xmlns:soapenv="{SOAP_ENV}"' in text and f'xmlns:ser="{SERVICES_NS}"' in text
    assert f'xmlns:xsd="{BEANS_NS}"' in text
    operation = operation_element(sent)
    assert operation.tag == f"{{{SERVICES_NS}}}addTenant"
    (bean,) = list(operation)
    assert bean.tag == f"{{{SERVICES_NS}}}tenantInfoBean"
    assert [child.tag for child in bean] == [f"{{{BEANS_NS}}}{name}" for name in
                                             ("active", "admin", "adminPassword", "email", "firstname", "lastname",
                                              "tenantDomain")]
    assert [child.text for child in bean] == ["true", "kim", "Kim#12345", "kim@abc.com", "Kim", "Lee", "abc.com"]


def test_values_are_escaped_and_characters_xml_cannot_carry_are_refused(apim, client):
    client.add_tenant(spec(firstname="Kim & <Co>", lastname="O'Lee"))
    assert (apim.tenant("abc.com").firstname, apim.tenant("abc.com").lastname) == ("Kim & <Co>", "O'Lee")
    with pytest.raises(ValueError, match="XML cannot carry"):
        client.add_tenant(spec("bad.com", firstname="Kim\x00"))


def test_get_tenant_reads_the_whole_bean(apim, client):
    client.add_tenant(spec())
    tenant = client.get_tenant("abc.com")
    assert isinstance(tenant, ApimTenant)
    assert (tenant.tenant_id, tenant.domain, tenant.admin, tenant.email, tenant.firstname, tenant.lastname,
            tenant.active) == (1, "abc.com", "kim", "kim@abc.com", "Kim", "Lee", True)
    assert tenant.created is not None and tenant.created.tzinfo is not None
    operation = operation_element(apim.requests[-1])
    assert [child.tag for child in operation] == [f"{{{SERVICES_NS}}}tenantDomain"]
    assert apim.requests[-1].headers["soapaction"] == '"urn:getTenant"'


def test_an_unknown_tenant_is_none_whether_an_empty_bean_or_a_fault(apim, client):
    assert client.get_tenant("nope.com") is None
    answer = apim.requests[-1]
    assert answer.status == 200  # API Manager answers an empty bean: tenantId 0, no domain (findings #7)
    minimal = envelope(f'<ns:getTenantResponse xmlns:ns="{SERVICES_NS}"><ns:return xmlns:xsi='
                       '"http://www.w3.org/2001/XMLSchema-instance" xmlns:ax="http://beans.common.stratos.carbon.wso2.'
                       'org/xsd"><ax:active>false</ax:active><ax:tenantId>0</ax:tenantId></ns:return>'
                       "</ns:getTenantResponse>")
    apim.push_fault("POST", "/services", 200, body=minimal, operation="getTenant")
    assert client.get_tenant("nope.com") is None
    fault = envelope('<soapenv:Fault><faultcode>soapenv:Server</faultcode><faultstring>Error in retrieving the '
                     'tenant.</faultstring><detail><ns:TenantMgtAdminServiceException xmlns:ns="'
                     f'{SERVICES_NS}"/></detail></soapenv:Fault>')
    apim.push_fault("POST", "/services", 500, body=fault, operation="getTenant")  # what older versions did
    assert client.get_tenant("nope.com") is None


def test_a_refused_login_is_never_mistaken_for_a_missing_tenant(apim, ca):
    with client_for(apim, ca, password="wrong") as bad, pytest.raises(UpstreamError) as info:
        bad.get_tenant("abc.com")
    error = info.value
    assert (error.cause, error.status, error.code, error.message) == (Cause.HTTP_ERROR, 500, "soapenv:Server",
                                                                      "Authentication failure")
    assert error.product == "WSO2 API Manager" and not error.retryable


def test_update_reads_the_tenant_id_first_and_sends_it_in_the_bean(apim, client):
    client.add_tenant(spec())
    apim.clear_log()
    client.update_tenant(spec(admin_password=None, email="kim@new.com", firstname="Kimberly"))
    assert [r.operation for r in apim.requests] == ["getTenant", "updateTenant"]
    update = apim.requests[-1]
    assert update.status == 202 and update.headers["soapaction"] == '"urn:updateTenant"'
    (bean,) = list(operation_element(update))
    names = [child.tag.rpartition("}")[2] for child in bean]
    assert names == ["active", "admin", "email", "firstname", "lastname", "tenantDomain", "tenantId"]  # no password
    assert bean.find(f"{{{BEANS_NS}}}tenantId").text == "1"
    tenant = apim.tenant("abc.com")
    assert (tenant.email, tenant.firstname, tenant.password) == ("kim@new.com", "Kimberly", "Kim#12345")
    client.update_tenant(spec(admin_password="New#Pass1"), tenant_id=1)  # a known id skips the read
    assert apim.requests[-1].operation == "updateTenant" and apim.tenant("abc.com").password == "New#Pass1"


def test_updating_a_tenant_api_manager_does_not_have_is_not_found(apim, client):
    with pytest.raises(UpstreamError) as info:
        client.update_tenant(spec("ghost.com"))
    assert info.value.cause == Cause.NOT_FOUND and info.value.not_found
    assert "ghost.com" in info.value.message


def test_activate_and_deactivate_answer_202_without_a_body(apim, client):
    client.add_tenant(spec())
    client.deactivate_tenant("abc.com")
    assert apim.tenant("abc.com").active is False and apim.requests[-1].status == 202
    assert apim.requests[-1].headers["soapaction"] == '"urn:deactivateTenant"'
    client.activate_tenant("abc.com")
    assert apim.tenant("abc.com").active is True
    assert client.get_tenant("abc.com").active is True


def test_delete_tenant_reports_success_yet_deletes_only_when_api_manager_allows_it(apim, client):
    client.add_tenant(spec())
    client.delete_tenant("abc.com")  # deletion disabled (the default): success, nothing happens
    assert apim.requests[-1].headers["soapaction"] == '"urn:deleteTenant"' and apim.requests[-1].status == 202
    assert client.get_tenant("abc.com") is not None
    apim.configure(tenant_deletion=True)
    client.delete_tenant("abc.com")
    assert client.get_tenant("abc.com") is None and apim.tenant("abc.com") is None


def test_delete_tenant_is_retried_like_the_other_idempotent_operations(apim, client):
    apim.configure(tenant_deletion=True)
    client.add_tenant(spec())
    apim.push_fault("POST", "/services", 503, operation="deleteTenant")
    client.delete_tenant("abc.com")
    assert [r.status for r in apim.requests[-2:]] == [503, 202] and apim.tenant("abc.com") is None


# --- Paging ------------------------------------------------------------------------------------------------------


def test_pages_count_from_zero_and_a_page_past_the_end_is_the_last_page(apim, client):
    for i in range(40):
        apim.add_tenant(f"t{i:02d}.com", active=i % 2 == 0)
    first, pages = client.list_tenants_page(0)
    assert pages == 3 and [t.domain for t in first] == [f"t{i:02d}.com" for i in range(15)]
    assert first[0].admin is None and first[0].firstname is None  # list beans carry no admin or names
    assert (first[0].active, first[1].active) == (True, False) and first[0].email == "admin@t00.com"
    last, _ = client.list_tenants_page(2)
    beyond, _ = client.list_tenants_page(7)
    assert [t.domain for t in beyond] == [t.domain for t in last] and len(last) == 10
    sent = operation_element(apim.requests[-1])
    assert [(c.tag, c.text) for c in sent] == [(f"{{{SERVICES_NS}}}pageNumber", "7")]


def test_iter_all_tenants_stops_at_number_of_pages(apim, client):
    for i in range(31):
        apim.add_tenant(f"t{i:02d}.com")
    apim.clear_log()
    domains = [t.domain for t in client.iter_all_tenants()]
    assert domains == [f"t{i:02d}.com" for i in range(31)]
    assert len(apim.requests) == 3


def test_an_empty_list_has_no_pages(apim, client):
    assert client.list_tenants_page(0) == ([], 0)
    assert list(client.iter_all_tenants()) == []
    client.ping()


# --- Faults -------------------------------------------------------------------------------------------------------


def test_a_service_fault_keeps_its_message_and_names_the_exception(client):
    client.add_tenant(spec())
    with pytest.raises(UpstreamError) as info:
        client.add_tenant(spec())
    error = info.value
    assert (error.cause, error.status, error.code) == (Cause.HTTP_ERROR, 500, "TenantMgtAdminServiceException")
    assert error.message == "A tenant with same domain abc.com already exist. Please use a different domain name."
    assert str(error) == ("WSO2 API Manager answered 500 TenantMgtAdminServiceException: A tenant with same domain "
                          "abc.com already exist. Please use a different domain name.")
    assert not error.retryable and error.hint.startswith("See API Manager's error code")


@pytest.mark.parametrize(("overrides", "message"), [
    ({"email": "not-an-email"}, "Invalid email is provided."),
    ({"domain": ".abc.com"}, "Invalid domain. Domain should not start with '.'"),
    ({"admin_password": None}, "Error while adding tenant admin user."),  # an invite-via-email owner: no password
    ({"domain": "ABC.com"}, ("The tenant domain ABC.com contains one or more illegal characters. The valid "
                            "characters are lowercase letters, numbers, '.', '-' and '_'.")),
])
def test_validation_faults(client, overrides, message):
    values = {"email": "kim@abc.com", **overrides}
    with pytest.raises(UpstreamError) as info:
        client.add_tenant(spec(**values))
    assert info.value.message == message and info.value.code == "TenantMgtAdminServiceException"


def test_a_user_without_the_modify_permission_may_read_but_not_change(apim, ca, client):
    client.add_tenant(spec())
    with client_for(apim, ca, username="monitor", password="monitor") as monitor:
        assert monitor.get_tenant("abc.com").domain == "abc.com"
        with pytest.raises(UpstreamError) as info:
            monitor.deactivate_tenant("abc.com")
    assert (info.value.code, info.value.message) == ("soapenv:Server", "Access Denied.")
    assert apim.tenant("abc.com").active is True


# --- Retries -----------------------------------------------------------------------------------------------------


def test_idempotent_operations_are_retried_after_503_and_resets(apim, client):
    client.add_tenant(spec())
    apim.clear_log()
    apim.push_fault("POST", "/services", 503, operation="getTenant")
    apim.push_fault("POST", "/services", "reset", operation="getTenant")
    assert client.get_tenant("abc.com").domain == "abc.com"
    assert [r.status for r in apim.requests] == [503, "reset", 200]


def test_add_tenant_is_never_repeated(apim, client):
    apim.push_fault("POST", "/services", 503, operation="addTenant")
    with pytest.raises(UpstreamError) as info:
        client.add_tenant(spec())
    assert (info.value.status, info.value.message) == (503, "HTTP 503 without a SOAP fault.")
    assert info.value.retryable
    apim.push_fault("POST", "/services", "reset", operation="addTenant")
    with pytest.raises(UpstreamError) as info:
        client.add_tenant(spec())
    assert info.value.cause == Cause.CONNECTION_RESET and info.value.status is None
    assert [r.status for r in apim.requests] == [503, "reset"]
    assert apim.tenant("abc.com") is None


def test_without_retries_an_idempotent_call_is_tried_once(apim, ca):
    apim.push_fault("POST", "/services", 503)
    with client_for(apim, ca, retries=False) as once, pytest.raises(UpstreamError):
        once.list_tenants_page(0)
    assert len(apim.requests) == 1


def test_a_short_retry_after_is_honoured_and_a_long_one_is_handed_to_the_caller(apim, client):
    apim.push_fault("POST", "/services", 503, headers={"Retry-After": "1"})
    started = time.monotonic()
    assert client.list_tenants_page(0) == ([], 0)
    assert time.monotonic() - started >= 0.9
    apim.push_fault("POST", "/services", 503, headers={"Retry-After": "120"})
    with pytest.raises(UpstreamError) as info:
        client.list_tenants_page(0)
    assert info.value.retry_after == 120.0 and info.value.status == 503
    assert [r.status for r in apim.requests] == [503, 200, 503]


# --- Bad answers --------------------------------------------------------------------------------------------------


def test_a_dtd_in_an_answer_is_refused_without_parsing(apim, client):
    bomb = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
            f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}"><soapenv:Body>&lol2;</soapenv:Body></soapenv:Envelope>')
    apim.push_fault("POST", "/services", 200, body=bomb)
    with pytest.raises(UpstreamError) as info:
        client.list_tenants_page(0)
    assert info.value.cause == Cause.BAD_RESPONSE and "DTD" in info.value.message


def test_answers_that_are_not_soap(apim, client):
    apim.push_fault("POST", "/services", 200, body="not xml at all")
    with pytest.raises(UpstreamError) as info:
        client.list_tenants_page(0)
    assert info.value.cause == Cause.BAD_RESPONSE and "not XML" in info.value.message
    apim.push_fault("POST", "/services", 200, body=envelope(f'<ns:otherResponse xmlns:ns="{SERVICES_NS}"/>'))
    with pytest.raises(UpstreamError) as info:
        client.list_tenants_page(0)
    assert info.value.cause == Cause.BAD_RESPONSE and "retrievePaginatedTenantsResponse" in info.value.message
    apim.push_fault("POST", "/services", 502, body="<html><body>Bad gateway</body></html>")
    apim.push_fault("POST", "/services", 502)
    apim.push_fault("POST", "/services", 502)
    with pytest.raises(UpstreamError) as info:
        client.list_tenants_page(0)
    assert (info.value.cause, info.value.status) == (Cause.HTTP_ERROR, 502)


def test_an_oversized_answer_is_refused(apim, client):
    apim.push_fault("POST", "/services", 200, body="<x>" + "a" * (2 * 1024 * 1024) + "</x>")
    with pytest.raises(UpstreamError) as info:
        client.list_tenants_page(0)
    assert info.value.cause == Cause.BAD_RESPONSE and "larger than" in info.value.message


# --- notify ------------------------------------------------------------------------------------------------------


def event(action="CREATE", domain="abc.com", **tenant) -> dict:
    body = {"id": "7", "domain": domain, "ref": "https://is:9443/api/server/v1/tenants/7", **tenant}
    if action == "CREATE" and "owners" not in tenant:
        body["owners"] = [{"username": "kim", "password": "Kim#12345", "email": f"kim@{domain}", "firstname": "Kim",
                           "lastname": "Lee"}]
    return {"iss": "https://is:9443", "jti": "3f1c2f0e-8d7e-4a57-a4a2-0e0f3c1e2d11", "iat": 1735689600,
            "events": {"https://schemas.identity.wso2.org/events/tenant/event-type/tenantCreated":
                       {"initiatorType": "SYSTEM", "action": action, "tenant": body}}}


def test_notify_posts_the_event_with_its_own_credentials_and_the_key_manager_header(apim, ca):
    apim.add_user("listener", "Listener#1")
    with client_for(apim, ca) as client:
        client.notify(event(), username="listener", password="Listener#1")
    sent = apim.requests[-1]
    assert (sent.path, sent.status, sent.basic_user) == ("/internal/data/v1/notify", 200, "listener")
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["x-wso2-key-manager"] == "TENANT_MANAGEMENT"
    assert sent.json() == event()
    assert apim.tenant("abc.com").admin == "kim"


def test_notify_failures_are_typed(apim, client):
    with pytest.raises(UpstreamError) as info:
        client.notify(event(action="RENAME"), username="admin", password="admin")
    assert (info.value.status, info.value.message) == (500, HANDLER_ERROR)
    with pytest.raises(UpstreamError) as info:
        client.notify(event(), username="admin", password="wrong")
    assert (info.value.status, info.value.code, info.value.message) == (401, "900901", "Invalid Credentials")
    apim.add_tenant("abc.com", admin="kim", password="Kim#12345")
    with pytest.raises(UpstreamError) as info:
        client.notify(event(domain="x.com"), username="kim@abc.com", password="Kim#12345")
    assert info.value.status == 403 and info.value.message == "HTTP 403 without an API Manager error body."
    apim.add_user("viewer", "viewer", [PERMISSION_MONITOR])
    with pytest.raises(UpstreamError) as info:
        client.notify(event(domain="y.com"), username="viewer", password="viewer")
    assert info.value.status == 500 and apim.tenant("y.com") is None


def test_notify_is_never_repeated(apim, client):
    apim.push_fault("POST", "/internal", 503)
    with pytest.raises(UpstreamError) as info:
        client.notify(event(), username="admin", password="admin")
    assert info.value.status == 503
    apim.push_fault("POST", "/internal", "reset")
    with pytest.raises(UpstreamError) as info:
        client.notify(event(), username="admin", password="admin")
    assert info.value.cause == Cause.CONNECTION_RESET
    assert [r.status for r in apim.requests] == [503, "reset"]


# --- Admin REST: key managers ---------------------------------------------------------------------------------

KIM = ("kim@abc.com", "Kim#12345")


def okta(**overrides) -> dict:
    return {"name": "Okta", "type": "Okta", "description": "partners", "additionalProperties": {"client_id": "x"},
            **overrides}


def test_key_managers_are_read_as_the_tenant_admin(apim, client):
    client.add_tenant(spec())
    apim.configure(skip_create_resident_key_manager=True)
    client.add_tenant(spec("xyz.com"))
    seeded = apim.add_key_manager("xyz.com", is7_key_manager("https://is.example.com:9443", "xyz.com", "kim"))
    (resident,) = client.list_key_managers(*KIM)
    assert isinstance(resident, KeyManagerSummary) and (resident.name, resident.type) == ("Resident Key Manager",
                                                                                          "default")
    assert apim.requests[-1].basic_user == "kim@abc.com" and apim.requests[-1].path == "/api/am/admin/v4/key-managers"
    (manager,) = client.tenant_key_managers("kim@xyz.com", "Kim#12345")
    assert isinstance(manager, KeyManager) and manager.id == seeded["id"] and manager.type == "WSO2-IS-7"
    assert (manager.authentication, manager.mutual_tls_options, manager.identity_user) == ("MutualTLS", "ServerWide",
                                                                                          "kim@xyz.com")
    assert manager.endpoint("token_endpoint") == "https://is.example.com:9443/t/xyz.com/oauth2/token"
    assert manager.raw["name"] == "Resident Key Manager" and manager.enabled is True
    assert client.get_key_manager(seeded["id"], *KIM) is None  # another tenant's: not found for kim@abc.com


def test_create_update_and_delete_a_key_manager(apim, client):
    client.add_tenant(spec())
    created = client.create_key_manager(okta(), *KIM)
    assert (created.name, created.type, created.description, created.token_type) == ("Okta", "Okta", "partners",
                                                                                     "DIRECT")
    assert created.authentication == "BasicAuth" and created.additional_properties == {"client_id": "x"}
    assert apim.requests[-1].headers["content-type"] == "application/json"
    updated = client.update_key_manager(created.id, {**created.raw, "enabled": False}, *KIM)
    assert updated.enabled is False and client.get_key_manager(created.id, *KIM).enabled is False
    client.delete_key_manager(created.id, *KIM)
    assert client.get_key_manager(created.id, *KIM) is None
    client.delete_key_manager(created.id, *KIM)  # already gone: fine
    assert [m.name for m in client.list_key_managers(*KIM)] == ["Resident Key Manager"]


def test_key_manager_failures_are_typed(apim, client):
    client.add_tenant(spec())
    client.create_key_manager(okta(), *KIM)
    with pytest.raises(AlreadyExists) as exists:
        client.create_key_manager(okta(), *KIM)
    assert exists.value.status == 409 and isinstance(exists.value, UpstreamError) and "Okta" in str(exists.value)
    with pytest.raises(UpstreamError) as bad:
        client.create_key_manager(okta(type="Nope"), *KIM)
    assert (bad.value.status, bad.value.code) == (400, "400") and "not configured" in bad.value.description
    with pytest.raises(UpstreamError) as refused:
        client.list_key_managers("kim@abc.com", "wrong")
    assert refused.value.status == 401 and "'kim@abc.com'" in refused.value.message
    assert not refused.value.retryable
    with pytest.raises(PermissionDenied) as denied:
        client.list_key_managers("monitor", "monitor")
    assert denied.value.status == 403 and denied.value.permission == "apim:admin"
    assert "apim:admin" in denied.value.message and "apim:admin" in denied.value.hint
    with pytest.raises(ValueError):
        client.list_key_managers("kim@abc.com", "")
    with pytest.raises(ValueError):
        client.get_key_manager("", *KIM)


def test_key_manager_reads_are_retried_and_creates_are_not(apim, client):
    client.add_tenant(spec())
    apim.clear_log()
    apim.push_fault("GET", "/api/am/admin", 503)
    apim.push_fault("GET", "/api/am/admin", "reset")
    assert len(client.list_key_managers(*KIM)) == 1
    assert [r.status for r in apim.requests] == [503, "reset", 200]
    apim.push_fault("POST", "/api/am/admin", 503)
    with pytest.raises(UpstreamError) as info:
        client.create_key_manager(okta(), *KIM)
    assert info.value.status == 503 and info.value.retryable
    assert [r.status for r in apim.requests[3:]] == [503] and apim.key_managers("abc.com")[-1]["name"] != "Okta"


def test_an_answer_that_is_not_a_key_manager_list_is_a_bad_response(apim, client):
    client.add_tenant(spec())
    apim.push_fault("GET", "/api/am/admin", 200, body={"count": 1, "list": [{"name": "no id"}]})
    with pytest.raises(UpstreamError) as info:
        client.list_key_managers(*KIM)
    assert info.value.cause == Cause.BAD_RESPONSE
    apim.push_fault("GET", "/api/am/admin", 200, body="<html>login</html>")
    with pytest.raises(UpstreamError) as info:
        client.list_key_managers(*KIM)
    assert info.value.cause == Cause.BAD_RESPONSE


# --- Transport and configuration ----------------------------------------------------------------------------------


def test_refused_and_untrusted_in_plain_words(apim, ca):
    with client_for(apim, ca, base_url=f"https://127.0.0.1:{free_port()}", retries=False) as nowhere, \
            pytest.raises(UpstreamError) as info:
        nowhere.ping()
    assert info.value.cause == Cause.REFUSED
    assert info.value.message == "The connection to API Manager was refused."
    assert info.value.hint == "Check the host and port in the base URL, that API Manager is running, and firewalls."
    with client_for(apim, Authority("Some other CA")) as stranger, pytest.raises(UpstreamError) as info:
        stranger.ping()
    assert info.value.cause == Cause.SERVER_NOT_TRUSTED
    assert info.value.message == "The portal does not trust API Manager's server certificate."
    assert apim.requests == []


def test_trust_comes_only_from_the_given_bundle(apim, ca, tmp_path, monkeypatch):
    bundle = tmp_path / "ca.pem"
    bundle.write_text(ca.cert_pem)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{free_port()}")
    with client_for(apim, Authority("Other CA")) as stranger, pytest.raises(UpstreamError) as info:
        stranger.ping()
    assert info.value.cause == Cause.SERVER_NOT_TRUSTED
    with client_for(apim, ca) as client:
        client.ping()  # the proxy variable is ignored too


def test_downtime_then_recovery(apim, client):
    apim.go_down()
    with pytest.raises(UpstreamError) as info:
        client.ping()
    assert info.value.cause == Cause.REFUSED and info.value.retryable
    apim.come_up()
    client.ping()


def test_a_slow_answer_times_out(apim, ca):
    apim.set_latency(1.0)
    with client_for(apim, ca, timeout=(1.0, 0.2), retries=False) as slow, pytest.raises(UpstreamError) as info:
        slow.ping()
    assert info.value.cause == Cause.TIMEOUT and info.value.message == "API Manager did not answer within 0.2 s."


@pytest.mark.parametrize(("url", "fragment"), [("http://apim:9443", "https://"), ("", "API Manager's base URL")])
def test_base_url_and_credentials_are_checked(ca, url, fragment):
    with pytest.raises(ValueError, match=fragment):
        ApiManagerClient(url, ca_pem=ca.cert_pem, username="admin", password="admin")
    with pytest.raises(ValueError, match="password"):
        ApiManagerClient("https://apim:9443", ca_pem=ca.cert_pem, username="admin", password="")
    with pytest.raises(UpstreamError) as info:
        ApiManagerClient("https://apim:9443", ca_pem="not a pem", username="admin", password="admin")
    assert info.value.cause == Cause.BAD_CREDENTIALS and "API Manager's server certificate" in info.value.message
