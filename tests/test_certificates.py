"""Certificates: DNs checked against the real JDK, thumbprints and serials against openssl, uploads (and every
refusal), the portal's client credentials, the pages and who may use them."""
from __future__ import annotations

import html
import io
import os
import re
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID

from portal.models import AuditEvent
from portal.models.certificate import Certificate
from portal.services.certificates import service as certificates
from simulators.pki import ca, ec_key, issue, leaf, name, openssl_self_signed, pkcs12_file, rsa_key

# Names in ASN.1 order (country first); a list is one multi-valued RDN.
DN_CASES = {
    "plain": name(("C", "LK"), ("ST", "Western"), ("L", "Colombo"), ("O", "WSO2"), ("OU", "IAM"), ("CN", "RootCA")),
    "escaped comma in O": name(("C", "US"), ("O", "Example Corp, Inc."), ("CN", "Example Issuing CA")),
    "multi-valued CN+UID": name(("C", "LK"), ("O", "WSO2"), [("CN", "alice"), ("UID", "a1")]),
    "multi-valued OU+CN": name(("C", "LK"), [("OU", "IAM"), ("CN", "bob")]),
    "emailAddress": name(("C", "AU"), ("O", "WSO2"), ("CN", "RootCA"), ("emailAddress", "ca@wso2.com")),
    "DC components": name(("DC", "com"), ("DC", "example"), ("CN", "dc user")),
    "non-ASCII": name(("C", "DE"), ("O", "Müller & Söhne GmbH"), ("CN", "Łódź 東京 é")),
    "quotes, backslash, leading space": name(("O", 'Say "hi" \\ there'), ("CN", " leading space"),
                                             ("OU", "trailing ")),
    "specials and double spaces": name(("CN", "two  spaces"), ("O", "a;b"), ("OU", "x=y"), ("L", "#hash"),
                                       ("ST", "<lt>")),
    "already quoted": name(("CN", '"already quoted"'), ("O", '"')),
    "PrintableString with +": name(("C", "LK", _ASN1Type.PrintableString),
                                   ("CN", "Printable+Plus", _ASN1Type.PrintableString)),
    "other keywords and an OID": name(("serialNumber", "1234"), ("title", "Dr"), ("SN", "Smith"), ("GN", "John"),
                                      ("dnQualifier", "q1"), ("street", "1 Main St"),
                                      ("organizationIdentifier", "VATLK-123")),
    "IA5 and symbols": name((NameOID.DOMAIN_COMPONENT, "org"), ("CN", "under_score*star&amp@at")),
    "BMP and Universal strings": name(("CN", "bmp value", _ASN1Type.BMPString),
                                      ("O", "univ", _ASN1Type.UniversalString)),
    "non-string types in hex": name(("CN", "visible", _ASN1Type.VisibleString),
                                    ("O", "123", _ASN1Type.NumericString)),
    "newline and tab": name(("CN", "line\nbreak"), ("O", "tab\there")),
}


@pytest.fixture(scope="session")
def jdk_rendered(java_dns):
    """Each case as a CA certificate, plus a leaf under the comma CA (so issuer and subject differ)."""
    issued = {key: issue(value, ca=True) for key, value in DN_CASES.items()}
    issued["leaf under a CA"] = issue(name(("C", "LK"), ("CN", "leaf + more")), issued["escaped comma in O"])
    keys = list(issued)
    java = java_dns([issued[k].der for k in keys])
    return {k: (issued[k].cert, java[i]) for i, k in enumerate(keys)}


@pytest.mark.parametrize("case", [*DN_CASES, "leaf under a CA"])
def test_java_dn_equals_the_jdk(jdk_rendered, case):
    cert, (java_issuer, java_subject) = jdk_rendered[case]
    assert certificates.java_dn(cert.issuer) == java_issuer
    assert certificates.java_dn(cert.subject) == java_subject
    info = certificates.describe(cert)
    assert (info.issuer, info.subject) == (java_issuer, java_subject)


