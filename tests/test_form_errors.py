"""Forms that respect people (issue 16): every form page, as shown and after a submission with errors, has no
dangling reference (aria-describedby, label for, in-page links all name an id on the page, once); a failed submission
shows an error summary at the top with one link per field error, and each error is tied to its input."""
from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from portal.services.context import Actor
from portal.services.tenants import service as tenants
from tests.routes import routes

ACTOR = Actor(name="form-tests")
SKIPPED_POSTS = ("/logout",)  # signs the client out; it has no fields to get wrong


class Page(HTMLParser):
    """The ids on a page, what refers to ids, and its forms (action, method, field names and kinds)."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.ids: list[str] = []
        self.references: list[tuple[str, str]] = []  # (how, id)
        self.forms: list[dict] = []
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        self.elements.append((tag, attributes))
        if "id" in attributes:
            self.ids.append(attributes["id"])
        for name in ("aria-describedby", "aria-labelledby", "aria-controls"):
            for ref in attributes.get(name, "").split():
                self.references.append((f"{tag} {name}", ref))
        if tag == "label" and attributes.get("for"):
            self.references.append(("label for", attributes["for"]))
        if tag == "a" and attributes.get("href", "").startswith("#") and len(attributes["href"]) > 1:
            self.references.append(("a href", attributes["href"][1:]))
        if tag == "form":
            method = attributes.get("method", "get").lower()
            self.forms.append({"action": attributes.get("action", ""), "method": method, "fields": []})
        elif tag in ("input", "select", "textarea") and self.forms and attributes.get("name"):
            self.forms[-1]["fields"].append((attributes["name"], attributes.get("type", tag)))

    def dangling(self) -> list[str]:
        """References to ids the page lacks, and ids used twice (a reference to one of them is ambiguous)."""
        known = set(self.ids)
        twice = sorted({i for i in self.ids if self.ids.count(i) > 1})
        missing = [f"{how} -> #{ref}" for how, ref in self.references if ref not in known]
        return missing + [f"id {i} twice" for i in twice]

    def element(self, element_id: str) -> dict[str, str]:
        return next(attrs for _tag, attrs in self.elements if attrs.get("id") == element_id)


@pytest.fixture
def tenant_id(app) -> str:
    with app.app_context():
        tenants.register_tenant({
            "tenantId": "forms", "clientId": "forms-client", "clientSecret": "forms-client-secret-1",
            "identityProviderType": "LDAP",
            "ldapSchema": {"ldapURLForDirectoryService": "ldap://127.0.0.1:1",
                           "directoryServiceDomainName": "example.com",
                           "directoryServiceRootDistinguishedName": "dc=example,dc=com"}}, ACTOR, skip_check=True)
    return "forms"


def _form_pages(app, tenant_id: str) -> list[str]:
    """Every page without path arguments, plus the tenant's own pages."""
    with app.app_context():
        plain = [url for endpoint, url in routes(app, "GET")
                 if "/1" not in url and not url.startswith(("/v1", "/t/", "/oauth", "/.well-known"))
                 and endpoint not in ("auth.logout",)]
    return [*plain, f"/tenants/{tenant_id}", f"/tenants/{tenant_id}/edit"]


def test_no_page_refers_to_a_missing_id(admin_client, app, tenant_id):
    """Each form page as shown, and each of its POST forms submitted with every text field empty."""
    problems: dict[str, list[str]] = {}
    checked_posts = 0
    for url in _form_pages(app, tenant_id):
        response = admin_client.get(url)
        if response.status_code != 200 or "text/html" not in response.content_type:
            continue
        page = Page(response.get_data(as_text=True))
        if bad := page.dangling():
            problems[url] = bad
        for form in page.forms:
            action = form["action"] or url
            if form["method"] != "post" or action.startswith(SKIPPED_POSTS) or not any(
                    kind in ("text", "password", "textarea", "email", "search", "url") for _n, kind in form["fields"]):
                continue
            data = {name: "" for name, kind in form["fields"] if kind not in ("submit", "checkbox", "file", "radio")}
            answer = admin_client.post(action, data=data)
            if "text/html" in answer.content_type and answer.status_code != 302:
                checked_posts += 1
                if bad := Page(answer.get_data(as_text=True)).dangling():
                    problems[f"POST {action} (from {url})"] = bad
    assert checked_posts >= 8
    assert not problems, "\n".join(f"{where}: {', '.join(bad)}" for where, bad in problems.items())


def test_a_failed_registration_shows_a_summary_linking_each_error_to_its_field(admin_client):
    response = admin_client.post("/tenants/new", data={
        "tenantId": "bad id!", "identityProviderType": "POSTGRES", "dataSourceURL": "jdbc:postgresql://db:99999/x",
        "save": "Register tenant"})
    assert response.status_code in (200, 400)
    text = response.get_data(as_text=True)
    page = Page(text)
    assert page.dangling() == []
    summary = re.search(r'<div class="error-summary" role="alert" tabindex="-1"[^>]*>(.*?)</div>', text, re.S)
    assert summary, "no error summary"
    assert text.index("error-summary") < text.index('id="tenantId"')  # at the top, before the first field
    links = re.findall(r'<a href="#([^"]+)" data-field-link>([^<]+)</a>', summary.group(1))
    linked = {target for target, _text in links}
    assert {"tenantId", "clientId", "clientSecret", "dataSourceURL"} <= linked
    assert any(label.startswith("Tenant id: Use 1 to 64 letters") for _t, label in links)
    for target in linked:
        field = page.element(target)
        assert field["aria-invalid"] == "true", target
        described = field["aria-describedby"].split()
        errors = [ref for ref in described if ref.startswith(f"{target}-error-")]
        assert errors, f"{target}: no error in aria-describedby"
        for ref in errors:
            assert re.search(rf'<p class="field-error" id="{re.escape(ref)}">[^<]+</p>', text), ref
    # A field without errors is described by its help only, and marked valid.
    display = page.element("displayName")
    assert display["aria-invalid"] == "false" and display["aria-describedby"] == "displayName-help"
    # A field with neither help nor errors has no aria-describedby at all (nothing to dangle).
    assert "aria-describedby" not in page.element("ownerEmail")


def test_the_summary_counts_problems_and_shows_form_level_errors(admin_client):
    response = admin_client.post("/admins/new", data={"username": "", "role": "nobody"})
    text = response.get_data(as_text=True)
    assert re.search(r"<h2 id=\"error-summary-title\">There (is a problem|are \d+ problems)</h2>", text)
    assert Page(text).dangling() == []


def test_a_page_without_errors_has_no_summary(admin_client):
    text = admin_client.get("/tenants/new").get_data(as_text=True)
    assert "error-summary" not in text
    page = Page(text)
    assert page.element("tenantId")["aria-invalid"] == "false"
    assert page.dangling() == []
