"""Tenant users in the tenant's own store: a real PostgreSQL store (list, add, disable, enable, reset, through the
service and the pages, with the password grant following each change), the real slapd (search and show, read-only),
and the Oracle statements the client builds, read as text (no Oracle server here)."""
from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from portal.clients.tenant_users import RelationalUsers, Statements, like_prefix
from portal.clients.user_stores import StoreUnavailable
from portal.idp.jdbc_url import parse_jdbc_url
from portal.models import AuditEvent
from portal.services.context import Actor
from portal.services.errors import Conflict, NotFound, ValidationError
from portal.services.tenants import users
from tests.fixtures.stores import TenantStore
from tests.ldap_server import Slapd
from tests.token_helpers import CLIENT_SECRET, ask_token, hmac_key_for, register, tenant_body

ACTOR = Actor(name="users-tester")
ALICE_PASSWORD = "correct horse staple 41"
NEW_PASSWORD = "violet lamp orbit 77"


def postgres_tenant(api, store: TenantStore, tenant_id: str = "pgusers", **overrides) -> dict:
    body = {"tenantId": tenant_id, "clientId": f"{tenant_id}-client", "clientSecret": CLIENT_SECRET,
            "identityProviderType": "POSTGRES", "supportAlgorithm": "HS256", "signingKey": hmac_key_for("HS256"),
            "relationalSchema": {"dataSourceURL": store.jdbc_url, "dataSourceUserName": store.role,
                                 "dataSourcePassword": store.password}, **overrides}
    return register(api, body)


def grant(api, username: str, password: str, tenant_id: str = "pgusers"):
    return ask_token(api.client, f"{tenant_id}-client", grant_type="password", username=username, password=password,
                     TENANTID=tenant_id)


def stored_credential(store: TenantStore, username: str) -> str | None:
    with store.connect() as conn:
        row = conn.execute(f'SELECT credential FROM "{store.schema}".um_user WHERE user_name = %s',
                           (username,)).fetchone()
    return row[0] if row else None


def events(db, action_prefix: str = "tenant_user.") -> list[AuditEvent]:
    return list(db.session.execute(sa.select(AuditEvent).where(AuditEvent.action.startswith(action_prefix))
                                   .order_by(AuditEvent.id)).scalars())


# --- through the service, on a real PostgreSQL store ---------------------------------------------------------


def test_add_disable_reset_enable_and_the_password_grant_follows(app, api, pg_store, db):
    assert postgres_tenant(api, pg_store)["verified"] is True  # the check provisioned um_user
    with app.app_context():
        assert users.access_of(users.get_tenant("pgusers")) == users.MANAGE
        assert users.add_user("pgusers", " alice ", ALICE_PASSWORD, ALICE_PASSWORD, ACTOR) == "alice"
        listed = users.list_users("pgusers")
    assert [(u.username, u.disabled) for u in listed.users] == [("alice", False)]
    assert stored_credential(pg_store, "alice").startswith("$argon2id$")
    assert grant(api, "alice", ALICE_PASSWORD).status_code == 200

    with app.app_context():
        assert users.set_disabled("pgusers", "alice", True, ACTOR) is True
        assert users.set_disabled("pgusers", "alice", True, ACTOR) is False  # already so: nothing audited
        assert users.show_user("pgusers", "alice")[1].disabled is True
    refused = grant(api, "alice", ALICE_PASSWORD)
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_grant"

    with app.app_context():
        users.reset_password("pgusers", "alice", NEW_PASSWORD, NEW_PASSWORD, ACTOR)
    assert grant(api, "alice", NEW_PASSWORD).status_code == 400  # a reset keeps a disabled user disabled
    with app.app_context():
        assert users.set_disabled("pgusers", "alice", False, ACTOR) is True
    assert grant(api, "alice", NEW_PASSWORD).status_code == 200
    assert grant(api, "alice", ALICE_PASSWORD).status_code == 400

    audited = events(db)
    assert [e.action for e in audited] == ["tenant_user.create", "tenant_user.disable", "tenant_user.reset_password",
                                           "tenant_user.enable"]
    assert {(e.object_type, e.object_id, e.actor) for e in audited} == {("tenant", "pgusers", "users-tester")}
    assert audited[0].changes["user"] == {"before": None, "after": "alice"}
    assert audited[1].changes["disabled"] == {"before": False, "after": True}
    text = str([e.changes for e in audited])
    assert ALICE_PASSWORD not in text and NEW_PASSWORD not in text and "argon2" not in text


