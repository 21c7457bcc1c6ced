"""Entra ID tenants registered through every door against the simulator (its own process, HTTPS, reached through the
outbound policy): POST /v1/tenant with the OpenAPI document as the oracle, bulk CSV and JSON Lines, the HTML form;
the connection check's report (discovery, keys, one test token); the tenant page and the audit."""
from __future__ import annotations

import io
import json

import pytest
import sqlalchemy as sa

from portal.models import AuditEvent
from simulators.entra_directory import API_MULTI, API_V2, CONTOSO, FABRIKAM
from tests.api_helpers import load_contract, make_api
from tests.entra_helpers import LEGACY_URI, app_for, entra_body, legacy, multi_tenant, single_tenant
from tests.test_bulk import to_csv
from tests.test_demo import run_demo


@pytest.fixture
def app(make_app, entra_sim):
    """admin_client and the API use this app: allowed to reach the simulator; bulk jobs run inline."""
    return app_for(make_app, entra_sim, BULK_RUN_INLINE=True)


@pytest.fixture
def api(app):
    return make_api(app)


def test_api_registers_a_single_tenant_directory_after_a_real_check(app, api, entra_sim):
    contract = load_contract(app)
    body = single_tenant(entra_sim.authority)
    contract.validate(body, "TenantRegistration")
    created = contract.check_response(api.post("/v1/tenant", json=body), "POST", "/v1/tenant")
    base = f"{entra_sim.authority}/{CONTOSO}"
    assert (created["jwkSetUrl"], created["issuer"]) == (f"{base}/discovery/v2.0/keys", f"{base}/v2.0")
    assert created["oidcSchema"]["scope"] == f"{API_V2}/.default"
    assert created["entraId"] == {"directory": CONTOSO, "authority": entra_sim.authority, "tokenVersions": ["2.0"],
                                  "audiences": [API_V2], "allowedDirectories": [], "anyDirectory": False}
    summary = created["connectionCheck"]["summary"]
    assert created["verified"] and summary.startswith(f"Entra ID directory {CONTOSO}: discovery and ")
    assert summary.endswith("test token v2.0 verified")
    read = contract.check_response(api.get("/v1/tenant/contoso-api"), "GET", "/v1/tenant/{tenantId}")
    assert read["entraId"] == created["entraId"]


def test_the_check_reports_each_step_and_understands_the_multi_tenant_template(app, api, entra_sim):
    body = multi_tenant(entra_sim.authority)
    created = api.post("/v1/tenant", json=body)
    assert created.status_code == 201, created.get_data(as_text=True)
    assert created.get_json()["issuer"] == f"{entra_sim.authority}/{{tenantid}}/v2.0"
    summary = created.get_json()["connectionCheck"]["summary"]
    assert summary.startswith("Entra ID organizations (multi-tenant): ") and summary.endswith("v2.0 verified")
    with app.test_request_context():
        from portal.services.tenants import service as tenants

        check = tenants.test_connection(legacy(entra_sim.authority))
    assert check.ok, check.details
    assert check.details[0].endswith("/contoso.onmicrosoft.com/v2.0/.well-known/openid-configuration")
    assert f"verified domain contoso.onmicrosoft.com is directory {CONTOSO}" in check.details[1]
    assert any(line.startswith("JWKS: ") for line in check.details)
    assert any(line.startswith(f"Test token for {body['clientId']}: ver 1.0, tid {CONTOSO}, aud {LEGACY_URI}")
               for line in check.details)
    with app.test_request_context():
        wrong = tenants.test_connection({**legacy(entra_sim.authority), "clientSecret": "not-the-secret"})
    assert wrong.ok and wrong.summary.endswith("no test token")  # the client may not be an Entra application
    assert any("HTTP 401" in line and "invalid_client: AADSTS" in line for line in wrong.details), wrong.details


def test_a_token_the_tenant_would_refuse_fails_the_check_at_its_field(api, entra_sim):
    body = entra_body("v2-only-legacy", entra_sim.authority, audiences=[LEGACY_URI], versions=["2.0"])
    response = api.post("/v1/tenant", json=body)
    assert response.status_code == 400
    problem = response.get_json()
    assert "v1.0 tokens" in problem["errors"]["entraId.tokenVersions"]
    assert any("Test token" in line for line in problem["check"]["details"])


def test_bad_values_are_refused_at_their_field_paths(api, entra_sim):
    body = multi_tenant(entra_sim.authority, allowed=[FABRIKAM, "fabrikam"])
    body["entraId"]["audiences"] = ["orders"]
    body["issuer"] = "https://login.microsoftonline.com/common/v2.0"
    response = api.post("/v1/tenant", json=body)
    assert response.status_code == 400
    errors = response.get_json()["errors"]
    assert set(errors) == {"entraId.allowedDirectories[1]", "entraId.audiences[0]"}  # issuer: once the preset parses
    body = multi_tenant(entra_sim.authority)
    body["issuer"] = "https://login.microsoftonline.com/common/v2.0"
    assert set(api.post("/v1/tenant", json=body).get_json()["errors"]) == {"issuer"}


def test_any_directory_is_audited_and_shown_as_a_warning(app, api, entra_sim, admin_client, db):
    body = entra_body("anyone", entra_sim.authority, directory="common", audiences=[API_MULTI], anyDirectory=True)
    assert api.post("/v1/tenant", json=body).status_code == 201
    event = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "tenant.register")).scalar_one()
    assert event.changes["entraId"]["after"]["anyDirectory"] is True
    page = admin_client.get("/tenants/anyone").get_data(as_text=True)
    assert "any directory</span>" in page and "Tokens of every Entra ID directory are accepted." in page


