"""Issue 16's layout, in Chromium at 1366 and 390 px, with long values present (a tenant whose id, URL, DN and
name have nothing to break at): no page scrolls sideways, the header keeps Sign out reachable on a phone and its
menu works from the keyboard, copy buttons put the value on the clipboard and say so, and the dashboard shows each
block with real data (a job waiting for a person, a certificate, a passive key and an API client key expiring).
Screenshots of the dashboard, the register form with errors, the tenant page and the sharing page at both widths
go to build/screenshots/."""
from __future__ import annotations

import re
import secrets
from datetime import timedelta

import pytest
import sqlalchemy as sa
from playwright.sync_api import Page, expect

from portal.extensions import db
from portal.models import Tenant
from portal.models.base import utcnow
from portal.services.admin import api_clients
from portal.services.certificates import service as certificates
from portal.services.context import Actor
from portal.services.tenants import service as tenants
from portal.services.tokens import key_ring
from simulators.pki import ca
from tests.browser import layout
from tests.browser.ui import ADMIN, ADMIN_PASSWORD, sign_in

ACTOR = Actor(name="browser-layout")
WIDTHS = list(layout.WIDTHS.items())
WIDTH_IDS = list(layout.WIDTHS)
HOST_LABEL = "directory" + "x" * 54  # 63 characters: the longest DNS label


def _long_tenant(tenant_id: str, cert_label: str, client_name: str) -> dict[str, str]:
    """A tenant with long values everywhere, whose first job waits for a person (its owner was cleared, as for a
    tenant registered before owners were required); a CA expiring in 10 days; a passive signing key; an API
    client whose key expires in 5 days."""
    url = f"ldaps://{HOST_LABEL}.{HOST_LABEL}.{HOST_LABEL}.example.com:636"
    tenants.register_tenant({
        "tenantId": tenant_id, "displayName": "Display_" + "n" * 110, "clientId": "client_" + "c" * 120,
        "clientSecret": "layout-" + secrets.token_hex(16), "identityProviderType": "LDAP",
        "owner": {"username": "owner", "email": "o" * 60 + "@example.com", "provisioningMethod": "invite-via-email"},
        "ldapSchema": {"ldapURLForDirectoryService": url, "directoryServiceDomainName": "example.com",
                       "directoryServiceRootDistinguishedName": f"ou={HOST_LABEL},ou={HOST_LABEL},dc=example,dc=com"},
    }, ACTOR, skip_check=True)
    db.session.execute(sa.update(Tenant).where(Tenant.tenant_key == tenant_id.lower()).values(
        owner_username=None, owner_email=None, owner_first_name=None, owner_last_name=None, owner_provisioning=None,
        owner_password=None, apim_admin_password=None))
    db.session.commit()
    key_ring.rotate(tenant_id, ACTOR)
    certificates.upload_certificate("ca", ca(f"Layout CA {secrets.token_hex(3)}", days=10).pem, ACTOR,
                                    label=cert_label)
    client, _key = api_clients.create_client(client_name, ACTOR, expires_at=utcnow() + timedelta(days=5))
    return {"tenant_id": tenant_id, "cert_label": cert_label, "client_name": client_name, "app_id": client.app_id}


@pytest.fixture(scope="module")
def long_values(live) -> dict[str, str]:
    tenant_id = f"Long_{secrets.token_hex(3)}_" + "w" * 52  # 64 characters, none to break at
    return live.run(_long_tenant, tenant_id, f"layout-ca-{secrets.token_hex(2)}", f"layout-{secrets.token_hex(2)}")


def _fits(page: Page) -> None:
    problems = layout.layout_problems(page)
    assert not problems, f"{page.url}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize(("width", "viewport"), WIDTHS, ids=WIDTH_IDS)