def test_java_dn_examples():
    """The shapes the page promises, spelled out."""
    render = certificates.java_dn
    assert render(DN_CASES["escaped comma in O"]) == 'CN=Example Issuing CA, O="Example Corp, Inc.", C=US'
    assert render(DN_CASES["multi-valued CN+UID"]) == "CN=alice + UID=a1, O=WSO2, C=LK"
    assert render(DN_CASES["emailAddress"]) == "EMAILADDRESS=ca@wso2.com, CN=RootCA, O=WSO2, C=AU"
    assert render(DN_CASES["DC components"]) == "CN=dc user, DC=example, DC=com"


def _openssl(args: list[str], data: bytes) -> str:
    return subprocess.run(["openssl", "x509", "-noout", *args], input=data, check=True,
                          capture_output=True).stdout.decode().strip()


@pytest.mark.parametrize("encoding", ["PEM", "DER"])
def test_thumbprint_and_serial_equal_openssl(encoding):
    issued = leaf("thumbprint check", ca())
    data = issued.pem if encoding == "PEM" else issued.der
    inform = ["-inform", encoding]
    fingerprint = _openssl([*inform, "-fingerprint", "-sha256"], data)
    assert fingerprint.lower().startswith("sha256 fingerprint=")
    info = certificates.describe(issued.cert)
    assert info.thumbprint == fingerprint.split("=", 1)[1]
    assert info.thumbprint == certificates.thumbprint(issued.cert)
    assert len(info.thumbprint) == 95 and info.thumbprint == info.thumbprint.upper()
    assert _openssl([*inform, "-serial"], data) == f"serial={info.serial_hex}"


@pytest.mark.parametrize("serial", [1, 0xFFF, 0x1ABC, 2**64 + 5])
def test_serial_is_printed_like_openssl(serial):
    issued = issue(name(("CN", "serial")), serial=serial)
    assert _openssl(["-serial"], issued.pem) == f"serial={certificates.describe(issued.cert).serial_hex}"


def test_describe_reports_key_signature_ca_and_validity(tmp_path):
    now = datetime.now(UTC)
    root = ca()
    info = certificates.describe(root.cert)
    assert (info.key_type, info.key_bits, info.weak_key) == ("RSA", 2048, False)
    assert info.is_ca is True and info.self_signed and not info.weak_signature
    assert "SHA256" in info.signature_algorithm and info.validity == "valid"
    ec_leaf = certificates.describe(leaf("ec", root, key=ec_key()).cert)
    assert (ec_leaf.key_type, ec_leaf.key_bits, ec_leaf.is_ca) == ("EC (secp256r1)", 256, False)
    assert certificates.describe(leaf("weak", root, key=rsa_key(1024)).cert).weak_key
    soon = certificates.describe(leaf("soon", root, not_before=now - timedelta(days=300), days=310).cert)
    assert soon.validity == "expiring" and soon.days_left in (9, 10)
    gone = certificates.describe(leaf("gone", root, not_before=now - timedelta(days=30), days=10).cert)
    assert gone.validity == "expired"
    later = certificates.describe(leaf("later", root, not_before=now + timedelta(days=3)).cert)
    assert later.validity == "not yet valid"
    for digest in ("sha1", "md5"):
        cert = x509.load_pem_x509_certificate(openssl_self_signed(tmp_path, digest))
        described = certificates.describe(cert)
        assert described.weak_signature, digest
        assert digest.upper() in described.signature_algorithm


# ---------------------------------------------------------------------------------------------------------------
# Uploads through the page.

def upload(client, data: bytes, filename: str = "cert.pem", role: str = "apim", follow_redirects: bool = False,
           **extra):
    form = {"role": role, "certificate": (io.BytesIO(data), filename)}
    for key, value in extra.items():
        form[key] = (io.BytesIO(value), f"{key}.pem") if isinstance(value, bytes) else value
    return client.post("/certificates/", data=form, content_type="multipart/form-data",
                       follow_redirects=follow_redirects)


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def _count(db) -> int:
    return db.session.execute(sa.select(sa.func.count()).select_from(Certificate)).scalar_one()


