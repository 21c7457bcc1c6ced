"""The IS handler line in a real browser: switched on the mappings page (CSRF form), and the generated
deployment.toml follows it (log_client_cert_info only on the backport line, enable = true always)."""
from __future__ import annotations

from playwright.sync_api import expect


def test_switch_the_handler_line_and_the_toml_follows(page, live, guard, screenshot):
    page.goto(live.url + "/certificates/mappings")
    line = page.locator("#handler-line")
    expect(line.locator("strong")).to_have_text("master (IS 7.x with auth-rest 1.9.38+)")
    try:
        page.select_option("#line", "backport")
        line.locator("button:has-text('Save')").click()
        expect(page.locator(".flash-success")).to_have_text("IS handler line: 1.8.x/1.11.x backport.")
        expect(page.locator("#handler-line strong")).to_have_text("1.8.x/1.11.x backport")
        screenshot(page, "handler-line-backport")

        page.goto(live.url + "/certificates/config")
        page.check("#log_client_cert_info")
        page.click("main button:has-text('Update')")
        expect(page.locator("pre.pem")).to_contain_text("log_client_cert_info = true")
        expect(page.locator("pre.pem")).to_contain_text("enable = true")
        expect(page.locator("main")).to_contain_text("The 1.8.x/1.11.x backport reads log_client_cert_info")
    finally:
        page.goto(live.url + "/certificates/mappings")
        page.select_option("#line", "master")
        page.locator("#handler-line button:has-text('Save')").click()
        expect(page.locator(".flash-success")).to_have_text("IS handler line: master (IS 7.x with auth-rest 1.9.38+).")
    page.goto(live.url + "/certificates/config?log_client_cert_info=y")
    expect(page.locator("pre.pem")).not_to_contain_text("log_client_cert_info")
    expect(page.locator("main")).to_contain_text("log_client_cert_info is left out: the master handler line")
