"""The guarded OIDC/JWKS fetcher and the EXTERNAL identity-provider check, against real local servers:
a throwaway CA, an HTTPS server for "localhost" (and one on [::1] when IPv6 is available), a plain HTTP
server for the allow_http case. Nothing of ours is mocked; where the OS is involved (name resolution,
socket creation) the tests only observe or forbid it."""
from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from portal.clients.oidc import (
    FetchFailed,
    FetchPolicy,
    FetchRefused,
    GuardedFetcher,
)
from portal.clients.oidc_discovery import check_oidc
from tests.oidc_server import SMALL_LIMIT, Idp, Route, Running, _Server, _server_context, _start  # noqa: F401


@pytest.fixture(scope="session")
def idp6(idp: Idp) -> Iterator[Running]:
    """The same HTTPS server on [::1], for bracketed IPv6 literals. The machines this runs on have IPv6 loopback;
    where one does not, the test fails saying so rather than passing untested."""
    try:
        server = _Server(("::1", 0), _server_context(idp.pki), family=socket.AF_INET6)
    except OSError as exc:
        pytest.fail(f"IPv6 loopback [::1] is needed for the bracketed-literal test: {exc}")
    server.routes["/v6.json"] = Route(body=b'{"family": "inet6"}')
    running = _start(server)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a socket or resolve a name fails the test: refusals must happen before the network."""

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the network was used before the URL was refused")

    monkeypatch.setattr(socket, "socket", forbidden)
    monkeypatch.setattr(socket, "create_connection", forbidden)
    monkeypatch.setattr(socket, "getaddrinfo", forbidden)


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- The fetcher -------------------------------------------------------------------------------------------


def test_fetches_json_from_allowed_lab_network(idp: Idp) -> None:
    assert idp.fetcher().get_json(f"{idp.base}/plain.json") == {"hello": "world"}
    # Host header carries the name the administrator typed, not the IP we connected to.
    assert ("/plain.json", f"localhost:{idp.https.port}") in idp.https.server.requests


def test_ip_literal_url_verifies_against_ip_san(idp: Idp) -> None:
    assert idp.fetcher().get_json(f"https://127.0.0.1:{idp.https.port}/plain.json") == {"hello": "world"}


def test_bracketed_ipv6_literal_works(idp: Idp, idp6: Running) -> None:
    fetcher = idp.fetcher(allowed_networks=("::1/128",))
    assert fetcher.get_json(f"https://[::1]:{idp6.port}/v6.json") == {"family": "inet6"}
    assert ("/v6.json", f"[::1]:{idp6.port}") in idp6.server.requests


def test_resolves_the_name_once_and_connects_to_the_vetted_address(idp: Idp, monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo
    looked_up: list[str] = []

    def recording(host: str, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        looked_up.append(host)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", recording)
    idp.fetcher().get_json(f"{idp.base}/plain.json")
    assert looked_up.count("localhost") == 1
    # Anything urllib3 resolved afterwards was the IP literal we handed it, so DNS rebinding has no second chance.
    assert all(name == "localhost" or ipaddress.ip_address(name) for name in looked_up)


def test_certificate_is_checked_against_the_entered_name(idp: Idp, monkeypatch: pytest.MonkeyPatch) -> None:
    """A name that resolves to the right address but is not on the certificate fails (SNI/hostname check)."""
    real = socket.getaddrinfo

    def resolver(host: str, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        return real("127.0.0.1" if host == "idp.test" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    with pytest.raises(FetchFailed) as caught:
        idp.fetcher().get_json(f"https://idp.test:{idp.https.port}/plain.json")
    assert "TLS certificate of idp.test is not trusted" in caught.value.reason
    assert "idp.test" in caught.value.reason


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_loopback_refused_without_allow_list(idp: Idp, host: str) -> None:
    fetcher = GuardedFetcher(FetchPolicy(ca_bundle=str(idp.pki.ca_pem)))
    served = len(idp.https.server.requests)
    with pytest.raises(FetchRefused) as caught:
        fetcher.get_json(f"https://{host}:{idp.https.port}/plain.json")
    assert "loopback" in caught.value.reason
    assert "allowed networks" in caught.value.reason
    assert len(idp.https.server.requests) == served


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://169.254.169.254/latest/meta-data/", "metadata"),
        ("https://10.0.0.1/jwks", "private"),
        ("https://192.168.1.1/jwks", "private"),
        ("https://100.64.0.1/jwks", "carrier-grade NAT"),
        ("https://[::1]/jwks", "loopback"),
        ("https://[::ffff:127.0.0.1]/jwks", "127.0.0.1, a loopback"),
        ("https://[::ffff:169.254.169.254]:8443/jwks", "metadata"),
        ("https://[fd12:3456::1]/jwks", "unique-local"),
        ("https://[fe80::1]/jwks", "link-local"),
        ("https://0.0.0.0/jwks", "unspecified"),
        ("file:///etc/passwd", "Only https://"),
        ("ftp://idp.example.com/jwks", "Only https://"),
        ("gopher://idp.example.com/", "Only https://"),
        ("http://idp.example.com/jwks", "Plain http://"),
        ("https://admin:secret@idp.example.com/jwks", "user name or password"),
        ("//idp.example.com/jwks", "Only https://"),
        ("https:///jwks", "no host"),
        ("https://idp.example.com:99999/jwks", "not a valid URL"),
        ("https://idp.example.com/jw ks", "spaces or control"),
    ],
)
def test_refused_before_any_connection(no_sockets: None, url: str, expected: str) -> None:
    started = time.monotonic()
    with pytest.raises(FetchRefused) as caught:
        GuardedFetcher().get_json(url)
    assert expected in caught.value.reason
    assert time.monotonic() - started < 0.5


def test_allow_list_is_checked_against_the_unwrapped_ipv4(no_sockets: None) -> None:
    """Allowing 10.1.0.0/16 for a lab does not open other private ranges."""
    fetcher = GuardedFetcher(FetchPolicy(allowed_networks=("10.1.0.0/16",)))
    with pytest.raises(FetchRefused):
        fetcher.get_json("https://10.2.0.1/jwks")
    with pytest.raises(FetchRefused):
        fetcher.get_json("https://[::ffff:10.2.0.1]/jwks")


def test_bad_allowed_network_is_a_configuration_error() -> None:
    with pytest.raises(ValueError):
        GuardedFetcher(FetchPolicy(allowed_networks=("not-a-cidr",)))


def test_plain_http_refused_by_default_and_accepted_when_allowed(idp: Idp) -> None:
    url = f"http://127.0.0.1:{idp.http.port}/plain.json"
    with pytest.raises(FetchRefused) as caught:
        idp.fetcher().get_json(url)
    assert "http://" in caught.value.reason
    assert idp.fetcher(allow_http=True).get_json(url) == {"over": "http"}


def test_redirect_is_not_followed(idp: Idp) -> None:
    with pytest.raises(FetchRefused) as caught:
        idp.fetcher().get_json(f"{idp.base}/redirect")
    reason = caught.value.reason
    assert "redirected to https://elsewhere.example/jwks" in reason
    assert "redirects are not followed" in reason


@pytest.mark.parametrize("path", ["/big-declared", "/big-streamed"])
def test_oversized_body_refused(idp: Idp, path: str) -> None:
    with pytest.raises(FetchRefused) as caught:
        idp.fetcher(max_bytes=SMALL_LIMIT).get_json(f"{idp.base}{path}")
    assert str(SMALL_LIMIT) in caught.value.reason


def test_body_within_limit_accepted(idp: Idp) -> None:
    assert idp.fetcher(max_bytes=SMALL_LIMIT).get_json(f"{idp.base}/plain.json") == {"hello": "world"}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/html", "did not return JSON (Content-Type: text/html"),
        ("/error", "HTTP 500"),
        ("/array", "not a JSON object"),
        ("/broken", "did not return valid JSON"),
        ("/missing", "HTTP 404"),
    ],
)
def test_unusable_answers_fail(idp: Idp, path: str, expected: str) -> None:
    with pytest.raises(FetchFailed) as caught:
        idp.fetcher().get_json(f"{idp.base}{path}")
    assert expected in caught.value.reason


def test_untrusted_certificate_fails(idp: Idp) -> None:
    with pytest.raises(FetchFailed) as caught:
        idp.fetcher(ca_bundle=None).get_json(f"{idp.base}/plain.json")
    assert "TLS certificate of localhost is not trusted" in caught.value.reason


def test_closed_port_is_connection_refused(idp: Idp) -> None:
    with pytest.raises(FetchFailed) as caught:
        idp.fetcher().get_json(f"https://localhost:{_closed_port()}/jwks")
    assert "connection refused" in caught.value.reason


def test_slow_server_times_out(idp: Idp) -> None:
    started = time.monotonic()
    with pytest.raises(FetchFailed) as caught:
        idp.fetcher(read_timeout=0.3).get_json(f"{idp.base}/slow")
    assert "timed out after 0.3 s" in caught.value.reason
    assert time.monotonic() - started < 0.9


def test_silent_server_handshake_times_out(idp: Idp) -> None:
    """A port that accepts TCP but never speaks TLS must not hang the check."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(5)  # never accepted: the kernel completes TCP, nobody answers the ClientHello
        started = time.monotonic()
        with pytest.raises(FetchFailed) as caught:
            idp.fetcher(connect_timeout=0.3).get_json(f"https://localhost:{silent.getsockname()[1]}/jwks")
    assert "timed out after 0.3 s" in caught.value.reason
    assert time.monotonic() - started < 2


