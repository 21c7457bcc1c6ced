"""Every main page passes axe-core at a wide window and at a 390 px phone (every violation fails here, whatever its
impact), without a sideways scroll. Pages are audited as they are when an administrator works: with a tenant, a
certificate and a mapping, and the register form showing its field errors. (Every other page a browser test visits
is held to serious and critical violations and the same width by tests/browser/layout.py.)"""
from __future__ import annotations

import pytest
from playwright.sync_api import Page

from portal.services.certificates import mappings, service as certificates
from portal.services.context import Actor
from portal.services.tenants import service as tenants
from tests.browser.layout import PHONE, WIDE, axe_violations, sideways_scroll
from tests.browser.ui import unique

ACTOR = Actor(name="browser-a11y")
PAGES = ["/", "/tenants/", "/tenants/new", "/tenants/{tenant_id}", "/tenants/{tenant_id}/edit", "/tenants/bulk/",
         "/certificates/", "/certificates/{cert_id}", "/certificates/mappings", "/certificates/explain",
         "/certificates/config", "/certificates/truststores", "/mtls-check/", "/sharing/", "/sharing/connections",
         "/sharing/connections/is", "/sync/", "/sync/reconcile", "/tenants/decommissions", "/audit/",
         "/admins/", "/api-clients/"]


def audit(page: Page) -> list[str]:
    return axe_violations(page)


@pytest.fixture(scope="module")
def fixtures(live) -> dict[str, str]:
    """A tenant with long values and a certificate with a mapping, made once for the pages to show."""
    tenant_id = unique("a11y") + "_" + "y" * 50  # long values with nothing to break at, as people paste them
    live.run(tenants.register_tenant, {
        "tenantId": tenant_id, "displayName": "Accessible_tenant_" + "n" * 100, "clientId": "a11y_" + "c" * 100,
        "clientSecret": "a11y-secret-1", "identityProviderType": "LDAP",
        "owner": {"username": "ally", "email": "ally@example.com", "firstName": "Al", "lastName": "Ly",
                  "provisioningMethod": "invite-via-email"},
        "ldapSchema": {"ldapURLForDirectoryService": f"ldap://{'d' * 63}.{'e' * 63}.example.com:1",
                       "directoryServiceDomainName": "example.com",
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
def test_main_pages_pass_axe_and_fit_the_window(page: Page, live, fixtures, viewport, screenshot, layout_checked):
    page.set_viewport_size(viewport)
    found: dict[str, list[str]] = {}
    for number, path in enumerate(PAGES, 1):
        url = live.url + path.format(**fixtures)
        response = page.goto(url)
        assert response is not None and response.status == 200, (path, response and response.status)
        layout_checked.add(response.url)  # both widths are checked here: the after-test check need not repeat it
        problems = audit(page)
        scroll = sideways_scroll(page)
        if scroll:
            problems.append(scroll)
        if problems:
            found[path] = problems
        if viewport is PHONE:  # for people to look at, beside the tour's wide screenshots
            slug = "-".join(part for part in path.replace("{", "").replace("}", "").split("/") if part) or "dashboard"
            screenshot(page, f"phone-{number:02d}-{slug}")
    assert not found, "\n".join(f"{path}:\n  " + "\n  ".join(lines) for path, lines in found.items())


def test_the_register_form_with_errors_passes_axe(page: Page, live, guard):
    guard.allow_status(400)
    page.goto(live.url + "/tenants/new")
    page.locator("input#save").evaluate("save => save.form.requestSubmit(save)")  # whichever step shows
    page.wait_for_selector("p.field-error")
    assert audit(page) == []


def test_sign_in_passes_axe(anonymous_page: Page, live):
    anonymous_page.goto(live.url + "/login")
    assert audit(anonymous_page) == []
