"""Two relational tenants on one user-store schema (issue 16): warned about when their credentials differ (on save
and on the tenant page), refused at relationalSchema.dataSourceURL when they are the same, through the service,
the form, the API and bulk files alike. The store is compared as the driver resolves it."""
from __future__ import annotations

import json

import pytest

from portal.extensions import db
from portal.models import BulkJob
from portal.services.context import Actor
from portal.services.errors import NotFound, ValidationError
from portal.services.tenants import bulk, schema_sharing, service as tenants
from tests.api_helpers import make_api

ACTOR = Actor(name="schema-tests")
URL = "jdbc:postgresql://db.example.com:5432/users?currentSchema=store"
URL_FIELD = "relationalSchema.dataSourceURL"


def body(tenant_id: str, url: str = URL, user: str = "u1", password: str = "p1-secret", idp_type: str = "POSTGRES",
         **overrides) -> dict:
    value = {"tenantId": tenant_id, "clientId": f"{tenant_id}-client", "clientSecret": f"{tenant_id}-client-secret",
             "identityProviderType": idp_type,
             "relationalSchema": {"dataSourceURL": url, "dataSourceUserName": user, "dataSourcePassword": password}}
    value.update(overrides)
    return value


def register(tenant_id: str, **kwargs) -> tenants.Registration:
    return tenants.register_tenant(body(tenant_id, **kwargs), ACTOR, skip_check=True)


@pytest.fixture
def ctx(app):
    with app.app_context():
        register("alpha")
        yield app


def test_other_credentials_on_the_same_schema_are_warned_about(ctx):
    done = register("beta", user="u2", password="p2-secret")
    assert done.warnings == [
        "Tenant alpha also keeps its users in schema store of database users on db.example.com:5432 (with other "
        "credentials): the tenants can see each other's users unless the database's grants keep them apart."]
    assert len(schema_sharing.tenant_warnings(tenants.get_tenant("alpha"))) == 1  # each side sees the other
    assert "Tenant beta" in schema_sharing.tenant_warnings(tenants.get_tenant("alpha"))[0]


def test_the_same_credentials_on_the_same_schema_are_refused(ctx):
    with pytest.raises(ValidationError) as caught:
        register("gamma")
    message = caught.value.errors[URL_FIELD]
    assert message.startswith("Tenant alpha already uses schema store of database users on db.example.com:5432 "
                              "with the same user and password")
    with pytest.raises(NotFound):
        tenants.get_tenant("gamma")


@pytest.mark.parametrize("url", [
    "jdbc:postgresql://DB.Example.com/users?currentSchema=STORE",  # host case, default port, folded schema name
    "jdbc:postgresql://db.example.com.:5432/users?currentSchema=store&sslmode=require",
])
def test_the_same_store_written_differently_is_the_same_store(ctx, url):
    with pytest.raises(ValidationError):
        register("gamma", url=url)


@pytest.mark.parametrize("url", [
    "jdbc:postgresql://db.example.com:5432/users?currentSchema=other",
    "jdbc:postgresql://db.example.com:5432/users",  # the default search path: public
    "jdbc:postgresql://db.example.com:5432/users_2?currentSchema=store",
    "jdbc:postgresql://db2.example.com:5432/users?currentSchema=store",
])
def test_another_schema_database_or_server_is_fine(ctx, url):
    assert register("delta", url=url).warnings == []


def test_oracle_schemas_are_the_users_unless_named(ctx):
    oracle = "jdbc:oracle:thin:@//ora.example.com:1521/TENANTS"
    register("ora1", url=oracle, user="t1", idp_type="ORACLE")
    assert register("ora2", url=oracle, user="t2", idp_type="ORACLE").warnings == []  # schemas T1 and T2
    warned = register("ora3", url=oracle, user="T1", password="other-pw", idp_type="ORACLE")  # T1 again
    assert "schema T1 of database TENANTS on ora.example.com:1521" in warned.warnings[0]
    with pytest.raises(ValidationError):
        register("ora4", url=oracle, user="t1", idp_type="ORACLE")
    shared = oracle + "?currentSchema=users"
    register("ora5", url=shared, user="a", idp_type="ORACLE")
    assert register("ora6", url=shared, user="b", idp_type="ORACLE").warnings  # one named schema, two users