def test_the_dashboard_shows_each_block_with_real_data(page: Page, live, long_values, width, viewport, screenshot):
    page.set_viewport_size(viewport)
    tenant_id = long_values["tenant_id"]
    needs_person = page.locator("#dash-needs-person li", has_text=tenant_id)
    for _ in range(50):  # the worker gives up on the owner-less tenant's job at once: waiting for a person
        page.goto(live.url + "/")
        if needs_person.count():
            break
        page.wait_for_timeout(200)
    counts = {name: int(page.locator(f"#dash-tenants [data-count='{name}']").inner_text())
              for name in ("total", "active", "inactive", "unverified")}
    assert counts["total"] >= 1 and counts["total"] == counts["active"] + counts["inactive"] >= counts["unverified"]
    expect(needs_person.locator("a").first).to_have_attribute("href", f"/tenants/{tenant_id}")
    expect(needs_person.locator("a[href^='/sync/jobs/']")).to_have_count(1)
    expect(page.locator("#dash-sync h2 .badge")).to_have_text("needs attention")
    expect(page.locator("#dash-certificates li", has_text=long_values["cert_label"])).to_contain_text("in 8 days")
    expect(page.locator("#dash-keys li", has_text=tenant_id)).to_contain_text("stops validating in 23 h")
    expect(page.locator("#dash-api-clients li", has_text=long_values["client_name"])).to_contain_text("in 4 days")
    recent = page.locator("#dash-recent a.audit-object", has_text=tenant_id).first
    expect(recent).to_have_attribute("href", f"/tenants/{tenant_id}")
    _fits(page)
    screenshot(page, f"dashboard-{width}")
    needs_person.locator("a").first.click()
    expect(page.locator("h1")).to_contain_text(tenant_id)
    _fits(page)
    screenshot(page, f"tenant-{width}")


@pytest.mark.parametrize(("width", "viewport"), WIDTHS, ids=WIDTH_IDS)
def test_pages_with_long_values_fit_the_window(page: Page, live, long_values, width, viewport, layout_checked):
    page.set_viewport_size(viewport)
    tenant_id = long_values["tenant_id"]
    found = {}
    for path in ("/", "/tenants/", f"/tenants/{tenant_id}", f"/tenants/{tenant_id}/edit", "/sync/",
                 f"/audit/?object_id={tenant_id}", "/audit/", "/certificates/", "/api-clients/",
                 "/tenants/?q=" + tenant_id[:20]):
        page.goto(live.url + path)
        layout_checked.add(page.url)  # both widths are checked here: the after-test check need not repeat it
        problems = layout.layout_problems(page)
        if problems:
            found[path] = problems
    page.goto(f"{live.url}/sync/")
    page.locator("#failed-jobs tr", has_text=tenant_id).locator("a[href^='/sync/jobs/']").click()
    problems = layout.layout_problems(page)
    if problems:
        found[page.url] = problems
    assert not found, layout.report(found)


def test_on_a_phone_sign_out_stays_in_reach_and_the_menu_works_from_the_keyboard(anonymous_page: Page, live):
    page = anonymous_page
    page.set_viewport_size(layout.PHONE)
    sign_in(page, live.url, ADMIN, ADMIN_PASSWORD)  # a session of its own: signing out ends only this one
    expect(page).to_have_url(live.url + "/")
    menu = page.get_by_role("button", name="Menu")
    expect(menu).to_have_attribute("aria-expanded", "false")  # the page has settled: portal.js folded the menu
    page.wait_for_load_state("load")  # and the style sheet is applied, so the box below is the one people see
    sign_out = page.get_by_role("button", name="Sign out")
    expect(sign_out).to_be_visible()
    box = sign_out.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= layout.PHONE["width"]
    assert box["y"] + box["height"] <= 80, box  # in the first row, not pushed below the navigation

    expect(page.get_by_role("navigation", name="Main")).to_be_hidden()
    menu.focus()
    page.keyboard.press("Enter")
    expect(menu).to_have_attribute("aria-expanded", "true")
    tenants_link = page.get_by_role("navigation", name="Main").get_by_role("link", name="Tenants")
    expect(tenants_link).to_be_visible()
    page.keyboard.press("Tab")
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Dashboard")).to_be_focused()
    page.keyboard.press("Escape")
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(menu).to_be_focused()
    expect(tenants_link).to_be_hidden()
    _fits(page)

    page.set_viewport_size(layout.WIDE)  # wide: no Menu button, the navigation shows
    expect(menu).to_be_hidden()
    expect(tenants_link).to_be_visible()
    page.set_viewport_size(layout.PHONE)
    sign_out.click()
    expect(page).to_have_url(re.compile(re.escape(live.url) + r"/login"))


