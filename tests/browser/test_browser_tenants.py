"""Registering tenants through the form in a real browser: the script that shows only the chosen identity provider
type's fields, one tenant of each type against a real target (PostgreSQL, slapd, an OpenID provider; Oracle with
the check skipped, as no Oracle server exists here), and the service's validation messages next to their fields."""
from __future__ import annotations

import secrets

from playwright.sync_api import Page, expect

from tests.browser.ui import field_errors, unique

SECTION_FIELDS = {"ORACLE": "dataSourceURL", "POSTGRES": "dataSourceURL", "LDAP": "ldapURLForDirectoryService",
                  "EXTERNAL": "jwkSetUrl"}


def fill_tenant(page: Page, tenant_id: str, idp_type: str, *, algorithm: str = "HS256") -> None:
    """The fields every type shares, an invited owner, and the type (which shows its section), with every step of
    the register form on one page (test_browser_forms.py goes through the steps)."""
    show_all_steps(page)
    page.fill("#tenantId", tenant_id)
    page.fill("#displayName", f"Browser {tenant_id}")
    page.fill("#clientId", f"{tenant_id}-client")
    page.fill("#clientSecret", "cs-" + secrets.token_hex(12))
    page.select_option("#supportAlgorithm", algorithm)
    page.select_option("#identityProviderType", idp_type)
    page.fill("#ownerUsername", "owner")
    page.fill("#ownerEmail", f"owner@{tenant_id}.example.com")
    page.fill("#ownerFirstName", "Olive")
    page.fill("#ownerLastName", "Owner")
    page.select_option("#ownerProvisioningMethod", "invite-via-email")


def show_all_steps(page: Page) -> None:
    """The register form's "Show all steps on one page" (the choice lasts for the tab); the edit form has no steps."""
    toggle = page.locator("[data-step-all]")
    if toggle.count() and toggle.get_attribute("aria-pressed") != "true":
        toggle.click()


def register(page: Page) -> None:
    page.click("input#save")


def expect_registered(page: Page, live, tenant_id: str, *, verified: bool) -> None:
    expect(page).to_have_url(f"{live.url}/tenants/{tenant_id}")
    flash = page.locator(".flash-success" if verified else ".flash-info")
    expect(flash).to_contain_text(f"Tenant {tenant_id} registered")
    expect(page.locator("h1 .badge").last).to_have_text("verified" if verified else "unverified")
    if verified:
        expect(flash).to_contain_text("Connection check passed")


def test_type_switch_shows_only_the_chosen_types_fields(page, live):
    page.goto(live.url + "/tenants/new")
    show_all_steps(page)
    expect(page.locator("#refresh")).to_be_hidden()  # the script replaces the no-JavaScript round trip
    for chosen in ("POSTGRES", "LDAP", "EXTERNAL", "ORACLE"):
        page.select_option("#identityProviderType", chosen)
        for field in set(SECTION_FIELDS.values()):
            shown = SECTION_FIELDS[chosen] == field
            expect(page.locator(f"#{field}"), f"{field} with {chosen} chosen").to_be_visible(visible=shown)


def test_register_postgres_against_a_real_database(page, live, pg_store):
    tenant_id = unique("br-pg")
    page.goto(live.url + "/tenants/new")
    fill_tenant(page, tenant_id, "POSTGRES")
    page.fill("#dataSourceURL", pg_store.jdbc_url)
    page.fill("#dataSourceUserName", pg_store.role)
    page.fill("#dataSourcePassword", pg_store.password)

    page.click("input#test_connection")  # the check alone: a real connection, nothing stored
    expect(page.locator(".check-panel h2")).to_have_text("Connection check passed")
    expect(page.locator(".check-panel")).to_contain_text("PostgreSQL")
    page.fill("#clientSecret", "cs-" + secrets.token_hex(12))  # secrets are never sent back into the page
    page.fill("#dataSourcePassword", pg_store.password)
    register(page)
    expect_registered(page, live, tenant_id, verified=True)
    expect(page.locator("main")).to_contain_text(pg_store.jdbc_url)
    expect(page.locator("main")).not_to_contain_text(pg_store.password)


