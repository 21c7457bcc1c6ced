"""Live sync in a real browser (issue 16): a tenant registered while its page is open travels to the IS 7 and API
Manager simulators, and the page follows each step without a reload: IS 7's step ends first while API Manager
answers slowly, Retry is not offered while the worker runs, both reach "synced", and the polite live region says
so. The sync page follows its jobs the same way. Both pass axe (no serious or critical violation) at 1366 and
390 px without a sideways scroll."""
from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from portal.services.context import Actor
from portal.services.tenants import service as tenants
from tests.browser.test_browser_accessibility import PHONE, WIDE, audit
from tests.browser.ui import unique

SETTLE_MS = 25_000  # the script polls every 2 s; API Manager is made to answer in 4 s once
SLOW_APIM_SECONDS = 4.0


def _register(tenant_id: str) -> None:
    tenants.register_tenant({
        "tenantId": tenant_id, "clientId": f"{tenant_id}-client", "clientSecret": "live-sync-client-secret",
        "identityProviderType": "LDAP",
        "owner": {"username": "ada", "email": f"ada@{tenant_id}.example.com", "firstName": "Ada", "lastName": "Admin",
                  "provisioningMethod": "inline-password", "password": "Owner#Pass123"},
        "ldapSchema": {"ldapURLForDirectoryService": "ldap://127.0.0.1:1", "directoryServiceDomainName": "example.com",
                       "directoryServiceRootDistinguishedName": "dc=example,dc=com"},
    }, Actor(name="browser-live-sync"), skip_check=True)


def _fits_and_passes_axe(page: Page) -> None:
    for viewport in (WIDE, PHONE):
        page.set_viewport_size(viewport)
        serious = [line for line in audit(page) if "(serious)" in line or "(critical)" in line]
        assert serious == [], f"{viewport['width']} px:\n" + "\n".join(serious)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= viewport["width"], f"{viewport['width']} px: the page is {width} px wide"
    page.set_viewport_size(WIDE)


def test_the_tenant_page_follows_each_step_to_synced_without_a_reload(page, live, screenshot):
    tenant_id = unique("br-live")
    domain = f"{tenant_id}.tenants.local"
    card = page.locator("section#sync")
    badges = {product: card.locator(f"[data-sync-product='{product}']") for product in ("is", "apim")}
    with live.worker.paused():  # hold the change back until the page shows it waiting
        live.run(_register, tenant_id)
        live.products.apim.push_fault("POST", "/services/TenantMgtAdminService", 500, delay=SLOW_APIM_SECONDS,
                                      operation="addTenant")
        page.goto(f"{live.url}/tenants/{tenant_id}")
        for badge in badges.values():
            expect(badge).to_have_attribute("data-sync-status", "pending")
        expect(card).to_have_attribute("data-sync-settled", "false")
        expect(card.locator("[data-sync-announce]")).to_have_text("")  # nothing said on loading
        page.evaluate("window.__samePage = true")  # gone if the page reloads

    # IS 7's step ends while API Manager's create is slow: each step shows, and Retry is not offered meanwhile.
    expect(card.locator("[data-sync-step='is']")).to_contain_text(re.compile(r"synced \d{4}-\d\d-\d\d "),
                                                                 timeout=SETTLE_MS)
    expect(badges["apim"]).to_have_attribute("data-sync-status", "running")
    expect(card.locator("[data-sync-step='apim']")).to_contain_text("being delivered since")
    expect(card.locator("#sync-running")).to_be_visible()
    expect(card.get_by_role("button", name="Retry now")).to_have_count(0)
    expect(card.locator("[data-sync-announce]")).to_have_text("IS 7: synced. API Manager: running.")
    screenshot(page, "live-sync-step")

    # API Manager's first answer is a 500; the retry delivers it: synced, said politely, no reload.
    for badge in badges.values():
        expect(badge).to_have_attribute("data-sync-status", "synced", timeout=SETTLE_MS)
        expect(badge.locator("[data-sync-text]")).to_have_text("synced")
    expect(card).to_have_attribute("data-sync-settled", "true")
    expect(card.locator("[data-sync-announce]")).to_have_text("IS 7: synced. API Manager: synced.")
    expect(card.locator("[data-sync-step='apim']")).to_contain_text(re.compile(r"synced \d{4}-\d\d-\d\d .* UTC"))
    expect(card.locator("tr[data-job-status='done']")).to_have_count(1)
    assert page.evaluate("window.__samePage") is True, "the card changed by a reload, not by the script"
    assert live.products.is7.tenant(domain) is not None and live.products.apim.tenant(domain) is not None
    screenshot(page, "live-sync-synced")
    _fits_and_passes_axe(page)


def test_the_sync_page_follows_its_jobs_without_a_reload(page, live):
    tenant_id = unique("br-live-page")
    live_part = page.locator(".sync-overview")
    with live.worker.paused():
        live.run(_register, tenant_id)
        page.goto(f"{live.url}/sync/")
        expect(live_part).to_have_attribute("data-sync-settled", "false")
        pending = int(live_part.locator("[data-count='pending']").inner_text())
        assert pending >= 1
        page.evaluate("window.__samePage = true")
    expect(live_part).to_have_attribute("data-sync-settled", "true", timeout=SETTLE_MS)
    expect(live_part.locator("[data-count='pending']")).to_have_text("0")
    expect(live_part.locator("[data-sync-announce]")).to_have_text(re.compile(r"^0 running, 0 retrying, 0 waiting, "))
    assert page.evaluate("window.__samePage") is True
    _fits_and_passes_axe(page)
