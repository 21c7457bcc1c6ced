"""Decommissioning in a real browser: an administrator types the tenant id to confirm, the worker deactivates the
tenant in both simulated products (neither allows deletion here, as in WSO2's defaults), removes it from the
registry, the outcomes are listed, and reconcile shows the domain as decommissioned rather than as a stray."""
from __future__ import annotations

import time

import sqlalchemy as sa
from playwright.sync_api import expect

from portal.extensions import db
from portal.models import Tenant
from portal.services.context import Actor
from portal.services.tenants import service as tenants
from tests.browser.ui import field_errors, unique

SETTLE_S = 20.0


def _register(tenant_id: str) -> None:
    tenants.register_tenant({
        "tenantId": tenant_id, "clientId": f"{tenant_id}-client", "clientSecret": "decommission-client-secret",
        "identityProviderType": "LDAP",
        "owner": {"username": "olga", "email": f"olga@{tenant_id}.example.com", "provisioningMethod": "inline-password",
                  "password": "Owner#Pass123"},
        "ldapSchema": {"ldapURLForDirectoryService": "ldap://127.0.0.1:1", "directoryServiceDomainName": "example.com",
                       "directoryServiceRootDistinguishedName": "dc=example,dc=com"},
    }, Actor(name="browser-decommission"), skip_check=True)


def _registered(tenant_id: str) -> bool:
    found = db.session.execute(sa.select(Tenant.id).where(Tenant.tenant_key == tenant_id)).first() is not None
    db.session.rollback()
    return found


def _wait(condition, what: str) -> None:
    deadline = time.monotonic() + SETTLE_S
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen in {SETTLE_S:g} s"
        time.sleep(0.1)


def test_decommission_confirm_worker_outcomes_and_reconcile(page, live, guard, screenshot):
    tenant_id = unique("br-decom")
    domain = f"{tenant_id}.tenants.local"
    live.run(_register, tenant_id)
    _wait(lambda: live.products.is7.tenant(domain) is not None and live.products.apim.tenant(domain) is not None,
          "the onboarding")
    page.goto(f"{live.url}/tenants/{tenant_id}")
    section = page.locator("section#decommission")
    expect(section).to_contain_text("Deactivates the tenant in IS 7 and API Manager")

    guard.allow_status(400)  # the form is re-rendered with its error
    section.locator("#confirm").fill("not-the-id")
    section.get_by_role("button", name="Decommission tenant").click()
    expect(field_errors(page, "confirm")).to_contain_text(f"Type the tenant id, {tenant_id}, to confirm")
    assert live.run(_registered, tenant_id)

    with live.worker.paused():  # see the tenant marked before the worker removes it
        page.locator("section#decommission #confirm").fill(tenant_id)
        page.locator("section#decommission").get_by_role("button", name="Decommission tenant").click()
        expect(page.locator("#decommissioning")).to_contain_text("Being decommissioned")
        expect(page.get_by_role("heading", name="Manage", exact=True)).to_have_count(0)  # no edit, no activate
        expect(page.get_by_role("link", name="Edit", exact=True)).to_have_count(0)
        screenshot(page, "tenant-decommissioning")
    _wait(lambda: not live.run(_registered, tenant_id), "the decommissioning")
    in_is, in_apim = live.products.is7.tenant(domain), live.products.apim.tenant(domain)
    assert (in_is.activated, in_apim.active) == (False, False)  # kept deactivated: deletion is off in both

    page.goto(f"{live.url}/tenants/?q={tenant_id}")
    expect(page.locator(f"[data-tenant-key='{tenant_id}']")).to_have_count(0)
    page.get_by_role("link", name="Decommissioned").click()
    row = page.locator(f"tr[data-decommission-domain='{domain}']")
    expect(row).to_contain_text("completed")
    for product in ("is", "apim"):
        expect(row.locator(f"[data-outcome='{product}']")).to_have_text("kept deactivated (deletion disabled)")
    expect(row).to_contain_text("TM-60016")
    screenshot(page, "decommissions")

    page.goto(f"{live.url}/sync/reconcile")
    reconciled = page.locator("table.reconcile tr", has_text=domain)
    expect(reconciled).to_contain_text("decommissioned (kept deactivated: deletion disabled)")
    expect(reconciled.locator(f"[data-decommissioned='{tenant_id}']")).to_have_count(1)
    expect(reconciled.get_by_role("link", name="Import into the registry…")).to_have_count(0)
    screenshot(page, "reconcile-decommissioned")