def test_unresolvable_name_fails() -> None:
    with pytest.raises(FetchFailed) as caught:
        GuardedFetcher().get_json("https://no-such-host.invalid/jwks")
    assert "does not resolve" in caught.value.reason


# --- The EXTERNAL identity-provider check -----------------------------------------------------------------


def test_check_succeeds_and_reports_the_weak_key(idp: Idp) -> None:
    result = check_oidc(idp.base, f"{idp.base}/jwks", "RS256", idp.fetcher())
    assert result.ok, result.summary
    assert result.summary == "OIDC discovery and JWKS fine: 1 RSA key usable for RS256"
    assert result.field_errors == {}
    assert result.details[0] == f"Fetched discovery document from {idp.base}/.well-known/openid-configuration"
    assert any(line.startswith("issuer matches") for line in result.details)
    assert "JWKS: 2 keys, 1 usable for RS256 (kid good-2048, RSA 2048 bits)" in result.details
    assert any("weak-1024" in line and "1024 bits" in line for line in result.details)


def test_check_refuses_loopback_idp_by_default(idp: Idp) -> None:
    result = check_oidc(idp.base, f"{idp.base}/jwks", "RS256", GuardedFetcher())
    assert not result.ok
    assert "loopback" in result.field_errors["issuer"]


def test_check_issuer_must_match_exactly(idp: Idp) -> None:
    issuer = idp.add_tenant("/tenants/slash", [idp.strong_jwk])
    result = check_oidc(issuer + "/", f"{issuer}/jwks", "RS256", idp.fetcher())
    assert not result.ok
    message = result.field_errors["issuer"]
    assert f'"{issuer}"' in message and f'"{issuer}/"' in message
    assert "jwkSetUrl" not in result.field_errors