def test_bad_input_is_reported_at_its_field_and_changes_nothing(app, api, pg_store):
    postgres_tenant(api, pg_store)
    cases = [("", ALICE_PASSWORD, ALICE_PASSWORD, "username", "Enter a user name."),
             ("bob smith", ALICE_PASSWORD, ALICE_PASSWORD, "username", "Use no spaces or control characters."),
             ("b" * 256, ALICE_PASSWORD, ALICE_PASSWORD, "username", "Use at most 255 characters."),
             ("bob", "short", "short", "password", "Use at least"),
             ("bob", "bob-is-my-long-password", "bob-is-my-long-password", "password", "must not contain the username"),
             ("bob", ALICE_PASSWORD, ALICE_PASSWORD + "x", "confirm", "The two passwords differ."),
             ("bob", "", "", "password", "Enter a password.")]
    with app.app_context():
        for username, password, confirm, field, message in cases:
            with pytest.raises(ValidationError) as caught:
                users.add_user("pgusers", username, password, confirm, ACTOR)
            assert message in caught.value.errors[field], (username, caught.value.errors)
        assert users.list_users("pgusers").users == []
        users.add_user("pgusers", "bob", ALICE_PASSWORD, ALICE_PASSWORD, ACTOR)
        with pytest.raises(Conflict) as taken:
            users.add_user("pgusers", "bob", NEW_PASSWORD, NEW_PASSWORD, ACTOR)
        assert taken.value.errors == {"username": "This user name is taken in the tenant's store."}
        for action in (lambda: users.set_disabled("pgusers", "nobody", True, ACTOR),
                       lambda: users.reset_password("pgusers", "nobody", NEW_PASSWORD, NEW_PASSWORD, ACTOR),
                       lambda: users.show_user("pgusers", "nobody")):
            with pytest.raises(NotFound, match="has no user 'nobody'"):
                action()
        with pytest.raises(ValidationError) as weak:
            users.reset_password("pgusers", "bob", "short", "short", ACTOR)
        assert "password" in weak.value.errors
    assert grant(api, "bob", ALICE_PASSWORD).status_code == 200  # the refused reset changed nothing


def test_search_pages_and_takes_like_wildcards_literally(app, api, pg_store, monkeypatch):
    postgres_tenant(api, pg_store)
    monkeypatch.setattr(users, "PAGE_SIZE", 2)
    with app.app_context():
        for name in ("a_1", "ab", "ac", "b%", "bz"):
            users.add_user("pgusers", name, ALICE_PASSWORD, ALICE_PASSWORD, ACTOR)
        first = users.list_users("pgusers")
        second = users.list_users("pgusers", after=first.next_after)
        third = users.list_users("pgusers", after=second.next_after)
        assert [[u.username for u in page.users] for page in (first, second, third)] == [
            ["a_1", "ab"], ["ac", "b%"], ["bz"]]
        assert third.next_after is None
        assert [u.username for u in users.list_users("pgusers", "a_").users] == ["a_1"]  # _ is not a wildcard
        assert [u.username for u in users.list_users("pgusers", "b%").users] == ["b%"]


def test_an_unreachable_store_changes_nothing_and_says_why(app, api, pg_store):
    url = pg_store.jdbc_url.replace(":5432/", ":1/")
    postgres_tenant(api, pg_store, "pgdown", skipConnectionCheck=True,
                    relationalSchema={"dataSourceURL": url, "dataSourceUserName": pg_store.role,
                                      "dataSourcePassword": pg_store.password})
    with app.app_context(), pytest.raises(users.StoreUnreachable) as caught:
        users.add_user("pgdown", "carol", ALICE_PASSWORD, ALICE_PASSWORD, ACTOR)
    assert "user store unreachable" in caught.value.message and "Nothing was changed." in caught.value.message
    assert pg_store.password not in caught.value.message and caught.value.status == 503


