"""Both WSO2 simulators wired to a portal app, for the propagation tests (test_sync, test_worker, test_reconcile)
and the benchmark: one throwaway PKI, IS 7 and API Manager on HTTPS with Basic users, the portal's stored trust and
connections, and the sharing direction set the same way in the portal and in the products' own sync."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from flask import Flask

from portal.services.certificates import service as certificates
from portal.services.context import Actor
from portal.services.sharing import connections, service as sharing
from simulators.apim import PERMISSION_ALL, ApimSimulator, ApimUser, TenantSharingConfig
from simulators.apim_keys import KeyManagerConfig
from simulators.cert_oracle import UserMapping
from simulators.is7 import Is7Simulator, TenantSyncConfig
from simulators.pki import Is7Pki, Issued, is7_pki
from simulators.x509_names import java_name

ACTOR = Actor(name="sync-tester")
IS_USER, IS_PASSWORD = "portal", "is-Portal#pass1"  # the portal's user in IS 7
APIM_USER, APIM_PASSWORD = "portal", "apim-Portal#pass1"  # the portal's user in API Manager
LISTENER_USER, LISTENER_PASSWORD = "is-listener", "listener#pass1"  # IS 7's listener signs in to API Manager
SHARING_USER, SHARING_PASSWORD = "apim-sharing", "sharing#pass1"  # API Manager signs in to IS 7


@dataclass
class Wso2:
    pki: Is7Pki
    is7: Is7Simulator
    apim: ApimSimulator
    apim_client: Issued  # API Manager's own certificate: its key managers call IS over mutual TLS with it

    def connect(self, app: Flask, *, read_timeout: float = 5.0) -> None:
        """Store the CA both servers' certificates come from and the portal's connection to each product."""
        with app.app_context():
            certificates.upload_certificate("ca", self.pki.server_ca.cert_pem.encode(), ACTOR)
            common = {"auth": "basic", "trust_roles": ["ca"], "connect_timeout": "2", "read_timeout": str(read_timeout)}
            connections.save("is", {"base_url": self.is7.base_url, "username": IS_USER, "password": IS_PASSWORD,
                                    **common}, ACTOR, check=False)
            connections.save("apim", {"base_url": self.apim.base_url, "username": APIM_USER,
                                      "password": APIM_PASSWORD, **common}, ACTOR, check=False)

    def share(self, app: Flask, direction: str) -> None:
        """Set the sharing direction in the portal and turn the matching product's own sync on (the other off).
        With a direction on, API Manager also auto-configures each new tenant's WSO2-IS-7 key manager (the portal's
        generated TOML says so in both directions) and generates keys through IS's mutual-TLS handler."""
        ca = self.pki.server_ca.cert_pem
        self.is7.configure_tenant_sync(None)
        self.apim.configure_tenant_sharing(None)
        key_manager = direction in ("is_to_apim", "apim_to_is")
        self.apim.configure(skip_create_resident_key_manager=key_manager)
        self.apim.configure_key_manager(KeyManagerConfig(self.is7.base_url, True, ca_pem=ca) if key_manager else None)
        if direction == "is_to_apim":
            self.is7.configure_tenant_sync(TenantSyncConfig(self.apim.notify_url, LISTENER_USER, LISTENER_PASSWORD,
                                                            ca_pem=ca, retry_delay=0.05, timeout=5.0))
        elif direction == "apim_to_is":
            self.apim.configure_tenant_sharing(TenantSharingConfig(self.is7.base_url, SHARING_USER, SHARING_PASSWORD,
                                                                   ca_pem=ca, timeout=5.0, retry_period=0.01))
        settings = {"is_to_apim": {"apim_username": LISTENER_USER, "apim_password": LISTENER_PASSWORD,
                                   "identity_server_base_url": self.is7.base_url, "auto_configure_key_manager": "y",
                                   "skip_create_resident_key_manager": "y"},
                    "apim_to_is": {"identity_server_base_url": self.is7.base_url, "is_username": SHARING_USER,
                                   "is_password": SHARING_PASSWORD, "auto_configure_key_manager": "y",
                                   "skip_create_resident_key_manager": "y"}}.get(direction, {})
        with app.app_context():
            sharing.set_direction(direction, settings, ACTOR, confirm=True, check=False)

    def creates(self, domain: str) -> dict[str, int]:
        """How many times each product accepted a create of `domain` (from anyone: the portal or the other
        product's sync): the exactly-once count."""
        is_creates = sum(1 for r in self.is7.requests if r.method == "POST" and r.path.endswith("/tenants")
                         and r.status == 201 and (r.json() or {}).get("domain") == domain)
        apim_creates = sum(1 for r in self.apim.requests if r.status == 200 and (
            (r.operation == "addTenant" and f">{domain}<".encode() in r.body)
            or (r.path.endswith("/notify") and _notified_create(r.json(), domain))))
        return {"is": is_creates, "apim": apim_creates}


def _notified_create(event: dict, domain: str) -> bool:
    """A TenantSyncListener CREATE event for `domain` (API Manager reads the first `events` value)."""
    first = next(iter((event or {}).get("events", {}).values()), {})
    return first.get("action") == "CREATE" and first.get("tenant", {}).get("domain") == domain


@contextlib.contextmanager
def wso2(*, latency: float = 0.0, pki: Is7Pki | None = None,
         key_manager_users: tuple[str, ...] = ("*",)) -> Iterator[Wso2]:
    """Both simulators running (stopped at the end). IS has one user mapping for API Manager's certificate,
    allowing `key_manager_users` (the seed's `["*"]` by default: each tenant's key manager calls as
    `<admin>@<domain>`)."""
    pki = pki or is7_pki()
    apim_client = pki.client_ca.client("api-manager")
    is7 = Is7Simulator(server_cert_pem=pki.server.cert_pem, server_key_pem=pki.server.key_pem,
                       client_ca_pem=pki.client_ca.cert_pem, latency=latency,
                       basic_users={IS_USER: IS_PASSWORD, SHARING_USER: SHARING_PASSWORD},
                       user_mappings=[UserMapping(java_name(apim_client.cert.issuer), apim_client.thumbprint,
                                                  tuple(key_manager_users))])
    apim = ApimSimulator(server_cert_pem=pki.server.cert_pem, server_key_pem=pki.server.key_pem, latency=latency,
                         users={APIM_USER: ApimUser(APIM_PASSWORD, frozenset({PERMISSION_ALL})),
                                LISTENER_USER: ApimUser(LISTENER_PASSWORD, frozenset({PERMISSION_ALL}))},
                         client_cert_pem=apim_client.cert_pem, client_key_pem=apim_client.key_pem)
    with is7, apim:
        yield Wso2(pki, is7, apim, apim_client)
