"""The sharing form in a real browser (issue 16): choosing a direction shows only that direction's fields and the
picture follows the choice; without JavaScript every group shows under a legend naming its direction; labels are
plain words (the deployment.toml key is help text); a failed pre-flight tells its cause once, with the product's
status, error code and trace id as a detail line."""
from __future__ import annotations

import re

from playwright.sync_api import Browser, Page, expect

from tests.sync_env import LISTENER_USER

GROUPS = {  # legend (start) -> the directions whose choice shows it
    "IS 7 → API Manager only": {"is_to_apim"},
    "API Manager → IS 7 only": {"apim_to_is"},
    "Both directions": {"apim_to_is", "is_to_apim"},
    "Whichever direction": {"off", "apim_to_is", "is_to_apim"},
}
ARROWS = {"off": "No push between the products: the portal writes to both",
          "apim_to_is": "API Manager pushes tenants to IS 7", "is_to_apim": "IS 7 pushes tenants to API Manager"}


def _group(page: Page, legend: str):
    return page.locator("form[data-sharing-form] fieldset").filter(has=page.locator("legend", has_text=legend))


def _expect_only(page: Page, direction: str) -> None:
    for legend, directions in GROUPS.items():
        group = _group(page, legend)
        if direction in directions:
            expect(group).to_be_visible()
        else:
            expect(group).to_be_hidden()
    off_note = page.locator("form[data-sharing-form] p[data-directions=off]")
    if direction == "off":
        expect(off_note).to_be_visible()
    else:
        expect(off_note).to_be_hidden()


def test_choosing_a_direction_shows_its_fields_and_moves_the_picture(page, live, screenshot):
    page.goto(live.url + "/sharing/")
    picture, arrow = page.locator("figure.sharing-diagram"), page.locator(".sharing-arrow .arrow-label")
    note = page.locator("[data-picture-note]")
    expect(page.locator("input[name=direction][value=off]")).to_be_checked()
    _expect_only(page, "off")
    expect(note).to_be_hidden()

    for direction in ("is_to_apim", "apim_to_is", "off"):
        page.check(f"input[name=direction][value={direction}]")
        _expect_only(page, direction)
        expect(picture).to_have_class(re.compile(rf"\bsharing-{direction}\b"))
        expect(arrow).to_have_text(ARROWS[direction])
        if direction == "off":
            expect(note).to_be_hidden()  # the saved direction again: nothing to say
        else:
            expect(note).to_be_visible()
            expect(note).to_contain_text("not saved yet")
        if direction == "apim_to_is":
            screenshot(page, "sharing-form-apim-to-is")

    # The keyboard moves the choice too (arrow keys within the radio group).
    page.focus("input[name=direction][value=off]")
    page.keyboard.press("ArrowDown")
    expect(page.locator("input[name=direction][value=apim_to_is]")).to_be_checked()
    _expect_only(page, "apim_to_is")
    expect(arrow).to_have_text(ARROWS["apim_to_is"])


def test_labels_are_words_and_name_the_key_as_help(page, live):
    page.goto(live.url + "/sharing/")
    page.check("input[name=direction][value=apim_to_is]")
    url = page.get_by_label("IS 7 address, as API Manager reaches it")
    expect(url).to_have_attribute("name", "identity_server_base_url")
    expect(page.locator("#identity_server_base_url-help")).to_contain_text("identity_server_base_url")
    expect(page.get_by_label("Make IS 7 the key manager of each new tenant")).to_be_visible()
    expect(page.get_by_label("Do not create API Manager's Resident Key Manager for new tenants")).to_be_visible()
    labels = page.locator("form[data-sharing-form] label").all_inner_texts()
    raw = {"identity_server_base_url", "auto_configure_key_manager", "skip_create_resident_key_manager"}
    assert not [text for text in labels if any(key in text for key in raw)], labels


def test_without_javascript_every_group_shows_under_its_legend(browser: Browser, live, admin_state):
    context = browser.new_context(java_script_enabled=False, storage_state=admin_state)
    try:
        page = context.new_page()
        page.goto(live.url + "/sharing/")
        for legend in GROUPS:
            expect(_group(page, legend)).to_be_visible()
        expect(page.locator("form[data-sharing-form] p[data-directions=off]")).to_be_visible()
        page.check("input[name=direction][value=is_to_apim]")
        expect(page.locator(".sharing-arrow .arrow-label")).to_have_text(ARROWS["off"])  # the saved direction
        expect(page.locator("#apim_username")).to_be_visible()
        expect(page.locator("#is_username")).to_be_visible()
    finally:
        context.close()


def _main_text(page: Page) -> str:
    return page.locator("main").inner_text()


def test_a_failed_preflight_tells_its_cause_once_with_the_code_and_trace_id_as_detail(page, live, guard,
                                                                                       screenshot):
    guard.allow_status(400)
    try:
        page.goto(live.url + "/sharing/")
        page.check("input[name=direction][value=apim_to_is]")
        page.fill("#identity_server_base_url", live.products.is7.base_url)
        page.fill("#is_username", "nobody")
        page.fill("#is_password", "wrong-password")
        page.click("main button:has-text('Check and save')")
        panel = page.locator("section.check-failed")
        expect(panel.locator("h2")).to_have_text("The pre-flight check failed: nothing was saved")
        cause = panel.locator(".check-summary")
        expect(cause).to_have_count(1)
        expect(cause).to_contain_text("WSO2 Identity Server")
        reference = panel.locator(".check-reference")
        expect(reference).to_contain_text("HTTP 401")
        expect(reference).to_contain_text(re.compile(r"trace id [0-9a-f-]{36}"))
        trace_id = re.search(r"trace id ([0-9a-f-]{36})", reference.inner_text()).group(1)
        cause_text = cause.inner_text().strip()
        text = _main_text(page)
        assert text.count(cause_text) == 1, text
        assert text.count(trace_id) == 1, text  # once, in the detail line
        assert "Connection check failed" not in text and "answered 401" not in text
        # The field it names is marked once at the field, and linked once from the form's error summary.
        expect(page.locator("#is_password-error-1")).to_be_visible()
        expect(page.locator(".error-summary a[href='#is_password']")).to_have_count(1)
        # The chosen direction's fields are the ones shown after the failed save.
        _expect_only(page, "apim_to_is")
        screenshot(page, "sharing-form-preflight-failed")

        # API Manager's refusal of the listener's user: its own error code is the detail, not the cause.
        page.check("input[name=direction][value=is_to_apim]")
        page.fill("#apim_username", LISTENER_USER)
        page.fill("#apim_password", "wrong-password")
        page.click("main button:has-text('Check and save')")
        expect(panel.locator(".check-summary")).to_contain_text("WSO2 API Manager")
        expect(panel.locator(".check-reference")).to_contain_text("HTTP 401")
        expect(panel.locator(".check-reference")).to_contain_text("error code 900901")
        assert "900901" not in panel.locator(".check-summary").inner_text()
        assert _main_text(page).count("900901") == 1
        expect(page.locator("#apim_password-error-1")).to_be_visible()
        _expect_only(page, "is_to_apim")
    finally:
        live.products.share(live.app, "off")  # nothing was saved, but the other tests must find sharing off
