"""Keys, signatures, access-token claims, discovery documents and error bodies of the Entra ID simulator.

The JWS code is written here on `cryptography` alone (no JWT library) so the simulator cannot share a mistake with
the portal's validator. Facts: `reference/entra-id.md`; simulator choices are marked "simulator:".
"""
from __future__ import annotations

import base64
import datetime
import hashlib
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from simulators.entra_directory import GRAPH_RESOURCE, App, service_principal_oid

TOKEN_LIFETIME = 3600
BACKDATE = 300  # Entra sets iat and nbf five minutes in the past


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_b64(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def compact_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


@dataclass
class SigningKey:
    """An RSA 2048 key and the self-signed certificate Entra publishes it in; kid equals x5t, as in Entra."""

    key: rsa.RSAPrivateKey = field(repr=False)
    cert: x509.Certificate = field(repr=False)
    kid: str = ""

    @classmethod
    def generate(cls) -> SigningKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "accounts.accesscontrol.windows.net")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=365)).sign(key, hashes.SHA256()))
        signing = cls(key, cert)
        signing.kid = signing.x5t
        return signing

    @property
    def x5t(self) -> str:
        return b64url(self.cert.fingerprint(hashes.SHA1()))  # x5t is SHA-1 by definition (RFC 7517)

    def jwk(self, issuer: str) -> dict[str, Any]:
        numbers = self.key.public_key().public_numbers()
        der = self.cert.public_bytes(serialization.Encoding.DER)
        return {"kty": "RSA", "use": "sig", "kid": self.kid, "x5t": self.x5t, "n": _int_b64(numbers.n),
                "e": _int_b64(numbers.e), "x5c": [base64.b64encode(der).decode("ascii")], "issuer": issuer}

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())


class KeyRing:
    """Every key ever made (so tests can sign with a retired one), the published ones in order, and the signer.
    Not locked: the simulator's state lock guards it."""

    def __init__(self) -> None:
        first = SigningKey.generate()
        self.keys: dict[str, SigningKey] = {first.kid: first}
        self.published: list[str] = [first.kid]
        self.signer = first.kid

    def rotate(self) -> SigningKey:
        """Without notice: a new key signs from now on; the old ones stay published."""
        key = SigningKey.generate()
        self.keys[key.kid] = key
        self.published.append(key.kid)
        self.signer = key.kid
        return key

    def retire(self, kid: str) -> None:
        """Drop a key from the key sets. Raises KeyError when not published, ValueError for the signer."""
        if kid not in self.published:
            raise KeyError(kid)
        if kid == self.signer:
            raise ValueError("the current signing key cannot be retired: rotate first")
        self.published.remove(kid)

    def jwks(self, issuer: str) -> dict[str, Any]:
        return {"keys": [self.keys[kid].jwk(issuer) for kid in self.published]}

    def summary(self) -> dict[str, Any]:
        return {"signer": self.signer, "published": list(self.published),
                "retired": [kid for kid in self.keys if kid not in self.published]}


def encode(claims: dict[str, Any], key: SigningKey, *, header: dict[str, Any] | None = None,
           graph_nonce: bool = False) -> str:
    """A compact JWS (RS256). With `graph_nonce` the header carries a `nonce` the way Microsoft Graph's tokens do:
    the signature covers a header whose nonce is the base64url SHA-256 of the plain nonce, and the token then
    carries the plain nonce, so only the holder of the plain-to-hashed rule ("Graph") can verify it. Header members
    in `header` are added or replaced (None removes one)."""
    members: dict[str, Any] = {"typ": "JWT"}
    if graph_nonce:
        members["nonce"] = b64url(secrets.token_bytes(32))
    members |= {"alg": "RS256", "x5t": key.x5t, "kid": key.kid}
    for name, value in (header or {}).items():
        if value is None:
            members.pop(name, None)
        else:
            members[name] = value
    payload = b64url(compact_json(claims))
    signed = dict(members)
    if graph_nonce:
        signed["nonce"] = b64url(hashlib.sha256(members["nonce"].encode()).digest())
    signature = key.sign(f"{b64url(compact_json(signed))}.{payload}".encode())
    return f"{b64url(compact_json(members))}.{payload}.{b64url(signature)}"


def v1_issuer(tid: str) -> str:
    return f"https://sts.windows.net/{tid}/"


def v2_issuer(authority: str, tid: str) -> str:
    return f"{authority}/{tid}/v2.0"


def _random_id(size: int = 16) -> str:
    return b64url(secrets.token_bytes(size))


