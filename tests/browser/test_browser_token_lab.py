"""The token lab on the tenant page, in a real browser: issue a test token with the tenant's active key, decode and
validate it (valid, with its header and claims), then see an altered token refused with its reason code."""
from __future__ import annotations

import base64
import json
import secrets

from playwright.sync_api import expect

from portal.services.context import Actor
from portal.services.tenants import service as tenants
from tests.browser.ui import unique


def segment(token: str, index: int) -> dict:
    part = token.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_issue_then_decode_and_validate_a_token(page, live, screenshot):
    tenant_id = unique("br-lab")
    live.run(tenants.register_tenant, {
        "tenantId": tenant_id, "clientId": f"{tenant_id}-client", "clientSecret": secrets.token_urlsafe(32),
        "identityProviderType": "LDAP", "supportAlgorithm": "RS256",
        "owner": {"username": "lab", "email": "lab@example.com", "provisioningMethod": "invite-via-email"},
        "ldapSchema": {"ldapURLForDirectoryService": "ldap://127.0.0.1:1", "directoryServiceDomainName": "example.com",
                       "directoryServiceRootDistinguishedName": "dc=example,dc=com"},
    }, Actor(name="browser-lab"), skip_check=True)
    page.goto(f"{live.url}/tenants/{tenant_id}")
    lab = page.locator("section#token-lab")
    lab.get_by_role("button", name="Issue test token").click()

    issued = page.locator("textarea#issued-token")
    expect(issued).to_have_attribute("readonly", "")
    token = issued.input_value().strip()
    assert token.count(".") == 2, token
    assert segment(token, 0)["alg"] == "RS256"
    assert segment(token, 1).get("TENANTID", tenant_id).lower() == tenant_id

    lab = page.locator("section#token-lab")
    lab.locator("textarea[name=token]").fill(token)
    lab.get_by_role("button", name="Decode and validate").click()
    verdict = page.locator("#token-verdict")
    expect(verdict).to_contain_text("valid")
    expect(verdict).not_to_contain_text("invalid")
    expect(verdict).to_contain_text("RS256")  # the header
    expect(verdict).to_contain_text(segment(token, 1)["iss"])  # the claims
    screenshot(page, "token-lab")

    header, claims, signature = token.split(".")
    altered = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    lab = page.locator("section#token-lab")
    lab.locator("textarea[name=token]").fill(f"{header}.{claims}.{altered}")
    lab.get_by_role("button", name="Decode and validate").click()
    expect(page.locator("#token-verdict")).to_contain_text("invalid")
    expect(page.locator("#token-verdict")).to_contain_text("bad_signature")

    lab = page.locator("section#token-lab")
    lab.locator("textarea[name=token]").fill("not-a-token")
    lab.get_by_role("button", name="Decode and validate").click()
    expect(page.locator("#token-verdict")).to_contain_text("invalid")
    expect(page.locator("#token-verdict")).to_contain_text("malformed")
