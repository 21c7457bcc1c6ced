"""PKCS#12 Java truststores for each product, holding the certificates it must trust to talk to the other.

- API Manager calls IS 7 over TLS (key manager, tenant sharing): its truststore gets IS 7's certificates and the CAs.
- IS 7 verifies the client certificates presented to it (API Manager's, and the portal's own when the portal calls
  IS 7): its truststore gets API Manager's certificates, the portal's client certificate and the CAs.

The file is written with cryptography's serialize_java_truststore, which marks each entry as a Java trusted
certificate (keytool lists `trustedCertEntry`). The password is the admin's, used once and never stored.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12

from portal.extensions import db
from portal.models.certificate import Certificate
from portal.services.admin import audit
from portal.services.certificates import service as certificates
from portal.services.context import Actor
from portal.services.errors import NotFound, ValidationError

MIN_PASSWORD = 8  # keytool itself needs 6
MAX_PASSWORD = 128


@dataclass(frozen=True)
class Product:
    key: str
    label: str
    roles: tuple[str, ...]
    filename: str
    why: str


PRODUCTS = {
    "apim": Product("apim", "API Manager", ("is", "ca"), "apim-client-truststore.p12",
                    "API Manager calls IS 7 over TLS, so it must trust IS 7's certificate (and the CAs)."),
    "is": Product("is", "IS 7", ("apim", "client", "ca"), "is7-client-truststore.p12",
                  "IS 7 checks the client certificates of API Manager and of this portal, so it must trust "
                  "them (and the CAs)."),
}


@dataclass(frozen=True)
class Truststore:
    filename: str
    data: bytes
    aliases: list[str]


def product(key: str) -> Product:
    try:
        return PRODUCTS[key]
    except KeyError:
        raise NotFound(f"No truststore for {key!r}: choose API Manager or IS 7.") from None


def contents(key: str) -> list[Certificate]:
    return certificates.list_certificates(product(key).roles)


def alias(cert: Certificate) -> str:
    """Lower case: Java's PKCS12 keystore lower-cases aliases when it loads them."""
    slug = re.sub(r"[^a-z0-9]+", "-", cert.label.lower()).strip("-")[:40] or "certificate"
    return f"{cert.role}-{cert.id}-{slug}"


def build_truststore(key: str, password: str, actor: Actor) -> Truststore:
    target = product(key)
    if not password or len(password) < MIN_PASSWORD or len(password) > MAX_PASSWORD:
        raise ValidationError({"password": f"Use {MIN_PASSWORD} to {MAX_PASSWORD} characters; the password is not "
                                           "stored, keep it for the product's deployment.toml."})
    certs = contents(key)
    if not certs:
        raise ValidationError({"": f"There is nothing for {target.label} to trust yet: upload a certificate with "
                                   f"the role {' or '.join(certificates.ROLE_LABELS[r] for r in target.roles)}."})
    entries = [pkcs12.PKCS12Certificate(certificates.load(c), alias(c).encode()) for c in certs]
    data = pkcs12.serialize_java_truststore(entries, BestAvailableEncryption(password.encode()))
    aliases = [alias(c) for c in certs]
    audit.record(actor, "truststore.export", "truststore", key, {"aliases": {"before": None, "after": aliases}})
    db.session.commit()
    return Truststore(target.filename, data, aliases)
