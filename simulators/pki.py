"""Throwaway PKI, the one certificate helper of the simulators, the tests, bench/ and the demo.

Two ways in:
- `Authority` / `is7_pki()`: a CA issuing TLS server and client certificates for the simulators (EC P-256 keys, so
  a fresh set per test costs milliseconds).
- `issue` / `ca` / `leaf` / `name`: certificates with any subject, issuer, key (RSA by default, `rsa_key` reuses a
  few), validity and hash, for the awkward names and weak keys the portal has to judge; `pkcs12_file` and
  `openssl_self_signed` for what `cryptography` will not write.

Everything is in memory; `write` puts PEM files in a directory (private keys mode 0600) for the command-line
simulator or for `openssl`.

    python -m simulators.pki --out /tmp/is7-pki   # ca.pem, server.pem, server-key.pem, client.pem, ...
"""
from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def cn(common_name: str, organization: str = "Tenant Portal tests") -> x509.Name:
    """A two-part name, in ASN.1 order (O first), like most real ones."""
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@dataclass
class Issued:
    """A certificate with its private key, and the PEM text the portal stores and the simulator loads."""

    cert: x509.Certificate
    key: PrivateKey = field(repr=False)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def cert_pem(self) -> str:
        return self.pem.decode("ascii")

    @property
    def key_pem(self) -> str:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()).decode("ascii")

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def thumbprint(self) -> str:
        """SHA-256 of the DER as IS prints it: upper-case hex pairs joined by colons."""
        return self.cert.fingerprint(hashes.SHA256()).hex(":").upper()

    def write(self, directory: Path, stem: str) -> tuple[Path, Path]:
        """Write `<stem>.pem` and `<stem>-key.pem` (0600); returns both paths."""
        directory.mkdir(parents=True, exist_ok=True)
        cert_path = directory / f"{stem}.pem"
        key_path = directory / f"{stem}-key.pem"
        cert_path.write_text(self.cert_pem)
        write_private(key_path, self.key_pem)
        return cert_path, key_path


def write_private(path: Path, text: str) -> None:
    """Create a file only its owner can read, with no window where it is readable by others."""
    if path.exists():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


class Authority:
    """A CA that issues server and client certificates. `name` may be any x509.Name, so tests can build the
    awkward issuer DNs IS has to match (escaped commas, multi-valued RDNs, emailAddress)."""

    def __init__(self, name: x509.Name | str = "Tenant Portal test CA", *, days: int = 2) -> None:
        self.name = cn(name) if isinstance(name, str) else name
        self.key = ec.generate_private_key(ec.SECP256R1())
        self._ski = x509.SubjectKeyIdentifier.from_public_key(self.key.public_key())
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(self._ski, critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.issued = Issued(cert, self.key)

    @property
    def cert(self) -> x509.Certificate:
        return self.issued.cert

    @property
    def cert_pem(self) -> str:
        return self.issued.cert_pem

    def _leaf(self, subject: x509.Name, usage: x509.ObjectIdentifier, *, san: list[x509.GeneralName] | None,
              not_before: datetime.datetime | None, days: float) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        start = not_before or _now() - datetime.timedelta(minutes=5)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(self._ski), critical=False)
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return Issued(builder.sign(self.key, hashes.SHA256()), key)

    def server(self, hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "::1"), *,
               common_name: str = "localhost", days: float = 2) -> Issued:
        """A TLS server certificate valid for these DNS names and IP addresses."""
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        return self._leaf(cn(common_name), ExtendedKeyUsageOID.SERVER_AUTH, san=names, not_before=None, days=days)

    def client(self, subject: x509.Name | str = "tenant-portal", *, not_before: datetime.datetime | None = None,
               days: float = 2) -> Issued:
        """A TLS client certificate; pass `not_before` in the past and a small `days` for an expired one."""
        name = cn(subject) if isinstance(subject, str) else subject
        return self._leaf(name, ExtendedKeyUsageOID.CLIENT_AUTH, san=None, not_before=not_before, days=days)


_RSA_KEYS: list[rsa.RSAPrivateKey] = []


def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    """RSA keys are slow to make: reuse a few 2048-bit ones across the run; other sizes are made fresh."""
    if bits != 2048:
        return rsa.generate_private_key(public_exponent=65537, key_size=bits)
    if len(_RSA_KEYS) < 4:
        _RSA_KEYS.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
        return _RSA_KEYS[-1]
    _RSA_KEYS.append(_RSA_KEYS.pop(0))
    return _RSA_KEYS[-1]


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


