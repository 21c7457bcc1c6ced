"""Throwaway PKI for the simulators: a CA, a server certificate for 127.0.0.1/localhost, client certificates.

EC P-256 keys keep it fast (a fresh set per test costs milliseconds). Everything is in memory; `write` puts PEM
files in a directory (private keys mode 0600) for the command-line simulator or for `openssl`.

    python -m simulators.pki --out /tmp/is7-pki   # ca.pem, server.pem, server-key.pem, client.pem, ...
"""
from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = ec.EllipticCurvePrivateKey


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
    def cert_pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode("ascii")

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
