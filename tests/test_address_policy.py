"""The outbound address policy (issue 13, reproduction 2): one policy for every client, checked after name
resolution and before anything is connected.

The table runs every client (JDBC PostgreSQL, JDBC Oracle, LDAP, OIDC, IS 7, API Manager) against the address forms
the OIDC guard refuses. Names are answered by a resolver hook on the policy (never real DNS); each name also resolves
to a listener on 127.0.0.1, so a client that skipped the policy would be seen connecting there. Nothing leaves the
machine: every refused address is refused before a socket is opened.
"""
from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time

import pytest

from portal.clients import address_policy, jdbc, ldap
from portal.clients.address_policy import METADATA, AddressPolicy, AddressRefused
from portal.clients.api_manager import ApiManagerClient
from portal.clients.errors import Cause, UpstreamError
from portal.clients.identity_server import IdentityServerClient
from portal.clients.oidc import FetchPolicy, FetchRefused, GuardedFetcher
from portal.idp import jdbc_url, ldap_settings
from simulators.pki import is7_pki


class Listener:
    """Accepts and counts TCP connections on 127.0.0.1, closing each at once: a target that must stay untouched."""

    def __init__(self) -> None:
        self.connections = 0
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.05)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self._sock.getsockname()[1]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self.connections += 1
            # something that is no database, directory or TLS server, so each client gives up at once
            with contextlib.suppress(OSError):
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            conn.close()

    def settle(self) -> int:
        time.sleep(0.1)  # let the accept loop see anything that arrived
        return self.connections

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()


@pytest.fixture
def listener():
    item = Listener()
    yield item
    item.close()


# Names the resolver hook answers: each also resolves to the 127.0.0.1 listener, listed first, so a client that
# resolved the name itself (or connected to the first answer without vetting all) would hit the listener.
NAMES = {
    "metadata.test": "169.254.169.254",
    "mapped-metadata.test": "::ffff:169.254.169.254",
    "unspecified.test": "0.0.0.0",
    "multicast.test": "224.0.0.1",
    "linklocal6.test": "fe80::1",
    "ecs.test": "169.254.170.2",
    "alibaba.test": "100.100.100.200",
    "aws6.test": "fd00:ec2::254",
}


def hook(host: str, port: int, *args, **kwargs):
    """socket.getaddrinfo for the policy: the test names above, real (local, numeric) parsing for the rest."""
    if host in NAMES:
        answers = ["127.0.0.1", NAMES[host]]
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (a, port) if ":" not in a else (a, port, 0, 0)) for a in answers]
    if host == "loopback.test":
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
    if host.endswith(".test"):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return socket.getaddrinfo(host, port, *args, **kwargs)


def bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


# --- Each client, driven the way the portal drives it; returns the administrator's message of the refusal. --------

PKI = is7_pki()


def via_postgres(host: str, port: int, policy: AddressPolicy) -> str:
    result = jdbc.check_relational("POSTGRES", f"jdbc:postgresql://{bracket(host)}:{port}/db", "u", "stored-secret",
                                   timeout=1, policy=policy)
    assert not result.ok
    return result.field_errors[jdbc_url.URL_FIELD]


def via_oracle(host: str, port: int, policy: AddressPolicy) -> str:
    result = jdbc.check_relational("ORACLE", f"jdbc:oracle:thin:@//{bracket(host)}:{port}/svc", "u", "stored-secret",
                                   timeout=1, policy=policy)
    assert not result.ok
    return result.field_errors[jdbc_url.URL_FIELD]


def via_ldap(host: str, port: int, policy: AddressPolicy) -> str:
    result = ldap.check_ldap(f"ldap://{bracket(host)}:{port}", "example.com", "dc=example,dc=com",
                             bind_dn="cn=admin,dc=example,dc=com", bind_password="stored-secret", timeout=1,
                             policy=policy)
    assert not result.ok
    return result.field_errors[ldap_settings.URL_FIELD]