def test_tenant_page_shows_directory_versions_audiences_and_allow_list(api, entra_sim, admin_client):
    for body in (legacy(entra_sim.authority), multi_tenant(entra_sim.authority)):
        assert api.post("/v1/tenant", json=body).status_code == 201
    page = admin_client.get("/tenants/contoso-legacy").get_data(as_text=True)
    assert "<code>contoso.onmicrosoft.com</code>" in page and "<dd>1.0</dd>" in page
    assert f"<code>{LEGACY_URI}</code>" in page and "entra-directories" not in page
    page = admin_client.get("/tenants/partners").get_data(as_text=True)
    assert "(multi-tenant)" in page and f'<dd id="entra-directories"><code>{FABRIKAM}</code>' in page


def test_the_html_form_registers_and_edits_an_entra_tenant(api, entra_sim, admin_client):
    form = {"tenantId": "form-entra", "clientId": "6f5d4e3a-8b7c-4d6e-8f1a-4b5c6d7e8f9a",
            "clientSecret": "Sim8Q~daemon-secret", "identityProviderType": "EXTERNAL", "supportAlgorithm": "RS256",
            "rsaKeySize": "2048", "ownerProvisioningMethod": "invite-via-email", "entraDirectory": "organizations",
            "entraAuthority": entra_sim.authority, "entraAudiences": API_MULTI,
            "entraAllowedDirectories": f"{FABRIKAM}\n{CONTOSO}", "save": "Register tenant"}
    response = admin_client.post("/tenants/new", data=form)
    assert response.status_code == 302, response.get_data(as_text=True)
    view = api.get("/v1/tenant/form-entra").get_json()
    assert view["entraId"]["allowedDirectories"] == sorted([FABRIKAM, CONTOSO]) and view["verified"]
    edit = admin_client.get("/tenants/form-entra/edit").get_data(as_text=True)
    assert f"{CONTOSO}\n{FABRIKAM}</textarea>" in edit and f'value="{API_MULTI}"' in edit
    derived = {"jwkSetUrl": view["jwkSetUrl"], "issuer": view["issuer"], **view["oidcSchema"]}  # as the page has them
    saved = admin_client.post("/tenants/form-entra/edit", data={
        **form, **derived, "entraDirectory": CONTOSO, "entraAudiences": API_V2, "entraAllowedDirectories": "",
        "save": "Save changes"})
    assert saved.status_code == 302, saved.get_data(as_text=True)
    view = api.get("/v1/tenant/form-entra").get_json()
    assert (view["entraId"]["directory"], view["issuer"]) == (CONTOSO, f"{entra_sim.authority}/{CONTOSO}/v2.0")
    refused = admin_client.post("/tenants/new", data={**form, "tenantId": "form-bad",
                                                       "entraAllowedDirectories": "fabrikam"})
    assert refused.status_code == 200
    assert "is not a directory (tenant) id: give its GUID." in refused.get_data(as_text=True)


def _csv(rows: list[dict]) -> bytes:
    """entraId's lists as one cell each, separated by spaces, as a spreadsheet would hold them."""
    return to_csv([{**body, "entraId": {k: " ".join(v) if isinstance(v, list) else v
                                        for k, v in body["entraId"].items()}} for body in rows])


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_bulk_onboards_entra_tenants_with_their_checks(api, entra_sim, admin_client, kind):
    rows = [single_tenant(entra_sim.authority), multi_tenant(entra_sim.authority),
            entra_body("any-common", entra_sim.authority, directory="common", audiences=[API_MULTI],
                       anyDirectory=True)]
    data = _csv(rows) if kind == "csv" else "".join(json.dumps(r) + "\n" for r in rows).encode()
    form = {"file": (io.BytesIO(data), f"entra.{kind}"), "check_connections": "y"}
    response = admin_client.post("/tenants/bulk/", data=form, content_type="multipart/form-data")
    assert response.status_code == 302, response.get_data(as_text=True)
    job = response.headers["Location"].rstrip("/").rsplit("/", 1)[1]
    progress = admin_client.get(f"/tenants/bulk/{job}/progress").json
    assert (progress["created"], progress["failed"], progress["conflicts"]) == (3, 0, 0), progress
    views = {t["tenantId"]: t for t in api.get("/v1/tenant?identityProviderType=EXTERNAL").get_json()["items"]}
    assert views["partners"]["entraId"]["allowedDirectories"] == [FABRIKAM]
    assert views["any-common"]["entraId"]["anyDirectory"] is True
    assert all(view["verified"] for view in views.values())
    again = admin_client.post("/tenants/bulk/", data={"file": (io.BytesIO(data), f"entra.{kind}")},
                              content_type="multipart/form-data")
    rerun = admin_client.get(f"/tenants/bulk/{again.headers['Location'].rstrip('/').rsplit('/', 1)[1]}/progress").json
    assert rerun["skipped"] == 3  # identical settings: nothing changes


def test_make_demo_registers_an_entra_tenant_and_says_what_to_try(app, tmp_path):
    """`make demo --check` starts the Entra simulator beside the WSO2 ones and registers entra-demo after a passing
    check (a test token included); the served portal gets the same outbound settings through PORTAL_*."""
    done = run_demo(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Entra demo tenant:      entra-demo: directory {CONTOSO} (contoso.onmicrosoft.com)" in done.stdout
    assert "test token v2.0 verified" in done.stdout
    assert f"-d scope=api://{API_V2}/.default" in done.stdout and "--cacert" in done.stdout
