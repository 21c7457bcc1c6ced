"""Identity-provider types are plug-ins (issue 14): a type family registered from this test alone, with no change
anywhere in portal/, is offered by the form, the /v1 API, bulk files and the OpenAPI document, and is stored
(migration 0009 dropped the database's list of types). Unregistered afterwards, it is gone everywhere."""
from __future__ import annotations

import io
import random
import re
from collections.abc import Mapping
from typing import Any

import pytest
import sqlalchemy as sa

from portal.clients.checks import CheckResult
from portal.idp import parsing, registry
from portal.idp.base import CheckEnv, Field, IdpFamily, ParseContext
from portal.models import Tenant
from tests.api_helpers import load_contract, make_api

CLIENT_SECRET = "static-client-secret-0123456789"


class Static(IdpFamily):
    """A made-up provider: one realm name and a flag; the "check" passes unless the realm is called "down"."""

    types = ("STATIC",)
    labels = {"STATIC": "STATIC: a fixed realm"}
    title = "Static realm (staticSchema)"
    keys = ("staticSchema",)
    objects = frozenset({"staticSchema"})
    stored_under = "staticSchema"
    fields = (Field("staticSchema.realm", "staticRealm", "Static realm", description="The realm's name."),
              Field("staticSchema.strict", "staticStrict", "Strict realm", "boolean"))

    def parse(self, idp_type: str, body: dict, ctx: ParseContext, errors: parsing.Errors):
        section = parsing.section(body, "staticSchema", self.allowed("staticSchema"), errors, required=True)
        if section is None:
            return {}, None
        realm = parsing.text(section, "realm", errors, path="staticSchema.realm", required=True, limit=64)
        strict = parsing.boolean(section, "strict", errors, path="staticSchema.strict")
        return {"realm": realm, "strict": strict}, None

    def check(self, idp_type: str, settings: Mapping[str, Any], secret: str | None, algorithm: str,
              env: CheckEnv) -> CheckResult:
        if settings["realm"] == "down":
            return CheckResult.failed("The static realm is down.", field_errors={"staticSchema.realm": "Down."})
        return CheckResult(True, f"Static realm {settings['realm']} answers.")

    def openapi_variants(self, update: bool):
        return [("STATIC", self.types, {"staticSchema": {"$ref": "#/components/schemas/StaticSchemaRequest"}})]

    def openapi_components(self):
        return {"StaticSchemaRequest": {"type": "object", "additionalProperties": False, "required": ["realm"],
                                        "properties": {"realm": {"type": "string", "maxLength": 64},
                                                       "strict": {"type": "boolean"}}}}

    def openapi_response(self):
        return {"staticSchema": {"type": "object", "additionalProperties": False, "required": ["realm", "strict"],
                                 "properties": {"realm": {"type": "string"}, "strict": {"type": "boolean"}}}}, \
            ["staticSchema"]

    def demo(self, idp_type: str, tenant_id: str, n: int, rng: random.Random):
        return {"realm": f"demo-{n}", "strict": False}, None


@pytest.fixture
def static_type():
    family = registry.register(Static())
    try:
        yield family
    finally:
        registry.unregister(family)


@pytest.fixture
def app(make_app):
    return make_app(BULK_RUN_INLINE=True)


def _stored(db, tenant_id: str) -> Tenant:
    db.session.expire_all()
    return db.session.execute(sa.select(Tenant).where(Tenant.tenant_id == tenant_id)).scalar_one()


def test_the_form_renders_and_registers_a_plugin_type(static_type, admin_client, db):
    page = admin_client.get("/tenants/new").get_data(as_text=True)
    assert 'data-idp-types="STATIC"' in page and "Static realm (staticSchema)" in page
    assert 'name="staticRealm"' in page and 'name="staticStrict"' in page
    assert '<option value="STATIC">STATIC: a fixed realm</option>' in page

    data = {"tenantId": "static-form", "clientId": "static-form-client", "clientSecret": CLIENT_SECRET,
            "identityProviderType": "STATIC", "supportAlgorithm": "HS256", "rsaKeySize": "2048",
            "ownerProvisioningMethod": "invite-via-email", "staticRealm": "down", "save": "y"}
    page = admin_client.post("/tenants/new", data=data).get_data(as_text=True)
    assert "The static realm is down." in page and "Down." in page  # the check ran; its field error is shown
    assert db.session.execute(sa.select(sa.func.count()).select_from(Tenant)).scalar_one() == 0

    response = admin_client.post("/tenants/new", data={**data, "staticRealm": "lab", "staticStrict": "y"})
    assert response.status_code == 302, response.get_data(as_text=True)
    tenant = _stored(db, "static-form")
    assert (tenant.idp_type, tenant.idp_settings, tenant.check_status) == (
        "STATIC", {"realm": "lab", "strict": True}, "passed")
    edit = admin_client.get("/tenants/static-form/edit").get_data(as_text=True)
    assert 'value="lab"' in edit
    assert re.search(r'<input [^>]*\bchecked\b[^>]* name="staticStrict" type="checkbox"', edit)