def test_an_update_onto_the_same_credentials_is_refused_and_a_rename_is_not(ctx):
    register("beta", user="u2", password="p2-secret")
    with pytest.raises(ValidationError) as caught:
        tenants.update_tenant("beta", body("beta", clientSecret=None), ACTOR, skip_check=True)
    assert "Tenant alpha already uses" in caught.value.errors[URL_FIELD]
    # The stored password counts when none is typed: user u1 with alpha's password stored on beta would share.
    tenants.update_tenant("beta", body("beta", user="u1", password="p1-other", clientSecret=None), ACTOR,
                          skip_check=True)
    renamed = tenants.update_tenant("beta", body("beta", user="u1", password=None, displayName="Beta",
                                                 clientSecret=None), ACTOR, skip_check=True)
    assert renamed.tenant.display_name == "Beta" and renamed.warnings == []  # settings unchanged: no check


def test_the_api_refuses_at_the_url_field(app, ctx):
    api = make_api(app)
    response = api.post("/v1/tenant", json=body("gamma", skipConnectionCheck=True))
    assert response.status_code in (400, 409, 422)
    problem = response.get_json()
    errors = problem.get("errors") or {}
    flat = errors if isinstance(errors, dict) else {e.get("field") or e.get("path"): e.get("message")
                                                    for e in errors}
    assert "Tenant alpha already uses" in json.dumps(flat) and URL_FIELD in json.dumps(flat)


def test_a_bulk_file_refuses_the_second_row_of_a_shared_store(ctx):
    rows = [body("bulk1", url=URL.replace("users", "bulkdb"), skipConnectionCheck=True),
            body("bulk2", url=URL.replace("users", "bulkdb"), skipConnectionCheck=True)]
    data = "\n".join(json.dumps(row) for row in rows).encode()
    job = bulk.create_job("shared.jsonl", data, ACTOR, dry_run=False, check_connections=False)
    bulk.run_job(job.id, ACTOR)
    done = db.session.get(BulkJob, job.id)
    problems, _count = bulk.problems(done)
    assert [p["row"] for p in problems] == [2]
    assert "Tenant bulk1 already uses" in problems[0]["errors"][URL_FIELD]


def test_the_form_warns_on_save_and_the_tenant_page_shows_it(ctx, admin_client):
    response = admin_client.post("/tenants/new", data={
        "tenantId": "web", "clientId": "web-client", "clientSecret": "web-client-secret", "identityProviderType":
        "POSTGRES", "supportAlgorithm": "HS256", "rsaKeySize": "2048", "dataSourceURL": URL,
        "dataSourceUserName": "u9", "dataSourcePassword": "p9-secret", "ownerProvisioningMethod": "invite-via-email",
        "skip_check": "y", "save": "Register tenant"}, follow_redirects=True)
    page = response.get_data(as_text=True)
    assert 'class="flash flash-warning"' in page and "JDBC URL: Tenant alpha also keeps its users" in page
    assert 'id="schema-sharing"' in page  # the tenant page says so too, each time it is shown
    assert 'id="schema-sharing"' in admin_client.get("/tenants/alpha").get_data(as_text=True)

    refused = admin_client.post("/tenants/new", data={
        "tenantId": "web2", "clientId": "web2-client", "clientSecret": "web2-client-secret",
        "identityProviderType": "POSTGRES", "supportAlgorithm": "HS256", "rsaKeySize": "2048", "dataSourceURL": URL,
        "dataSourceUserName": "u1", "dataSourcePassword": "p1-secret", "ownerProvisioningMethod": "invite-via-email",
        "skip_check": "y", "save": "Register tenant"})
    text = refused.get_data(as_text=True)
    assert refused.status_code == 200
    assert '<a href="#dataSourceURL" data-field-link>JDBC URL: Tenant alpha already uses' in text
