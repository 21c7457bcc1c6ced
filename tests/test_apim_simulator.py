"""The API Manager simulator against wso2-apis.md §4 and §6, over real HTTPS with hand-written SOAP envelopes and
plain `requests` (so these tests do not depend on the portal's own API Manager client)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from simulators.apim import (
    BEAN_FIELDS,
    BEANS_NS,
    HANDLER_ERROR,
    PAGINATED_NS,
    PERMISSION_MODIFY,
    PERMISSION_MONITOR,
    SERVICES_NS,
    SOAP_ENV,
    XSI,
    ApimSimulator,
    main,
)
from simulators.pki import Authority

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
HEAD = (f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" xmlns:ser="{SERVICES_NS}" xmlns:xsd="{BEANS_NS}">'
        "<soapenv:Body>")
TAIL = "</soapenv:Body></soapenv:Envelope>"


@pytest.fixture(scope="module")
def ca():
    return Authority("API Manager test CA")


@pytest.fixture
def apim(ca):
    server = ca.server()
    with ApimSimulator(server_cert_pem=server.cert_pem, server_key_pem=server.key_pem) as sim:
        yield sim


@pytest.fixture
def ca_file(ca, tmp_path) -> str:
    path = tmp_path / "apim-ca.pem"
    path.write_text(ca.cert_pem)
    return str(path)


class Soap:
    """Posts hand-written envelopes as SoapUI would."""

    def __init__(self, sim: ApimSimulator, ca_file: str) -> None:
        self.sim, self.ca_file = sim, ca_file

    def __call__(self, operation: str, inner: str = "", *, auth=("admin", "admin"), action: str | None = None,
                 content_type: str = "text/xml; charset=UTF-8", raw: str | None = None) -> requests.Response:
        body = raw if raw is not None else f"{HEAD}<ser:{operation}>{inner}</ser:{operation}>{TAIL}"
        headers = {"Content-Type": content_type, "SOAPAction": f'"urn:{operation}"' if action is None else action}
        return requests.post(self.sim.service_url, data=body.encode(), headers=headers, auth=auth,
                             verify=self.ca_file, timeout=5)


@pytest.fixture
def soap(apim, ca_file):
    return Soap(apim, ca_file)


def bean(**fields) -> str:
    values = {"active": "true", "admin": "kim", "adminPassword": "Kim#12345", "email": "kim@abc.com",
              "firstname": "Kim", "lastname": "Lee", "tenantDomain": "abc.com"}
    values.update(fields)
    inner = "".join(f"<xsd:{name}>{values[name]}</xsd:{name}>" for name in BEAN_FIELDS if values.get(name) is not None)
    return f"<ser:tenantInfoBean>{inner}</ser:tenantInfoBean>"


def body_of(response: requests.Response) -> ET.Element:
    root = ET.fromstring(response.content)
    assert root.tag == f"{{{SOAP_ENV}}}Envelope"
    (child,) = list(root.find(f"{{{SOAP_ENV}}}Body"))
    return child


def fault_of(response: requests.Response) -> tuple[str, str, ET.Element | None]:
    assert response.status_code == 500 and response.headers["Content-Type"].startswith("text/xml")
    fault = body_of(response)
    assert fault.tag == f"{{{SOAP_ENV}}}Fault"
    detail = fault.find("detail")
    return fault.findtext("faultcode"), fault.findtext("faultstring"), detail


def service_fault(response: requests.Response) -> str:
    code, message, detail = fault_of(response)
    assert code == "soapenv:Server"
    exception = detail.find(f"{{{SERVICES_NS}}}TenantMgtAdminServiceException")
    assert exception.findtext(f"{{{SERVICES_NS}}}TenantMgtAdminServiceException/{{{SERVICES_NS}}}Message") == message
    return message


def domain(value: str) -> str:
    return f"<ser:tenantDomain>{value}</ser:tenantDomain>"


# --- TenantMgtAdminService (§6) -----------------------------------------------------------------------------------


def test_add_tenant_answers_the_uuid_and_starts_the_tenant_active(apim, soap):
    response = soap("addTenant", bean(active="false"))
    assert response.status_code == 200 and response.headers["Content-Type"] == "text/xml; charset=UTF-8"
    answer = body_of(response)
    assert answer.tag == f"{{{SERVICES_NS}}}addTenantResponse"
    returned = answer.findtext(f"{{{SERVICES_NS}}}return")
    assert UUID.match(returned)
    tenant = apim.tenant("abc.com")
    assert (tenant.uuid, tenant.id, tenant.admin, tenant.active) == (returned, 1, "kim", True)  # active ignored
    assert [(m["name"], m["type"]) for m in apim.key_managers("abc.com")] == [("Resident Key Manager", "default")]
    assert apim.requests[-1].operation == "addTenant" and apim.requests[-1].basic_user == "admin"


def test_get_tenant_writes_every_bean_field_in_order_with_nils(apim, soap):
    soap("addTenant", bean())
    answer = body_of(soap("getTenant", domain("abc.com")))
    returned = answer.find(f"{{{SERVICES_NS}}}return")
    assert returned.get(f"{{{XSI}}}type").endswith(":TenantInfoBean")
    assert [child.tag for child in returned] == [f"{{{BEANS_NS}}}{name}" for name in BEAN_FIELDS]
    values = {child.tag.rpartition("}")[2]: (child.text, child.get(f"{{{XSI}}}nil")) for child in returned}
    assert values["admin"] == ("kim", None) and values["tenantId"] == ("1", None)
    assert values["adminPassword"] == (None, "true") and values["usagePlan"] == (None, None)
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", values["createdDate"][0])


def test_void_operations_answer_202_with_no_body(apim, soap):
    soap("addTenant", bean())
    response = soap("deactivateTenant", domain("abc.com"))
    assert (response.status_code, response.content) == (202, b"")
    assert apim.tenant("abc.com").active is False
    assert soap("activateTenant", domain("abc.com")).status_code == 202
    assert apim.tenant("abc.com").active is True


def test_update_sets_names_always_email_when_given_and_the_password_when_given(apim, soap):
    soap("addTenant", bean())
    response = soap("updateTenant", bean(email="", firstname=None, lastname="Perera", adminPassword=None,
                                         tenantId="1"))
    assert response.status_code == 202
    tenant = apim.tenant("abc.com")
    assert (tenant.email, tenant.firstname, tenant.lastname, tenant.password) == ("kim@abc.com", None, "Perera",
                                                                                  "Kim#12345")
    soap("updateTenant", bean(adminPassword="New#Pass1", email="kim@new.com"))
    assert (apim.tenant("abc.com").email, apim.tenant("abc.com").password) == ("kim@new.com", "New#Pass1")


@pytest.mark.parametrize(("fields", "message"), [
    ({"email": "broken"}, "Invalid email is provided."),
    ({"tenantDomain": ".abc.com"}, "Invalid domain. Domain should not start with '.'"),
    ({"tenantDomain": "carbon.super"}, ("A tenant with same domain carbon.super already exist. Please use a "
                                       "different domain name.")),
    ({"adminPassword": None}, "Error while adding tenant admin user."),
    ({"adminPassword": ""}, "Error while adding tenant admin user."),
])
def test_add_faults_carry_the_service_exception(apim, soap, fields, message):
    assert service_fault(soap("addTenant", bean(**fields))) == message
    assert apim.tenant("abc.com") is None and apim.key_managers("abc.com") == []


def test_duplicates_and_unknown_domains_are_service_faults(apim, soap):
    soap("addTenant", bean())
    assert "already exist" in service_fault(soap("addTenant", bean()))
    assert "nope.com" in service_fault(soap("activateTenant", domain("nope.com")))
    assert "nope.com" in service_fault(soap("updateTenant", bean(tenantDomain="nope.com")))


def test_get_tenant_of_an_unknown_domain_is_an_empty_bean_not_a_fault(apim, soap):
    response = soap("getTenant", domain("nope.com"))
    assert response.status_code == 200
    returned = body_of(response).find(f"{{{SERVICES_NS}}}return")
    values = {child.tag.rpartition("}")[2]: (child.text, child.get(f"{{{XSI}}}nil")) for child in returned}
    assert values.pop("tenantId") == ("0", None) and values.pop("active") == ("false", None)
    assert all(nil == "true" for _, nil in values.values())


def test_dotless_domains_are_accepted_unless_public_cloud_setup(apim, soap):
    assert soap("addTenant", bean(tenantDomain="nodot")).status_code == 200  # the default is off (124b1e6f)
    apim.configure(public_cloud_setup=True)
    assert service_fault(soap("addTenant", bean(tenantDomain="other"))) == "You should have an extension to your " \
        "domain."


def test_concurrent_adds_of_one_domain_make_one_tenant(apim, soap):
    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(lambda _: soap("addTenant", bean()).status_code, range(8)))
    assert statuses == [200] + [500] * 7
    assert [b["tenantDomain"] for b in apim.service.retrieve_all()] == ["abc.com"]


# --- Paging -------------------------------------------------------------------------------------------------------


def page(soap, number: int) -> tuple[int, list[ET.Element], ET.Element]:
    returned = body_of(soap("retrievePaginatedTenants", f"<ser:pageNumber>{number}</ser:pageNumber>")).find(
        f"{{{SERVICES_NS}}}return")
    pages = int(returned.findtext(f"{{{PAGINATED_NS}}}numberOfPages"))
    return pages, returned.findall(f"{{{PAGINATED_NS}}}tenantInfoBeans"), returned


def test_paging_like_carbons_data_paginator(apim, soap):
    for i in range(32):
        apim.add_tenant(f"t{i:02d}.com")
    pages, beans, _ = page(soap, 0)
    assert pages == 3 and len(beans) == 15
    assert beans[0].findtext(f"{{{BEANS_NS}}}tenantDomain") == "t00.com"
    assert beans[0].find(f"{{{BEANS_NS}}}admin").get(f"{{{XSI}}}nil") == "true"  # list beans: no admin
    assert [b.findtext(f"{{{BEANS_NS}}}tenantDomain") for b in page(soap, 2)[1]] == ["t30.com", "t31.com"]
    assert [b.findtext(f"{{{BEANS_NS}}}tenantDomain") for b in page(soap, 9)[1]] == ["t30.com", "t31.com"]
    assert len(page(soap, -1)[1]) == 15  # a negative page is page 0


def test_an_empty_list_has_zero_pages_and_a_nil_bean(soap):
    pages, beans, returned = page(soap, 0)
    assert pages == 0 and len(beans) == 1 and beans[0].get(f"{{{XSI}}}nil") == "true"
    assert returned.get(f"{{{XSI}}}type").endswith(":PaginatedTenantInfoBean")


def test_retrieve_tenants_lists_everything(apim, soap):
    apim.add_tenant("a.com")
    apim.add_tenant("b.com")
    answer = body_of(soap("retrieveTenants"))
    assert [r.findtext(f"{{{BEANS_NS}}}tenantDomain") for r in answer] == ["a.com", "b.com"]


# --- What Axis2 refuses -------------------------------------------------------------------------------------------


def test_bean_fields_must_be_qualified_and_in_the_wsdls_order(soap):
    unqualified = "<ser:tenantInfoBean><tenantDomain>abc.com</tenantDomain></ser:tenantInfoBean>"
    code, message, _ = fault_of(soap("addTenant", unqualified))
    assert code == "soapenv:Client" and message.startswith("Unexpected subelement tenantDomain")
    reordered = ("<ser:tenantInfoBean><xsd:tenantDomain>abc.com</xsd:tenantDomain><xsd:admin>kim</xsd:admin>"
                 "</ser:tenantInfoBean>")
    assert fault_of(soap("addTenant", reordered))[1].startswith("Unexpected subelement admin")
    wrong_ns = f'<ser:getTenant><x:tenantDomain xmlns:x="{BEANS_NS}">abc.com</x:tenantDomain></ser:getTenant>'
    assert "Unexpected subelement" in fault_of(soap("getTenant", raw=f"{HEAD}{wrong_ns}{TAIL}"))[1]


def test_the_operation_must_be_in_the_services_namespace_and_match_soapaction(soap):
    raw = f'{HEAD}<getTenant xmlns="urn:other">{domain("abc.com")}</getTenant>{TAIL}'
    assert "The endpoint reference (EPR) for the Operation not found" in fault_of(soap("getTenant", raw=raw))[1]
    message = fault_of(soap("getTenant", domain("abc.com"), action='"urn:addTenant"'))[1]
    assert "WSA Action = urn:addTenant" in message
    assert soap("getTenant", domain("abc.com"), action="").status_code == 200  # reaches the service: an empty bean


def test_soap_12_json_and_dtds_are_refused(soap):
    soap12 = ('<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Body>'
              f'<ser:getTenant xmlns:ser="{SERVICES_NS}"/></env:Body></env:Envelope>')
    assert fault_of(soap("getTenant", raw=soap12))[0] == "soapenv:VersionMismatch"
    assert "Unsupported content type" in fault_of(soap("getTenant", domain("a.com"),
                                                       content_type="application/json"))[1]
    dtd = f'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]>{HEAD}<ser:getTenant/>{TAIL}'
    assert "DTD" in fault_of(soap("getTenant", raw=dtd))[1]


def test_authentication_and_authorization_faults_have_an_empty_detail(apim, soap):
    soap("addTenant", bean())
    for auth, message in ((None, "Access Denied. Please login first."), (("admin", "wrong"), "Authentication failure"),
                          (("ghost", "x"), "Authentication failure")):
        code, text, detail = fault_of(soap("getTenant", domain("abc.com"), auth=auth))
        assert (code, text) == ("soapenv:Server", message) and len(detail) == 0
    # the default "monitor" user reads and adds but may not modify
    assert soap("getTenant", domain("abc.com"), auth=("monitor", "monitor")).status_code == 200
    assert fault_of(soap("deactivateTenant", domain("abc.com"), auth=("monitor", "monitor")))[1] == "Access Denied."
    assert apim.tenant("abc.com").active is True
    # a tenant's own admin may not call the super tenant's service
    assert fault_of(soap("getTenant", domain("abc.com"), auth=("kim@abc.com", "Kim#12345")))[1] == \
        "Denied accessing super tenant service."
    apim.add_user("operator", "op", [PERMISSION_MODIFY])
    assert soap("deactivateTenant", domain("abc.com"), auth=("operator", "op")).status_code == 202


def test_delete_reports_success_and_does_nothing_unless_deletion_is_enabled(apim, soap):
    soap("addTenant", bean())
    response = soap("deleteTenant", domain("abc.com"))
    assert (response.status_code, response.content) == (202, b"")
    assert apim.tenant("abc.com") is not None and apim.key_managers("abc.com")
    assert "Tenant deletion is not enabled; tenant abc.com was not deleted" in apim.events
    apim.configure(tenant_deletion=True)
    assert soap("deleteTenant", domain("abc.com")).status_code == 202
    assert apim.tenant("abc.com") is None and apim.key_managers("abc.com") == []
    assert "abc.com" in service_fault(soap("deleteTenant", domain("abc.com")))  # gone: nothing to delete
    assert soap("addTenant", bean()).status_code == 200  # the domain is free again


def test_delete_needs_the_modify_permission(apim, soap):
    apim.configure(tenant_deletion=True)
    soap("addTenant", bean())
    assert fault_of(soap("deleteTenant", domain("abc.com"), auth=("monitor", "monitor")))[1] == "Access Denied."
    assert apim.tenant("abc.com") is not None


def test_unknown_paths_and_methods(apim, ca_file):
    assert requests.get(apim.service_url, verify=ca_file, timeout=5).status_code == 405
    assert requests.get(apim.base_url + "/api/am/admin/v4/tenants", verify=ca_file, timeout=5).status_code == 404


# --- /internal/data/v1/notify (§4) ---------------------------------------------------------------------------------

TENANT_CREATED = "https://schemas.identity.wso2.org/events/tenant/event-type/tenantCreated"
TENANT_ACTIVATED = "https://schemas.identity.wso2.org/events/tenant/event-type/tenantActivated"
OWNER_UPDATED = "https://schemas.identity.wso2.org/events/tenant/event-type/tenantOwnerUpdated"


def event(action: str, key: str = TENANT_CREATED, domain_name: str = "abc.com", owners=None, **extra) -> dict:
    tenant = {"id": "12402", "domain": domain_name, "ref": "https://is:9443/api/server/v1/tenants/12402", **extra}
    if owners is not None:
        tenant["owners"] = owners
    return {"iss": "https://is:9443", "jti": "6a5e0a52-4d89-4a3f-a0c5-7b8f0a0c8f11", "iat": 1735689600,
            "events": {key: {"initiatorType": "SYSTEM", "action": action, "tenant": tenant}}}


KIM = {"username": "kim", "password": "Kim#12345", "email": "kim@abc.com", "firstname": "Kim", "lastname": "Lee"}


@pytest.fixture
def notify(apim, ca_file):
    def post(document, *, auth=("admin", "admin"), key_manager="TENANT_MANAGEMENT", raw: bytes | None = None):
        headers = {"Content-Type": "application/json"}
        if key_manager is not None:
            headers["X-WSO2-KEY-MANAGER"] = key_manager
        data = raw if raw is not None else json.dumps(document).encode()
        return requests.post(apim.notify_url, data=data, headers=headers, auth=auth, verify=ca_file, timeout=5)
    return post


def assert_handler_error(response: requests.Response) -> None:
    assert response.status_code == 500 and response.json() == {"Message": HANDLER_ERROR}


def test_create_update_deactivate_activate(apim, notify):
    response = notify(event("CREATE", owners=[KIM]))
    assert (response.status_code, response.content) == (200, b"")
    tenant = apim.tenant("abc.com")
    assert (tenant.admin, tenant.email, tenant.firstname, tenant.password, tenant.active) == \
        ("kim", "kim@abc.com", "Kim", "Kim#12345", True)
    update = {key: value for key, value in KIM.items() if key != "username"} | {"email": "kim@new.com",
                                                                              "password": "New#Pass1"}
    assert notify(event("UPDATE", OWNER_UPDATED, owners=[update])).status_code == 200
    assert (apim.tenant("abc.com").email, apim.tenant("abc.com").password) == ("kim@new.com", "New#Pass1")
    # DEACTIVATE arrives under the tenantActivated key; the action decides, not the key or lifecycleStatus
    assert notify(event("DEACTIVATE", TENANT_ACTIVATED, lifecycleStatus={"activated": True})).status_code == 200
    assert apim.tenant("abc.com").active is False
    assert notify(event("ACTIVATE", TENANT_ACTIVATED, lifecycleStatus={"activated": True})).status_code == 200
    assert apim.tenant("abc.com").active is True


def test_only_the_first_event_counts_and_its_key_is_ignored(apim, notify):
    document = event("CREATE", "urn:anything", owners=[KIM])
    document["events"]["urn:second"] = {"action": "DEACTIVATE", "tenant": {"domain": "abc.com"}}
    assert notify(document).status_code == 200
    assert apim.tenant("abc.com").active is True


def test_create_or_update_without_owners_is_a_silent_no_op(apim, notify):
    assert notify(event("CREATE")).status_code == 200
    assert notify(event("CREATE", owners=[])).status_code == 200
    assert notify(event("UPDATE", OWNER_UPDATED)).status_code == 200
    assert apim.tenant("abc.com") is None


@pytest.mark.parametrize("document", [
    event("RENAME"), event(None, owners=[KIM]), {"events": {}}, {"iss": "x"},
    {"events": {TENANT_CREATED: {"action": "CREATE", "tenant": {"id": "1"}}}},
])
def test_handler_errors_are_500_with_a_message(apim, notify, document):
    assert_handler_error(notify(document))
    assert apim.requests[-1].note


def test_malformed_json_and_failed_operations_are_500(apim, notify):
    assert_handler_error(notify(None, raw=b"{not json"))
    assert notify(event("CREATE", owners=[KIM])).status_code == 200
    assert_handler_error(notify(event("CREATE", owners=[KIM])))  # the tenant exists: addTenant faults
    assert_handler_error(notify(event("ACTIVATE", TENANT_ACTIVATED, "ghost.com")))
    assert_handler_error(notify(event("UPDATE", OWNER_UPDATED, "ghost.com", owners=[KIM])))


def test_an_invite_via_email_create_without_a_password_fails_and_creates_nothing(apim, notify):
    """IS sends no password for an invite-via-email owner; addTenant then fails creating the tenant admin
    (findings #2). IS never retries an HTTP error, so API Manager never gets this tenant."""
    owner = {key: value for key, value in KIM.items() if key != "password"}
    assert_handler_error(notify(event("CREATE", owners=[owner])))
    assert apim.requests[-1].note == "Error while adding tenant admin user."
    assert apim.tenant("abc.com") is None and apim.key_managers("abc.com") == []
    assert "Error while processing notification: Error while adding tenant admin user." in apim.events


def test_who_may_notify(apim, notify):
    assert_handler_error(notify(event("CREATE", owners=[KIM]), auth=None))  # no Basic: the handler refuses
    assert notify(event("CREATE", owners=[KIM]), auth=("admin", "wrong")).status_code == 401
    apim.add_user("viewer", "viewer", [PERMISSION_MONITOR])
    assert_handler_error(notify(event("CREATE", owners=[KIM]), auth=("viewer", "viewer")))
    assert apim.tenant("abc.com") is None
    apim.add_user("listener", "Listener#1", [PERMISSION_MODIFY])
    assert notify(event("CREATE", owners=[KIM]), auth=("listener", "Listener#1")).status_code == 200
    forbidden = notify(event("CREATE", domain_name="x.com", owners=[KIM]), auth=("kim@abc.com", "Kim#12345"))
    assert (forbidden.status_code, forbidden.content) == (403, b"")


def test_other_key_manager_types_are_no_ops(apim, notify):
    assert notify(event("CREATE", owners=[KIM]), key_manager="WSO2-IS-7").status_code == 200
    assert notify(event("CREATE", owners=[KIM]), key_manager=None).status_code == 200  # "default"
    assert apim.tenant("abc.com") is None


# --- Test controls ------------------------------------------------------------------------------------------------


def test_injected_faults_match_the_soap_operation(apim, soap):
    apim.push_fault("POST", "/services", 503, operation="addTenant")
    apim.push_fault("POST", "/services", 500, operation="getTenant")
    assert soap("retrievePaginatedTenants", "<ser:pageNumber>0</ser:pageNumber>").status_code == 200
    assert fault_of(soap("getTenant", domain("a.com")))[1] == "Injected failure."
    response = soap("addTenant", bean())
    assert (response.status_code, response.content) == (503, b"")
    assert soap("addTenant", bean()).status_code == 200


def test_resets_latency_and_headers(apim, soap, notify):
    apim.push_fault(None, "/internal", "reset")
    with pytest.raises(requests.exceptions.ConnectionError):
        notify(event("CREATE", owners=[KIM]))
    assert apim.requests[-1].status == "reset"
    apim.push_fault("POST", "/internal", 503, headers={"Retry-After": "7"})
    assert notify(event("CREATE", owners=[KIM])).headers["Retry-After"] == "7"
    apim.set_latency(0.3)
    started = time.monotonic()
    soap("retrieveTenants")
    assert time.monotonic() - started >= 0.3


def test_downtime_refuses_connections_on_the_same_port(apim, soap):
    port = apim.port
    apim.go_down()
    assert apim.is_down
    with pytest.raises(requests.exceptions.ConnectionError):
        soap("retrieveTenants")
    apim.come_up()
    assert apim.port == port and soap("retrieveTenants").status_code == 200
    apim.down_for(0.3)
    with pytest.raises(requests.exceptions.ConnectionError):
        soap("retrieveTenants")
    time.sleep(0.6)
    assert soap("retrieveTenants").status_code == 200


# --- /api/am/admin/v4/key-managers (§7) ---------------------------------------------------------------------------

KEY_MANAGERS = "/api/am/admin/v4/key-managers"


@pytest.fixture
def admin_api(apim, ca_file):
    def call(method: str, path: str = "", *, auth=("kim@abc.com", "Kim#12345"), document=None):
        return requests.request(method, f"{apim.base_url}{KEY_MANAGERS}{path}", json=document, auth=auth,
                                verify=ca_file, timeout=5)
    return call


def okta(**overrides) -> dict:
    return {"name": "Okta", "type": "Okta", "displayName": "Okta", "description": "Okta for partners",
            "additionalProperties": {"client_id": "x"}, **overrides}


def test_the_tenant_admin_lists_only_its_own_tenants_key_managers(apim, soap, admin_api):
    soap("addTenant", bean())
    soap("addTenant", bean(tenantDomain="xyz.com", email="kim@xyz.com"))
    response = admin_api("GET")
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
    document = response.json()
    assert document["count"] == 1 and set(document["list"][0]) == {"id", "name", "type", "displayName",
                                                                  "description", "enabled"}
    assert (document["list"][0]["name"], document["list"][0]["type"]) == ("Resident Key Manager", "default")
    other = admin_api("GET", auth=("kim@xyz.com", "Kim#12345")).json()["list"][0]["id"]
    assert admin_api("GET", f"/{other}").status_code == 404  # another tenant's key manager is invisible
    assert admin_api("GET", auth=("admin", "admin")).json() == {"count": 0, "list": []}  # carbon.super's own


def test_create_get_update_delete_a_key_manager(apim, soap, admin_api):
    soap("addTenant", bean())
    created = admin_api("POST", document=okta())
    assert created.status_code == 201
    manager = created.json()
    assert created.headers["Location"] == f"key-managers/{manager['id']}" and UUID.match(manager["id"])
    assert (manager["name"], manager["type"], manager["enabled"], manager["tokenType"]) == ("Okta", "Okta", True,
                                                                                           "DIRECT")
    fetched = admin_api("GET", f"/{manager['id']}").json()
    assert fetched == manager and fetched["additionalProperties"] == {"client_id": "x"}
    assert [m["name"] for m in apim.key_managers("abc.com")] == ["Resident Key Manager", "Okta"]
    updated = admin_api("PUT", f"/{manager['id']}", document={**fetched, "enabled": False, "description": "off"})
    assert updated.status_code == 200 and (updated.json()["enabled"], updated.json()["id"]) == (False, manager["id"])
    deleted = admin_api("DELETE", f"/{manager['id']}")
    assert (deleted.status_code, deleted.content) == (200, b"")
    assert admin_api("GET", f"/{manager['id']}").status_code == 404
    assert admin_api("DELETE", f"/{manager['id']}").status_code == 404
    assert admin_api("PUT", f"/{manager['id']}", document=fetched).status_code == 404


@pytest.mark.parametrize(("document", "fragment"), [
    ({"type": "Okta"}, "name"), (okta(name=""), "name"), (okta(name="x" * 101), "name"), (okta(type=None), "type"),
    (okta(description="d" * 257), "description"), (okta(type="Unknown"), "not configured"),
    (okta(tokenType="JWT"), "tokenType"), ({"name": "IS7", "type": "WSO2-IS-7"}, "api_resource_management_endpoint"),
    ({"name": "IS7", "type": "WSO2-IS-7", "additionalProperties": {
        "api_resource_management_endpoint": "https://is/x", "is7_roles_endpoint": "https://is/y",
        "Authentication": "Kerberos"}}, "Authentication"),
    ([], "not a key manager"),
])
def test_bad_key_managers_are_400_error_dtos(soap, admin_api, document, fragment):
    soap("addTenant", bean())
    response = admin_api("POST", document=document)
    assert response.status_code == 400
    error = response.json()
    assert set(error) == {"code", "message", "description", "moreInfo", "error"} and error["code"] == 400
    assert fragment in error["description"]


def test_a_duplicate_name_is_409(soap, admin_api):
    soap("addTenant", bean())
    assert admin_api("POST", document=okta()).status_code == 201
    response = admin_api("POST", document=okta(displayName="again"))
    assert response.status_code == 409 and "Okta" in response.json()["description"]
    resident = next(m for m in admin_api("GET").json()["list"] if m["name"] == "Resident Key Manager")
    full = admin_api("GET", f"/{resident['id']}").json()
    assert admin_api("PUT", f"/{resident['id']}", document={**full, "name": "Okta"}).status_code == 409


def test_who_may_call_the_key_manager_api(apim, soap, admin_api):
    soap("addTenant", bean())
    assert admin_api("GET", auth=("kim@abc.com", "wrong")).status_code == 401
    assert admin_api("GET", auth=None).status_code == 401
    unauthorized = admin_api("GET", auth=("kim@nope.com", "Kim#12345"))
    assert unauthorized.status_code == 401 and unauthorized.json()["code"] == 900901
    assert admin_api("GET", auth=("monitor", "monitor")).status_code == 403  # no apim:admin scope
    soap("deactivateTenant", domain("abc.com"))
    assert admin_api("GET").status_code == 401  # an inactive tenant's admin cannot sign in
    assert admin_api("PATCH").status_code == 401
    soap("activateTenant", domain("abc.com"))
    assert admin_api("PATCH").status_code == 405


def test_the_command_line_explains_itself(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    for option in ("--is-base-url", "--no-tenant-sync", "--auto-configure-key-manager",
                   "--skip-create-resident-key-manager", "--client-cert", "--client-key", "--present-client-cert",
                   "--tenant-deletion", "--public-cloud-setup"):
        assert option in out
    with pytest.raises(SystemExit) as exit_info:
        main(["--port", "0"])
    assert exit_info.value.code == 2 and "--demo-pki" in capsys.readouterr().err


def test_the_command_line_starts_a_working_simulator(tmp_path):
    root = Path(__file__).resolve().parent.parent
    process = subprocess.Popen([sys.executable, "-m", "simulators.apim", "--port", "0", "--demo-pki",
                                str(tmp_path)], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = None
        for _ in range(10):
            match = re.search(r"simulator on (https://\S+) ", process.stdout.readline())
            if match:
                base = match.group(1)
                break
        assert base, process.stderr.read() if process.poll() is not None else "no start-up line"
        response = requests.post(f"{base}/services/TenantMgtAdminService", timeout=5,
                                 verify=str(tmp_path / "apim-ca.pem"), auth=("admin", "admin"),
                                 data=f"{HEAD}<ser:retrieveTenants/>{TAIL}",
                                 headers={"Content-Type": "text/xml", "SOAPAction": "urn:retrieveTenants"})
        assert response.status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()
        process.stderr.close()