def test_the_api_registers_reads_and_validates_a_plugin_type(static_type, app, db):
    api = make_api(app)
    contract = load_contract(app)
    body = {"tenantId": "static-api", "clientId": "static-api-client", "clientSecret": CLIENT_SECRET,
            "identityProviderType": "static", "staticSchema": {"realm": "lab"}}
    contract.validate({**body, "identityProviderType": "STATIC"}, "TenantRegistration")
    created = contract.check_response(api.post("/v1/tenant", json=body), "POST", "/v1/tenant")
    assert created["identityProviderType"] == "STATIC" and created["verified"] is True
    assert created["staticSchema"] == {"realm": "lab", "strict": False}
    assert "relationalSchema" not in created and "jwkSetUrl" not in created
    read = contract.check_response(api.get("/v1/tenant/static-api"), "GET", "/v1/tenant/{tenantId}")
    assert read["staticSchema"] == created["staticSchema"]
    listed = api.get("/v1/tenant?identityProviderType=STATIC").get_json()["items"]
    assert [t["tenantId"] for t in listed] == ["static-api"]

    refused = api.post("/v1/tenant", json={**body, "tenantId": "static-bad", "ldapSchema": {},
                                           "staticSchema": {"realm": "lab", "zone": "x"}})
    assert refused.status_code == 400
    assert refused.get_json()["errors"] == {
        "ldapSchema": "ldapSchema does not apply to identityProviderType STATIC; remove it.",
        "staticSchema.zone": "Unknown field 'zone'.",
    }
    unknown = api.post("/v1/tenant", json={**body, "tenantId": "static-x", "identityProviderType": "NOPE"})
    assert unknown.get_json()["errors"]["identityProviderType"] == (
        "Choose one of ORACLE, POSTGRES, LDAP, EXTERNAL, STATIC.")
    # And a built-in type may not carry the plug-in's section.
    ldap_body = {"tenantId": "ldap-x", "clientId": "ldap-x-client", "clientSecret": CLIENT_SECRET,
                 "identityProviderType": "LDAP", "staticSchema": {"realm": "lab"}}
    assert api.post("/v1/tenant", json=ldap_body).get_json()["errors"]["staticSchema"] == (
        "staticSchema does not apply to identityProviderType LDAP; remove it.")


def test_bulk_files_take_the_plugin_types_columns(static_type, admin_client, db):
    csv = ("tenantId,clientId,clientSecret,identityProviderType,staticSchema.realm,staticSchema.strict\n"
           f"static-bulk-1,static-bulk-1-client,{CLIENT_SECRET},STATIC,north,true\n"
           f"static-bulk-2,static-bulk-2-client,{CLIENT_SECRET},STATIC,south,false\n").encode()
    response = admin_client.post("/tenants/bulk/", data={"file": (io.BytesIO(csv), "static.csv")},
                                 content_type="multipart/form-data")
    assert response.status_code == 302, response.get_data(as_text=True)
    assert _stored(db, "static-bulk-1").idp_settings == {"realm": "north", "strict": True}
    assert _stored(db, "static-bulk-2").idp_settings == {"realm": "south", "strict": False}
    # The same file again: identical tenants are skipped, not reported as conflicts.
    again = admin_client.post("/tenants/bulk/", data={"file": (io.BytesIO(csv), "static.csv")},
                              content_type="multipart/form-data")
    progress = admin_client.get(again.headers["Location"].rstrip("/") + "/progress").get_json()
    assert (progress["created"], progress["skipped"], progress["conflicts"], progress["failed"]) == (0, 2, 0, 0)


def test_the_openapi_document_lists_the_plugin_type(static_type, client):
    document = client.get("/v1/openapi.json").get_json()
    schemas = document["components"]["schemas"]
    assert "STATIC" in schemas["Tenant"]["properties"]["identityProviderType"]["enum"]
    assert "staticSchema" in schemas["Tenant"]["properties"]
    assert [v["title"] for v in schemas["TenantRegistration"]["oneOf"]][-1] == "STATIC"
    assert "StaticSchemaRequest" in schemas
    assert "staticSchema" in schemas["TenantRegistration"]["description"]


def test_unregistered_types_leave_no_trace(client, app):
    assert registry.names() == ("ORACLE", "POSTGRES", "LDAP", "EXTERNAL")
    family = registry.register(Static())
    registry.unregister(family)
    with app.test_request_context():
        from portal.web.tenants.forms import TenantForm

        assert "staticRealm" not in TenantForm()
    document = client.get("/v1/openapi.json").get_json()
    assert "StaticSchemaRequest" not in document["components"]["schemas"]
    with pytest.raises(ValueError, match="already registered"):
        registry.register(type("Again", (Static,), {"types": ("LDAP",)})())