def test_directory_users_are_searched_and_shown_but_never_changed(app, api, slapd: Slapd):
    settings = {"ldapURLForDirectoryService": slapd.ldap_url, "directoryServiceDomainName": slapd.domain_name,
                "directoryServiceRootDistinguishedName": slapd.root_dn, "bindDN": slapd.admin_dn,
                "bindPassword": slapd.admin_password, "startTLS": False}
    register(api, tenant_body("dirusers", ldapSchema=settings, skipConnectionCheck=False))
    with app.app_context():
        found = users.list_users("dirusers", "ali")
        assert found.access == users.BROWSE
        assert [(u.username, u.name, u.mail) for u in found.users] == [("alice", "Alice Example", "alice@example.com")]
        assert users.list_users("dirusers", "nobody-like-this").users == []
        tenant, alice = users.show_user("dirusers", "alice")
        assert alice.dn == slapd.user_dn and "admins" in alice.groups
        with pytest.raises(NotFound):
            users.show_user("dirusers", "*")  # a filter character is a literal name, not a wildcard
        with pytest.raises(ValidationError, match="LDAP directory"):
            users.add_user("dirusers", "mallory", ALICE_PASSWORD, ALICE_PASSWORD, ACTOR)
        with pytest.raises(ValidationError, match="LDAP directory"):
            users.set_disabled("dirusers", "alice", True, ACTOR)


def test_external_tenants_have_no_users_here(app, api, idp):
    from simulators.pki import rsa_key
    from tests.token_helpers import external_body, pem_of

    issuer = idp.add_tenant("/users-test", [idp.strong_jwk])
    register(api, external_body("extusers", issuer, pem_of(rsa_key()), skipConnectionCheck=True))
    with app.app_context():
        assert users.access_of(users.get_tenant("extusers")) is None
        with pytest.raises(NotFound, match="sign in at their own identity provider"):
            users.list_users("extusers")


# --- through the pages ---------------------------------------------------------------------------------------


def page(response) -> str:
    return response.get_data(as_text=True)


def test_pages_add_disable_enable_and_reset(app, api, pg_store, admin_client, db):
    postgres_tenant(api, pg_store)
    tenant_page = page(admin_client.get("/tenants/pgusers"))
    assert 'href="/tenants/pgusers/users/"' in tenant_page and "Users in this database" in tenant_page

    added = admin_client.post("/tenants/pgusers/users/", data={"username": "dave", "password": ALICE_PASSWORD,
                                                               "confirm": ALICE_PASSWORD}, follow_redirects=True)
    assert added.status_code == 200 and "User dave added" in page(added) and ALICE_PASSWORD not in page(added)
    assert re.search(r'href="/tenants/pgusers/users/dave">dave</a>', page(added))
    assert grant(api, "dave", ALICE_PASSWORD).status_code == 200

    disabled = admin_client.post("/tenants/pgusers/users/dave/disable", follow_redirects=True)
    assert "User dave disabled" in page(disabled) and grant(api, "dave", ALICE_PASSWORD).status_code == 400
    assert "Enable user" in page(disabled)
    reset = admin_client.post("/tenants/pgusers/users/dave/password",
                              data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}, follow_redirects=True)
    assert "New password set for dave." in page(reset) and NEW_PASSWORD not in page(reset)
    enabled = admin_client.post("/tenants/pgusers/users/dave/enable", follow_redirects=True)
    assert "User dave enabled" in page(enabled) and grant(api, "dave", NEW_PASSWORD).status_code == 200
    history = page(admin_client.get("/tenants/pgusers"))
    assert "tenant_user.enable" in history and "tenant_user.reset_password" in history
    assert NEW_PASSWORD not in page(admin_client.get("/audit/"))


def test_form_errors_are_shown_at_the_fields_without_the_password(app, api, pg_store, admin_client):
    postgres_tenant(api, pg_store)
    response = admin_client.post("/tenants/pgusers/users/", data={"username": "eve", "password": "short-pw",
                                                                  "confirm": "short-pw"})
    body = page(response)
    assert response.status_code == 400 and 'id="password-error-1"' in body and "Use at least" in body
    assert 'aria-describedby="password-help password-error-1"' in body and "short-pw" not in body
    assert 'value="eve"' in body  # the name is kept, the password is not
    mismatch = page(admin_client.post("/tenants/pgusers/users/", data={"username": "eve", "password": ALICE_PASSWORD,
                                                                       "confirm": NEW_PASSWORD}))
    assert 'id="confirm-error-1"' in mismatch and "The two passwords differ." in mismatch
    admin_client.post("/tenants/pgusers/users/", data={"username": "eve", "password": ALICE_PASSWORD,
                                                       "confirm": ALICE_PASSWORD})
    taken = page(admin_client.post("/tenants/pgusers/users/", data={"username": "eve", "password": ALICE_PASSWORD,
                                                                    "confirm": ALICE_PASSWORD}))
    assert 'id="username-error-1"' in taken and "This user name is taken" in taken
    reset = admin_client.post("/tenants/pgusers/users/eve/password", data={"password": "x", "confirm": "x"})
    assert reset.status_code == 400 and 'id="password-error-1"' in page(reset)
    assert admin_client.get("/tenants/pgusers/users/nobody").status_code == 404
    assert admin_client.post("/tenants/pgusers/users/nobody/disable").status_code == 404