def test_upload_pem_stores_der_and_shows_the_facts(admin_client, db):
    root = ca("Upload Root")
    cert = leaf("apim.example.com", root)
    response = upload(admin_client, cert.pem)
    assert response.status_code == 302
    stored = db.session.execute(sa.select(Certificate)).scalar_one()
    assert stored.der == cert.der and stored.role == "apim" and stored.label == "apim.example.com"
    assert stored.issuer_dn == "CN=Upload Root, OU=IAM, O=WSO2, C=LK"
    assert stored.private_key is None
    page = admin_client.get(response.headers["Location"]).get_data(as_text=True)
    info = certificates.describe(cert.cert)
    for text in (info.thumbprint, info.serial_hex, "CN=apim.example.com, O=WSO2, C=LK",
                 "CN=Upload Root, OU=IAM, O=WSO2, C=LK", "RSA, 2048 bits", "RSA with SHA256",
                 "openssl x509 -noout -issuer", "trusted_issuer", "API Manager public certificate"):
        assert text in page, text
    event = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "certificate.create")).scalar_one()
    assert event.actor == "admin-user" and event.changes["thumbprint"]["after"] == info.thumbprint


def test_upload_bundle_stores_every_certificate_and_der_works(admin_client, db):
    root = ca("Bundle Root")
    bundle = root.pem + leaf("one", root).pem + leaf("two", root).pem
    response = upload(admin_client, b"Some text before\n" + bundle, filename="chain.pem", role="ca")
    assert response.status_code == 302 and response.headers["Location"].endswith("/certificates/")
    assert _count(db) == 3
    assert upload(admin_client, leaf("der", root).der, filename="leaf.der", role="is").status_code == 302
    assert _count(db) == 4
    page = admin_client.get("/certificates/").get_data(as_text=True)
    assert all(label in page for label in ("Bundle Root", "one", "two", "der"))


def test_duplicates_are_refused_or_skipped(admin_client, db):
    root = ca("Dup Root")
    first = leaf("first", root)
    assert upload(admin_client, first.pem).status_code == 302
    response = upload(admin_client, first.pem)
    assert response.status_code == 400
    assert "already stored as API Manager public certificate" in response.get_data(as_text=True)
    assert _count(db) == 1
    assert upload(admin_client, first.pem, role="is").status_code == 302  # another role is another entry
    response = upload(admin_client, first.pem + leaf("second", root).pem, follow_redirects=True)
    assert "Stored 1 certificate(s): second. 1 already stored, skipped." in text(response)
    assert _count(db) == 3


def _refused(client, db, data: bytes, filename: str, message: str):
    response = upload(client, data, filename=filename)
    body = response.get_data(as_text=True)
    assert response.status_code == 400, body
    assert message in body
    assert "Nothing was stored." in body
    assert _count(db) == 0
    return body


def test_private_keys_are_refused(admin_client, db):
    issued = leaf("keyed", ca())
    rsa_traditional = issued.key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.TraditionalOpenSSL,
                                               serialization.NoEncryption())
    encrypted = issued.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.BestAvailableEncryption(b"pass phrase"))
    der_key = issued.key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption())
    ec_pem = ec_key().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    key_pem = issued.key_pem.encode()
    for data in (key_pem, rsa_traditional, encrypted, der_key, ec_pem, issued.pem + key_pem):
        _refused(admin_client, db, data, "upload.pem", "This file holds a private key.")


def test_pkcs12_files_are_refused(admin_client, db):
    issued = leaf("p12", ca())
    for data, filename in ((pkcs12_file(issued), "client.p12"), (pkcs12_file(issued), "renamed.pem"),
                           (pkcs12_file(issued, None), "nopass.bin"), (issued.pem, "actually-pem.pfx")):
        _refused(admin_client, db, data, filename, "This is a PKCS#12 (.p12/.pfx) file")