_NAME_OIDS = {"C": NameOID.COUNTRY_NAME, "ST": NameOID.STATE_OR_PROVINCE_NAME, "L": NameOID.LOCALITY_NAME,
              "O": NameOID.ORGANIZATION_NAME, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME, "CN": NameOID.COMMON_NAME,
              "emailAddress": NameOID.EMAIL_ADDRESS, "DC": NameOID.DOMAIN_COMPONENT, "UID": NameOID.USER_ID,
              "serialNumber": NameOID.SERIAL_NUMBER, "street": NameOID.STREET_ADDRESS, "title": NameOID.TITLE,
              "SN": NameOID.SURNAME, "GN": NameOID.GIVEN_NAME, "dnQualifier": NameOID.DN_QUALIFIER,
              "organizationIdentifier": NameOID.ORGANIZATION_IDENTIFIER}


def name(*rdns: Sequence[tuple] | tuple) -> x509.Name:
    """name(("C", "LK"), ("O", "WSO2"), [("OU", "IAM"), ("CN", "x")]): ASN.1 order (country first, as openssl
    prints); a list is one multi-valued RDN. A third item picks the string type, e.g. _ASN1Type.PrintableString."""
    result = []
    for rdn in rdns:
        items = rdn if isinstance(rdn, list) else [rdn]
        attrs = [x509.NameAttribute(_NAME_OIDS[item[0]] if isinstance(item[0], str) else item[0], item[1], *item[2:])
                 for item in items]
        result.append(x509.RelativeDistinguishedName(attrs))
    return x509.Name(result)


def issue(subject: x509.Name, issuer: Issued | None = None, *, ca: bool = False, key: PrivateKey | None = None,
          days: int = 365, not_before: datetime.datetime | None = None, hash_algorithm=None,
          serial: int | None = None) -> Issued:
    """A certificate for `subject`, signed by `issuer` (self-signed when None), with only BasicConstraints."""
    key = key or rsa_key()
    start = not_before or _now() - datetime.timedelta(days=1)
    builder = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(issuer.cert.subject if issuer else subject)
               .public_key(key.public_key())
               .serial_number(serial or x509.random_serial_number())
               .not_valid_before(start)
               .not_valid_after(start + datetime.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    algorithm = hash_algorithm if hash_algorithm is not None else hashes.SHA256()
    return Issued(builder.sign(issuer.key if issuer else key, algorithm), key)


def ca(common_name: str = "Test Root CA", **kwargs) -> Issued:
    """A self-signed RSA CA named C=LK, O=WSO2, OU=IAM, CN=`common_name`."""
    return issue(name(("C", "LK"), ("O", "WSO2"), ("OU", "IAM"), ("CN", common_name)), ca=True, **kwargs)


def leaf(common_name: str, issuer: Issued, **kwargs) -> Issued:
    return issue(name(("C", "LK"), ("O", "WSO2"), ("CN", common_name)), issuer, **kwargs)


def pkcs12_file(issued: Issued, password: bytes | None = b"secret") -> bytes:
    encryption = (serialization.BestAvailableEncryption(password) if password
                  else serialization.NoEncryption())
    return pkcs12.serialize_key_and_certificates(b"client", issued.key, issued.cert, None, encryption)


def openssl_self_signed(folder: Path, digest: str) -> bytes:
    """A self-signed PEM certificate made by the openssl command with this digest (cryptography refuses to sign
    with SHA-1 or MD5, which is exactly what the portal must flag)."""
    cert, key = folder / f"{digest}.pem", folder / f"{digest}.key"
    subprocess.run(["openssl", "req", "-x509", f"-{digest}", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-subj", f"/CN={digest} signed", "-days", "2", "-out", str(cert)],
                   check=True, capture_output=True)
    return cert.read_bytes()


@dataclass
class Is7Pki:
    """What an IS 7 set-up needs: the CA IS's server certificate chains to, IS's certificate, and a separate
    client CA with the portal's client certificate (IS trusts the client CA in its client-truststore)."""

    server_ca: Authority
    server: Issued
    client_ca: Authority
    client: Issued


def is7_pki() -> Is7Pki:
    server_ca = Authority("IS 7 test server CA")
    client_ca = Authority("Tenant Portal test client CA")
    return Is7Pki(server_ca, server_ca.server(), client_ca, client_ca.client("tenant-portal"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulators.pki",
                                     description="Write a throwaway PKI for the IS 7 simulator (test use only).")
    parser.add_argument("--out", type=Path, required=True, help="directory for the PEM files (created)")
    args = parser.parse_args(argv)
    pki = is7_pki()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "server-ca.pem").write_text(pki.server_ca.cert_pem)
    (args.out / "client-ca.pem").write_text(pki.client_ca.cert_pem)
    pki.server.write(args.out, "server")
    pki.client.write(args.out, "client")
    print(f"Wrote server-ca.pem, server.pem, server-key.pem, client-ca.pem, client.pem, client-key.pem to {args.out}")
    print(f"Client certificate thumbprint: {pki.client.thumbprint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
