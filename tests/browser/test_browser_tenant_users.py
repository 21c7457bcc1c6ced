"""A POSTGRES tenant's users in a real browser, against a real PostgreSQL store: from the tenant page to its users,
a refused password shown at its field (and never put back into the page), a user added, the password grant
working for it, then the user disabled from its page and the grant refusing it. LDAP tenants' users are shown
read-only."""
from __future__ import annotations

import base64
import secrets

import requests
from playwright.sync_api import Page, expect

from portal.services.context import Actor
from portal.services.tenants import service as tenants
from tests.browser.ui import field_errors, unique

ACTOR = Actor(name="browser-users")
USER_PASSWORD = "violet lamp orbit " + secrets.token_hex(3)


def ask_password_grant(live, tenant_id: str, client_secret: str, username: str, password: str) -> requests.Response:
    basic = base64.b64encode(f"{tenant_id}-client:{client_secret}".encode()).decode()
    return requests.post(f"{live.url}/oauth/token", data={"grant_type": "password", "username": username,
                                                           "password": password, "TENANTID": tenant_id},
                         headers={"Authorization": f"Basic {basic}"}, timeout=10)


def owner(tenant_id: str) -> dict:
    return {"username": "owner", "email": f"owner@{tenant_id}.example.com", "firstName": "Olive",
            "lastName": "Owner", "provisioningMethod": "invite-via-email"}


def test_add_a_user_then_disable_it_and_the_password_grant_follows(page: Page, live, pg_store, screenshot,
                                                                  guard):
    tenant_id, client_secret = unique("br-users"), "cs-" + secrets.token_hex(12)
    live.run(tenants.register_tenant, {
        "tenantId": tenant_id, "clientId": f"{tenant_id}-client", "clientSecret": client_secret,
        "identityProviderType": "POSTGRES", "owner": owner(tenant_id),
        "relationalSchema": {"dataSourceURL": pg_store.jdbc_url, "dataSourceUserName": pg_store.role,
                             "dataSourcePassword": pg_store.password}}, ACTOR)  # the check provisions um_user

    page.goto(f"{live.url}/tenants/{tenant_id}")
    page.get_by_role("link", name="Users in this database").click()
    expect(page).to_have_url(f"{live.url}/tenants/{tenant_id}/users/")
    expect(page.locator("table.tenant-users")).to_contain_text("No user yet.")

    guard.allow_status(400)  # the form comes back with its errors as a 400
    page.fill("#username", "webuser")
    page.fill("#password", "too-short")
    page.fill("#confirm", "too-short")
    page.get_by_role("button", name="Add user").click()
    expect(field_errors(page, "password")).to_contain_text("Use at least")
    expect(page.locator("[data-error-summary]")).to_be_focused()
    expect(page.locator("#username")).to_have_value("webuser")
    expect(page.locator("#password")).to_have_value("")  # a refused password is never sent back
    assert "too-short" not in page.content()

    page.fill("#password", USER_PASSWORD)
    page.fill("#confirm", USER_PASSWORD)
    page.get_by_role("button", name="Add user").click()
    expect(page.locator(".flash-success")).to_contain_text("User webuser added")
    row = page.locator("table.tenant-users tr", has_text="webuser")
    expect(row).to_contain_text("enabled")
    screenshot(page, "tenant-users")
    assert ask_password_grant(live, tenant_id, client_secret, "webuser", USER_PASSWORD).status_code == 200

    row.get_by_role("link", name="webuser").click()
    page.once("dialog", lambda dialog: dialog.accept())  # the confirm() before a disable
    page.get_by_role("button", name="Disable user").click()
    expect(page.locator(".flash-success")).to_contain_text("User webuser disabled")
    expect(page.locator("h1 .badge")).to_have_text("disabled")
    refused = ask_password_grant(live, tenant_id, client_secret, "webuser", USER_PASSWORD)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    assert USER_PASSWORD not in page.content()


def test_directory_users_are_shown_read_only(page: Page, live, slapd):
    tenant_id = unique("br-dir")
    live.run(tenants.register_tenant, {
        "tenantId": tenant_id, "clientId": f"{tenant_id}-client", "clientSecret": "cs-" + secrets.token_hex(12),
        "identityProviderType": "LDAP", "owner": owner(tenant_id),
        "ldapSchema": {"ldapURLForDirectoryService": slapd.ldap_url, "directoryServiceDomainName": slapd.domain_name,
                       "directoryServiceRootDistinguishedName": slapd.root_dn, "bindDN": slapd.admin_dn,
                       "bindPassword": slapd.admin_password}}, ACTOR)
    page.goto(f"{live.url}/tenants/{tenant_id}")
    page.get_by_role("link", name="Users in this directory").click()
    page.fill("#q", "ali")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="alice").click()
    expect(page.locator("main")).to_contain_text(slapd.user_dn)
    expect(page.locator("main")).to_contain_text("admins")
    expect(page.get_by_role("button", name="Disable user")).to_have_count(0)
    expect(page.get_by_role("button", name="Set password")).to_have_count(0)
