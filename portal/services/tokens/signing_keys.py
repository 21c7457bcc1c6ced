"""Signing-key material for a tenant's algorithm: HMAC secrets checked against RFC 7518, RSA keys generated
or imported. Pure functions: the tenants service stores the result."""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

HMAC_MIN_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}  # RFC 7518 3.2: at least the hash output
RSA_ALGORITHMS = ("RS256", "RS384", "RS512")
RSA_KEY_SIZES = (2048, 3072, 4096)
RSA_MIN_BITS = 2048  # RFC 7518 3.3
MAX_KEY_TEXT = 16384


class KeyProblem(ValueError):
    """The supplied key cannot serve the algorithm; the message says why, for the signingKey field."""


@dataclass(frozen=True)
class KeyMaterial:
    algorithm: str
    kid: str
    secret: str = field(repr=False)  # HMAC key text, or RSA private key PEM (PKCS#8)
    public_pem: str | None
    bits: int
    generated: bool


def is_rsa(algorithm: str) -> bool:
    return algorithm in RSA_ALGORITHMS


def hmac_key(algorithm: str, supplied: str | None) -> KeyMaterial:
    """Use the supplied shared secret if it is long enough for the algorithm, else generate one."""
    need = HMAC_MIN_BYTES[algorithm]
    if supplied is None or supplied == "":
        text = secrets.token_urlsafe(need + need // 2)  # base64 text whose bytes exceed the minimum
        return KeyMaterial(algorithm, _hmac_kid(text), text, None, len(text.encode()) * 8, True)
    try:
        size = len(supplied.encode())
    except UnicodeEncodeError:  # a lone surrogate, which JSON can carry ("\ud800")
        raise KeyProblem("The signing key is not valid Unicode text.") from None
    if size > MAX_KEY_TEXT:
        raise KeyProblem(f"The signing key is longer than {MAX_KEY_TEXT} bytes.")
    if size < need:
        raise KeyProblem(
            f"{algorithm} needs a key of at least {need} bytes (RFC 7518 3.2: as long as the hash); this one has "
            f"{size}. Use a longer key, or leave it empty to have one generated."
        )
    if "PRIVATE KEY-----" in supplied or "PUBLIC KEY-----" in supplied:
        raise KeyProblem(f"{algorithm} takes a shared secret, not a PEM key; choose RS256/384/512 for an RSA key.")
    return KeyMaterial(algorithm, _hmac_kid(supplied), supplied, None, size * 8, False)


def rsa_key(algorithm: str, supplied: str | None, key_size: int = 2048) -> KeyMaterial:
    """Import a PEM RSA private key of at least 2048 bits, or generate a key pair of `key_size` bits."""
    if supplied is None or supplied == "":
        if key_size not in RSA_KEY_SIZES:
            raise KeyProblem(f"Choose an RSA key size of {', '.join(map(str, RSA_KEY_SIZES))} bits.")
        private = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
        generated = True
    else:
        if len(supplied) > MAX_KEY_TEXT:
            raise KeyProblem(f"The signing key is longer than {MAX_KEY_TEXT} characters.")
        if "-----BEGIN" not in supplied:
            raise KeyProblem(
                f"{algorithm} signs with an RSA private key: paste a PEM private key (PKCS#8 or PKCS#1) "
                "of at least 2048 bits, or leave the signing key empty to have a key pair generated."
            )
        try:
            private = serialization.load_pem_private_key(supplied.encode(), password=None)
        except TypeError:
            raise KeyProblem("The private key is encrypted; paste it without a passphrase.") from None
        except (ValueError, Exception):  # cryptography raises ValueError or UnsupportedAlgorithm
            raise KeyProblem("The signing key is not a readable PEM private key.") from None
        if not isinstance(private, rsa.RSAPrivateKey):
            raise KeyProblem(f"{algorithm} needs an RSA private key; this PEM holds another kind of key.")
        if private.key_size < RSA_MIN_BITS:
            raise KeyProblem(
                f"The RSA key has {private.key_size} bits; {algorithm} needs at least {RSA_MIN_BITS} (RFC 7518 3.3)."
            )
        generated = False
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = private.public_key()
    public_pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return KeyMaterial(algorithm, rsa_thumbprint(public), pem, public_pem, private.key_size, generated)


def precheck(algorithm: str, supplied: str | None) -> str | None:
    """The problem with a supplied key, without generating anything; None when it is usable or absent."""
    if not supplied:
        return None
    try:
        make_key(algorithm, supplied)
    except KeyProblem as exc:
        return str(exc)
    return None


def make_key(algorithm: str, supplied: str | None, key_size: int = 2048) -> KeyMaterial:
    return rsa_key(algorithm, supplied, key_size) if is_rsa(algorithm) else hmac_key(algorithm, supplied)


def rsa_thumbprint(public: rsa.RSAPublicKey) -> str:
    """RFC 7638 JWK thumbprint: the kid that JWKS consumers can recompute from the key itself."""
    numbers = public.public_numbers()
    members = {"e": b64_uint(numbers.e), "kty": "RSA", "n": b64_uint(numbers.n)}
    digest = hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _hmac_kid(_secret: str) -> str:
    """Random: a kid derived from a shared secret would hand out a hash to guess it against."""
    return "hs-" + secrets.token_hex(12)


def b64_uint(value: int) -> str:
    """Base64url of an unsigned big-endian integer without padding, as JWK's n and e (RFC 7518 6.3.1)."""
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
