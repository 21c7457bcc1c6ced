"""Small helpers the browser tests share: signing in, unique names, a form field's error messages."""
from __future__ import annotations

import secrets

from playwright.sync_api import Locator, Page

ADMIN, ADMIN_PASSWORD = "browser-admin", "browser admin passphrase " + secrets.token_hex(4)


def sign_in(page: Page, base_url: str, username: str, password: str) -> None:
    page.goto(base_url + "/login")
    submit_sign_in(page, username, password)


def submit_sign_in(page: Page, username: str, password: str) -> None:
    """Fill and submit the sign-in form on the page shown (which may carry a ?next=)."""
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("main button:has-text('Sign in')")


def unique(prefix: str) -> str:
    """A tenant id no other test uses: the tests share one live portal and must not depend on their order."""
    return f"{prefix}-{secrets.token_hex(3)}"


def field_errors(page: Page, field_id: str) -> Locator:
    """The error messages shown next to the form field with this id (render_field's <p class="field-error">)."""
    return page.locator(f"div.field:has(#{field_id}) > p.field-error")
