"""PKCS#12 truststores: each product gets the other side's certificates as trusted entries, read back with the JDK's
keytool; the password is the admin's and is never stored."""
from __future__ import annotations

import html
import re
import subprocess

import pytest
import sqlalchemy as sa

from portal.models import AuditEvent
from portal.services.certificates import service as certificates
from portal.services.context import Actor
from simulators.pki import ca, leaf

PASSWORD = "truststore-pass-1"


@pytest.fixture
def stored(app):
    """One certificate per role: the CA, API Manager's, IS 7's and the portal's client certificate."""
    root = ca("Trust Root")
    issued = {"ca": root, "apim": leaf("apim.example.com", root), "is": leaf("is.example.com", root),
              "client": leaf("portal client", root)}
    with app.app_context():
        for role, cert in issued.items():
            certificates.upload_certificate(role, cert.pem, Actor.cli(),
                                            key_data=cert.key_pem.encode() if role == "client" else None)
    return {role: certificates.describe(cert.cert).thumbprint for role, cert in issued.items()}


def _download(client, product: str, password: str = PASSWORD, confirm: str | None = None):
    return client.post(f"/certificates/truststores/{product}",
                       data={f"{product}-password": password, f"{product}-confirm": confirm or password})


def keytool_entries(data: bytes, tmp_path, password: str = PASSWORD) -> dict[str, tuple[str, str]]:
    """{alias: (entry type, SHA-256 fingerprint)} as `keytool -list -v` reports them."""
    path = tmp_path / "truststore.p12"
    path.write_bytes(data)
    out = subprocess.run(["keytool", "-list", "-v", "-storetype", "PKCS12", "-keystore", str(path),
                          "-storepass", password], check=True, capture_output=True, text=True).stdout
    entries = {}
    for block in out.split("Alias name: ")[1:]:
        alias = block.splitlines()[0].strip()
        kind = re.search(r"Entry type: (\S+)", block).group(1)
        fingerprint = re.search(r"SHA256: ([0-9A-F:]+)", block).group(1)
        entries[alias] = (kind, fingerprint)
    return entries


def test_is7_truststore_holds_apim_portal_and_ca(stored, admin_client, tmp_path, db):
    response = _download(admin_client, "is")
    assert response.status_code == 200
    assert response.mimetype == "application/x-pkcs12"
    assert response.headers["Content-Disposition"] == 'attachment; filename="is7-client-truststore.p12"'
    entries = keytool_entries(response.data, tmp_path)
    assert {kind for kind, _ in entries.values()} == {"trustedCertEntry"}
    assert sorted(fp for _, fp in entries.values()) == sorted(stored[r] for r in ("apim", "client", "ca"))
    assert any(alias.startswith("apim-") and alias.endswith("-apim-example-com") for alias in entries)
    event = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "truststore.export")).scalar_one()
    assert event.object_id == "is" and sorted(event.changes["aliases"]["after"]) == sorted(entries)
    assert PASSWORD not in str(event.changes)


def test_apim_truststore_holds_is7_and_ca(stored, operator_client, tmp_path):
    response = _download(operator_client, "apim")
    assert response.status_code == 200
    entries = keytool_entries(response.data, tmp_path)
    assert sorted(fp for _, fp in entries.values()) == sorted(stored[r] for r in ("is", "ca"))
    assert {kind for kind, _ in entries.values()} == {"trustedCertEntry"}
    with pytest.raises(subprocess.CalledProcessError):  # the password really protects it
        keytool_entries(response.data, tmp_path, "wrong-password")


@pytest.mark.parametrize("password, confirm, message", [
    ("short", None, "Use 8 to 128 characters"),
    ("long enough", "different one", "The passwords differ."),
])
def test_password_rules(stored, admin_client, password, confirm, message):
    response = _download(admin_client, "is", password, confirm)
    assert response.status_code == 400
    assert message in html.unescape(response.get_data(as_text=True))


def test_nothing_to_trust(admin_client):
    response = _download(admin_client, "apim")
    assert response.status_code == 400
    assert "There is nothing for API Manager to trust yet" in html.unescape(response.get_data(as_text=True))


def test_page_explains_the_contents_and_roles(stored, auditor_client, admin_client):
    page = html.unescape(auditor_client.get("/certificates/truststores").get_data(as_text=True))
    assert "API Manager calls IS 7 over TLS" in page and "IS 7 checks the client certificates" in page
    assert stored["is"] in page and "Download" not in page
    assert auditor_client.post("/certificates/truststores/is").status_code == 403
    assert "Download is7-client-truststore.p12" in admin_client.get("/certificates/truststores").get_data(
        as_text=True)
    assert _download(admin_client, "other").status_code == 404
