"""Signing in and out in a real browser: the first administrator's one-time password, the forced password change,
a wrong password refused, sign-out ending the session."""
from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser.ui import field_errors, submit_sign_in

NEW_PASSWORD = "zebra lanterns drift at noon"


def test_first_admin_signs_in_changes_the_one_time_password_and_signs_out(anonymous_page, live, guard, screenshot):
    page = anonymous_page
    page.goto(live.url + "/tenants/")
    expect(page).to_have_url(re.compile(r"/login\?next=/tenants/$"))
    screenshot(page, "00-sign-in")

    guard.allow_status(401)  # the refused sign-in answers 401 with the form
    submit_sign_in(page, live.first_admin, "not the one-time password")
    expect(page.locator("p.form-error")).to_have_text("Unknown username or wrong password.")

    # The one-time password signs in, but every page leads to the password change until a new one is chosen.
    submit_sign_in(page, live.first_admin, live.one_time_password)
    expect(page).to_have_url(live.url + "/account/password")
    expect(page.locator("main")).to_contain_text("Choose your own password before you continue.")
    page.goto(live.url + "/tenants/")
    expect(page).to_have_url(live.url + "/account/password")

    page.fill("#current_password", live.one_time_password)
    page.fill("#new_password", NEW_PASSWORD)
    page.fill("#confirm", NEW_PASSWORD + " typo")
    page.click("main button:has-text('Change password')")
    expect(field_errors(page, "confirm")).to_have_text(["The two passwords differ."])

    weak = f"my name is {live.first_admin} forever"
    page.fill("#current_password", live.one_time_password)
    page.fill("#new_password", weak)
    page.fill("#confirm", weak)
    page.click("main button:has-text('Change password')")
    expect(field_errors(page, "new_password")).to_have_text(["The password must not contain the username."])

    page.fill("#current_password", live.one_time_password)
    page.fill("#new_password", NEW_PASSWORD)
    page.fill("#confirm", NEW_PASSWORD)
    page.click("main button:has-text('Change password')")
    expect(page).to_have_url(live.url + "/")
    expect(page.locator(".flash-success")).to_contain_text("Password changed.")
    expect(page.locator("header .who")).to_contain_text(live.first_admin)

    page.click("header button:has-text('Sign out')")
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.locator(".flash-info")).to_have_text("You are signed out.")
    page.goto(live.url + "/tenants/")
    expect(page).to_have_url(re.compile(r"/login\?next="))

    submit_sign_in(page, live.first_admin, NEW_PASSWORD)
    expect(page).to_have_url(live.url + "/tenants/")
    expect(page.locator("h1")).to_contain_text("Tenants")