def test_operators_and_auditors_read_but_only_admins_change(app, api, pg_store, signed_in):
    postgres_tenant(api, pg_store)
    admin = signed_in("admin")
    admin.post("/tenants/pgusers/users/", data={"username": "frank", "password": ALICE_PASSWORD,
                                                "confirm": ALICE_PASSWORD})
    for role in ("operator", "auditor"):
        client = signed_in(role)
        listing = page(client.get("/tenants/pgusers/users/"))
        assert "frank" in listing and "Add a user" not in listing
        detail = page(client.get("/tenants/pgusers/users/frank"))
        assert "Disable user" not in detail and "Reset the password" not in detail
        for path, data in (("/tenants/pgusers/users/", {"username": "x", "password": ALICE_PASSWORD,
                                                         "confirm": ALICE_PASSWORD}),
                           ("/tenants/pgusers/users/frank/disable", {}), ("/tenants/pgusers/users/frank/enable", {}),
                           ("/tenants/pgusers/users/frank/password", {"password": NEW_PASSWORD,
                                                                      "confirm": NEW_PASSWORD})):
            assert client.post(path, data=data).status_code == 403, (role, path)
    anonymous = app.test_client().get("/tenants/pgusers/users/")
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    assert grant(api, "frank", ALICE_PASSWORD).status_code == 200


def test_the_forms_need_the_csrf_token(make_app, pg_store):
    from tests.api_helpers import make_api
    from tests.fixtures.accounts import create_admin, csrf_token, login

    app = make_app(WTF_CSRF_ENABLED=True)
    postgres_tenant(make_api(app), pg_store)
    client = app.test_client()
    create_admin(app, "csrf-admin")
    login(client, "csrf-admin", csrf_token=csrf_token(client))
    data = {"username": "gina", "password": ALICE_PASSWORD, "confirm": ALICE_PASSWORD}
    assert client.post("/tenants/pgusers/users/", data=data).status_code == 400
    with app.app_context():
        assert users.list_users("pgusers").users == []
    token = csrf_token(client, "/tenants/pgusers/users/")
    assert client.post("/tenants/pgusers/users/", data={**data, "csrf_token": token}).status_code == 302


def test_an_unreachable_store_is_a_clear_page(app, api, pg_store, admin_client):
    url = pg_store.jdbc_url.replace(":5432/", ":1/")
    postgres_tenant(api, pg_store, "pgdown", skipConnectionCheck=True,
                    relationalSchema={"dataSourceURL": url, "dataSourceUserName": pg_store.role,
                                      "dataSourcePassword": pg_store.password})
    response = admin_client.get("/tenants/pgdown/users/")
    assert response.status_code == 200 and "The user store did not answer" in page(response)
    assert pg_store.password not in page(response)


def test_directory_pages_show_entries_and_offer_no_change(app, api, slapd, admin_client):
    settings = {"ldapURLForDirectoryService": slapd.ldap_url, "directoryServiceDomainName": slapd.domain_name,
                "directoryServiceRootDistinguishedName": slapd.root_dn, "bindDN": slapd.admin_dn,
                "bindPassword": slapd.admin_password, "startTLS": False}
    register(api, tenant_body("dirpages", ldapSchema=settings, skipConnectionCheck=False))
    assert "Users in this directory" in page(admin_client.get("/tenants/dirpages"))
    listing = page(admin_client.get("/tenants/dirpages/users/?q=alice"))
    assert "alice@example.com" in listing and "Add a user" not in listing
    detail = page(admin_client.get("/tenants/dirpages/users/alice"))
    assert slapd.user_dn in detail and "admins" in detail and "Disable user" not in detail
    refused = admin_client.post("/tenants/dirpages/users/", data={"username": "x", "password": ALICE_PASSWORD,
                                                                  "confirm": ALICE_PASSWORD})
    assert refused.status_code == 400 and "does not change them" in page(refused)


# --- the statements the client builds ------------------------------------------------------------------------


