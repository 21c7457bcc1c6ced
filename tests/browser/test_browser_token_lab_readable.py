"""The token lab as a person reads it (issue 16), in a real browser: a token of tenant A pasted on tenant B's page
is a warning that links to A, not "valid"; on A's page it is valid, with exp, iat and nbf as UTC times and their
age, and the reason in words with its code as detail. The page passes axe (no serious or critical violation) at
1366 and 390 px without a sideways scroll."""
from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from portal.services.context import Actor
from portal.services.tenants import service as tenants
from tests.browser.test_browser_live_sync import _fits_and_passes_axe
from tests.browser.ui import unique

UTC_TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"


def _register(tenant_id: str) -> None:
    tenants.register_tenant({
        "tenantId": tenant_id, "clientId": f"{tenant_id}-client", "clientSecret": f"{tenant_id}-client-secret",
        "identityProviderType": "LDAP", "supportAlgorithm": "RS256",
        "owner": {"username": "lab", "email": "lab@example.com", "provisioningMethod": "invite-via-email"},
        "ldapSchema": {"ldapURLForDirectoryService": "ldap://127.0.0.1:1", "directoryServiceDomainName": "example.com",
                       "directoryServiceRootDistinguishedName": "dc=example,dc=com"},
    }, Actor(name="browser-lab-readable"), skip_check=True)


def _check(page: Page, token: str):
    lab = page.locator("section#token-lab")
    lab.locator("textarea[name=token]").fill(token)
    lab.get_by_role("button", name="Decode and validate").click()
    return page.locator("#token-verdict")


def test_another_tenants_token_warns_and_times_read_as_utc_with_their_age(page, live, screenshot):
    owner, other = unique("br-lab-a"), unique("br-lab-b")
    live.run(_register, owner)
    live.run(_register, other)
    page.goto(f"{live.url}/tenants/{owner}")
    page.locator("section#token-lab").get_by_role("button", name="Issue test token").click()
    token = page.locator("textarea#issued-token").input_value().strip()

    page.goto(f"{live.url}/tenants/{other}")
    verdict = _check(page, token)
    expect(verdict.locator(".badge").first).to_have_text("another tenant's token")
    expect(verdict).to_contain_text(f"This is not a token of {other}. It names tenant {owner}")
    expect(verdict.locator(".badge", has_text=re.compile(r"^valid$"))).to_have_count(0)
    link = verdict.locator("#token-other-tenant a")
    expect(link).to_have_attribute("href", f"/tenants/{owner}#token-lab")
    screenshot(page, "token-lab-other-tenant")
    _fits_and_passes_axe(page)

    link.click()
    expect(page).to_have_url(f"{live.url}/tenants/{owner}#token-lab")
    verdict = _check(page, token)
    expect(verdict.locator(".badge").first).to_have_text("valid")
    expect(verdict.locator(".verdict-reason")).to_have_text("The token is valid.")
    expect(verdict.locator("code.reason")).to_have_text("ok")  # the code, as secondary detail
    expect(verdict.locator("dd[data-claim='exp']")).to_contain_text(
        re.compile(UTC_TIME + r" \((in 59 min|in 1 h)\)"))
    expect(verdict.locator("dd[data-claim='iat']")).to_contain_text(re.compile(UTC_TIME + r" \(.*ago\)"))
    expect(verdict.locator("dd[data-claim='nbf'] time")).to_have_text(re.compile(UTC_TIME))
    expect(verdict.locator("#token-other-tenant")).to_have_count(0)
    screenshot(page, "token-lab-readable")
    _fits_and_passes_axe(page)

    header, claims, signature = token.split(".")
    altered = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    verdict = _check(page, f"{header}.{claims}.{altered}")
    expect(verdict.locator(".badge").first).to_have_text("invalid")
    expect(verdict.locator(".verdict-reason")).to_contain_text("The signature does not match")
    expect(verdict.locator("code.reason")).to_have_text("bad_signature")
