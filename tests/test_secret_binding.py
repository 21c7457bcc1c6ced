"""Issue 13, reproduction 1: a stored secret is only ever sent to the target it was entered for.

Each test points a setting at a listener the "attacker" runs (tests/listeners.py: a fake PostgreSQL, a fake LDAP
server, an HTTPS server with a trusted certificate), leaves the password blank ("keep the stored one") and checks that
the listener receives no stored secret, by form, API and bulk; and that it does receive the NEW password once the
administrator enters it again. An unchanged target (spelled differently) keeps working with a blank password."""
from __future__ import annotations

import copy
import json

import pytest
import sqlalchemy as sa

from portal.models import AuditEvent, Tenant
from portal.services.certificates import service as certificates
from portal.services.context import Actor
from portal.services.errors import CheckFailed, ValidationError
from portal.services.sharing import connections, service as sharing
from portal.services.tenants import bulk, secret_binding as sb
from simulators.apim import ApimSimulator
from simulators.is7 import Is7Simulator
from tests.api_helpers import SEED_POSTGRES, make_api
from tests.listeners import FakeHttps, FakeLdap, FakePostgres

ACTOR = Actor(name="root-admin")
DB_PASSWORD = "Stored-DB-Secret-8841"
BIND_PASSWORD = "Stored-Bind-Secret-5523"
NEW_PASSWORD = "Newly-Entered-3390"
MOVED = "You changed where this password is sent"
PG_URL = "jdbc:postgresql://127.0.0.1:5432/postgres?currentSchema=binding"


def pg_body(tenant_id: str = "bound", url: str = PG_URL, **schema) -> dict:
    return {"tenantId": tenant_id, "clientId": f"{tenant_id}-client", "clientSecret": "bound-client-secret-1",
            "identityProviderType": "POSTGRES", "supportAlgorithm": "HS256", "signingKey": "k" * 32,
            "relationalSchema": {"dataSourceURL": url, "dataSourceUserName": "postgres",
                                 "dataSourcePassword": DB_PASSWORD, **schema}}


def ldap_body(tenant_id: str = "bound-ldap", url: str = "ldap://127.0.0.1:1", **schema) -> dict:
    return {"tenantId": tenant_id, "clientId": f"{tenant_id}-client", "clientSecret": "bound-client-secret-2",
            "identityProviderType": "LDAP", "supportAlgorithm": "HS256", "signingKey": "k" * 32,
            "ldapSchema": {"ldapURLForDirectoryService": url, "directoryServiceDomainName": "example.com",
                           "directoryServiceRootDistinguishedName": "dc=example,dc=com",
                           "bindDN": "cn=admin,dc=example,dc=com", "bindPassword": BIND_PASSWORD, **schema}}


def without(body: dict, section: str, name: str) -> dict:
    body = copy.deepcopy(body)
    body[section].pop(name, None)
    return body


def moved(body: dict, section: str, **changes) -> dict:
    body = copy.deepcopy(body)
    body[section].update(changes)
    return body


def register(api, body: dict) -> None:
    response = api.post("/v1/tenant", json={**body, "skipConnectionCheck": True})
    assert response.status_code == 201, response.get_data(as_text=True)


def stored(db, tenant_id: str) -> Tenant:
    db.session.expire_all()
    return db.session.execute(sa.select(Tenant).where(Tenant.tenant_key == tenant_id)).scalar_one()


# --- PUT /v1/tenant/<id> ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("skip", [False, True], ids=["checked", "skip-check"])
def test_api_moving_the_database_never_sends_the_stored_password(api, db, skip):
    register(api, pg_body())
    with FakePostgres() as listener:
        body = moved(without(pg_body(), "relationalSchema", "dataSourcePassword"), "relationalSchema",
                     dataSourceURL=f"jdbc:postgresql://127.0.0.1:{listener.port}/postgres?currentSchema=binding")
        response = api.put("/v1/tenant/bound", json={**body, "skipConnectionCheck": skip})
        assert response.status_code == 400
        message = response.get_json()["errors"]["relationalSchema.dataSourcePassword"]
        assert MOVED in message and "Enter the password again" in message
        assert listener.connections == 0 and not listener.saw(DB_PASSWORD)
        # The recheck after a refused edit still goes to the old place with the stored password.
        assert stored(db, "bound").idp_settings["dataSourceURL"] == PG_URL

        # Entered again, the new password (and only it) goes to the new place.
        again = moved(pg_body(), "relationalSchema", dataSourcePassword=NEW_PASSWORD,
                      dataSourceURL=body["relationalSchema"]["dataSourceURL"])
        response = api.put("/v1/tenant/bound", json=again)
        assert response.status_code == 400 and response.get_json()["title"] == "Connection check failed"
        assert listener.saw(NEW_PASSWORD) and not listener.saw(DB_PASSWORD)
    assert stored(db, "bound").idp_secret == DB_PASSWORD


