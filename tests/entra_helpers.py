"""Shared by the Entra ID preset tests: registration bodies and an app allowed to reach the Entra simulator through
the outbound policy (its loopback network and its CA added, TLS verification kept)."""
from __future__ import annotations

from typing import Any

from simulators.entra_directory import API_MULTI, API_V1, API_V2, CONTOSO, CONTOSO_DOMAIN, DAEMON, FABRIKAM

LEGACY_URI = f"api://{CONTOSO_DOMAIN}/legacy-api"


def entra_body(tenant_id: str, authority: str, *, directory: str = CONTOSO, audiences: list[str] | None = None,
               versions: list[str] | None = None, client: tuple[str, str] = (DAEMON, "Sim8Q~daemon-secret"),
               **preset: Any) -> dict[str, Any]:
    entra = {"directory": directory, "authority": authority, "audiences": audiences or [API_V2], **preset}
    if versions is not None:
        entra["tokenVersions"] = versions
    return {"tenantId": tenant_id, "clientId": client[0], "clientSecret": client[1],
            "identityProviderType": "EXTERNAL", "supportAlgorithm": "RS256", "entraId": entra}


def single_tenant(authority: str) -> dict[str, Any]:
    """Contoso's v2 API, by directory id."""
    return entra_body("contoso-api", authority)


def legacy(authority: str) -> dict[str, Any]:
    """Contoso's v1 API (App ID URI audience), by verified domain."""
    return entra_body("contoso-legacy", authority, directory=CONTOSO_DOMAIN, audiences=[LEGACY_URI, API_V1],
                      versions=["1.0"])


def multi_tenant(authority: str, allowed: list[str] | None = None) -> dict[str, Any]:
    """The multi-tenant partner API, accepting Fabrikam's tokens only."""
    return entra_body("partners", authority, directory="organizations", audiences=[API_MULTI],
                      allowedDirectories=allowed or [FABRIKAM])


def app_for(make_app, entra_sim, **overrides: Any):
    return make_app(OIDC_ALLOWED_NETWORKS=["127.0.0.1/32"], OIDC_CA_BUNDLE=entra_sim.ca_bundle_path,
                    JWKS_REFRESH_COOLDOWN=0, **overrides)
