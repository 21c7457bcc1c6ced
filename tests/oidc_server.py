"""A fake OpenID provider for tests: a throwaway CA, an HTTPS server for "localhost" and a plain HTTP one,
serving discovery and JWKS documents per scenario. Used by the OIDC client tests and the tenant registration
tests of EXTERNAL providers."""
from __future__ import annotations

import http.server
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from portal.clients.oidc import FetchPolicy, GuardedFetcher
from simulators.pki import Authority

SMALL_LIMIT = 4096  # max_bytes used by the oversize tests, so they stay fast


# --- Certificates ------------------------------------------------------------------------------------------


@dataclass
class Pki:
    ca_pem: Path
    cert_pem: Path
    key_pem: Path


def _make_pki(directory: Path) -> Pki:
    """A CA and a server certificate for localhost, 127.0.0.1 and ::1 (simulators/pki.py), as PEM files."""
    authority = Authority(days=1)
    (directory / "ca.pem").write_text(authority.cert_pem)
    cert, key = authority.server(days=1).write(directory, "server")
    return Pki(directory / "ca.pem", cert, key)


# --- Servers -----------------------------------------------------------------------------------------------


@dataclass
class Route:
    status: int = 200
    body: bytes = b"{}"
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    send_length: bool = True
    delay: float = 0.0


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def setup(self) -> None:
        # The TLS handshake runs here, in the request thread, so a client that aborts it cannot stall accept().
        if self.server.tls is not None:
            self.request.settimeout(5)
            self.request = self.server.tls.wrap_socket(self.request, server_side=True)
        super().setup()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.request.close()

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self.server.requests.append((self.path, self.headers.get("Host", "")))
        route = self.server.routes.get(self.path)
        if route is None:
            route = Route(status=404, body=b'{"error": "not found"}')
        if route.delay:
            time.sleep(route.delay)
        self.send_response(route.status)
        if route.content_type:
            self.send_header("Content-Type", route.content_type)
        for name, value in route.headers.items():
            self.send_header(name, value)
        if route.send_length:
            self.send_header("Content-Length", str(len(route.body)))
        self.end_headers()
        self.wfile.write(route.body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - signature from http.server
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], tls: ssl.SSLContext | None, family: int = socket.AF_INET) -> None:
        self.address_family = family
        self.tls = tls
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, str]] = []
        super().__init__(address, _Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients in these tests hang up on purpose (oversize, untrusted certificate, timeouts).
        pass


@dataclass
class Running:
    server: _Server
    thread: threading.Thread

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def _start(server: _Server) -> Running:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return Running(server, thread)


def _server_context(pki: Pki) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.cert_pem, pki.key_pem)
    return context


def _jwk(public_key: rsa.RSAPublicKey, **extra: str) -> dict:
    jwk = RSAAlgorithm.to_jwk(public_key, as_dict=True)
    jwk.update(extra)
    return jwk


def _json(document: object) -> bytes:
    return json.dumps(document).encode()


@dataclass
class Idp:
    """The fake identity provider: base URL https://localhost:<port>, routes set up per scenario."""

    https: Running
    http: Running
    pki: Pki
    strong_jwk: dict
    weak_jwk: dict

    @property
    def base(self) -> str:
        return f"https://localhost:{self.https.port}"

    @property
    def routes(self) -> dict[str, Route]:
        return self.https.server.routes

    def policy(self, **overrides: object) -> FetchPolicy:
        settings: dict = {"allowed_networks": ("127.0.0.1/32",), "ca_bundle": str(self.pki.ca_pem)}
        settings.update(overrides)
        return FetchPolicy(**settings)

    def fetcher(self, **overrides: object) -> GuardedFetcher:
        return GuardedFetcher(self.policy(**overrides))

    def add_tenant(
        self, prefix: str, keys: list[dict], *, issuer: str | None = None, jwks_path: str | None = None
    ) -> str:
        """Serve discovery and JWKS under `prefix`; returns the issuer URL."""
        jwks_path = jwks_path or f"{prefix}/jwks"
        advertised = issuer if issuer is not None else self.base + prefix
        self.routes[f"{prefix}/.well-known/openid-configuration"] = Route(
            body=_json({"issuer": advertised, "jwks_uri": self.base + jwks_path, "response_types_supported": ["code"]})
        )
        self.routes[jwks_path] = Route(body=_json({"keys": keys}), content_type="application/jwk-set+json")
        return self.base + prefix


@pytest.fixture(scope="session")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Idp]:
    pki = _make_pki(tmp_path_factory.mktemp("oidc-pki"))
    strong = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    https = _start(_Server(("127.0.0.1", 0), _server_context(pki)))
    plain = _start(_Server(("127.0.0.1", 0), None))
    fake = Idp(
        https=https,
        http=plain,
        pki=pki,
        strong_jwk=_jwk(strong.public_key(), kid="good-2048", use="sig"),
        weak_jwk=_jwk(weak.public_key(), kid="weak-1024", use="sig"),
    )
    routes = fake.routes
    # The tenant whose issuer is the bare origin: discovery at the root.
    fake.add_tenant("", [fake.strong_jwk, fake.weak_jwk], jwks_path="/jwks")
    routes["/plain.json"] = Route(body=b'{"hello": "world"}')
    routes["/redirect"] = Route(status=302, headers={"Location": "https://elsewhere.example/jwks"}, body=b"")
    routes["/big-declared"] = Route(body=b'{"pad": "' + b"x" * (SMALL_LIMIT * 2) + b'"}')
    routes["/big-streamed"] = Route(body=b'{"pad": "' + b"x" * (SMALL_LIMIT * 4) + b'"}', send_length=False)
    routes["/html"] = Route(body=b"<html>login</html>", content_type="text/html; charset=utf-8")
    routes["/error"] = Route(status=500, body=b'{"error": "boom"}')
    routes["/array"] = Route(body=b"[1, 2, 3]")
    routes["/broken"] = Route(body=b'{"keys": [')
    routes["/slow"] = Route(body=b"{}", delay=1.0)
    plain.server.routes["/plain.json"] = Route(body=b'{"over": "http"}')
    try:
        yield fake
    finally:
        https.stop()
        plain.stop()


