"""Registering Microsoft Entra ID tenants through the form in a real browser, against the Entra simulator (its own
process, HTTPS): the preset's fields in the EXTERNAL section, a passing connection check, the tenant page's
directory facts, and a bad allow-list entry reported next to its field."""
from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from simulators.entra_directory import API_MULTI, API_V2, CONTOSO, DAEMON, FABRIKAM
from tests.browser.test_browser_tenants import expect_registered, fill_tenant, register
from tests.browser.ui import field_errors, unique


@pytest.fixture
def trusted(live, entra_sim, tmp_path: Path):
    """The live portal trusts the Entra simulator's CA as well as the OpenID provider's (one bundle, both CAs), for
    this test only; its loopback address is already an allowed lab network. TLS stays verified."""
    before = live.app.config["OIDC_CA_BUNDLE"]
    bundle = tmp_path / "cas.pem"
    bundle.write_text(Path(before).read_text() + Path(entra_sim.ca_bundle_path).read_text())
    live.app.config["OIDC_CA_BUNDLE"] = str(bundle)
    yield entra_sim
    live.app.config["OIDC_CA_BUNDLE"] = before


def fill_entra(page: Page, tenant_id: str, authority: str, directory: str, audiences: str) -> None:
    fill_tenant(page, tenant_id, "EXTERNAL", algorithm="RS256")
    page.fill("#clientId", DAEMON)
    page.fill("#clientSecret", "Sim8Q~daemon-secret")
    page.fill("#entraDirectory", directory)
    page.fill("#entraAuthority", authority)
    page.fill("#entraAudiences", audiences)


def test_register_a_single_tenant_entra_directory(page: Page, live, trusted):
    tenant_id = unique("br-entra")
    page.goto(live.url + "/tenants/new")
    fill_entra(page, tenant_id, trusted.authority, CONTOSO, API_V2)
    expect(page.locator("#entraAllowedDirectories")).to_be_visible()
    register(page)
    expect_registered(page, live, tenant_id, verified=True)
    expect(page.locator(".flash-success")).to_contain_text("test token v2.0 verified")
    facts = page.locator("dl.facts", has=page.locator("dt", has_text="Directory"))
    expect(facts).to_contain_text("Microsoft Entra ID")
    expect(facts).to_contain_text(CONTOSO)
    expect(facts).to_contain_text(f"{trusted.authority}/{CONTOSO}/discovery/v2.0/keys")


def test_register_a_multi_tenant_application_with_an_allow_list(page: Page, live, trusted):
    tenant_id = unique("br-entra-multi")
    page.goto(live.url + "/tenants/new")
    fill_entra(page, tenant_id, trusted.authority, "organizations", API_MULTI)
    page.fill("#entraAllowedDirectories", f"{FABRIKAM}\nfabrikam")
    register(page)
    expect(field_errors(page, "entraAllowedDirectories")).to_contain_text(
        "'fabrikam' is not a directory (tenant) id: give its GUID.")
    page.fill("#clientSecret", "Sim8Q~daemon-secret")  # secrets are not sent back into the page
    page.fill("#entraAllowedDirectories", FABRIKAM)
    register(page)
    expect_registered(page, live, tenant_id, verified=True)
    expect(page.locator("#entra-directories")).to_have_text(FABRIKAM)
    expect(page.locator("dt:text-is('Directory') + dd")).to_have_text("organizations (multi-tenant)")
    expect(page.locator(".check-summary").first).to_contain_text("Entra ID organizations (multi-tenant)")
