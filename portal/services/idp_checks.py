"""Connection checks per identity-provider type, configured from the app: one entry point for the form's
"Test connection" button, registration, re-checks and bulk onboarding."""
from __future__ import annotations

from typing import Any

from flask import current_app

from portal.clients import jdbc, ldap, oidc
from portal.clients.checks import CheckResult


def fetcher() -> oidc.GuardedFetcher:
    config = current_app.config
    return oidc.GuardedFetcher(oidc.FetchPolicy(
        allow_http=bool(config["OIDC_ALLOW_HTTP"]),
        allowed_networks=tuple(config["OIDC_ALLOWED_NETWORKS"] or ()),
        connect_timeout=min(3.0, float(config["IDP_CHECK_TIMEOUT"])),
        read_timeout=float(config["IDP_CHECK_TIMEOUT"]),
        max_bytes=int(config["OIDC_MAX_BYTES"]),
        ca_bundle=config["OIDC_CA_BUNDLE"],
    ))


def run(idp_type: str, settings: dict[str, Any], secret: str | None, algorithm: str) -> CheckResult:
    """Make the real connection the tenant's type calls for. Never raises for a failed check."""
    timeout = float(current_app.config["IDP_CHECK_TIMEOUT"])
    if idp_type in ("POSTGRES", "ORACLE"):
        return jdbc.check_relational(
            idp_type, settings["dataSourceURL"], settings["dataSourceUserName"], secret or "",
            timeout=timeout, provision=bool(current_app.config["IDP_PROVISION_USER_STORE"]),
        )
    if idp_type == "LDAP":
        return ldap.check_ldap(
            settings["ldapURLForDirectoryService"], settings["directoryServiceDomainName"],
            settings["directoryServiceRootDistinguishedName"], bind_dn=settings.get("bindDN"),
            bind_password=secret, start_tls=bool(settings.get("startTLS")),
            ca_file=current_app.config["LDAP_CA_FILE"], timeout=timeout,
        )
    if idp_type == "EXTERNAL":
        return oidc.check_oidc(settings["issuer"], settings["jwkSetUrl"], algorithm, fetcher())
    raise ValueError(f"unknown identity provider type {idp_type!r}")
