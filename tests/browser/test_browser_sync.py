"""A new tenant travels to IS 7 and API Manager while its page is open: the outbox worker delivers it to the
simulators and the page's script (static/js/sync.js) turns both badges to "synced" without a reload. And recovery:
an owner-less tenant's job waits for a person, the pages name the fix, the owner is added, Retry syncs it."""
from __future__ import annotations

import re

import sqlalchemy as sa
from playwright.sync_api import expect

from portal.extensions import db
from portal.models import Tenant
from portal.services.context import Actor
from portal.services.tenants import service as tenants
from tests.browser.test_browser_tenants import show_all_steps
from tests.browser.ui import unique

SETTLE_MS = 20_000  # the script polls every 3 s; the worker needs well under a second per product


def test_new_tenants_sync_reaches_synced_in_both_products(page, live, screenshot):
    tenant_id = unique("br-sync")
    domain = f"{tenant_id}.tenants.local"
    badges = {product: page.locator(f".sync-card [data-sync-product='{product}']") for product in ("is", "apim")}
    with live.worker.paused():  # hold the change back until the page shows it waiting
        page.goto(live.url + "/tenants/new")
        show_all_steps(page)
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
    expect(page.locator(".sync-card dl")).to_contain_text(re.compile(r"synced \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"))
    screenshot(page, "tenant-synced")

    page.goto(f"{live.url}/tenants/?q={tenant_id}")
    row = page.locator(f"[data-tenant-key='{tenant_id}']")
    expect(row.locator("[data-sync-status='synced']")).to_have_count(2)


def _owner_less_tenant(tenant_id: str) -> None:
    """A tenant as one registered before owners were required (no product connection then): the registration
    service refuses owner-less tenants now, so the owner is cleared from the row afterwards."""
    tenants.register_tenant({
        "tenantId": tenant_id, "clientId": f"{tenant_id}-client", "clientSecret": "legacy-client-secret",
        "identityProviderType": "LDAP",
        "owner": {"username": "legacy", "email": "legacy@example.com", "provisioningMethod": "invite-via-email"},
        "ldapSchema": {"ldapURLForDirectoryService": "ldap://127.0.0.1:1", "directoryServiceDomainName": "example.com",
                       "directoryServiceRootDistinguishedName": "dc=example,dc=com"},
    }, Actor(name="browser-legacy"), skip_check=True)
    db.session.execute(sa.update(Tenant).where(Tenant.tenant_key == tenant_id).values(
        owner_username=None, owner_email=None, owner_first_name=None, owner_last_name=None, owner_provisioning=None,
        owner_password=None, apim_admin_password=None))
    db.session.commit()


def test_an_owner_less_tenant_names_its_fix_and_syncs_after_the_owner_is_added(page, live, screenshot):
    """Level-triggered recovery: the job fails waiting for a person, the page names the fix and links to it, the
    owner is added through the edit form, Retry delivers the tenant as it is now, both products show synced."""
    tenant_id = unique("br-owner")
    domain = f"{tenant_id}.tenants.local"
    badges = {product: page.locator(f".sync-card [data-sync-product='{product}']") for product in ("is", "apim")}
    with live.worker.paused():
        live.run(_owner_less_tenant, tenant_id)
    page.goto(f"{live.url}/tenants/{tenant_id}")
    for badge in badges.values():
        expect(badge).to_have_attribute("data-sync-status", "failed", timeout=SETTLE_MS)
    page.reload()  # the fix is rendered by the server
    card = page.locator(".sync-card")
    expect(card).to_contain_text("Waiting for a person")
    fix = card.locator("[data-fix='owner'] a").first
    expect(fix).to_have_text("add the tenant's owner")
    screenshot(page, "tenant-waiting-for-owner")

    page.goto(f"{live.url}/sync/")
    failed = page.locator("#failed-jobs tr", has_text=tenant_id)
    expect(failed.locator("[data-fix='owner'] a")).to_have_attribute("href", f"/tenants/{tenant_id}/edit#owner")
    failed.locator("a[href^='/sync/jobs/']").click()
    expect(page.locator("#waiting-for-person")).to_contain_text("add the tenant's owner")
    # The payload recorded the owner the registration had; the job failed on the row as it is now (level-triggered).
    expect(page.locator("#job-payload")).to_contain_text('"username": "legacy"')
    screenshot(page, "job-waiting-for-owner")

    page.goto(f"{live.url}/tenants/{tenant_id}")
    page.locator(".sync-card [data-fix='owner'] a").first.click()
    expect(page).to_have_url(f"{live.url}/tenants/{tenant_id}/edit#owner")
    page.fill("#ownerUsername", "ada")
    page.fill("#ownerEmail", f"ada@{tenant_id}.example.com")
    page.fill("#ownerFirstName", "Ada")
    page.fill("#ownerLastName", "Admin")
    page.select_option("#ownerProvisioningMethod", "inline-password")
    page.fill("#ownerPassword", "Owner#Pass123")
    page.click("input#save")
    # a redirect keeps the fragment
    expect(page).to_have_url(re.compile(re.escape(f"{live.url}/tenants/{tenant_id}") + r"(#owner)?$"))
    expect(page.locator("main [role=status]").first).to_contain_text(f"Tenant {tenant_id} saved")
    for badge in badges.values():  # still failed: fixing the tenant does not retry by itself
        expect(badge).to_have_attribute("data-sync-status", "failed")
    page.locator(".sync-card").get_by_role("button", name="Retry now").click()
    expect(page.locator(".flash-success")).to_contain_text("will be tried again now")
    for badge in badges.values():
        expect(badge).to_have_attribute("data-sync-status", "synced", timeout=SETTLE_MS)
    in_is, in_apim = live.products.is7.tenant(domain), live.products.apim.tenant(domain)
    assert in_is is not None and in_is.owner.username == "ada"
    assert in_apim is not None and (in_apim.admin, in_apim.active) == ("ada", True)
    page.reload()
    expect(page.locator(".sync-card")).not_to_contain_text("Waiting for a person")
    screenshot(page, "tenant-fixed-and-synced")
