"""Where the portal may connect: one outbound address policy for every client (JDBC, LDAP, OIDC, IS 7, API Manager).

Administrators type host names into the portal (a JDBC URL, an LDAP URL, a product base URL, an issuer); without a
policy those become a way to reach the portal's own network (SSRF, ASVS 1.3.6 / 13.2.4). The policy is applied to
the *resolved* addresses, and the connection then goes to the address that was checked, so a name that resolves to
one address when checked and another when connected (DNS rebinding) cannot slip through. Callers keep the original
name for TLS (SNI and certificate verification).

The verdict for one address, first match wins:

1. Cloud metadata services (`METADATA`) are refused unless an allow entry names that very address (/32 or /128):
   a broad allow entry such as 169.254.0.0/16 or 0.0.0.0/0 does not open them.
2. The explicit lists: the most specific entry of the allow and deny networks that contains the address decides;
   on equal prefixes deny wins. So `deny 10.0.0.0/8` with `allow 10.1.2.0/24` lets 10.1.2.0/24 through only.
3. The kind of address: unspecified, "this network" (0.0.0.0/8), link-local, multicast, broadcast and the reserved
   240.0.0.0/4 are always refused; loopback, private (RFC 1918, CGNAT 100.64/10, unique-local fc00::/7, other
   non-global ranges) and public addresses follow their switch.

IPv6 forms that carry an IPv4 address (mapped ::ffff:a.b.c.d, compatible, NAT64 64:ff9b::/96, 6to4) are judged by the
IPv4 address the traffic really ends up at, and both forms are looked up in the explicit lists.
"""
from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util import connection as urllib3_connection

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[..., Sequence[tuple[Any, ...]]]

# IPv6 ranges that embed an IPv4 address the traffic ends up at: the embedded address is vetted too.
_NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052
_NAT64_LOCAL_USE = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: never globally reachable
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d form
_SHARED_CGNAT = ipaddress.ip_network("100.64.0.0/10")  # RFC 6598
_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")  # RFC 4193
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")  # RFC 1122: "this host on this network", never a destination
_BROADCAST = ipaddress.ip_address("255.255.255.255")
_METADATA_V4 = ipaddress.ip_address("169.254.169.254")

# Cloud instance metadata and host services: credentials live behind these. Never connected to unless an allow
# setting lists the address itself.
METADATA: dict[IPAddress, str] = {
    _METADATA_V4: "AWS, GCP, Azure, OpenStack, Oracle Cloud, DigitalOcean, Hetzner instance metadata",
    ipaddress.ip_address("169.254.170.2"): "AWS ECS task metadata and credentials",
    ipaddress.ip_address("fd00:ec2::254"): "AWS instance metadata over IPv6",
    ipaddress.ip_address("100.100.100.200"): "Alibaba Cloud instance metadata",
    ipaddress.ip_address("168.63.129.16"): "Azure WireServer (host agent)",
    ipaddress.ip_address("192.0.0.192"): "Oracle Cloud legacy instance metadata",
}

_MAX_ADDRESSES_TRIED = 3  # bounds the time spent on a name with many unreachable addresses


