"""Certificates for mutual TLS: uploads parsed and refused when they are not plain certificates, stored as DER,
described for the pages; DNs rendered as Java (and so IS 7) renders them; thumbprints in IS's form. Also the
portal's own client credentials and trust bundle, for the live mTLS call."""
from __future__ import annotations

import string
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import ExtensionOID, SignatureAlgorithmOID

from portal.extensions import db
from portal.models.base import MAX_ID
from portal.models.certificate import CERTIFICATE_ROLES, Certificate
from portal.services.admin import audit
from portal.services.context import Actor
from portal.services.errors import Conflict, NotFound, ValidationError

MAX_UPLOAD_BYTES = 64 * 1024  # a certificate is 1-2 KiB; a long chain well under this
EXPIRY_WARNING = timedelta(days=30)
ROLE_LABELS = {
    "apim": "API Manager public certificate",
    "is": "IS 7 public certificate",
    "ca": "CA certificate",
    "client": "Portal client certificate (with its private key)",
}

# ---------------------------------------------------------------------------------------------------------------
# Distinguished names as Java prints them (sun.security.x509.X500Name.getName(), AVA.toString()): IS 7 compares
# `trusted_issuer` with cert.getIssuerDN().getName(). The keyword table is AVAKeyword's, later entries winning.

JAVA_KEYWORDS = {
    "2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O", "2.5.4.11": "OU",
    "2.5.4.12": "T", "1.3.6.1.4.1.42.2.11.2.1": "IP", "2.5.4.9": "STREET", "0.9.2342.19200300.100.1.25": "DC",
    "2.5.4.46": "DNQ", "2.5.4.4": "SURNAME", "2.5.4.42": "GIVENNAME", "2.5.4.43": "INITIALS",
    "2.5.4.44": "GENERATION", "1.2.840.113549.1.9.1": "EMAILADDRESS", "0.9.2342.19200300.100.1.1": "UID",
    "2.5.4.5": "SERIALNUMBER",
}
# DerValue.getAsString() knows these string types; any other value is printed as '#' + hex of its DER.
_JAVA_STRING_TYPES = {_ASN1Type.UTF8String, _ASN1Type.PrintableString, _ASN1Type.T61String, _ASN1Type.IA5String,
                      _ASN1Type.UniversalString, _ASN1Type.BMPString}
_PRINTABLE = frozenset(string.ascii_letters + string.digits + " '()+,-./:=?")  # DerValue.isPrintableStringChar
_ESCAPEES = frozenset(',+=\n<>#;\\"')


def _java_value(value: str) -> str:
    """AVA.toKeywordValueString: quote when a special character, a leading/trailing space or a double internal
    space appears; backslash-escape '"' and '\\'; other characters (non-ASCII included) are kept as they are."""
    quote, white, out = False, False, []
    already_quoted = len(value) > 1 and value[0] == '"' and value[-1] == '"'
    last = len(value) - 1
    for i, char in enumerate(value):
        if already_quoted and i in (0, last):
            out.append(char)
            continue
        if char in _PRINTABLE or char in _ESCAPEES:
            if not quote and ((i == 0 and char in " \n") or char in _ESCAPEES):
                quote = True
            if char not in " \n":
                if char in '"\\':
                    out.append("\\")
                white = False
            else:
                if not quote and white:
                    quote = True
                white = True
            out.append(char)
        else:
            white = False
            out.append(char)
    text = "".join(out)
    if text and text[-1] in " \n":
        quote = True
    return f'"{text}"' if quote and not already_quoted else text


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _java_hex(attribute: x509.NameAttribute) -> str:
    """A value Java does not read as a string (NumericString, VisibleString, BIT STRING...): '#' + its DER in hex,
    lower case as JDK 17 prints it (java.util.HexFormat)."""
    value = attribute.value
    content = value if isinstance(value, bytes) else value.encode("latin-1", "replace")
    if attribute._type == _ASN1Type.BitString:
        content = b"\x00" + content
    der = bytes([attribute._type.value]) + _der_length(len(content)) + content
    return "#" + der.hex()


def java_dn(name: x509.Name) -> str:
    """The DN as Java's X500Name.getName() prints it (RFC 1779 style): most specific RDN first, ", " between
    RDNs, " + " inside a multi-valued RDN, Java's keywords (EMAILADDRESS, ST, DC, UID...), "OID.x.y" otherwise."""
    rdns = []
    for rdn in reversed(name.rdns):
        avas = []
        for attribute in rdn:
            dotted = attribute.oid.dotted_string
            keyword = JAVA_KEYWORDS.get(dotted, f"OID.{dotted}")
            if attribute._type in _JAVA_STRING_TYPES and isinstance(attribute.value, str):
                avas.append(f"{keyword}={_java_value(attribute.value)}")
            else:
                avas.append(f"{keyword}={_java_hex(attribute)}")
        rdns.append(" + ".join(avas))
    return ", ".join(rdns)


def thumbprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER as IS writes it: upper-case hex pairs joined by ':' (openssl's -fingerprint form)."""
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


# ---------------------------------------------------------------------------------------------------------------
# Describing a certificate.

_SIGNATURE_NAMES = {oid: attr.replace("_", " ").replace("WITH", "with")
                    for attr, oid in vars(SignatureAlgorithmOID).items() if isinstance(oid, x509.ObjectIdentifier)}
_WEAK_HASHES = ("sha1", "md5")


@dataclass(frozen=True)
class CertificateInfo:
    subject: str
    issuer: str
    serial_hex: str
    thumbprint: str
    not_before: datetime
    not_after: datetime
    key_type: str
    key_bits: int | None
    weak_key: bool
    signature_algorithm: str
    weak_signature: bool
    is_ca: bool | None  # None: no BasicConstraints extension
    self_signed: bool
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def validity(self) -> str:
        """"valid", "expiring" (within 30 days), "expired" or "not yet valid"."""
        if self.checked_at < self.not_before:
            return "not yet valid"
        if self.checked_at >= self.not_after:
            return "expired"
        return "expiring" if self.not_after - self.checked_at <= EXPIRY_WARNING else "valid"

    @property
    def days_left(self) -> int:
        return (self.not_after - self.checked_at).days


def _key_facts(cert: x509.Certificate) -> tuple[str, int | None, bool]:
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size, key.key_size < 2048
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC ({key.curve.name})", key.key_size, key.key_size < 256
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256, False
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456, False
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size, True
    return type(key).__name__, None, False


def _signature(cert: x509.Certificate) -> tuple[str, bool]:
    oid = cert.signature_algorithm_oid
    label = _SIGNATURE_NAMES.get(oid, oid.dotted_string)
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        algorithm = None
    weak = (algorithm is not None and algorithm.name in _WEAK_HASHES) or any(
        h in label.lower().replace(" ", "") for h in ("sha1", "md5"))
    return label, weak


def _serial_hex(serial: int) -> str:
    """Whole bytes in upper-case hex, as `openssl x509 -serial` prints them."""
    digits = format(abs(serial), "X")
    return ("-" if serial < 0 else "") + digits.zfill(len(digits) + len(digits) % 2)


def describe(cert: x509.Certificate, now: datetime | None = None) -> CertificateInfo:
    key_type, key_bits, weak_key = _key_facts(cert)
    signature, weak_signature = _signature(cert)
    try:
        is_ca: bool | None = cert.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS).value.ca
    except x509.ExtensionNotFound:
        is_ca = None
    return CertificateInfo(
        subject=java_dn(cert.subject), issuer=java_dn(cert.issuer),
        serial_hex=_serial_hex(cert.serial_number), thumbprint=thumbprint(cert),
        not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc,
        key_type=key_type, key_bits=key_bits, weak_key=weak_key,
        signature_algorithm=signature, weak_signature=weak_signature, is_ca=is_ca,
        self_signed=cert.issuer == cert.subject,
        checked_at=now or datetime.now(UTC),
    )


# ---------------------------------------------------------------------------------------------------------------
# Parsing uploads. Messages never quote the upload.

def _check_size(data: bytes, field_name: str) -> None:
    if not data:
        raise ValidationError({field_name: "Choose a file: the upload is empty."})
    if len(data) > MAX_UPLOAD_BYTES:
        raise ValidationError({field_name: f"The file is larger than {MAX_UPLOAD_BYTES // 1024} KiB; a certificate "
                                            "file is a few KiB. Nothing was stored."})


def _pfx_header(data: bytes) -> bool:
    """A PFX is SEQUENCE { INTEGER 3, ... }; a certificate starts SEQUENCE { SEQUENCE ... }."""
    if len(data) < 5 or data[0] != 0x30:
        return False
    first = data[1]
    header = 2 if first < 0x80 else 2 + (first & 0x7F)
    return data[header:header + 3] == b"\x02\x01\x03"


def _is_pkcs12(data: bytes, filename: str) -> bool:
    if filename.lower().endswith((".p12", ".pfx")):
        return True
    try:
        pkcs12.load_key_and_certificates(data, None)
        return True
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return _pfx_header(data)


def _is_private_key(data: bytes) -> bool:
    if b"PRIVATE KEY" in data:  # PKCS#8, RSA, EC, ENCRYPTED, OPENSSH
        return True
    for load in (serialization.load_pem_private_key, serialization.load_der_private_key):
        try:
            load(data, password=None)
            return True
        except TypeError:  # an encrypted key: it wants a password
            return True
        except (ValueError, UnsupportedAlgorithm):
            continue
    return False