@pytest.mark.parametrize("change", [
    {"dataSourceURL": "jdbc:postgresql://127.0.0.1:5433/postgres?currentSchema=binding"},
    {"dataSourceURL": "jdbc:postgresql://localhost:5432/postgres?currentSchema=binding"},
    {"dataSourceURL": "jdbc:postgresql://127.0.0.1:5432/other?currentSchema=binding"},
    {"dataSourceURL": "jdbc:postgresql://127.0.0.1:5432/postgres?currentSchema=elsewhere"},
    {"dataSourceURL": "jdbc:postgresql://127.0.0.1:5432/postgres?currentSchema=binding&sslmode=disable"},
    {"dataSourceUserName": "someone_else"},
], ids=["port", "host", "database", "schema", "parameter", "user"])
def test_api_every_part_of_the_database_target_binds_the_password(api, db, change):
    register(api, pg_body())
    body = moved(without(pg_body(), "relationalSchema", "dataSourcePassword"), "relationalSchema", **change)
    response = api.put("/v1/tenant/bound", json={**body, "skipConnectionCheck": True})
    assert response.status_code == 400, response.get_data(as_text=True)
    assert MOVED in response.get_json()["errors"]["relationalSchema.dataSourcePassword"]
    tenant = stored(db, "bound")
    assert tenant.idp_settings["dataSourceURL"] == PG_URL and tenant.idp_settings["dataSourceUserName"] == "postgres"


@pytest.mark.parametrize("skip", [False, True], ids=["checked", "skip-check"])
def test_api_moving_the_directory_never_sends_the_stored_bind_password(api, db, skip):
    register(api, ldap_body())
    with FakeLdap() as listener:
        url = f"ldap://127.0.0.1:{listener.port}"
        body = moved(without(ldap_body(), "ldapSchema", "bindPassword"), "ldapSchema", ldapURLForDirectoryService=url)
        response = api.put("/v1/tenant/bound-ldap", json={**body, "skipConnectionCheck": skip})
        assert response.status_code == 400
        assert MOVED in response.get_json()["errors"]["ldapSchema.bindPassword"]
        assert not listener.saw(BIND_PASSWORD)
        again = moved(ldap_body(), "ldapSchema", ldapURLForDirectoryService=url, bindPassword=NEW_PASSWORD)
        response = api.put("/v1/tenant/bound-ldap", json=again)
        assert response.status_code == 400 and response.get_json()["title"] == "Connection check failed"
        assert listener.saw(NEW_PASSWORD) and not listener.saw(BIND_PASSWORD)
    assert stored(db, "bound-ldap").idp_secret == BIND_PASSWORD


@pytest.mark.parametrize("change", [
    {"ldapURLForDirectoryService": "ldaps://127.0.0.1:1"},
    {"ldapURLForDirectoryService": "ldap://127.0.0.2:1"},
    {"ldapURLForDirectoryService": "ldap://127.0.0.1:2"},
    {"bindDN": "cn=other,dc=example,dc=com"},
    {"startTLS": True},
], ids=["scheme", "host", "port", "bind-dn", "starttls"])
def test_api_every_part_of_the_directory_target_binds_the_password(api, db, change):
    register(api, ldap_body())
    body = moved(without(ldap_body(), "ldapSchema", "bindPassword"), "ldapSchema", **change)
    response = api.put("/v1/tenant/bound-ldap", json={**body, "skipConnectionCheck": True})
    assert response.status_code == 400, response.get_data(as_text=True)
    assert MOVED in response.get_json()["errors"]["ldapSchema.bindPassword"]