def via_oidc(host: str, port: int, policy: AddressPolicy) -> str:
    fetcher = GuardedFetcher(FetchPolicy(allowed_networks=policy.allow_networks, deny_networks=policy.deny_networks,
                                         resolver=policy.resolver, connect_timeout=1, read_timeout=1))
    with pytest.raises(FetchRefused) as caught:
        fetcher.get_json(f"https://{bracket(host)}:{port}/.well-known/openid-configuration")
    return caught.value.reason


def via_is(host: str, port: int, policy: AddressPolicy) -> str:
    client = IdentityServerClient(f"https://{bracket(host)}:{port}", ca_pem=PKI.server_ca.cert_pem, username="admin",
                                  password="stored-secret", timeout=(1, 1), retries=2, policy=policy)
    with client, pytest.raises(UpstreamError) as caught:
        client.ping()
    assert caught.value.cause == Cause.POLICY
    assert not caught.value.retryable
    return caught.value.message


def via_apim(host: str, port: int, policy: AddressPolicy) -> str:
    client = ApiManagerClient(f"https://{bracket(host)}:{port}", ca_pem=PKI.server_ca.cert_pem, username="admin",
                              password="stored-secret", timeout=(1, 1), policy=policy)
    with client, pytest.raises(UpstreamError) as caught:
        client.ping()
    assert caught.value.cause == Cause.POLICY
    return caught.value.message


CLIENTS = {"postgres": via_postgres, "oracle": via_oracle, "ldap": via_ldap, "oidc": via_oidc, "is": via_is,
           "apim": via_apim}


def policy_for(client: str, **settings) -> AddressPolicy:
    """The client's default policy (OIDC: public only), with the resolver hook."""
    if client == "oidc":
        return AddressPolicy.public_only(settings.get("allow_networks", ()), resolver=hook)
    return AddressPolicy(resolver=hook, **settings)