def test_garbage_is_refused_and_never_echoed(admin_client, db):
    marker = b"<script>ECHO-MARKER-42</script>"
    body = _refused(admin_client, db, marker * 20, "x.pem", "This is not a certificate")
    assert "ECHO-MARKER-42" not in body
    _refused(admin_client, db, os.urandom(3000), "random.der", "This is not a certificate")
    csr = (x509.CertificateSigningRequestBuilder().subject_name(name(("CN", "csr")))
           .sign(rsa_key(), hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    _refused(admin_client, db, csr, "req.pem", "holds no certificate")
    broken = b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n"
    _refused(admin_client, db, broken, "broken.pem", "could not be read as certificates")


def test_oversized_uploads_get_a_clear_message(admin_client, db):
    cert = leaf("big", ca()).pem
    padded = cert + b"\n" * (certificates.MAX_UPLOAD_BYTES + 1 - len(cert))
    _refused(admin_client, db, padded, "big.pem", "The file is larger than 64 KiB")
    # A raw body: past MAX_CONTENT_LENGTH the portal answers 413 before parsing anything.
    huge = admin_client.post("/certificates/", data=b"\0" * (3 * 1024 * 1024),
                             content_type="multipart/form-data; boundary=x")
    assert huge.status_code == 413
    assert "larger than this portal accepts" in huge.get_data(as_text=True)
    assert _count(db) == 0


def test_upload_needs_a_file_and_a_known_role(admin_client, db):
    response = admin_client.post("/certificates/", data={"role": "apim"}, content_type="multipart/form-data")
    assert response.status_code == 400 and "Choose a certificate file." in response.get_data(as_text=True)
    response = upload(admin_client, leaf("x", ca()).pem, role="root")
    assert response.status_code == 400 and "Not a valid choice" in response.get_data(as_text=True)
    assert _count(db) == 0


# ---------------------------------------------------------------------------------------------------------------
# The portal's client certificate.

def test_client_certificate_with_its_key(app, admin_client, db):
    issued = leaf("portal-client", ca("Client CA"))
    response = upload(admin_client, issued.pem, role="client", private_key=issued.key_pem.encode())
    assert response.status_code == 302
    page = admin_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "stored, encrypted; never shown" in page and "PRIVATE KEY" not in page
    raw = db.session.execute(sa.text("SELECT private_key FROM certificate")).scalar_one()
    assert "PRIVATE KEY" not in raw and len(raw) > 100  # Fernet token, not the PEM
    event = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "certificate.create")).scalar_one()
    assert event.changes["private_key"] == {"before": None, "after": "[redacted]"}
    with app.app_context():
        cert_pem, key_pem = certificates.client_credentials()
    assert x509.load_pem_x509_certificate(cert_pem.encode()) == issued.cert
    key = serialization.load_pem_private_key(key_pem.encode(), None)
    assert key.private_numbers() == issued.key.private_numbers()
    second = leaf("another-client", ca("Client CA"))
    response = upload(admin_client, second.pem, role="client", private_key=second.key_pem.encode())
    assert response.status_code == 400 and "already has a client certificate" in response.get_data(as_text=True)


def test_client_key_is_checked(app, admin_client, db):
    root = ca("Client CA")
    issued = leaf("portal-client", root)
    other = leaf("someone-else", root, key=rsa_key(2048))
    cases = [
        ({}, "needs its PEM private key"),
        ({"private_key": other.key_pem.encode()}, "does not belong to the certificate"),
        ({"private_key": b"garbage"}, "This is not a PEM private key."),
    ]
    for extra, message in cases:
        response = upload(admin_client, issued.pem, role="client", **extra)
        assert response.status_code == 400 and message in response.get_data(as_text=True), message
    response = upload(admin_client, issued.pem + root.pem, role="client", private_key=issued.key_pem.encode())
    assert "Upload the client certificate alone" in response.get_data(as_text=True)
    response = upload(admin_client, issued.pem, role="apim", private_key=issued.key_pem.encode())
    assert "Only the portal's client certificate is uploaded with a private key" in text(response)
    encrypted = issued.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.BestAvailableEncryption(b"open sesame"))
    response = upload(admin_client, issued.pem, role="client", private_key=encrypted)
    assert "This private key is encrypted: enter its passphrase." in response.get_data(as_text=True)
    response = upload(admin_client, issued.pem, role="client", private_key=encrypted, key_passphrase="wrong")
    assert "or the passphrase is wrong" in response.get_data(as_text=True)
    assert _count(db) == 0
    with app.app_context():
        assert certificates.client_credentials() is None
    response = upload(admin_client, issued.pem, role="client", private_key=encrypted, key_passphrase="open sesame")
    assert response.status_code == 302 and _count(db) == 1


