"""Certificates in a real browser: upload a PEM file through the file input, read its thumbprint and Java-form issuer
on its page, and create a thumbprint mapping from it (a bad thumbprint refused next to its field first)."""
from __future__ import annotations

import hashlib
import re

from playwright.sync_api import expect

from simulators import pki
from tests.browser.ui import field_errors, unique


def colon_hex(data: bytes) -> str:
    return ":".join(f"{b:02X}" for b in data)


def test_upload_a_certificate_and_create_a_mapping_from_it(page, live, guard, screenshot):
    label = unique("apim-gateway")
    root = pki.ca("Browser Root CA")
    issued = pki.leaf(label, root)
    thumbprint = colon_hex(hashlib.sha256(issued.der).digest())

    page.goto(live.url + "/certificates/")
    page.select_option("#role", "apim")
    page.fill("#label", label)
    page.set_input_files("#certificate", {"name": f"{label}.pem", "mimeType": "application/x-pem-file",
                                          "buffer": issued.pem})
    page.click("main button:has-text('Upload')")
    expect(page.locator(".flash-success")).to_have_text(f"Stored 1 certificate(s): {label}.")
    expect(page.locator("h1")).to_have_text(label)
    expect(page.locator("dl.facts code.thumbprint")).to_have_text(thumbprint)
    issuer = page.get_by_label("trusted_issuer for this certificate")
    expect(issuer).to_have_value("CN=Browser Root CA, OU=IAM, O=WSO2, C=LK")  # Java's order: CN first
    expect(page.get_by_label("cert_thumbprint for this certificate")).to_have_value(thumbprint)
    screenshot(page, "certificate-uploaded")

    page.click("text=Create user mapping from this certificate")
    expect(page.locator("h1")).to_have_text("New user mapping")
    expect(page.locator("#trusted_issuer")).to_have_value("CN=Browser Root CA, OU=IAM, O=WSO2, C=LK")
    expect(page.locator("#cert_thumbprint")).to_have_value(thumbprint)

    guard.allow_status(400)  # the refused mapping comes back as 400 with the form
    page.fill("#cert_thumbprint", "not-hex!")
    page.fill("#allowed_usernames", "admin")
    page.click("main button:has-text('Add at the end')")
    expect(field_errors(page, "cert_thumbprint")).to_contain_text(["Use the SHA-256 thumbprint"])

    page.fill("#cert_thumbprint", thumbprint)
    page.fill("#allowed_usernames", "admin\nkim@abc.com")
    page.click("main button:has-text('Add at the end')")
    expect(page.locator(".flash-success")).to_have_text("User mapping added at the end of the list.")
    expect(page).to_have_url(re.compile(re.escape(live.url) + r"/certificates/mappings#mapping-\d+$"))
    row = page.locator("tr" + page.url[page.url.index("#"):])  # the new mapping's row, the anchor it was sent to
    expect(row.locator("code.thumbprint")).to_have_text(thumbprint)
    expect(row).to_contain_text("CN=Browser Root CA, OU=IAM, O=WSO2, C=LK")
    expect(row).to_contain_text("kim@abc.com")
    screenshot(page, "mapping-created")

    page.goto(live.url + "/certificates/")
    expect(page.locator("table.table")).to_contain_text(label)
