"""Forms that respect people, in a real browser (issue 16): focus lands on the error summary after a failed
submission and its links move focus to their fields (in whichever step holds them); the register form shown one
step at a time, driven from the keyboard; secrets typed into a failed submission kept (marked, never in the page)
and used by the next one; the algorithm change warning on Edit; 0 serious or critical axe violations at 1366 and
390 px, with screenshots of the register form with errors at both widths."""
from __future__ import annotations

import secrets

import pytest
from playwright.sync_api import Page, expect

from portal.models import Tenant
from portal.services.context import Actor
from portal.services.tenants import service as tenants
from tests.browser.layout import PHONE, WIDE, layout_problems
from tests.browser.test_browser_tenants import fill_tenant
from tests.browser.ui import field_errors, unique

FOCUSED_IS_SUMMARY = "document.activeElement && document.activeElement.matches('[data-error-summary]')"
STEP_STATUS = "[data-step-status]"


def submit(page: Page) -> None:
    """Press the register button of whichever step shows (the form is one POST whatever the step)."""
    page.locator("input#save").evaluate("save => save.form.requestSubmit(save)")


def next_step(page: Page) -> None:
    """Next, from the keyboard: focus the button and press Enter."""
    page.locator("[data-step-move='1']").focus()
    page.keyboard.press("Enter")


def stored(live, tenant_id: str) -> Tenant:
    return live.run(tenants.get_tenant, tenant_id)


def test_focus_lands_on_the_error_summary_and_its_links_focus_their_fields(page: Page, live):
    page.goto(live.url + "/tenants/new")
    page.fill("#tenantId", "bad id!")
    submit(page)
    summary = page.locator("[data-error-summary]")
    expect(summary).to_be_visible()
    expect(summary.locator("h2")).to_contain_text("problems")
    assert page.evaluate(FOCUSED_IS_SUMMARY), "focus is not on the error summary"
    expect(page.locator(STEP_STATUS)).to_contain_text("Step 1 of 4")  # the first error's step: tenant and owner

    # A link to a field on another step shows that step and focuses the field, from the keyboard.
    link = summary.locator("a[href='#clientId']")
    link.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#clientId")).to_be_focused()
    expect(page.locator(STEP_STATUS)).to_contain_text("Step 3 of 4")
    expect(page.locator("#tenantId")).to_be_hidden()
    expect(page.locator("#clientId")).to_have_attribute("aria-invalid", "true")
    summary.locator("a[href='#tenantId']").click()
    expect(page.locator("#tenantId")).to_be_focused()
    expect(field_errors(page, "tenantId")).to_have_text(["Use 1 to 64 letters, digits, '_' or '-'."])


def test_the_register_form_one_step_at_a_time_from_the_keyboard(page: Page, live):
    tenant_id = unique("br-steps")
    page.goto(live.url + "/tenants/new")
    status = page.locator(STEP_STATUS)
    expect(status).to_have_text("Step 1 of 4: Tenant and owner")
    expect(page.locator("#clientId")).to_be_hidden()
    expect(page.locator("[data-step-move='-1']")).to_be_hidden()

    next_step(page)  # the tenant id is `required`: the browser's own check keeps the step
    expect(status).to_contain_text("Step 1 of 4")
    page.locator("#tenantId").focus()
    page.keyboard.type(tenant_id)
    page.fill("#ownerUsername", "olive")
    page.fill("#ownerEmail", f"olive@{tenant_id}.example.com")
    next_step(page)
    expect(status).to_have_text("Step 2 of 4: Identity provider")
    expect(page.locator("#step-idp legend")).to_be_focused()
    expect(page.locator("#tenantId")).to_be_hidden()
    page.select_option("#identityProviderType", "LDAP")
    page.fill("#ldapURLForDirectoryService", "ldap://127.0.0.1:1")
    page.fill("#directoryServiceDomainName", "example.com")
    page.fill("#directoryServiceRootDistinguishedName", "dc=example,dc=com")

    page.locator("[data-step-move='-1']").focus()  # Back, and forward again: what was typed stays
    page.keyboard.press("Space")
    expect(status).to_contain_text("Step 1 of 4")
    expect(page.locator("#tenantId")).to_have_value(tenant_id)
    next_step(page)
    next_step(page)
    expect(status).to_have_text("Step 3 of 4: Client, token algorithm and keys")
    page.fill("#clientId", f"{tenant_id}-client")
    client_secret = "steps-" + secrets.token_hex(12)
    page.fill("#clientSecret", client_secret)
    next_step(page)
    expect(status).to_contain_text("Step 4 of 4")
    review = page.locator("[data-review]")
    expect(review).to_contain_text(tenant_id)
    expect(review).to_contain_text("typed (not shown)")
    expect(review).not_to_contain_text(client_secret)
    expect(page.locator("[data-step-move='1']")).to_be_hidden()
    page.check("#skip_check")
    page.locator("#step-review input#save").focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{live.url}/tenants/{tenant_id}")
    assert stored(live, tenant_id).client_secret == client_secret