def test_oracle_statements_quote_the_schema_and_bind_every_value():
    oracle = Statements("oracle", "TENANT_A")
    table = '"TENANT_A"."UM_USER"'
    listing = oracle.list_users("a_b", "alice", 51)
    assert listing.text == (
        "SELECT USER_NAME, CASE WHEN SUBSTR(CREDENTIAL, 1, 1) = '!' THEN 1 ELSE 0 END, CREATED_AT "
        f"FROM {table} WHERE USER_NAME LIKE :prefix ESCAPE '\\' AND USER_NAME > :after ORDER BY USER_NAME "
        "FETCH FIRST :limit ROWS ONLY")
    assert listing.params == {"prefix": "a\\_b%", "after": "alice", "limit": 51}
    assert ":after" not in oracle.list_users("", None, 10).text
    assert oracle.insert_user("bob", "$argon2id$x").text == (
        f"INSERT INTO {table} (USER_NAME, CREDENTIAL) VALUES (:username, :credential)")
    assert oracle.disable("bob").text == (
        f"UPDATE {table} SET CREDENTIAL = '!' || COALESCE(CREDENTIAL, '') WHERE USER_NAME = :username "
        "AND (SUBSTR(CREDENTIAL, 1, 1) <> '!' OR CREDENTIAL IS NULL)")
    assert oracle.enable("bob").text == (
        f"UPDATE {table} SET CREDENTIAL = SUBSTR(CREDENTIAL, 2) WHERE USER_NAME = :username "
        "AND SUBSTR(CREDENTIAL, 1, 1) = '!'")
    reset = oracle.set_credential("bob", "$argon2id$y")
    assert reset.text == (f"UPDATE {table} SET CREDENTIAL = CASE WHEN SUBSTR(CREDENTIAL, 1, 1) = '!' THEN "
                          "'!' || :credential ELSE :credential END WHERE USER_NAME = :username")
    assert reset.params == {"username": "bob", "credential": "$argon2id$y"}
    assert oracle.find_user("bob").text.endswith(f"FROM {table} WHERE USER_NAME = :username")
    for statement in (listing, oracle.insert_user("x';--", "c"), oracle.disable("x';--"), reset):
        assert not re.search(r"'x|bob|argon2", statement.text)  # values only ever travel as binds


def test_oracle_without_a_schema_uses_the_users_own_and_names_are_quoted():
    assert Statements("oracle", None).table == '"UM_USER"'
    assert Statements("oracle", 'A"B').table == '"A""B"."UM_USER"'
    assert Statements("postgres", None).table == '"public"."um_user"'
    assert Statements("postgres", "tenant_users").list_users("", None, 5).text.startswith(
        "SELECT user_name, CASE WHEN SUBSTR(credential, 1, 1) = '!' THEN 1 ELSE 0 END, created_at "
        'FROM "tenant_users"."um_user" WHERE user_name LIKE %(prefix)s')
    assert like_prefix("50%_off\\") == "50\\%\\_off\\\\%"
    with pytest.raises(ValueError):
        Statements("mysql", None)


def test_an_unreachable_oracle_store_is_store_unavailable(app):
    with app.app_context():
        store = RelationalUsers(parse_jdbc_url("jdbc:oracle:thin:@//127.0.0.1:1/XEPDB1"), "scott", "tiger-pw-9",
                                timeout=2)
        with pytest.raises(StoreUnavailable) as caught:
            store.list()
    assert "user store unreachable" in caught.value.reason and "tiger-pw-9" not in caught.value.reason
    assert "tiger-pw-9" not in repr(store)


def test_the_grant_refuses_a_disabled_user_with_its_reason(app, api, pg_store):
    """The password grant's own check says "user disabled" (for the log and the token lab), not "wrong password"."""
    from portal.clients import user_stores

    postgres_tenant(api, pg_store)
    with app.app_context():
        users.add_user("pgusers", "hank", ALICE_PASSWORD, ALICE_PASSWORD, ACTOR)
        users.set_disabled("pgusers", "hank", True, ACTOR)
    target = parse_jdbc_url(pg_store.jdbc_url)
    with app.app_context():
        check = user_stores.check_postgres(target, pg_store.role, pg_store.password, "hank", ALICE_PASSWORD, timeout=5)
    assert (check.ok, check.reason, check.unavailable) == (False, "user disabled", False)
    assert stored_credential(pg_store, "hank").startswith("!$argon2id$")  # the mark in front of the same hash
