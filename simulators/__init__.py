"""Simulators of the WSO2 products the portal talks to, for the tests and the demo: real HTTPS servers on
127.0.0.1 that follow `reference/wso2-apis.md`, quirks included.

`start_pair()` starts an IS 7 simulator and an API Manager simulator together, with one test CA for both server
certificates, the portal's client certificate mapped to IS's `admin`, Basic users admin/admin on both, and
optionally one direction of the products' own tenant sync switched on:

    with start_pair(direction="is7_to_apim") as pair:
        IdentityServerClient(pair.is7.base_url, ca_pem=pair.ca_pem, cert_pem=pair.client.cert_pem, ...)
        ApiManagerClient(pair.apim.base_url, ca_pem=pair.ca_pem, username="admin", password="admin")
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

__all__ = ["DIRECTIONS", "SimulatorPair", "start_pair"]

DIRECTIONS = ("off", "apim_to_is7", "is7_to_apim")


@dataclass
class SimulatorPair:
    """Both simulators and what a client needs to reach them. `ca_pem` issued both server certificates; `client`
    is the portal's client certificate (IS maps it to admin, as user and as system user)."""

    is7: Any  # simulators.is7.Is7Simulator
    apim: Any  # simulators.apim.ApimSimulator
    ca_pem: str
    client: Any  # simulators.pki.Issued
    client_ca_pem: str
    is7_user: tuple[str, str] = ("admin", "admin")
    apim_user: tuple[str, str] = ("admin", "admin")
    retry_delay: float = 0.05

    def set_direction(self, direction: str, *, auto_configure_key_manager: bool = False,
                      skip_create_resident_key_manager: bool | None = None, retry_delay: float | None = None) -> None:
        """Switch the products' own sync: "off", "apim_to_is7" ([[apim.tenant_sharing]] in API Manager) or
        "is7_to_apim" (IS's TenantSyncListener). Only one direction is ever on, as the products require."""
        from simulators.apim import TenantSharingConfig
        from simulators.is7 import TenantSyncConfig

        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}")
        delay = self.retry_delay if retry_delay is None else retry_delay
        self.is7.configure_tenant_sync(None)
        self.apim.configure_tenant_sharing(None)
        if skip_create_resident_key_manager is not None:
            self.apim.configure(skip_create_resident_key_manager=skip_create_resident_key_manager)
        if direction == "is7_to_apim":
            self.is7.configure_tenant_sync(TenantSyncConfig(self.apim.notify_url, *self.apim_user, ca_pem=self.ca_pem,
                                                            retry_delay=delay, timeout=5.0))
        elif direction == "apim_to_is7":
            self.apim.configure_tenant_sharing(TenantSharingConfig(
                self.is7.base_url, *self.is7_user, auto_configure_key_manager=auto_configure_key_manager,
                ca_pem=self.ca_pem, retry_period=delay, timeout=5.0))

    def stop(self) -> None:
        self.is7.stop()
        self.apim.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_pair(*, direction: str = "off", retry_delay: float = 0.05, is7_options: dict | None = None,
               apim_options: dict | None = None, **direction_options: Any) -> SimulatorPair:
    """Start both simulators on free ports (stop them with `pair.stop()` or use the pair as a context manager).
    `retry_delay` scales the products' own retry waits (IS: 1/2/4/8 s; Feign: 100 ms) so tests stay fast;
    `is7_options` / `apim_options` go to the simulators' constructors; `direction_options` to `set_direction`."""
    from simulators.apim import ApimSimulator
    from simulators.cert_oracle import SystemMapping, UserMapping
    from simulators.is7 import Is7Simulator
    from simulators.pki import Authority
    from simulators.x509_names import issuer_name

    server_ca = Authority("WSO2 simulators test server CA")
    client_ca = Authority("Tenant Portal test client CA")
    client = client_ca.client("tenant-portal")
    issuer = issuer_name(client.cert)
    is7_server, apim_server = server_ca.server(), server_ca.server()
    is7 = Is7Simulator(server_cert_pem=is7_server.cert_pem, server_key_pem=is7_server.key_pem,
                       client_ca_pem=client_ca.cert_pem,
                       user_mappings=[UserMapping(issuer, client.thumbprint, ("admin",))],
                       system_mappings=[SystemMapping(issuer, client.thumbprint, "admin")],
                       **(is7_options or {}))
    apim = ApimSimulator(server_cert_pem=apim_server.cert_pem, server_key_pem=apim_server.key_pem,
                         **(apim_options or {}))
    pair = SimulatorPair(is7=is7, apim=apim, ca_pem=server_ca.cert_pem, client=client,
                         client_ca_pem=client_ca.cert_pem, retry_delay=retry_delay)
    is7.start()
    try:
        apim.start()
        pair.set_direction(direction, **direction_options)
    except BaseException:
        pair.stop()
        raise
    return pair