def test_secrets_typed_into_a_failed_submission_are_kept_marked_and_used(page: Page, live):
    tenant_id = unique("br-kept")
    typed = {"clientSecret": "kept-cs-" + secrets.token_hex(10), "bindPassword": "kept-bind-" + secrets.token_hex(10),
             "ownerPassword": "Kept#" + secrets.token_hex(10)}
    page.goto(live.url + "/tenants/new")
    fill_tenant(page, tenant_id, "LDAP")  # all steps on one page
    page.fill("#tenantId", "bad id!")
    page.fill("#ldapURLForDirectoryService", "ldap://127.0.0.1:1")
    page.fill("#directoryServiceDomainName", "example.com")
    page.fill("#directoryServiceRootDistinguishedName", "dc=example,dc=com")
    page.fill("#bindDN", "cn=admin,dc=example,dc=com")
    page.select_option("#ownerProvisioningMethod", "inline-password")
    for field_id, value in typed.items():
        page.fill(f"#{field_id}", value)
    page.check("#skip_check")
    submit(page)

    expect(page.locator(".kept-note")).to_contain_text("Client secret")
    html = page.content()
    for field_id, value in typed.items():
        assert value not in html, f"{field_id} is in the page"
        expect(page.locator(f"#{field_id}-help")).to_have_text(
            "kept (typed earlier) — leave blank to keep, type to replace")
        expect(page.locator(f"#{field_id}")).to_have_value("")
    page.fill("#tenantId", tenant_id)
    submit(page)
    expect(page).to_have_url(f"{live.url}/tenants/{tenant_id}")
    tenant = stored(live, tenant_id)
    assert (tenant.client_secret, tenant.idp_secret, tenant.owner_password) == tuple(typed.values())


@pytest.mark.parametrize("viewport", [WIDE, PHONE], ids=["1366px", "390px"])
def test_form_pages_with_errors_pass_axe(page: Page, live, viewport, screenshot):
    page.set_viewport_size(viewport)
    width = viewport["width"]
    page.goto(live.url + "/tenants/new")
    submit(page)
    expect(page.locator("[data-error-summary]")).to_be_visible()
    problems = {"register, errors": layout_problems(page)}  # serious and critical axe violations, sideways scroll
    screenshot(page, f"register-form-errors-{width}")
    page.locator("[data-step-all]").click()
    problems["register, all steps"] = layout_problems(page)

    tenant_id = unique("br-axe")
    live.run(tenants.register_tenant, {
        "tenantId": tenant_id, "clientId": f"{tenant_id}-client", "clientSecret": "axe-client-secret-123",
        "identityProviderType": "LDAP",
        "owner": {"username": "axe", "email": "axe@example.com", "provisioningMethod": "invite-via-email"},
        "ldapSchema": {"ldapURLForDirectoryService": "ldap://127.0.0.1:1", "directoryServiceDomainName": "example.com",
                       "directoryServiceRootDistinguishedName": "dc=example,dc=com"}},
        Actor(name="browser-forms"), skip_check=True)
    page.goto(f"{live.url}/tenants/{tenant_id}/edit")
    page.select_option("#supportAlgorithm", "RS256")
    page.locator("input#save").last.click()
    expect(page.locator("[data-error-summary]")).to_contain_text("rotates the signing key")
    assert page.evaluate(FOCUSED_IS_SUMMARY)
    problems["edit, algorithm change refused"] = layout_problems(page)
    screenshot(page, f"edit-form-algorithm-{width}")
    page.check("#confirmAlgorithmChange")
    page.check("#skip_check")  # its directory is not reachable; the change is about the keys
    page.locator("input#save").last.click()
    expect(page).to_have_url(f"{live.url}/tenants/{tenant_id}")
    assert {problem: found for problem, found in problems.items() if found} == {}
