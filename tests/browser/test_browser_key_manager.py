"""The tenant page's key manager section in a real browser: with IS 7 → API Manager sharing and auto-configure on in
the portal, but off in API Manager's own configuration, the worker's check after the create finds the tenant's
WSO2-IS-7 key manager missing; Repair (after the browser's confirmation) creates it and the section reads ok."""
from __future__ import annotations

import time

from playwright.sync_api import expect

from portal.extensions import db
from portal.models import KeyManagerCheck
from portal.services.sharing import service as sharing
from portal.services.tenants import service as tenants
from simulators.apim import KeyManagerConfig
from tests.browser.ui import unique
from tests.sync_env import ACTOR, LISTENER_PASSWORD, LISTENER_USER


def _registered(tenant_id: str) -> dict:
    return {"tenantId": tenant_id, "displayName": tenant_id, "tenantDomain": f"{tenant_id}.tenants.local",
            "clientId": f"{tenant_id}-client", "clientSecret": "km-client-secret", "identityProviderType": "LDAP",
            "owner": {"username": "ada", "email": f"ada@{tenant_id}.example.com", "firstName": "Ada",
                      "lastName": "Admin", "provisioningMethod": "inline-password", "password": "Owner#Pass123"},
            "ldapSchema": {"ldapURLForDirectoryService": "ldap://127.0.0.1:1",
                           "directoryServiceDomainName": "example.com",
                           "directoryServiceRootDistinguishedName": "dc=example,dc=com"}}


def _checked(live, tenant_id: str, timeout: float = 20.0) -> str:
    """Wait for the worker's check after the create job; returns the stored status."""
    def status():
        tenant = tenants.get_tenant(tenant_id)
        row = db.session.get(KeyManagerCheck, tenant.id)
        return row.status if row else None

    deadline = time.monotonic() + timeout
    while (found := live.run(status)) is None:
        assert time.monotonic() < deadline, "the worker did not check the key manager"
        time.sleep(0.1)
    return found


def test_a_missing_key_manager_is_shown_and_repaired(page, live, screenshot):
    products = live.products
    tenant_id = unique("br-km")
    domain = f"{tenant_id}.tenants.local"
    try:
        products.share(live.app, "is_to_apim")
        products.apim.configure(skip_create_resident_key_manager=True)
        products.apim.configure_key_manager(KeyManagerConfig(products.is7.base_url, False,
                                                             ca_pem=products.pki.server_ca.cert_pem))
        live.run(sharing.set_direction, "is_to_apim",
                 {"apim_username": LISTENER_USER, "apim_password": LISTENER_PASSWORD,
                  "identity_server_base_url": products.is7.base_url, "auto_configure_key_manager": True},
                 ACTOR, confirm=True, check=False)
        live.run(tenants.register_tenant, _registered(tenant_id), ACTOR, skip_check=True)
        assert _checked(live, tenant_id) == "missing"

        page.goto(f"{live.url}/tenants/{tenant_id}")
        section = page.locator("section#key-manager")
        expect(section.locator("[data-key-manager-status]")).to_have_attribute("data-key-manager-status", "missing")
        expect(section.locator(".key-manager-detail")).to_contain_text("no WSO2-IS-7 key manager")
        screenshot(page, "key-manager-missing")

        page.once("dialog", lambda dialog: dialog.accept())
        section.locator("button:has-text('Repair')").click()
        expect(page).to_have_url(f"{live.url}/tenants/{tenant_id}#key-manager")
        expect(page.locator(".flash-success")).to_contain_text("Key manager created in API Manager")
        expect(section.locator("[data-key-manager-status]")).to_have_attribute("data-key-manager-status", "ok")
        expect(section.locator("button:has-text('Repair')")).to_have_count(0)
        [manager] = products.apim.key_managers(domain)
        assert manager["additionalProperties"]["IdentityUser"] == f"ada@{domain}"

        section.locator("button:has-text('Check now')").click()
        expect(page.locator(".flash-success")).to_contain_text("Key manager: ok.")
        screenshot(page, "key-manager-ok")
    finally:
        products.apim.configure_key_manager(None)
        products.apim.configure(skip_create_resident_key_manager=False)
        products.share(live.app, "off")  # whatever happened, the other tests find sharing off
