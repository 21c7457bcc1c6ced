"""Every main page renders in a real browser without a console error, a CSP violation or a sideways scroll, and is
saved as a screenshot for people to look at ($PORTAL_SCREENSHOT_DIR, default build/screenshots/). This module sorts
last, so the pages show what the other tests made. Also: the guard that fails the other tests sees what it is meant
to see."""
from __future__ import annotations

import time

from playwright.sync_api import expect

from portal.services.context import Actor
from portal.services.tenants import service as tenants
from tests.browser.ui import unique

WIDEST = """(() => {
  const wide = [...document.querySelectorAll("main *")]
    .filter(e => e.getBoundingClientRect().right > window.innerWidth);
  return wide.slice(-3).map(e => e.tagName + "." + e.className + " " + (e.textContent || "").slice(0, 60)).join(" | ");
})()"""
PAGES = [  # (screenshot name, path, heading)
    ("01-dashboard", "/", "Dashboard"),
    ("02-tenant-list", "/tenants/", "Tenants"),
    ("03-tenant-form", "/tenants/new", "Register tenant"),
    ("04-tenant-detail", "/tenants/{tenant_id}", "{tenant_id}"),
    ("05-certificates", "/certificates/", "Certificates"),
    ("06-mappings", "/certificates/mappings", "Thumbprint mappings"),
    ("07-sharing", "/sharing/", "Tenant sharing between IS 7 and API Manager"),
    ("08-sync", "/sync/", "Synchronisation"),
    ("09-audit", "/audit/", "Audit log"),
]


def test_main_pages_render_cleanly(page, live, screenshot):
    tenant_id = unique("br-tour")
    live.run(tenants.register_tenant, {
        "tenantId": tenant_id, "displayName": "Browser tour", "clientId": "tour", "clientSecret": "tour-secret",
        "identityProviderType": "LDAP",
        "owner": {"username": "tour", "email": "tour@example.com", "firstName": "Tour", "lastName": "Guide",
                  "provisioningMethod": "invite-via-email"},
        "ldapSchema": {"ldapURLForDirectoryService": "ldap://127.0.0.1:1", "directoryServiceDomainName": "example.com",
                       "directoryServiceRootDistinguishedName": "dc=example,dc=com"},
    }, Actor(name="browser-tour"), skip_check=True)
    for name, path, heading in PAGES:
        response = page.goto(live.url + path.format(tenant_id=tenant_id))
        assert response is not None and response.status == 200, (path, response and response.status)
        expect(page.locator("main h1")).to_contain_text(heading.format(tenant_id=tenant_id))
        expect(page.locator("link[rel=stylesheet]")).to_have_count(1)
        # The style sheet applied (the top bar has its dark background), and nothing is wider than the window.
        assert page.locator("header.topbar").evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(22, 33, 58)"
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), (
            f"{path} scrolls sideways: " + page.evaluate(WIDEST))
        screenshot(page, name)


def test_the_guard_sees_csp_violations_and_script_errors(page, live, guard):
    """The listeners the other tests rely on: an inline script and a foreign image are refused by the portal's CSP
    and reported, and an uncaught exception is reported. The problems are then cleared so this test passes."""
    page.goto(live.url + "/")
    page.evaluate("""() => {
        const script = document.createElement("script");
        script.textContent = "window.__inline = true";
        document.body.appendChild(script);
        const img = document.createElement("img");
        img.src = "https://example.invalid/pixel.png";
        document.body.appendChild(img);
        setTimeout(() => { throw new Error("deliberate failure"); }, 0);
    }""")
    deadline = time.monotonic() + 5
    while len(guard.problems) < 5 and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    seen = "\n".join(guard.problems)
    assert page.evaluate("window.__inline") is None  # the inline script did not run
    assert "CSP: script-src-elem blocked inline" in seen
    assert "CSP: img-src blocked https://example.invalid/pixel.png" in seen
    assert "Content Security Policy" in seen  # Chromium's own console message
    assert "uncaught exception: Error: deliberate failure" in seen
    guard.problems.clear()