# Address forms the OIDC guard refuses, as literals in the URL or as names the hook resolves.
FORMS = [
    ("169.254.169.254", "metadata"),
    ("::ffff:169.254.169.254", "metadata"),
    ("0.0.0.0", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("fe80::1", "link-local"),
    ("255.255.255.255", "broadcast"),
    ("fd00:ec2::254", "metadata"),
    ("100.100.100.200", "metadata"),
    *[(name, "resolves to " + address) for name, address in NAMES.items()],
]


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize(("host", "expected"), FORMS)
def test_every_client_refuses_the_forms_the_oidc_guard_refuses(listener, client, host, expected):
    started = time.monotonic()
    message = CLIENTS[client](host, listener.port, policy_for(client))
    if client == "oidc" and host in NAMES:
        expected = "resolves to 127.0.0.1, a loopback address"  # public only: the first answer is refused already
    assert expected in message
    assert "stored-secret" not in message
    assert time.monotonic() - started < 1.0  # refused before any connection attempt could time out
    assert listener.settle() == 0  # not even the 127.0.0.1 answer listed first was connected to


LOOPBACK_FORMS = ["127.0.0.1", "::ffff:127.0.0.1", "loopback.test", "2130706433", "0x7f000001", "0177.0.0.1",
                  "127.1"]


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("host", LOOPBACK_FORMS)
def test_loopback_denied_by_setting_connects_nothing(listener, client, host):
    """Decimal, hex, octal and short IPv4 literals are what the C resolver makes of them: 127.0.0.1, then vetted."""
    policy = policy_for(client, allow_loopback=False)
    message = CLIENTS[client](host, listener.port, policy)
    assert "loopback" in message
    if client != "oidc":
        assert "OUTBOUND_ALLOW_LOOPBACK forbids" in message
    assert listener.settle() == 0


def test_the_administrators_message_names_target_kind_and_setting(listener):
    message = via_postgres("127.0.0.1", 5432, AddressPolicy(allow_loopback=False))
    assert "127.0.0.1:5432 is a loopback address, which OUTBOUND_ALLOW_LOOPBACK forbids." in message
    assert "Nothing was connected" in message
    message = via_ldap("loopback.test", listener.port, AddressPolicy(allow_loopback=False, resolver=hook))
    assert "loopback.test resolves to 127.0.0.1, a loopback address, which OUTBOUND_ALLOW_LOOPBACK forbids" in message


@pytest.mark.parametrize("client", ["postgres", "oracle", "ldap", "is", "apim"])
@pytest.mark.parametrize("host", ["10.0.0.1", "192.168.1.1", "172.16.0.1", "100.64.0.1", "fd12:3456::1"])
def test_private_denied_by_setting(client, host):
    message = CLIENTS[client](host, 5432, AddressPolicy(allow_private=False))
    assert "OUTBOUND_ALLOW_PRIVATE forbids" in message


@pytest.mark.parametrize("client", ["postgres", "ldap", "is", "apim"])
@pytest.mark.parametrize("host", ["127.0.0.1", "loopback.test"])
def test_loopback_allowed_by_default(listener, client, host):
    """The default outbound policy lets admins' databases and WSO2 servers on loopback/private networks through:
    the listener sees the connection (and closes it, so the check fails for another reason)."""
    # the IS/API Manager helpers expect a policy refusal; any other failure is fine here
    with contextlib.suppress(BaseException):
        CLIENTS[client](host, listener.port, AddressPolicy(resolver=hook))
    assert listener.settle() >= 1


@pytest.mark.parametrize("host", ["127.0.0.1", "loopback.test"])
def test_oracle_reaches_loopback_by_default(host):
    """oracledb's thin driver leaks its socket when a peer hangs up at once, so Oracle is pointed at the test
    PostgreSQL server (127.0.0.1:5432) instead: the driver talked to it, no policy stepped in."""
    result = jdbc.check_relational("ORACLE", f"jdbc:oracle:thin:@//{host}:5432/svc", "u", "pw", timeout=2,
                                   policy=AddressPolicy(resolver=hook))
    assert result.summary.startswith(f"Could not connect to Oracle at {host}:5432")
    assert "may not connect" not in result.summary


def test_oidc_reaches_loopback_only_when_listed(listener):
    fetcher = GuardedFetcher(FetchPolicy(allowed_networks=("127.0.0.1/32",), connect_timeout=1, read_timeout=1))
    with pytest.raises(Exception) as caught:
        fetcher.get_json(f"https://127.0.0.1:{listener.port}/jwks")
    assert not isinstance(caught.value, FetchRefused)
    assert listener.settle() == 1


def test_every_connect_is_vetted_again_so_dns_rebinding_fails(listener):
    """The first answer is the listener; the next time the name points at the metadata service. The second call
    (a new connection: the listener closed the first) is refused instead of following the new answer."""
    answers = iter(["127.0.0.1", "169.254.169.254"])

    def rebinding(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    policy = AddressPolicy(resolver=rebinding)
    client = IdentityServerClient(f"https://rebind.test:{listener.port}", ca_pem=PKI.server_ca.cert_pem,
                                  username="admin", password="stored-secret", timeout=(1, 1), retries=0, policy=policy)
    with client:
        with pytest.raises(UpstreamError) as first:
            client.ping()
        assert first.value.cause != Cause.POLICY  # connected to the listener, which hung up
        with pytest.raises(UpstreamError) as second:
            client.ping()
    assert second.value.cause == Cause.POLICY
    assert "rebind.test resolves to 169.254.169.254, the cloud metadata service address" in second.value.message
    assert listener.settle() == 1


# --- The rules themselves --------------------------------------------------------------------------------------


def refused(policy: AddressPolicy, address: str) -> str | None:
    problem = policy.refusal(ipaddress.ip_address(address))
    return None if problem is None else ", ".join(problem)


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "10.1.2.3", "192.168.0.10", "fd12::1", "8.8.8.8",
                                     "2001:4860:4860::8888", "::ffff:127.0.0.1", "::ffff:10.0.0.1"])
def test_defaults_allow_loopback_private_and_public(address):
    assert refused(AddressPolicy(), address) is None


@pytest.mark.parametrize("address", ["169.254.169.254", "169.254.1.1", "fe80::1", "0.0.0.0", "::", "0.1.2.3",
                                     "224.0.0.251", "ff02::1", "255.255.255.255", "240.0.0.1", "fd00:ec2::254",
                                     "100.100.100.200", "168.63.129.16", "192.0.0.192", "169.254.170.2",
                                     "::ffff:169.254.169.254", "::169.254.169.254", "64:ff9b::a9fe:a9fe",
                                     "2002:a9fe:a9fe::1"])