def test_check_jwks_url_must_match_discovery(idp: Idp) -> None:
    issuer = idp.add_tenant("/tenants/jwks-moved", [idp.strong_jwk], jwks_path="/tenants/jwks-moved/keys/v2")
    configured = f"{issuer}/jwks"
    result = check_oidc(issuer, configured, "RS256", idp.fetcher())
    assert not result.ok
    message = result.field_errors["jwkSetUrl"]
    assert configured in message and f"{issuer}/keys/v2" in message
    assert any(line.startswith("issuer matches") for line in result.details)


def test_check_fails_with_only_a_weak_key(idp: Idp) -> None:
    issuer = idp.add_tenant("/tenants/weak", [idp.weak_jwk])
    result = check_oidc(issuer, f"{issuer}/jwks", "RS256", idp.fetcher())
    assert not result.ok
    assert "weak-1024" in result.summary and "1024 bits" in result.summary
    assert "weak-1024" in result.field_errors["jwkSetUrl"]
    assert "JWKS: 1 key, 0 usable for RS256" in result.details


@pytest.mark.parametrize("algorithm", ["HS256", "HS384", "HS512"])
def test_check_rejects_hmac_algorithms(no_sockets: None, algorithm: str) -> None:
    result = check_oidc("https://idp.example.com", "https://idp.example.com/jwks", algorithm, GuardedFetcher())
    assert not result.ok
    assert "RS256, RS384 or RS512" in result.summary
    assert "RS256, RS384 or RS512" in result.field_errors["supportAlgorithm"]


