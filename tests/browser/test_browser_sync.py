"""A new tenant travels to IS 7 and API Manager while its page is open: the outbox worker delivers it to the
simulators and the page's script (static/js/sync.js) turns both badges to "synced" without a reload."""
from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.ui import unique

SETTLE_MS = 20_000  # the script polls every 3 s; the worker needs well under a second per product


def test_new_tenants_sync_reaches_synced_in_both_products(page, live, screenshot):
    tenant_id = unique("br-sync")
    domain = f"{tenant_id}.tenants.local"
    badges = {product: page.locator(f".sync-card [data-sync-product='{product}']") for product in ("is", "apim")}
    with live.worker.paused():  # hold the change back until the page shows it waiting
        page.goto(live.url + "/tenants/new")
        page.fill("#tenantId", tenant_id)
        page.fill("#clientId", f"{tenant_id}-client")
        page.fill("#clientSecret", "sync-client-secret")
        page.select_option("#identityProviderType", "LDAP")
        page.fill("#ldapURLForDirectoryService", "ldap://127.0.0.1:1")
        page.fill("#directoryServiceDomainName", "example.com")
        page.fill("#directoryServiceRootDistinguishedName", "dc=example,dc=com")
        page.fill("#ownerUsername", "ada")
        page.fill("#ownerEmail", f"ada@{tenant_id}.example.com")
        page.fill("#ownerFirstName", "Ada")
        page.fill("#ownerLastName", "Admin")
        page.select_option("#ownerProvisioningMethod", "inline-password")
        page.fill("#ownerPassword", "Owner#Pass123")
        page.check("#skip_check")
        page.click("input#save")
        expect(page).to_have_url(f"{live.url}/tenants/{tenant_id}")
        for badge in badges.values():
            expect(badge).to_have_attribute("data-sync-status", "pending")
        page.evaluate("window.__samePage = true")  # gone if the page reloads
    for badge in badges.values():
        expect(badge).to_have_attribute("data-sync-status", "synced", timeout=SETTLE_MS)
        expect(badge.locator("[data-sync-text]")).to_have_text("synced")
        expect(badge).to_have_class("badge sync-badge state-ok")
    assert page.evaluate("window.__samePage") is True, "the badges changed by a reload, not by the script"
    assert live.products.is7.tenant(domain) is not None and live.products.apim.tenant(domain) is not None
    assert live.products.creates(domain) == {"is": 1, "apim": 1}
    page.reload()  # the server's own rendering agrees
    expect(page.locator(".sync-card dl")).to_contain_text("Last synced")
    screenshot(page, "tenant-synced")

    page.goto(f"{live.url}/tenants/?q={tenant_id}")
    row = page.locator(f"[data-tenant-key='{tenant_id}']")
    expect(row.locator("[data-sync-status='synced']")).to_have_count(2)