def parse_certificates(data: bytes, filename: str = "", field_name: str = "certificate") -> list[x509.Certificate]:
    """Every certificate in a PEM file (a bundle gives several) or the one in a DER file. Private keys, PKCS#12
    files and anything else are refused with a ValidationError naming `field_name`."""
    _check_size(data, field_name)
    if _is_pkcs12(data, filename):
        raise ValidationError({field_name: "This is a PKCS#12 (.p12/.pfx) file, which holds a private key. Upload "
                                           "the certificate alone, as PEM or DER (openssl pkcs12 -nokeys). "
                                           "Nothing was stored."})
    if _is_private_key(data):
        raise ValidationError({field_name: "This file holds a private key. Upload only the public certificate "
                                           "(PEM or DER); private keys are accepted only for the portal's client "
                                           "certificate, in its own field. Nothing was stored."})
    if b"-----BEGIN CERTIFICATE-----" in data:
        try:
            return _readable(x509.load_pem_x509_certificates(data), field_name)
        except ValueError:
            raise ValidationError({field_name: "The PEM file could not be read as certificates. Nothing was "
                                               "stored."}) from None
    if b"-----BEGIN " in data:
        raise ValidationError({field_name: "This PEM file holds no certificate (a request or a public key?). "
                                           "Upload a certificate. Nothing was stored."})
    try:
        certs = [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise ValidationError({field_name: "This is not a certificate: upload a PEM (-----BEGIN CERTIFICATE-----) "
                                           "or DER file. Nothing was stored."}) from None
    return _readable(certs, field_name)


def _readable(certs: list[x509.Certificate], field_name: str) -> list[x509.Certificate]:
    """cryptography reads extensions and the public key only when asked: a certificate whose parts cannot be read
    would break every page that describes it later, so it is refused now."""
    for cert in certs:
        try:
            describe(cert)
        except (ValueError, UnsupportedAlgorithm, x509.DuplicateExtension, x509.UnsupportedGeneralNameType):
            raise ValidationError({field_name: "This certificate cannot be read completely (a malformed extension or "
                                               "an unsupported key type). Nothing was stored."}) from None
    return certs


def parse_private_key(data: bytes, passphrase: str | None = None):
    """The client certificate's PEM private key, decrypted with `passphrase` when it is encrypted."""
    _check_size(data, "private_key")
    password = passphrase.encode() if passphrase else None
    try:
        return serialization.load_pem_private_key(data, password=password)
    except TypeError:
        if password is None:
            raise ValidationError({"key_passphrase": "This private key is encrypted: enter its passphrase."}) \
                from None
        try:  # a passphrase was given for a key that has none
            return serialization.load_pem_private_key(data, password=None)
        except (TypeError, ValueError, UnsupportedAlgorithm):
            pass
    except (ValueError, UnsupportedAlgorithm):
        pass
    message = "This is not a PEM private key" + (", or the passphrase is wrong." if password else ".")
    raise ValidationError({"private_key": message})


# ---------------------------------------------------------------------------------------------------------------
# Stored certificates.

@dataclass
class UploadResult:
    stored: list[Certificate]
    skipped: list[str]  # thumbprints already stored with this role


def _public_der(key) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _label(cert: x509.Certificate, given: str, count: int) -> str:
    given = (given or "").strip()
    if given and count == 1:
        return given[:128]
    common_names = [a.value for a in cert.subject if a.oid == x509.NameOID.COMMON_NAME and isinstance(a.value, str)]
    base = common_names[-1] if common_names else java_dn(cert.subject) or "(empty subject)"
    return (f"{given}: {base}" if given else base)[:128]


def upload_certificate(role: str, data: bytes, actor: Actor, *, filename: str = "", label: str = "",
                       key_data: bytes | None = None, key_passphrase: str | None = None) -> UploadResult:
    """Store every certificate in the upload with this role. The "client" role takes exactly one certificate
    and its private key, which must match it; the key is encrypted at rest. Nothing is stored on any error."""
    if role not in CERTIFICATE_ROLES:
        raise ValidationError({"role": "Choose what this certificate is."})
    if len((label or "").strip()) > 128:
        raise ValidationError({"label": "Use at most 128 characters."})
    certs = parse_certificates(data, filename)
    key_pem = None
    if role == "client":
        key_pem = _client_key_pem(certs, key_data, key_passphrase)
    elif key_data:
        raise ValidationError({"private_key": "Only the portal's client certificate is uploaded with a private key; "
                                              "leave this empty for other roles. Nothing was stored."})
    unique = {thumbprint(c): c for c in certs}
    existing = set(db.session.execute(sa.select(Certificate.thumbprint).where(
        Certificate.role == role, Certificate.thumbprint.in_(list(unique)))).scalars())
    if len(existing) == len(unique):
        what = "This certificate is" if len(unique) == 1 else "Every certificate in this file is"
        raise Conflict(f"{what} already stored as {ROLE_LABELS[role]}.",
                       {"certificate": f"{what} already stored as {ROLE_LABELS[role]} "
                                       f"({', '.join(sorted(existing))}). Nothing was stored."})
    stored = []
    for print_, cert in unique.items():
        if print_ in existing:
            continue
        row = Certificate(role=role, label=_label(cert, label, len(unique)),
                          der=cert.public_bytes(serialization.Encoding.DER), thumbprint=print_,
                          subject_dn=java_dn(cert.subject), issuer_dn=java_dn(cert.issuer),
                          not_after=cert.not_valid_after_utc, private_key=key_pem, created_by=actor.name[:64])
        db.session.add(row)
        try:
            db.session.flush()
        except sa.exc.IntegrityError:  # stored meanwhile by a concurrent upload
            db.session.rollback()
            raise Conflict("This certificate was stored meanwhile.",
                           {"certificate": f"{print_} was stored meanwhile as {ROLE_LABELS[role]}. "
                                           "Nothing was stored."}) from None
        audit.record(actor, "certificate.create", "certificate", row.id, audit.diff(None, {
            "role": role, "label": row.label, "thumbprint": print_, "subject": row.subject_dn,
            "issuer": row.issuer_dn, "private_key": "set" if key_pem else None}))
        stored.append(row)
    db.session.commit()
    return UploadResult(stored=stored, skipped=sorted(existing))


def _client_key_pem(certs: list[x509.Certificate], key_data: bytes | None, passphrase: str | None) -> str:
    if len(certs) != 1:
        raise ValidationError({"certificate": "Upload the client certificate alone (one certificate); upload its "
                                              "CA separately with the role CA. Nothing was stored."})
    if not key_data:
        raise ValidationError({"private_key": "The portal's client certificate needs its PEM private key: the "
                                              "portal presents both when it calls IS 7."})
    key = parse_private_key(key_data, passphrase)
    if _public_der(key.public_key()) != _public_der(certs[0].public_key()):
        raise ValidationError({"private_key": "This private key does not belong to the certificate (their public "
                                              "keys differ). Nothing was stored."})
    existing = db.session.execute(sa.select(Certificate.id).where(Certificate.role == "client")).first()
    if existing is not None:
        raise Conflict("The portal already has a client certificate.",
                       {"certificate": "The portal already has a client certificate; delete it first (the portal "
                                       "presents one). Nothing was stored."})
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def list_certificates(roles: tuple[str, ...] | None = None) -> list[Certificate]:
    query = sa.select(Certificate).order_by(Certificate.role, Certificate.id)
    if roles:
        query = query.where(Certificate.role.in_(roles))
    return list(db.session.execute(query).scalars())


def get_certificate(cert_id: int) -> Certificate:
    cert = db.session.get(Certificate, cert_id) if 0 < cert_id <= MAX_ID else None
    if cert is None:
        raise NotFound(f"No certificate with id {cert_id}.")
    return cert


def load(cert: Certificate) -> x509.Certificate:
    return x509.load_der_x509_certificate(cert.der)


def info(cert: Certificate, now: datetime | None = None) -> CertificateInfo:
    return describe(load(cert), now)


def delete_certificate(cert_id: int, actor: Actor) -> Certificate:
    cert = get_certificate(cert_id)
    audit.record(actor, "certificate.delete", "certificate", cert.id, audit.diff({
        "role": cert.role, "label": cert.label, "thumbprint": cert.thumbprint, "subject": cert.subject_dn,
        "private_key": "set" if cert.private_key else None}, None))
    db.session.delete(cert)
    db.session.commit()
    return cert


def pem_of(cert: Certificate) -> str:
    return load(cert).public_bytes(serialization.Encoding.PEM).decode()


def client_credentials() -> tuple[str, str] | None:
    """(certificate PEM, private key PEM) the portal presents to IS 7, or None when none is stored."""
    cert = db.session.execute(sa.select(Certificate).where(Certificate.role == "client")).scalars().first()
    if cert is None or not cert.private_key:
        return None
    return pem_of(cert), cert.private_key


def trust_pem(roles: tuple[str, ...] = ("ca", "is")) -> str:
    """A PEM bundle of the stored certificates with these roles ("" when none): what the portal trusts."""
    return "".join(pem_of(cert) for cert in list_certificates(roles))
