"""A mapping's thumbprint is stored in IS's form (upper-case hex pairs joined by colons) however it is pasted, or
refused at the field: so no mapping saved through the portal is one the lint says never matches (issue 16)."""
from __future__ import annotations

import html
import re
import tomllib

import pytest
import sqlalchemy as sa

from portal.models.certificate import ThumbprintMapping
from portal.services.certificates import mapping_lint, mappings
from portal.services.certificates.mappings import MappingInput
from portal.services.context import Actor
from portal.services.errors import ValidationError

ISSUER = "CN=Test Root CA, OU=IAM, O=WSO2, C=LK"
DIGITS = "0123456789abcdef" * 4  # 64 hex digits: a SHA-256 thumbprint
IS_FORM = ":".join(DIGITS[i:i + 2] for i in range(0, 64, 2)).upper()
PASTED = {
    "without colons": DIGITS,
    "lower case with colons": IS_FORM.lower(),
    "upper case without colons": DIGITS.upper(),
    "hex pairs with spaces": " ".join(DIGITS[i:i + 2] for i in range(0, 64, 2)),
    "colons in odd places": DIGITS[:3] + ":" + DIGITS[3:],
    "openssl's output": f"sha256 Fingerprint={IS_FORM}",
    "surrounded by blanks": f"  {IS_FORM}\t",
}
REFUSED = {
    "SHA-1 (20 bytes)": (":".join(["AB"] * 20), "This is a SHA-1 thumbprint (20 bytes)"),
    "31 bytes": (":".join(["AB"] * 31), "A SHA-256 thumbprint has 64 hex digits (32 bytes); this one has 62."),
    "an odd digit more": (DIGITS + "a", "this one has 65"),
    "not hex": ("zz" * 32, "Use the SHA-256 thumbprint"),
}


def _thumbprint_findings(app, mapping_id: int) -> list[str]:
    with app.app_context():
        report = mapping_lint.lint()
    entry = next(m for m in report.user + report.system if m.mapping.id == mapping_id)
    return [f"{f.level}: {f.message}" for f in entry.findings if "cert_thumbprint" in f.message]


@pytest.mark.parametrize("kind", ["user", "system"])
@pytest.mark.parametrize("pasted", PASTED.values(), ids=PASTED.keys())
def test_the_service_stores_is_form_and_the_lint_has_no_thumbprint_finding(app, kind, pasted):
    with app.app_context():
        mapping = mappings.create_mapping(kind, MappingInput(ISSUER, pasted, ("*",), "admin"), Actor.cli())
        assert mapping.cert_thumbprint == IS_FORM
        mapping_id = mapping.id
        updated = mappings.update_mapping(mapping_id, MappingInput(ISSUER, pasted.lower(), ("*",), "admin"),
                                          Actor.cli())
        assert updated.cert_thumbprint == IS_FORM
    assert _thumbprint_findings(app, mapping_id) == []


@pytest.mark.parametrize("thumb, message", REFUSED.values(), ids=REFUSED.keys())
def test_the_service_refuses_what_cannot_be_a_sha256_thumbprint(app, db, thumb, message):
    with app.app_context(), pytest.raises(ValidationError) as caught:
        mappings.create_mapping("user", MappingInput(ISSUER, thumb, ("*",)), Actor.cli())
    assert message in caught.value.errors["cert_thumbprint"]
    assert db.session.execute(sa.select(ThumbprintMapping)).first() is None


def test_blank_and_wildcard_stay_as_they_are(app):
    with app.app_context():
        blank = mappings.create_mapping("user", MappingInput(ISSUER, "  ", ("*",)), Actor.cli())
        star = mappings.create_mapping("system", MappingInput(ISSUER, "*", (), "admin"), Actor.cli())
        assert (blank.cert_thumbprint, star.cert_thumbprint) == ("", "*")


def test_the_form_saves_a_pasted_thumbprint_in_is_form_and_the_toml_has_it(admin_client, db):
    response = admin_client.post("/certificates/mappings/new/user", data={
        "trusted_issuer": ISSUER, "cert_thumbprint": DIGITS, "allowed_usernames": "*"})
    assert response.status_code == 302
    assert db.session.execute(sa.select(ThumbprintMapping.cert_thumbprint)).scalar_one() == IS_FORM
    written = tomllib.loads(admin_client.get("/certificates/config/download").get_data(as_text=True))
    section = written[mappings.TOML_SECTION]["user_thumbprint_mapping"]
    assert [entry["cert_thumbprint"] for entry in section] == [IS_FORM]


@pytest.mark.parametrize("thumb, message", REFUSED.values(), ids=REFUSED.keys())
def test_the_form_refuses_at_the_field(admin_client, db, thumb, message):
    response = admin_client.post("/certificates/mappings/new/user", data={
        "trusted_issuer": ISSUER, "cert_thumbprint": thumb, "allowed_usernames": "*"})
    assert response.status_code == 400
    page = html.unescape(response.get_data(as_text=True))
    error = re.search(r'<p class="field-error" id="cert_thumbprint-error-1">([^<]*)</p>', page)
    assert error and message in error.group(1)
    field = re.search(r'<input[^>]*id="cert_thumbprint"[^>]*>', page).group(0)
    assert 'aria-invalid="true"' in field and "cert_thumbprint-error-1" in field
    assert db.session.execute(sa.select(ThumbprintMapping)).first() is None
