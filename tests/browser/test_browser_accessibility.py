"""Every main page passes axe-core (the engine screen-reader audits use, vendored by the axe-playwright-python
package, so nothing is downloaded) at a wide window and at a 390 px phone, without a sideways scroll. Pages are
audited as they are when an administrator works: with a tenant, a failed sync job, a certificate and a mapping, and
the register form showing its field errors."""
from __future__ import annotations

from pathlib import Path

import axe_playwright_python
import pytest
from playwright.sync_api import Page

from portal.services.certificates import mappings, service as certificates
from portal.services.context import Actor
from portal.services.tenants import service as tenants
from tests.browser.ui import unique

AXE_JS = (Path(axe_playwright_python.__file__).parent / "axe.min.js").read_text()
# WCAG 2.1 A and AA rules plus axe's best practices; every violation fails, whatever its impact.
AXE_RUN = """async () => await axe.run(document, {
  runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]},
  resultTypes: ["violations"]
})"""
PHONE = {"width": 390, "height": 844}
WIDE = {"width": 1366, "height": 900}
ACTOR = Actor(name="browser-a11y")
WIDEST = """(() => [...document.querySelectorAll("body *")]
  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest("[data-scroll-region]"))
  .slice(-3).map(e => e.tagName + "." + e.className + " " + (e.textContent || "").trim().slice(0, 40)).join(" | "))()"""
PAGES = ["/", "/tenants/", "/tenants/new", "/tenants/{tenant_id}", "/tenants/{tenant_id}/edit", "/tenants/bulk/",
         "/certificates/", "/certificates/{cert_id}", "/certificates/mappings", "/certificates/explain",
         "/certificates/config", "/certificates/truststores", "/mtls-check/", "/sharing/", "/sharing/connections",
         "/sharing/connections/is", "/sync/", "/sync/reconcile", "/tenants/decommissions", "/audit/",
         "/admins/", "/api-clients/"]


def audit(page: Page) -> list[str]:
    """axe's violations on the page shown, one line each: rule, impact, and the first offending elements."""
    page.evaluate(AXE_JS)
    result = page.evaluate(AXE_RUN)
    return [f"{v['id']} ({v['impact']}): {v['help']} -> "
            + "; ".join(f"{' '.join(node['target'])} {node['html'][:90]!r}" for node in v["nodes"][:3])
            for v in result["violations"]]


@pytest.fixture(scope="module")
def fixtures(live) -> dict[str, str]:
    """A tenant and a certificate with a mapping, made once for the pages to show."""
    tenant_id = unique("a11y")
    live.run(tenants.register_tenant, {
        "tenantId": tenant_id, "displayName": "Accessible tenant", "clientId": "a11y", "clientSecret": "a11y-secret-1",
        "identityProviderType": "LDAP",
        "owner": {"username": "ally", "email": "ally@example.com", "firstName": "Al", "lastName": "Ly",
                  "provisioningMethod": "invite-via-email"},
        "ldapSchema": {"ldapURLForDirectoryService": "ldap://127.0.0.1:1", "directoryServiceDomainName": "example.com",
                       "directoryServiceRootDistinguishedName": "dc=example,dc=com"},
    }, ACTOR, skip_check=True)
    pem = live.products.apim_client.cert_pem.encode()

    def certificate_with_mapping() -> int:
        stored = certificates.upload_certificate("apim", pem, ACTOR).stored
        cert_id = stored[0].id if stored else certificates.list_certificates()[0].id
        mappings.create_mapping("user", mappings.prefill_from_certificate(cert_id, "user"), ACTOR)
        return cert_id

    cert_id = live.run(certificate_with_mapping)
    return {"tenant_id": tenant_id, "cert_id": str(cert_id)}


@pytest.mark.parametrize("viewport", [WIDE, PHONE], ids=["1366px", "390px"])
def test_main_pages_pass_axe_and_fit_the_window(page: Page, live, fixtures, viewport, screenshot):
    page.set_viewport_size(viewport)
    found: dict[str, list[str]] = {}
    for number, path in enumerate(PAGES, 1):
        url = live.url + path.format(**fixtures)
        response = page.goto(url)
        assert response is not None and response.status == 200, (path, response and response.status)
        problems = audit(page)
        if not page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"):
            problems.append(f"scrolls sideways: {page.evaluate('document.documentElement.scrollWidth')} px wide, "
                            f"widest: {page.evaluate(WIDEST)}")
        if problems:
            found[path] = problems
        if viewport is PHONE:  # for people to look at, beside the tour's wide screenshots
            slug = "-".join(part for part in path.replace("{", "").replace("}", "").split("/") if part) or "dashboard"
            screenshot(page, f"phone-{number:02d}-{slug}")
    assert not found, "\n".join(f"{path}:\n  " + "\n  ".join(lines) for path, lines in found.items())


def test_the_register_form_with_errors_passes_axe(page: Page, live, guard):
    guard.allow_status(400)
    page.goto(live.url + "/tenants/new")
    page.click("input#save")
    page.wait_for_selector("p.field-error")
    assert audit(page) == []


def test_sign_in_passes_axe(anonymous_page: Page, live):
    anonymous_page.goto(live.url + "/login")
    assert audit(anonymous_page) == []
