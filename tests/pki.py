"""Test certificates made on the fly with `cryptography`: CAs, leaves with awkward names, keys, PKCS#12 files."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

_KEYS: list[rsa.RSAPrivateKey] = []


def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    """RSA keys are slow to make: reuse a few 2048-bit ones across the run."""
    if bits != 2048:
        return rsa.generate_private_key(public_exponent=65537, key_size=bits)
    if len(_KEYS) < 4:
        _KEYS.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
        return _KEYS[-1]
    _KEYS.append(_KEYS.pop(0))
    return _KEYS[-1]


def name(*rdns: Sequence[tuple] | tuple) -> x509.Name:
    """name(("C", "LK"), ("O", "WSO2"), [("OU", "IAM"), ("CN", "x")]): ASN.1 order (country first, as openssl
    prints); a list is one multi-valued RDN. A third item picks the string type, e.g. _ASN1Type.PrintableString."""
    oids = {"C": NameOID.COUNTRY_NAME, "ST": NameOID.STATE_OR_PROVINCE_NAME, "L": NameOID.LOCALITY_NAME,
            "O": NameOID.ORGANIZATION_NAME, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME, "CN": NameOID.COMMON_NAME,
            "emailAddress": NameOID.EMAIL_ADDRESS, "DC": NameOID.DOMAIN_COMPONENT, "UID": NameOID.USER_ID,
            "serialNumber": NameOID.SERIAL_NUMBER, "street": NameOID.STREET_ADDRESS, "title": NameOID.TITLE,
            "SN": NameOID.SURNAME, "GN": NameOID.GIVEN_NAME, "dnQualifier": NameOID.DN_QUALIFIER,
            "organizationIdentifier": NameOID.ORGANIZATION_IDENTIFIER}
    result = []
    for rdn in rdns:
        items = rdn if isinstance(rdn, list) else [rdn]
        attrs = []
        for item in items:
            oid = oids[item[0]] if isinstance(item[0], str) else item[0]
            attrs.append(x509.NameAttribute(oid, item[1], *item[2:]))
        result.append(x509.RelativeDistinguishedName(attrs))
    return x509.Name(result)


@dataclass
class Issued:
    cert: x509.Certificate
    key: object

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())


def issue(subject: x509.Name, issuer: Issued | None = None, *, ca: bool = False, key=None,
          days: int = 365, not_before: datetime | None = None, hash_algorithm=None,
          serial: int | None = None) -> Issued:
    """A certificate for `subject`, signed by `issuer` (self-signed when None)."""
    key = key or rsa_key()
    start = not_before or datetime.now(UTC) - timedelta(days=1)
    signer = issuer.key if issuer else key
    builder = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(issuer.cert.subject if issuer else subject)
               .public_key(key.public_key())
               .serial_number(serial or x509.random_serial_number())
               .not_valid_before(start)
               .not_valid_after(start + timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    algorithm = hash_algorithm if hash_algorithm is not None else hashes.SHA256()
    return Issued(builder.sign(signer, algorithm), key)


def ca(common_name: str = "Test Root CA", **kwargs) -> Issued:
    return issue(name(("C", "LK"), ("O", "WSO2"), ("OU", "IAM"), ("CN", common_name)), ca=True, **kwargs)


def leaf(common_name: str, issuer: Issued, **kwargs) -> Issued:
    return issue(name(("C", "LK"), ("O", "WSO2"), ("CN", common_name)), issuer, **kwargs)


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def pkcs12_file(issued: Issued, password: bytes | None = b"secret") -> bytes:
    encryption = (serialization.BestAvailableEncryption(password) if password
                  else serialization.NoEncryption())
    return pkcs12.serialize_key_and_certificates(b"client", issued.key, issued.cert, None, encryption)


def openssl_self_signed(folder, digest: str) -> bytes:
    """A self-signed PEM certificate made by the openssl command with this digest (cryptography refuses to sign
    with SHA-1 or MD5, which is exactly what the portal must flag)."""
    import subprocess

    cert, key = folder / f"{digest}.pem", folder / f"{digest}.key"
    subprocess.run(["openssl", "req", "-x509", f"-{digest}", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-subj", f"/CN={digest} signed", "-days", "2", "-out", str(cert)],
                   check=True, capture_output=True)
    return cert.read_bytes()