def _copied(page: Page, button, expected: str, what: str) -> None:
    """Press the copy button from the keyboard; the clipboard holds the value and the live region says so."""
    button.focus()
    page.keyboard.press("Enter")
    expect(button).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == expected
    expect(page.locator("#copy-status[role='status']")).to_have_text(f"Copied {what} to the clipboard.")


def test_copy_buttons_put_each_value_on_the_clipboard(page: Page, live, long_values, guard):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live.url)
    page.on("dialog", lambda dialog: dialog.accept())  # "Generate client secret" asks first
    page.set_viewport_size(layout.PHONE)

    page.goto(live.url + "/certificates/")
    page.locator("tr", has_text=long_values["cert_label"]).locator("a").first.click()
    issuer = page.get_by_label("trusted_issuer for this certificate").input_value()
    thumbprint = page.get_by_label("cert_thumbprint for this certificate").input_value()
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", thumbprint)
    _copied(page, page.get_by_role("button", name="Copy trusted_issuer"), issuer, "trusted_issuer")
    _copied(page, page.get_by_role("button", name="Copy cert_thumbprint"), thumbprint, "cert_thumbprint")

    page.goto(live.url + "/certificates/config")
    toml = page.locator("[data-copy] pre").inner_text()
    _copied(page, page.get_by_role("button", name="Copy deployment.toml block"), toml.strip(),
            "deployment.toml block")
    assert "[[user_thumbprint_mapping]]" in toml or "[" in toml

    tenant_id = long_values["tenant_id"]
    page.goto(f"{live.url}/tenants/{tenant_id}")
    _copied(page, page.get_by_role("button", name="Copy client id"), "client_" + "c" * 120, "client id")
    _copied(page, page.get_by_role("button", name="Copy JWKS URL"),
            f"{live.url}/t/{tenant_id}/.well-known/jwks.json", "JWKS URL")
    page.get_by_role("button", name="Generate client secret").click()
    secret = page.locator("#client-secret").input_value()
    assert len(secret) >= 32
    _copied(page, page.get_by_role("button", name="Copy new client secret"), secret, "new client secret")

    page.goto(live.url + "/api-clients/new")
    page.fill("#name", f"copy-{secrets.token_hex(2)}")
    page.locator("main button[type='submit']").click()
    key = page.locator("[data-copy='X-API-Key'] code").inner_text()
    _copied(page, page.get_by_role("button", name="Copy X-API-Key"), key, "X-API-Key")

    page.goto(live.url + "/admins/new")
    page.fill("#username", f"copy-{secrets.token_hex(2)}")
    page.locator("main button[type='submit']").click()
    password = page.locator("[data-copy='one-time password'] code").inner_text()
    _copied(page, page.get_by_role("button", name="Copy one-time password"), password, "one-time password")
    _fits(page)


@pytest.mark.parametrize(("width", "viewport"), WIDTHS, ids=WIDTH_IDS)
def test_register_form_with_errors_and_sharing_page_fit(page: Page, live, width, viewport, guard, screenshot):
    guard.allow_status(400)
    page.set_viewport_size(viewport)
    page.goto(live.url + "/tenants/new")
    page.fill("#tenantId", "bad id with spaces " + "x" * 40)
    page.locator("input#save").evaluate("save => save.form.requestSubmit(save)")  # whichever step shows
    page.wait_for_selector("p.field-error")
    _fits(page)
    screenshot(page, f"register-errors-{width}")
    page.goto(live.url + "/sharing/")
    _fits(page)
    screenshot(page, f"sharing-{width}")