def test_defaults_always_refuse(address):
    assert refused(AddressPolicy(), address) is not None


def test_the_metadata_list_is_documented_and_only_opened_by_an_exact_entry():
    assert {str(a) for a in METADATA} >= {"169.254.169.254", "fd00:ec2::254", "100.100.100.200"}
    broad = AddressPolicy(allow_networks=("169.254.0.0/16", "0.0.0.0/0", "::/0"))
    assert "metadata" in refused(broad, "169.254.169.254")
    assert "metadata" in refused(broad, "::ffff:169.254.169.254")
    assert refused(broad, "169.254.1.1") is None  # the broad entry does open ordinary link-local addresses
    exact = AddressPolicy(allow_networks=("169.254.169.254/32",))
    assert refused(exact, "169.254.169.254") is None


def test_most_specific_entry_wins_and_deny_wins_a_tie():
    policy = AddressPolicy(deny_networks=("10.0.0.0/8",), allow_networks=("10.1.2.0/24",))
    assert refused(policy, "10.1.2.5") is None
    assert "OUTBOUND_DENY_NETWORKS forbids (10.0.0.0/8)" in refused(policy, "10.3.0.1")
    assert "OUTBOUND_DENY_NETWORKS" in refused(policy, "::ffff:10.3.0.1")  # the embedded IPv4 is looked up too
    tie = AddressPolicy(deny_networks=("10.1.2.0/24",), allow_networks=("10.1.2.0/24",))
    assert refused(tie, "10.1.2.5") is not None
    public = AddressPolicy(deny_networks=("203.0.113.0/24", "2001:db8::/32"))
    assert refused(public, "203.0.113.7") is not None


def test_allow_entries_win_over_the_switches():
    policy = AddressPolicy(allow_private=False, allow_loopback=False, allow_networks=("10.1.0.0/16", "127.0.0.1/32"))
    assert refused(policy, "10.1.9.9") is None
    assert refused(policy, "127.0.0.1") is None
    assert "OUTBOUND_ALLOW_PRIVATE" in refused(policy, "10.2.0.1")
    assert "OUTBOUND_ALLOW_LOOPBACK" in refused(policy, "127.0.0.2")
    allow_list_only = AddressPolicy(allow_public=False, allow_private=False, allow_loopback=False,
                                    allow_networks=("10.1.0.0/16",))
    assert "OUTBOUND_ALLOW_PUBLIC" in refused(allow_list_only, "8.8.8.8")


def test_a_name_with_one_refused_address_is_refused_whole():
    policy = AddressPolicy(resolver=hook)
    with pytest.raises(AddressRefused) as caught:
        policy.vet("metadata.test", 443)
    assert caught.value.address == ipaddress.ip_address("169.254.169.254")


def test_settings_from_the_environment_and_bad_cidrs():
    policy = address_policy.from_config({"OUTBOUND_DENY_NETWORKS": "10.0.0.0/8, 192.168.0.0/16",
                                         "OUTBOUND_ALLOW_LOOPBACK": False})
    assert policy.deny_networks == ("10.0.0.0/8", "192.168.0.0/16")
    assert "OUTBOUND_ALLOW_LOOPBACK" in refused(policy, "127.0.0.1")
    with pytest.raises(ValueError, match="OUTBOUND_ALLOW_NETWORKS"):
        address_policy.from_config({"OUTBOUND_ALLOW_NETWORKS": ["not-a-cidr"]})
    oidc = address_policy.oidc_from_config({"OIDC_ALLOWED_NETWORKS": ("10.0.0.0/8",),
                                            "OUTBOUND_DENY_NETWORKS": ("10.9.0.0/16",)})
    assert refused(oidc, "10.1.1.1") is None
    assert refused(oidc, "10.9.1.1") is not None
    assert "OIDC_ALLOWED_NETWORKS" in refused(oidc, "192.168.1.1")