def test_check_key_alg_must_fit_the_tenant_algorithm(idp: Idp) -> None:
    issuer = idp.add_tenant("/tenants/rs256-only", [dict(idp.strong_jwk, kid="pinned-rs256", alg="RS256")])
    assert check_oidc(issuer, f"{issuer}/jwks", "RS256", idp.fetcher()).ok
    result = check_oidc(issuer, f"{issuer}/jwks", "RS384", idp.fetcher())
    assert not result.ok
    assert "pinned-rs256" in result.summary and "alg is RS256, not RS384" in result.summary
    assert any(line.startswith("Not usable for RS384: kid pinned-rs256") for line in result.details)


def test_check_reports_every_unusable_key(idp: Idp) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaked = RSAAlgorithm.to_jwk(private, as_dict=True)
    leaked["kid"] = "leaked-private"
    keys = [
        dict(idp.strong_jwk, kid="encryption", use="enc"),
        leaked,
        {"kty": "EC", "kid": "ec-key", "crv": "P-256", "x": "AA", "y": "AA"},
        "not-an-object",
        dict(idp.strong_jwk, kid="the-good-one"),
    ]
    issuer = idp.add_tenant("/tenants/mixed", keys)
    result = check_oidc(issuer, f"{issuer}/jwks", "RS512", idp.fetcher())
    assert result.ok, result.summary
    assert result.summary == "OIDC discovery and JWKS fine: 1 RSA key usable for RS512"
    unusable = "\n".join(line for line in result.details if line.startswith("Not usable"))
    assert 'kid encryption: use is "enc"' in unusable
    assert any("kid leaked-private:" in line and "private key material" in line for line in unusable.splitlines())
    assert "kid ec-key: key type 'EC', not RSA" in unusable
    assert "key #4: not a JSON object" in unusable


def test_check_empty_jwks_fails(idp: Idp) -> None:
    issuer = idp.add_tenant("/tenants/empty", [])
    result = check_oidc(issuer, f"{issuer}/jwks", "RS256", idp.fetcher())
    assert not result.ok
    assert "contains no keys" in result.field_errors["jwkSetUrl"]


def test_check_jwks_fetch_failure_is_pinned_on_jwks_field(idp: Idp) -> None:
    issuer = idp.add_tenant("/tenants/jwks-404", [idp.strong_jwk])
    del idp.routes["/tenants/jwks-404/jwks"]
    result = check_oidc(issuer, f"{issuer}/jwks", "RS256", idp.fetcher())
    assert not result.ok
    assert "HTTP 404" in result.field_errors["jwkSetUrl"]
    assert "issuer" not in result.field_errors