def test_register_ldap_against_slapd(page, live, slapd):
    tenant_id = unique("br-ldap")
    page.goto(live.url + "/tenants/new")
    fill_tenant(page, tenant_id, "LDAP")
    page.fill("#ldapURLForDirectoryService", slapd.ldap_url)
    page.fill("#directoryServiceDomainName", slapd.domain_name)
    page.fill("#directoryServiceRootDistinguishedName", slapd.root_dn)
    page.fill("#bindDN", slapd.admin_dn)
    page.fill("#bindPassword", slapd.admin_password)
    register(page)
    expect_registered(page, live, tenant_id, verified=True)
    expect(page.locator("main")).to_contain_text(slapd.admin_dn)


def test_register_external_against_an_openid_provider(page, live, idp):
    tenant_id = unique("br-oidc")
    issuer = idp.add_tenant(f"/browser/{tenant_id}", [idp.strong_jwk])
    page.goto(live.url + "/tenants/new")
    fill_tenant(page, tenant_id, "EXTERNAL", algorithm="RS256")
    page.fill("#jwkSetUrl", issuer + "/jwks")
    page.fill("#issuer", issuer)
    page.fill("#authUrl", issuer + "/authorize")
    page.fill("#accessTokenUrl", issuer + "/token")
    page.fill("#scope", "openid profile")
    register(page)
    expect_registered(page, live, tenant_id, verified=True)
    expect(page.locator("main")).to_contain_text(issuer)


def test_register_oracle_without_the_connection_check(page, live):
    tenant_id = unique("br-ora")
    page.goto(live.url + "/tenants/new")
    fill_tenant(page, tenant_id, "ORACLE")
    page.fill("#dataSourceURL", "jdbc:oracle:thin:@//oracle.example.com:1521/ORCLPDB1")
    page.fill("#dataSourceUserName", "tenant_users")
    page.fill("#dataSourcePassword", "ora-" + secrets.token_hex(8))
    page.check("#skip_check")
    register(page)
    expect_registered(page, live, tenant_id, verified=False)
    expect(page.locator(".flash-info")).to_contain_text("without a passing connection check")


def test_validation_errors_show_next_to_their_fields(page, live, screenshot):
    page.goto(live.url + "/tenants/new")
    fill_tenant(page, "bad id!", "POSTGRES")
    page.fill("#clientId", "")
    page.fill("#dataSourceURL", "jdbc:postgresql://db.example.com:99999/users")
    page.fill("#dataSourceUserName", "users")
    page.fill("#dataSourcePassword", "secret")
    register(page)
    expect(page).to_have_url(live.url + "/tenants/new")  # re-rendered, nothing stored
    expect(field_errors(page, "tenantId")).to_have_text(["Use 1 to 64 letters, digits, '_' or '-'."])
    expect(field_errors(page, "clientId")).to_have_text(["This field is required."])
    expect(field_errors(page, "dataSourceURL")).to_contain_text(["port"])
    expect(page.locator("#dataSourceURL")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#ldapURLForDirectoryService")).to_be_hidden()
    screenshot(page, "tenant-form-errors")

    # Another type's rules, after the switch the script makes: the errors follow the newly chosen fields.
    page.fill("#tenantId", unique("br-bad"))
    page.fill("#clientId", "client")
    page.fill("#clientSecret", "secret")
    page.select_option("#identityProviderType", "EXTERNAL")
    page.fill("#jwkSetUrl", "http://login.example.com/keys")
    page.fill("#issuer", "https://login.example.com")
    page.fill("#authUrl", "https://login.example.com/authorize")
    page.fill("#accessTokenUrl", "https://login.example.com/token")
    page.fill("#scope", 'openid "profile"')
    register(page)
    expect(field_errors(page, "jwkSetUrl")).to_have_text(["Use an https:// URL."])
    expect(field_errors(page, "supportAlgorithm")).to_contain_text(["Choose RS256, RS384 or RS512"])
    expect(field_errors(page, "scope")).to_contain_text(["Scopes are space-separated tokens"])
    expect(field_errors(page, "tenantId")).to_have_count(0)
    expect(page.locator("#dataSourceURL")).to_be_hidden()
