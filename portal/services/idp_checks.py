"""Connection checks per identity-provider type, configured from the app: one entry point for the form's
"Test connection" button, registration, re-checks and bulk onboarding.

Every check connects through the outbound address policy (OUTBOUND_* settings; OIDC: public only plus
OIDC_ALLOWED_NETWORKS) and spends one unit of the actor's check budget (services/check_budget.py)."""
from __future__ import annotations

from typing import Any

from flask import current_app

from portal.clients import address_policy, jdbc, ldap, oidc
from portal.clients.checks import CheckResult
from portal.services import check_budget
from portal.services.context import Actor


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


def run(idp_type: str, settings: dict[str, Any], secret: str | None, algorithm: str,
        actor: Actor | None = None) -> CheckResult:
    """Make the real connection the tenant's type calls for. Never raises for a failed check; raises
    check_budget.TooManyChecks (429) before connecting when the actor (given, or the request's) has used up its
    connection-check budget."""
    if idp_type not in ("POSTGRES", "ORACLE", "LDAP", "EXTERNAL"):
        raise ValueError(f"unknown identity provider type {idp_type!r}")
    check_budget.spend(actor)
    timeout = float(current_app.config["IDP_CHECK_TIMEOUT"])
    if idp_type in ("POSTGRES", "ORACLE"):
        return jdbc.check_relational(
            idp_type, settings["dataSourceURL"], settings["dataSourceUserName"], secret or "",
            timeout=timeout, provision=bool(current_app.config["IDP_PROVISION_USER_STORE"]), policy=policy(),
        )
    if idp_type == "LDAP":
        return ldap.check_ldap(
            settings["ldapURLForDirectoryService"], settings["directoryServiceDomainName"],
            settings["directoryServiceRootDistinguishedName"], bind_dn=settings.get("bindDN"),
            bind_password=secret, start_tls=bool(settings.get("startTLS")),
            ca_file=current_app.config["LDAP_CA_FILE"], timeout=timeout, policy=policy(),
        )
    if idp_type == "EXTERNAL":
        return oidc.check_oidc(settings["issuer"], settings["jwkSetUrl"], algorithm, fetcher())
    raise ValueError(f"unknown identity provider type {idp_type!r}")
