"""The outbound policies of identity-provider checks, configured from the app."""
from __future__ import annotations

from flask import current_app

from portal.clients import address_policy, oidc


def fetcher() -> oidc.GuardedFetcher:
    """OIDC discovery/JWKS fetches: public addresses only, plus OIDC_ALLOWED_NETWORKS, minus OUTBOUND_DENY_NETWORKS."""
    config = current_app.config
    addresses = address_policy.oidc_from_config(config)
    return oidc.GuardedFetcher(oidc.FetchPolicy(
        allow_http=bool(config["OIDC_ALLOW_HTTP"]),
        allowed_networks=addresses.allow_networks,
        deny_networks=addresses.deny_networks,
        connect_timeout=min(3.0, float(config["IDP_CHECK_TIMEOUT"])),
        read_timeout=float(config["IDP_CHECK_TIMEOUT"]),
        max_bytes=int(config["OIDC_MAX_BYTES"]),
        ca_bundle=config["OIDC_CA_BUNDLE"],
    ))


def policy() -> address_policy.AddressPolicy:
    """The outbound policy of JDBC and LDAP checks."""
    return address_policy.from_config(current_app.config)
