"""Switching the tenant-sharing direction in a real browser: off to IS 7 → API Manager with a live pre-flight against
the API Manager simulator, then back to off, which asks first to confirm the old block is gone."""
from __future__ import annotations

from playwright.sync_api import expect

from tests.sync_env import LISTENER_PASSWORD, LISTENER_USER


def test_switch_the_sharing_direction_and_back(page, live, guard, screenshot):
    try:
        page.goto(live.url + "/sharing/")
        arrow = page.locator(".sharing-arrow .arrow-label")
        expect(arrow).to_have_text("No push between the products: the portal writes to both")
        expect(page.locator("input[name=direction][value=off]")).to_be_checked()

        page.check("input[name=direction][value=is_to_apim]")
        page.fill("#apim_username", LISTENER_USER)
        page.fill("#apim_password", LISTENER_PASSWORD)
        page.click("main button:has-text('Check and save')")
        expect(page.locator(".flash-success")).to_contain_text("Sharing saved: IS 7 → API Manager.")
        expect(arrow).to_have_text("IS 7 pushes tenants to API Manager")
        expect(page.locator("#generated h2")).to_have_text("Generated configuration: IS 7 → API Manager")
        expect(page.locator("#generated pre.pem").first).to_contain_text("/internal/data/v1/notify")
        screenshot(page, "sharing-is-to-apim")

        # Leaving a direction needs the administrator's word that the product stopped pushing.
        guard.allow_status(409)
        page.check("input[name=direction][value=off]")
        page.click("main button:has-text('Check and save')")
        expect(page.locator("section[role=alert] h2")).to_have_text("Before switching to Off")
        expect(arrow).to_have_text("IS 7 pushes tenants to API Manager")  # nothing changed yet
        page.check("#confirm")
        page.click("main button:has-text('Check and save')")
        expect(page.locator(".flash-success")).to_contain_text("Sharing saved: Off.")
        expect(arrow).to_have_text("No push between the products: the portal writes to both")
    finally:
        live.products.share(live.app, "off")  # whatever happened, the other tests find sharing off