class PolicyError(Exception):
    """The policy stopped a connection before it was made; `reason` is written for an administrator."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ResolveFailed(PolicyError):
    """The name does not resolve to any IPv4 or IPv6 address."""


class AddressRefused(PolicyError):
    """An address the name resolves to (or the literal) is one the policy forbids; nothing was connected.

    `what` names the kind of address ("a loopback address"), `rule` the setting that forbids it, so a caller with
    its own settings (the OIDC guard) can word the sentence its way."""

    def __init__(self, host: str, port: int, address: IPAddress, what: str, rule: str) -> None:
        self.host, self.port, self.address, self.what, self.rule = host, port, address, what, rule
        super().__init__(f"{self.where} {what}, {rule}.")

    @property
    def literal(self) -> bool:
        return _literal(self.host) is not None

    @property
    def where(self) -> str:
        """"10.0.0.5:5432 is" for a literal, "db.example.com resolves to 10.0.0.5," for a name."""
        if self.literal:
            host = f"[{self.host}]" if ":" in self.host else self.host
            return f"{host}:{self.port} is"
        return f"{self.host} resolves to {shown(self.address)},"


@dataclass(frozen=True)
class AddressPolicy:
    """What outbound connections may reach. The defaults suit JDBC, LDAP and the WSO2 products: loopback, private and
    public addresses allowed; link-local, metadata, unspecified, multicast and broadcast refused."""

    allow_networks: tuple[str, ...] = ()
    deny_networks: tuple[str, ...] = ()
    allow_loopback: bool = True
    allow_private: bool = True
    allow_public: bool = True
    # Setting names quoted in refusals, so the administrator knows what to change.
    allow_setting: str = "OUTBOUND_ALLOW_NETWORKS"
    deny_setting: str = "OUTBOUND_DENY_NETWORKS"
    loopback_setting: str = "OUTBOUND_ALLOW_LOOPBACK"
    private_setting: str = "OUTBOUND_ALLOW_PRIVATE"
    public_setting: str = "OUTBOUND_ALLOW_PUBLIC"
    resolver: Resolver | None = field(default=None, compare=False)  # socket.getaddrinfo's signature; tests hook it
    _allow: tuple[IPNetwork, ...] = field(init=False, repr=False, compare=False)
    _deny: tuple[IPNetwork, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # A malformed CIDR raises ValueError here: a configuration mistake stops the check, it is never ignored.
        object.__setattr__(self, "_allow", _networks(self.allow_networks, self.allow_setting))
        object.__setattr__(self, "_deny", _networks(self.deny_networks, self.deny_setting))

    @classmethod
    def public_only(cls, allowed_networks: Sequence[str] = (), *, setting: str = "OIDC_ALLOWED_NETWORKS",
                    resolver: Resolver | None = None) -> AddressPolicy:
        """The stricter policy of fetches from the internet (OIDC discovery and JWKS): public addresses only,
        plus the networks a lab lists."""
        return cls(allow_networks=tuple(allowed_networks), allow_loopback=False, allow_private=False,
                   allow_setting=setting, loopback_setting=setting, private_setting=setting, resolver=resolver)

    # --- Verdicts ---------------------------------------------------------------------------------------------

    def refusal(self, address: IPAddress) -> tuple[str, str] | None:
        """None when `address` may be connected to, else (what it is, which rule forbids it) in words."""
        plain = _plain(address)
        embedded = embedded_ipv4(plain)
        candidates = [plain, *embedded]
        for candidate in candidates:
            if candidate in METADATA and not self._listed_exactly(candidate):
                what = "the cloud metadata service address" if candidate == plain else \
                    f"an IPv6 form of {candidate}, the cloud metadata service address"
                return what, f"which the portal never connects to unless {self.allow_setting} lists that address"
        explicit = self._explicit(candidates)
        if isinstance(explicit, str):
            return describe(plain), f"which {self.deny_setting} forbids ({explicit})"
        if explicit is True:
            return None
        for candidate in embedded or [plain]:
            rule = self._category_rule(candidate)
            if rule is not None:
                return describe(plain), rule
        if isinstance(plain, ipaddress.IPv6Address) and plain in _NAT64_LOCAL_USE and not self.allow_private:
            return describe(plain), f"which {self.private_setting} forbids"
        return None

    def check_address(self, address: IPAddress, host: str, port: int) -> None:
        problem = self.refusal(address)
        if problem is not None:
            raise AddressRefused(host, port, address, *problem)

    def _listed_exactly(self, address: IPAddress) -> bool:
        return any(net.num_addresses == 1 and address in net for net in self._allow)

    def _explicit(self, candidates: list[IPAddress]) -> str | bool | None:
        """The deny network (as text) when a deny entry decides, True when an allow entry does, None otherwise."""
        allowed = False
        for candidate in candidates:
            deny = _longest(candidate, self._deny)
            allow = _longest(candidate, self._allow)
            if deny is not None and (allow is None or deny.prefixlen >= allow.prefixlen):
                return str(deny)
            if allow is not None:
                allowed = True
        return True if allowed else None

    def _category_rule(self, address: IPAddress) -> str | None:
        never = f"which the portal never connects to unless {self.allow_setting} lists it"
        if address.is_unspecified or address in _THIS_NETWORK:
            return never
        if address.is_link_local or address.is_multicast or address == _BROADCAST:
            return never
        if isinstance(address, ipaddress.IPv4Address) and address.is_reserved:  # 240.0.0.0/4
            return never
        if address.is_loopback:
            return None if self.allow_loopback else f"which {self.loopback_setting} forbids"
        if _is_private(address):
            return None if self.allow_private else f"which {self.private_setting} forbids"
        return None if self.allow_public else f"which {self.public_setting} forbids"

    # --- Resolution and connection -------------------------------------------------------------------------

    def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Every IPv4/IPv6 address of `host` (an IP literal is its own answer), in the resolver's order."""
        host = host.strip("[]")
        literal = _literal(host)
        if literal is not None:
            return [literal]
        resolver = self.resolver or socket.getaddrinfo
        try:
            infos = resolver(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        except socket.gaierror as exc:
            raise ResolveFailed(f"The host name {host} does not resolve ({exc.strerror or exc}).") from None
        except UnicodeError:
            raise ResolveFailed(f"{host} is not a valid host name.") from None
        found: list[IPAddress] = []
        for family, _type, _proto, _canon, sockaddr in infos:
            if family not in (socket.AF_INET, socket.AF_INET6):
                continue
            address = ipaddress.ip_address(str(sockaddr[0]))
            if address not in found:
                found.append(address)
        if not found:
            raise ResolveFailed(f"The host name {host} does not resolve to an IPv4 or IPv6 address.")
        return found

    def vet(self, host: str, port: int) -> list[str]:
        """Resolve once and check every answer: a name with one forbidden address among allowed ones is refused,
        because the resolver (or an attacker's DNS) may hand out any of them. Returns the addresses to connect to."""
        host = host.strip("[]")
        addresses = self.resolve(host, port)
        for address in addresses:
            self.check_address(address, host, port)
        return [str(address) for address in addresses[:_MAX_ADDRESSES_TRIED]]

    def connect(self, host: str, port: int, timeout: float | None) -> socket.socket:
        """A TCP connection to the first vetted address of `host` that answers; OSError of the last one otherwise."""
        last: OSError | None = None
        for ip in self.vet(host, port):
            try:
                return socket.create_connection((ip, port), timeout=timeout)
            except OSError as exc:
                last = exc
        assert last is not None  # vet never returns an empty list
        raise last


# --- Building the policy from the app's settings ---------------------------------------------------------------


def from_config(config: Any) -> AddressPolicy:
    """The outbound policy of JDBC, LDAP, IS 7 and API Manager connections (OUTBOUND_* settings)."""
    return AddressPolicy(
        allow_networks=_cidrs(config.get("OUTBOUND_ALLOW_NETWORKS")),
        deny_networks=_cidrs(config.get("OUTBOUND_DENY_NETWORKS")),
        allow_loopback=bool(config.get("OUTBOUND_ALLOW_LOOPBACK", True)),
        allow_private=bool(config.get("OUTBOUND_ALLOW_PRIVATE", True)),
        allow_public=bool(config.get("OUTBOUND_ALLOW_PUBLIC", True)),
    )


def oidc_from_config(config: Any) -> AddressPolicy:
    """OIDC discovery and JWKS fetches: public only, plus OIDC_ALLOWED_NETWORKS; OUTBOUND_DENY_NETWORKS applies too."""
    return AddressPolicy(
        allow_networks=_cidrs(config.get("OIDC_ALLOWED_NETWORKS")),
        deny_networks=_cidrs(config.get("OUTBOUND_DENY_NETWORKS")),
        allow_loopback=False, allow_private=False,
        allow_setting="OIDC_ALLOWED_NETWORKS", loopback_setting="OIDC_ALLOWED_NETWORKS",
        private_setting="OIDC_ALLOWED_NETWORKS",
    )


def configured() -> AddressPolicy:
    """The app's outbound policy when an app is running (requests, workers, CLI), else the defaults: clients built
    without an explicit policy still go through one."""
    try:
        from flask import current_app, has_app_context
    except ImportError:  # pragma: no cover - Flask is a dependency of the portal
        return AddressPolicy()
    return from_config(current_app.config) if has_app_context() else AddressPolicy()


def _cidrs(value: Any) -> tuple[str, ...]:
    """A list/tuple of CIDRs, or one comma/space separated string (PORTAL_OUTBOUND_DENY_NETWORKS=10.0.0.0/8,...)."""
    if not value:
        return ()
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    return tuple(str(item).strip() for item in value if str(item).strip())


# --- Address helpers ---------------------------------------------------------------------------------------------


def _networks(cidrs: Sequence[str], setting: str) -> tuple[IPNetwork, ...]:
    networks = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(str(cidr).strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"{setting}: {cidr!r} is not a network ({exc}).") from None
    return tuple(networks)


def _longest(address: IPAddress, networks: tuple[IPNetwork, ...]) -> IPNetwork | None:
    best = None
    for network in networks:
        if network.version == address.version and address in network and (best is None or
                                                                           network.prefixlen > best.prefixlen):
            best = network
    return best


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _plain(address: IPAddress) -> IPAddress:
    """Without a scope id (fe80::1%eth0), which the range checks do not expect."""
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        return ipaddress.IPv6Address(int(address))
    return address


def _is_private(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv4Address) and address in _SHARED_CGNAT:
        return True
    if isinstance(address, ipaddress.IPv6Address) and (address in _UNIQUE_LOCAL or address in _NAT64_LOCAL_USE):
        return True
    return address.is_private or not address.is_global


def embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address really leads to (mapped, compatible, NAT64, 6to4)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    plain = ipaddress.IPv6Address(int(address))  # drop any scope id for the range checks
    if plain in _NAT64_WELL_KNOWN or (plain in _IPV4_COMPATIBLE and int(plain) > 1):
        found.append(ipaddress.IPv4Address(int(plain) & 0xFFFFFFFF))
    return found


def shown(address: IPAddress) -> str:
    """An address as people write it: ::ffff:169.254.169.254 rather than Python's ::ffff:a9fe:a9fe."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return f"::ffff:{address.ipv4_mapped}"
    return str(address)


def describe(address: IPAddress) -> str:
    """What an address is, in words ("a loopback address", "an IPv6 form of 169.254.169.254, ...")."""
    address = _plain(address)
    for embedded in embedded_ipv4(address):
        words = describe(embedded)
        if words != "a public address":
            return f"an IPv6 form of {embedded}, {words}"
    return non_public(address) or "a public address"


def non_public(address: IPAddress) -> str | None:
    """None when `address` is a public unicast address; otherwise what it is, in words."""
    address = _plain(address)
    for embedded in embedded_ipv4(address):
        problem = non_public(embedded)
        if problem is not None:
            return f"an IPv6 form of {embedded}, {problem}"
    if isinstance(address, ipaddress.IPv6Address) and address in _NAT64_LOCAL_USE:
        return "a local-use NAT64 address"
    if address.is_unspecified:
        return "the unspecified address"
    if isinstance(address, ipaddress.IPv4Address) and address in _THIS_NETWORK:
        return "a 'this network' address (0.0.0.0/8)"
    if address.is_loopback:
        return "a loopback address"
    if address in METADATA:
        return "the cloud metadata service address" + (" (link-local)" if address.is_link_local else "")
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address == _BROADCAST:
        return "the broadcast address"
    if isinstance(address, ipaddress.IPv4Address) and address in _SHARED_CGNAT:
        return "a carrier-grade NAT (shared) address"
    if isinstance(address, ipaddress.IPv6Address) and address in _UNIQUE_LOCAL:
        return "a unique-local (private) IPv6 address"
    if isinstance(address, ipaddress.IPv4Address) and address.is_reserved:
        return "a reserved address (240.0.0.0/4)"
    if address.is_private:
        return "a private or reserved address"
    if not address.is_global:
        return "a reserved, non-public address"
    return None


# --- HTTP(S) through the policy (requests / urllib3) -------------------------------------------------------------


def _guarded_new_conn(conn: Any, policy: AddressPolicy) -> socket.socket:
    """urllib3's _new_conn, but to a vetted address of the name: the name itself stays the connection's host, so
    SNI, certificate verification and the Host header still use it. AddressRefused escapes urllib3 unchanged (it is
    not a network error, so it is never retried)."""
    try:
        addresses = policy.vet(conn._dns_host, conn.port)
    except ResolveFailed as exc:
        raise NameResolutionError(conn.host, conn, socket.gaierror(socket.EAI_NONAME, exc.reason)) from None
    last: Exception | None = None
    for ip in addresses:
        try:
            return urllib3_connection.create_connection((ip, conn.port), conn.timeout,
                                                        source_address=conn.source_address,
                                                        socket_options=conn.socket_options)
        except TimeoutError as exc:
            last = ConnectTimeoutError(conn, f"Connection to {conn.host} timed out. (connect timeout={conn.timeout})")
            last.__cause__ = exc
        except OSError as exc:
            last = NewConnectionError(conn, f"Failed to establish a new connection: {exc}")
            last.__cause__ = exc
    assert last is not None
    raise last


def guarded_pool_classes(policy: AddressPolicy) -> dict[str, type]:
    """urllib3 pool classes whose connections go through `policy`, for PoolManager.pool_classes_by_scheme."""
    def new_conn(self: Any) -> socket.socket:
        return _guarded_new_conn(self, policy)

    http_conn = type("GuardedHTTPConnection", (HTTPConnection,), {"_new_conn": new_conn})
    https_conn = type("GuardedHTTPSConnection", (HTTPSConnection,), {"_new_conn": new_conn})
    return {
        "http": type("GuardedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
        "https": type("GuardedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}),
    }



class GuardedAdapter(HTTPAdapter):
    """requests' HTTPAdapter(policy=...): every new connection resolves, checks and connects to the checked address,
    with SNI and certificate verification against the URL's name."""

    def __init__(self, *, policy: AddressPolicy | None = None, **kwargs: Any) -> None:
        self.policy = policy if policy is not None else configured()
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = guarded_pool_classes(self.policy)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        raise PolicyError("The portal does not connect through proxies.")  # clients set trust_env off