def test_an_unchanged_target_spelled_differently_keeps_the_stored_password(api, db, seed_user_store):
    response = api.post("/v1/tenant", json=SEED_POSTGRES)
    assert response.status_code == 201, response.get_data(as_text=True)
    body = without(SEED_POSTGRES, "relationalSchema", "dataSourcePassword")
    # Same host (case), default port written out, same database and schema: the check runs with the stored password.
    body["relationalSchema"]["dataSourceURL"] = "jdbc:postgresql://LOCALHOST/userdbll?currentSchema=userschemall"
    body["supportAlgorithm"] = "HS384"
    body["signingKey"] = "s" * 48
    response = api.put("/v1/tenant/TIBCO", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["connectionCheck"]["status"] == "passed"
    assert stored(db, "tibco").idp_secret == "userll"


def test_owner_password_belongs_to_the_owner_user_name(api, db):
    owner = {"username": "alice", "email": "alice@example.com", "provisioningMethod": "inline-password",
             "password": "Owner-Secret-7781"}
    register(api, {**pg_body(), "owner": owner})
    renamed = {**pg_body(), "owner": {**{k: v for k, v in owner.items() if k != "password"}, "username": "mallory"}}
    response = api.put("/v1/tenant/bound", json={**renamed, "skipConnectionCheck": True})
    assert response.status_code == 400
    assert "Enter the password again" in response.get_json()["errors"]["owner.password"]
    same = {**pg_body(), "owner": {k: v for k, v in owner.items() if k != "password"}}
    assert api.put("/v1/tenant/bound", json={**same, "skipConnectionCheck": True}).status_code == 200
    assert stored(db, "bound").owner_password == "Owner-Secret-7781"


@pytest.mark.parametrize("url", [
    "jdbc:postgresql://127.0.0.1:5432/postgres?currentSchema=binding&password=Url-Secret-1",
    "jdbc:postgresql://127.0.0.1:5432/postgres?PASSWORD=Url-Secret-1",
    "jdbc:postgresql://127.0.0.1:5432/postgres?user=postgres&Password=Url-Secret-1",
    "jdbc:postgresql://postgres:Url-Secret-1@127.0.0.1:5432/postgres",
    "jdbc:oracle:thin:scott/Url-Secret-1@//db.example.com:1521/orcl",
    "jdbc:postgresql://127.0.0.1:5432/postgres?sslpassword=Url-Secret-1",
], ids=["query", "upper", "mixed", "userinfo", "oracle-userinfo", "sslpassword"])
def test_a_password_in_the_jdbc_url_is_refused_and_never_echoed(api, db, url):
    body = moved(pg_body(), "relationalSchema", dataSourceURL=url)
    if "oracle" in url:
        body["identityProviderType"] = "ORACLE"
    response = api.post("/v1/tenant", json={**body, "skipConnectionCheck": True})
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert "Url-Secret-1" not in text
    assert "password" in response.get_json()["errors"]["relationalSchema.dataSourceURL"].lower()
    assert db.session.execute(sa.select(sa.func.count()).select_from(Tenant)).scalar_one() == 0
    assert all("Url-Secret-1" not in str(e.changes) for e in db.session.execute(sa.select(AuditEvent)).scalars())


# --- the edit form ------------------------------------------------------------------------------------------------


def form_data(url: str, **extra) -> dict:
    data = {"displayName": "Bound", "clientId": "bound-client", "clientSecret": "", "signingKey": "",
            "identityProviderType": "POSTGRES", "supportAlgorithm": "HS256", "rsaKeySize": "2048",
            "ownerProvisioningMethod": "invite-via-email", "dataSourceURL": url,
            "dataSourceUserName": "postgres", "dataSourcePassword": ""}
    data.update(extra)
    return data


@pytest.mark.parametrize("button", [{"test_connection": "Test connection"}, {}, {"skip_check": "y"}],
                         ids=["test-connection", "save", "save-without-check"])
def test_form_moving_the_database_never_sends_the_stored_password(api, admin_client, db, button):
    register(api, pg_body())
    with FakePostgres() as listener:
        url = f"jdbc:postgresql://127.0.0.1:{listener.port}/postgres?currentSchema=binding"
        response = admin_client.post("/tenants/bound/edit", data={**form_data(url), **button})
        page = response.get_data(as_text=True)
        assert response.status_code == 200 and MOVED in page
        assert listener.connections == 0 and not listener.saw(DB_PASSWORD)
        response = admin_client.post("/tenants/bound/edit", data={**form_data(url, dataSourcePassword=NEW_PASSWORD),
                                                                   "test_connection": "Test connection"})
        assert listener.saw(NEW_PASSWORD) and not listener.saw(DB_PASSWORD)
        assert NEW_PASSWORD not in response.get_data(as_text=True)
    assert stored(db, "bound").idp_settings["dataSourceURL"] == PG_URL


def test_form_does_not_echo_a_password_found_in_the_url(api, admin_client, db):
    register(api, pg_body())
    url = "jdbc:postgresql://127.0.0.1:5432/postgres?currentSchema=binding&password=Url-Secret-2"
    response = admin_client.post("/tenants/bound/edit", data=form_data(url, skip_check="y"))
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "Url-Secret-2" not in page and "password=***" in page
    assert "password" in page.lower() and stored(db, "bound").idp_settings["dataSourceURL"] == PG_URL


def test_form_moving_the_directory_never_sends_the_stored_bind_password(api, admin_client, db):
    register(api, ldap_body())
    with FakeLdap() as listener:
        data = {"displayName": "Bound", "clientId": "bound-ldap-client", "clientSecret": "", "signingKey": "",
                "identityProviderType": "LDAP", "supportAlgorithm": "HS256", "rsaKeySize": "2048",
                "ownerProvisioningMethod": "invite-via-email",
                "ldapURLForDirectoryService": f"ldap://127.0.0.1:{listener.port}",
                "directoryServiceDomainName": "example.com",
                "directoryServiceRootDistinguishedName": "dc=example,dc=com",
                "bindDN": "cn=admin,dc=example,dc=com", "bindPassword": "", "test_connection": "Test connection"}
        page = admin_client.post("/tenants/bound-ldap/edit", data=data).get_data(as_text=True)
        assert MOVED in page and not listener.saw(BIND_PASSWORD)
        admin_client.post("/tenants/bound-ldap/edit", data={**data, "bindPassword": NEW_PASSWORD})
        assert listener.saw(NEW_PASSWORD) and not listener.saw(BIND_PASSWORD)


def test_a_password_stored_in_a_url_before_the_rule_is_never_shown(api, admin_client, db):
    register(api, pg_body())
    tenant = stored(db, "bound")
    tenant.idp_settings = {**tenant.idp_settings, "dataSourceURL": PG_URL + "&password=Legacy-Secret-9"}
    db.session.commit()
    for path in ("/tenants/bound", "/tenants/bound/edit"):
        page = admin_client.get(path).get_data(as_text=True)
        assert "Legacy-Secret-9" not in page and "***" in page
    answer = api.get("/v1/tenant/bound").get_json()
    assert answer["relationalSchema"]["dataSourceURL"].endswith("&password=***")
    # Saving the page as shown is refused at the URL until the password is taken out of it.
    body = moved(pg_body(), "relationalSchema", dataSourceURL=answer["relationalSchema"]["dataSourceURL"])
    response = api.put("/v1/tenant/bound", json={**body, "skipConnectionCheck": True})
    assert "contains a password" in response.get_json()["errors"]["relationalSchema.dataSourceURL"]
    assert api.put("/v1/tenant/bound", json={**pg_body(), "skipConnectionCheck": True}).status_code == 200
    assert all("Legacy-Secret-9" not in str(e.changes) for e in db.session.execute(sa.select(AuditEvent)).scalars())


# --- bulk ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def inline_app(make_app):
    return make_app(BULK_RUN_INLINE=True)


def test_bulk_rows_never_send_a_stored_password(inline_app, db):
    app = inline_app
    register(make_api(app), pg_body())
    with FakePostgres() as listener:
        url = f"jdbc:postgresql://127.0.0.1:{listener.port}/postgres?currentSchema=binding"
        rows = [moved(without(pg_body(), "relationalSchema", "dataSourcePassword"), "relationalSchema",
                      dataSourceURL=url),
                moved(pg_body(), "relationalSchema", dataSourceURL=url, dataSourcePassword=NEW_PASSWORD),
                moved(pg_body("fresh"), "relationalSchema", dataSourceURL=url, dataSourcePassword="Fresh-Row-Secret")]
        data = "\n".join(json.dumps(r) for r in rows).encode()
        with app.app_context():
            job = bulk.create_job("rows.jsonl", data, ACTOR, dry_run=False, check_connections=True)
            outcomes = [entry["outcome"] for entry in job.report]
        assert outcomes[0] in (bulk.FAILED, bulk.CONFLICT) and outcomes[1] == bulk.CONFLICT
        assert not listener.saw(DB_PASSWORD) and not listener.saw(NEW_PASSWORD)
        assert listener.saw("Fresh-Row-Secret")  # a new tenant's row: the password entered for this listener
    assert stored(db, "bound").idp_settings["dataSourceURL"] == PG_URL


# --- product connections ------------------------------------------------------------------------------------------

IS_PASSWORD = "Stored-IS-Connection-6620"


@pytest.fixture
def is7(pki):
    with Is7Simulator(server_cert_pem=pki.server.cert_pem, server_key_pem=pki.server.key_pem,
                      client_ca_pem=pki.client_ca.cert_pem, basic_users={"portal": IS_PASSWORD,
                                                                         "sync-admin": "Sync-Secret-1"}) as sim:
        yield sim


@pytest.fixture
def attacker(pki):
    with FakeHttps(pki.server.cert_pem, pki.server.key_pem) as listener:
        yield listener


def trust(app, pki):
    with app.app_context():
        certificates.upload_certificate("ca", pki.server_ca.cert_pem.encode(), ACTOR)


def basic(url: str, **extra) -> dict:
    return {"base_url": url, "auth": "basic", "username": "portal", "password": IS_PASSWORD,
            "trust_roles": ["ca"], "connect_timeout": "2", "read_timeout": "5", **extra}


def test_connection_moving_the_base_url_never_sends_the_stored_password(app, db, is7, pki, attacker):
    trust(app, pki)
    with app.app_context():
        connections.save("is", basic(is7.base_url), ACTOR)
        for check in (True, False):
            with pytest.raises(ValidationError) as info:
                connections.save("is", basic(attacker.base_url, password=""), ACTOR, check=check)
            assert not isinstance(info.value, CheckFailed)
            assert MOVED in info.value.errors["password"]
        with pytest.raises(ValidationError) as info:
            connections.save("is", basic(is7.base_url, username="admin", password=""), ACTOR)
        assert "password" in info.value.errors
        assert connections.test("is").ok  # still stored for the simulator
        assert attacker.connections == 0 and not attacker.saw(IS_PASSWORD)
        with pytest.raises(CheckFailed):
            connections.save("is", basic(attacker.base_url, password=NEW_PASSWORD), ACTOR)
        assert attacker.saw(NEW_PASSWORD) and not attacker.saw(IS_PASSWORD)
        # The same place written differently keeps the password.
        same = is7.base_url.replace("localhost", "LOCALHOST") + "/"
        assert connections.save("is", basic(same, password=""), ACTOR).password == IS_PASSWORD


def test_connection_page_shows_why_the_password_is_needed(app, admin_client, is7, pki, attacker):
    trust(app, pki)
    with app.app_context():
        connections.save("is", basic(is7.base_url), ACTOR)
    response = admin_client.post("/sharing/connections/is", data={**basic(attacker.base_url, password=""),
                                                                  "trust_roles": "ca"})
    assert response.status_code == 400 and MOVED in response.get_data(as_text=True)
    assert not attacker.saw(IS_PASSWORD)


# --- sharing ------------------------------------------------------------------------------------------------------


def apim_to_is(url: str, **extra) -> dict:
    return {"identity_server_base_url": url, "is_username": "sync-admin", "is_password": "Sync-Secret-1",
            "auto_configure_key_manager": True, "skip_create_resident_key_manager": True, **extra}


def test_sharing_moving_the_is_url_never_sends_the_stored_password(app, db, is7, pki, attacker):
    trust(app, pki)
    with app.app_context():
        sharing.set_direction("apim_to_is", apim_to_is(is7.base_url), ACTOR, confirm=False)
        for check in (True, False):
            with pytest.raises(ValidationError) as info:
                sharing.set_direction("apim_to_is", apim_to_is(attacker.base_url, is_password=""), ACTOR,
                                      confirm=False, check=check)
            assert not isinstance(info.value, CheckFailed)
            assert MOVED in info.value.errors["is_password"]
        with pytest.raises(ValidationError) as info:
            sharing.set_direction("apim_to_is", apim_to_is(is7.base_url, is_username="other", is_password=""), ACTOR,
                                  confirm=False)
        assert "is_password" in info.value.errors
        assert not attacker.saw("Sync-Secret-1") and attacker.connections == 0
        with pytest.raises(CheckFailed):
            sharing.set_direction("apim_to_is", apim_to_is(attacker.base_url, is_password=NEW_PASSWORD), ACTOR,
                                  confirm=False)
        assert attacker.saw(NEW_PASSWORD) and not attacker.saw("Sync-Secret-1")
        # Unchanged (trailing slash aside): the stored password is kept and the pre-flight passes.
        saved = sharing.set_direction("apim_to_is", apim_to_is(is7.base_url + "/", is_password=""), ACTOR,
                                      confirm=False)
        assert saved.is_password == "Sync-Secret-1"


def test_sharing_notify_password_does_not_follow_a_moved_api_manager(app, db, pki, attacker):
    trust(app, pki)
    with ApimSimulator(server_cert_pem=pki.server.cert_pem, server_key_pem=pki.server.key_pem) as apim:
        apim.add_user("tenant-sync", "Notify-Secret-1")
        with app.app_context():
            connections.save("apim", {"base_url": apim.base_url, "username": "admin", "password": "admin",
                                      "trust_roles": ["ca"]}, ACTOR)
            sharing.set_direction("is_to_apim", {"apim_username": "tenant-sync", "apim_password": "Notify-Secret-1",
                                                 "auto_configure_key_manager": False}, ACTOR, confirm=False)
            with pytest.raises(ValidationError) as info:  # another user name: the password again
                sharing.set_direction("is_to_apim", {"apim_username": "someone", "apim_password": "",
                                                     "auto_configure_key_manager": False}, ACTOR, confirm=False)
            assert "apim_password" in info.value.errors
            # The API Manager connection moves (its own password entered again): the notify password stays behind.
            connections.save("apim", {"base_url": attacker.base_url, "username": "admin", "password": "attacker",
                                      "trust_roles": ["ca"]}, ACTOR, check=False)
            for check in (True, False):
                with pytest.raises(ValidationError) as info:
                    sharing.set_direction("is_to_apim", {"apim_username": "tenant-sync", "apim_password": "",
                                                         "auto_configure_key_manager": False}, ACTOR, confirm=False,
                                          check=check)
                assert not isinstance(info.value, CheckFailed) and "apim_password" in info.value.errors
            _, text = sharing.download("is", "is_to_apim", ACTOR, include_passwords=True)
            assert "Notify-Secret-1" not in text
    assert not attacker.saw("Notify-Secret-1") and not attacker.saw("admin")


# --- the rule's normalisation, on its own -------------------------------------------------------------------------


@pytest.mark.parametrize("before,after", [
    (sb.jdbc_target("jdbc:postgresql://LOCALHOST/db?currentSchema=s", "u"),
     sb.jdbc_target("jdbc:postgresql://localhost.:5432/db?currentSchema=S", "u")),
    (sb.ldap_target("ldap://[::1]", False, "cn=a"), sb.ldap_target("ldap://[0:0::1]:389", False, "cn=a")),
    (sb.ldap_target("ldaps://dir.example.com", False, "cn=a"), sb.ldap_target("LDAPS://DIR.example.com:636", False,
                                                                               "cn=a")),
    (sb.http_target("https://IS.example.com/", "x"), sb.http_target("https://is.example.com:443", "x")),
], ids=["jdbc", "ldap-ipv6", "ldaps-default-port", "https-default-port"])
def test_the_same_place_written_differently_is_unchanged(before, after):
    assert before.changed(after) == [] and sb.refusal(stored=True, entered=False, before=before, after=after) is None


def test_the_refusal_names_what_changed_and_never_applies_to_a_new_password():
    before, after = sb.http_target("https://a.example.com/", "x"), sb.http_target("https://b.example.com:8443/p", "y")
    message = sb.refusal(stored=True, entered=False, before=before, after=after)
    assert message.startswith("You changed where this password is sent (host, port, path and user name).")
    assert sb.refusal(stored=True, entered=True, before=before, after=after) is None
    assert sb.refusal(stored=False, entered=False, before=before, after=after) is None


@pytest.mark.parametrize("url,shown", [
    ("jdbc:postgresql://h/db?currentSchema=s&password=x1", "jdbc:postgresql://h/db?currentSchema=s&password=***"),
    ("jdbc:postgresql://u:p1@h/db", "jdbc:postgresql://u:***@h/db"),
    ("jdbc:oracle:thin:scott/tiger@//h:1521/svc", "jdbc:oracle:thin:scott/***@//h:1521/svc"),
    ("jdbc:postgresql://h/db?pass%77ord=x2", "jdbc:postgresql://h/db?password=***"),
    ("jdbc:postgresql://h/db?sslPassword=a&b=c", "jdbc:postgresql://h/db?sslPassword=***&b=c"),
    ("jdbc:postgresql://h/passwords?currentSchema=password", None),
    ("jdbc:oracle:thin:@//h:1521/svc", None),
])
def test_passwords_inside_jdbc_urls_are_found_and_redacted(url, shown):
    assert sb.url_has_password(url) is (shown is not None)
    assert sb.redact_url(url) == (shown or url)