def test_trust_pem_holds_the_chosen_roles(app, admin_client):
    root = ca("Trust Root")
    is_cert, apim_cert = leaf("is.example.com", root), leaf("apim.example.com", root)
    upload(admin_client, root.pem, role="ca")
    upload(admin_client, is_cert.pem, role="is")
    upload(admin_client, apim_cert.pem, role="apim")
    with app.app_context():
        bundle = certificates.trust_pem()
        assert certificates.trust_pem(("client",)) == ""
    assert set(x509.load_pem_x509_certificates(bundle.encode())) == {root.cert, is_cert.cert}


# ---------------------------------------------------------------------------------------------------------------
# Pages and roles.

def test_index_flags_expiry_and_weak_signatures(admin_client, tmp_path):
    now = datetime.now(UTC)
    root = ca("Flag Root")
    upload(admin_client, leaf("soon", root, not_before=now - timedelta(days=350), days=360).pem)
    upload(admin_client, leaf("gone", root, not_before=now - timedelta(days=30), days=10).pem)
    upload(admin_client, openssl_self_signed(tmp_path, "sha1"), role="ca")
    page = admin_client.get("/certificates/").get_data(as_text=True)
    assert "expires in 9 days" in page or "expires in 10 days" in page
    assert ">expired<" in page
    assert "RSA with SHA1" in page


def test_delete_is_confirmed_audited_and_admin_only(admin_client, operator_client, auditor_client, db):
    upload(admin_client, leaf("doomed", ca()).pem)
    cert_id = db.session.execute(sa.select(Certificate.id)).scalar_one()
    for client in (operator_client, auditor_client):
        assert client.post(f"/certificates/{cert_id}/delete").status_code == 403
        assert client.get("/certificates/").status_code == 200
        page = client.get(f"/certificates/{cert_id}").get_data(as_text=True)
        assert "doomed" in page and "Delete certificate" not in page and "Upload a certificate" not in page
    assert operator_client.post("/certificates/", data={}).status_code == 403
    response = admin_client.post(f"/certificates/{cert_id}/delete", follow_redirects=True)
    assert "Certificate doomed deleted." in response.get_data(as_text=True)
    assert _count(db) == 0
    assert db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "certificate.delete")).scalar_one()
    assert admin_client.get(f"/certificates/{cert_id}").status_code == 404
    assert admin_client.post(f"/certificates/{cert_id}/delete").status_code == 404


def test_nav_links_to_certificates_for_every_role(signed_in):
    for role in ("admin", "operator", "auditor"):
        page = signed_in(role, f"{role}-nav").get("/").get_data(as_text=True)
        assert 'href="/certificates/"' in page, role


def test_forms_work_with_csrf_on(make_app, db):
    """Upload, mapping and truststore forms carry their token (the truststore forms are prefixed per product)."""
    from tests.fixtures.accounts import create_admin, csrf_token, login

    app = make_app(WTF_CSRF_ENABLED=True)
    create_admin(app, "root-admin", "admin")
    client = app.test_client()
    login(client, "root-admin", csrf_token=csrf_token(client))
    token = csrf_token(client, "/certificates/")
    root = ca("CSRF Root")
    response = client.post("/certificates/", content_type="multipart/form-data", data={
        "csrf_token": token, "role": "is", "certificate": (io.BytesIO(root.pem), "root.pem")})
    assert response.status_code == 302
    page = client.get("/certificates/truststores").get_data(as_text=True)
    apim_token = re.search(r'name="apim-csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    response = client.post("/certificates/truststores/apim", data={
        "apim-csrf_token": apim_token, "apim-password": "long enough", "apim-confirm": "long enough"})
    assert response.status_code == 200 and response.mimetype == "application/x-pkcs12"
    token = csrf_token(client, "/certificates/mappings/new/user")
    response = client.post("/certificates/mappings/new/user", data={
        "csrf_token": token, "trusted_issuer": "CN=CSRF Root", "cert_thumbprint": "*"})
    assert response.status_code == 302