def app_token_claims(*, authority: str, tid: str, client: App | None, client_id: str, resource: App | None,
                     requested: str, version: str, lifetime: int = TOKEN_LIFETIME) -> dict[str, Any]:
    """The claims of an app-only (client credentials) access token issued by directory `tid` to `client_id`
    for `resource` (None: Microsoft Graph), requested as `requested`. v2: aud is the resource's client id, azp /
    azpacr; v1: aud is the identifier as requested (the App ID URI, api://..., or the GUID), appid / appidacr."""
    now = int(time.time())
    oid = service_principal_oid(tid, client_id)
    claims: dict[str, Any] = {}
    if version == "2.0":
        claims |= {"aud": resource.client_id if resource else requested, "iss": v2_issuer(authority, tid)}
    else:
        claims |= {"aud": requested, "iss": v1_issuer(tid)}
    claims |= {"iat": now - BACKDATE, "nbf": now - BACKDATE, "exp": now + lifetime, "aio": _random_id(48)}
    if resource is None:
        claims["app_displayname"] = client.name if client else client_id
    if version == "2.0":
        claims |= {"azp": client_id, "azpacr": "1"}
    else:
        claims |= {"appid": client_id, "appidacr": "1", "idp": v1_issuer(tid), "idtyp": "app"}
    claims |= {"oid": oid, "rh": f"0.{_random_id(40)}."}
    if resource and resource.roles:  # simulator: every client holds every application role the resource defines
        claims["roles"] = list(resource.roles)
    claims |= {"sub": oid, "tid": tid, "uti": _random_id(), "ver": version}
    return claims


def is_graph(resource: str) -> bool:
    return resource.rstrip("/").lower() in {GRAPH_RESOURCE, "00000003-0000-0000-c000-000000000000"}


def token_response(token: str, claims: dict[str, Any], *, v1_endpoint: bool, resource: str) -> dict[str, Any]:
    """The token endpoint's answer: v2 numbers; the v1 endpoint's strings with expires_on and resource."""
    expires_in = max(0, claims["exp"] - int(time.time()) - 1)
    if not v1_endpoint:
        return {"token_type": "Bearer", "expires_in": expires_in, "ext_expires_in": expires_in,
                "access_token": token}
    return {"token_type": "Bearer", "expires_in": str(expires_in), "ext_expires_in": str(expires_in),
            "expires_on": str(claims["exp"]), "not_before": str(claims["nbf"]), "resource": resource,
            "access_token": token}


# --- Errors ----------------------------------------------------------------------------------------------------


@dataclass
class EntraError(Exception):
    """An AADSTS error: `status`, OAuth `error`, the numeric code and its text."""

    status: int
    error: str
    code: int
    text: str

    def body(self, authority: str, correlation_id: str | None = None) -> dict[str, Any]:
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        trace, correlation = str(uuid.uuid4()), correlation_id or str(uuid.uuid4())
        return {"error": self.error,
                "error_description": f"AADSTS{self.code}: {self.text}\r\nTrace ID: {trace}\r\n"
                                     f"Correlation ID: {correlation}\r\nTimestamp: {now}",
                "error_codes": [self.code], "timestamp": now, "trace_id": trace, "correlation_id": correlation,
                "error_uri": f"{authority}/error?code={self.code}"}


def tenant_not_found(segment: str, *, error: str = "invalid_tenant") -> EntraError:
    return EntraError(400, error, 90002, f"Tenant '{segment}' not found. Check to make sure you have the correct "
                      "tenant ID and are signing into the correct cloud. Check with your subscription administrator, "
                      "this may happen if there are no active subscriptions for the tenant.")


def tenant_malformed(segment: str) -> EntraError:
    return EntraError(400, "invalid_request", 900023, f"Specified tenant identifier '{segment}' is neither a valid "
                      "DNS name, nor a valid external domain.")


def missing_parameter(name: str) -> EntraError:
    return EntraError(400, "invalid_request", 900144,
                      f"The request body must contain the following parameter: '{name}'.")


# --- Discovery -------------------------------------------------------------------------------------------------


def discovery(authority: str, path_tenant: str, issuer_tenant: str, *, v2: bool) -> dict[str, Any]:
    """The OpenID configuration: endpoints under `path_tenant` (the tid for a directory, else the alias) and the
    issuer for `issuer_tenant` (a tid, or the literal `{tenantid}` of the multi-tenant aliases)."""
    base = f"{authority}/{path_tenant}"
    common = {"token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt",
                                                         "client_secret_basic"],
              "response_modes_supported": ["query", "fragment", "form_post"], "subject_types_supported": ["pairwise"],
              "id_token_signing_alg_values_supported": ["RS256"], "http_logout_supported": True,
              "frontchannel_logout_supported": True, "cloud_instance_name": "microsoftonline.com",
              "cloud_graph_host_name": "graph.windows.net", "msgraph_host": "graph.microsoft.com",
              "rbac_url": "https://pas.windows.net"}
    if v2:
        return {"token_endpoint": f"{base}/oauth2/v2.0/token", "jwks_uri": f"{base}/discovery/v2.0/keys",
                "issuer": v2_issuer(authority, issuer_tenant),
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "request_uri_parameter_supported": False,
                "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "nonce",
                                     "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
                "kerberos_endpoint": f"{base}/kerberos", **common}
    return {"token_endpoint": f"{base}/oauth2/token", "jwks_uri": f"{base}/discovery/keys",
            "issuer": v1_issuer(issuer_tenant), "authorization_endpoint": f"{base}/oauth2/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/devicecode",
            "end_session_endpoint": f"{base}/oauth2/logout",
            "userinfo_endpoint": f"{base}/openid/userinfo", "check_session_iframe": f"{base}/oauth2/checksession",
            "response_types_supported": ["code", "id_token", "code id_token", "token id_token", "token"],
            "scopes_supported": ["openid"], "microsoft_multi_refresh_token": True,
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "amr", "nonce", "email",
                                 "given_name", "family_name", "nickname"],
            "kerberos_endpoint": f"{base}/kerberos", **common}
