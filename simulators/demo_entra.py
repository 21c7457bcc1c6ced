"""The Microsoft Entra ID part of `make demo` (simulators/demo.py): the Entra simulator in this process over HTTPS
(a daemon thread: it ends with the demo), the portal allowed to reach it through its outbound policy (the
simulator's loopback network and its CA; TLS stays verified), one EXTERNAL tenant with the Entra ID preset
registered after a passing connection check, and what to try: a client-credentials token from the simulator,
validated by the portal. The portal itself is reached only through the app object and the `register` callable
demo.py passes in, so this module imports nothing of the portal.
"""
from __future__ import annotations

import json
import os
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from simulators.entra import EntraSimulator, server_certificate
from simulators.entra_directory import API_V2, CONTOSO, CONTOSO_DOMAIN, DAEMON, default_config

TENANT_ID = "entra-demo"
OWNER = {"username": "entra-admin", "email": "admin@entra-demo.example.com", "firstName": "Ena",
         "lastName": "Tra", "provisioningMethod": "inline-password", "password": "Entra#Owner2026"}


def start_entra_demo(app: Any, instance: Path,
                     register: Callable[[dict[str, Any]], str]) -> tuple[EntraSimulator, list[str]]:
    """Start the simulator, let the portal (app) reach it, register the demo tenant with `register` (which returns
    the connection check's summary); the simulator and the lines to print."""
    config = default_config()
    secret = next(a["clientSecret"] for d in config["directories"] for a in d["apps"] if a["clientId"] == DAEMON)
    cert_dir = instance / "entra"
    cert_pem, key_pem = server_certificate(cert_dir)
    simulator = EntraSimulator(config, server_cert_pem=cert_pem, server_key_pem=key_pem).start()
    app.config["OIDC_ALLOWED_NETWORKS"] = [*app.config.get("OIDC_ALLOWED_NETWORKS", ()), "127.0.0.1/32"]
    app.config["OIDC_CA_BUNDLE"] = str(cert_dir / "ca.pem")
    # The portal and worker demo.py serves run as child processes: they read the same settings from PORTAL_*.
    os.environ["PORTAL_OIDC_ALLOWED_NETWORKS"] = json.dumps(app.config["OIDC_ALLOWED_NETWORKS"])
    os.environ["PORTAL_OIDC_CA_BUNDLE"] = app.config["OIDC_CA_BUNDLE"]
    summary = register({"tenantId": TENANT_ID, "displayName": "Entra ID demo (Contoso)", "clientId": DAEMON,
                        "clientSecret": secret, "identityProviderType": "EXTERNAL", "supportAlgorithm": "RS256",
                        "owner": OWNER, "entraId": {"directory": CONTOSO, "authority": simulator.authority,
                                                    "tokenVersions": ["2.0"], "audiences": [API_V2]}})
    return simulator, _lines(simulator.authority, cert_dir / "ca.pem", secret, summary)


def _lines(authority: str, ca: Path, secret: str, summary: str) -> list[str]:
    token_url = f"{authority}/{CONTOSO}/oauth2/v2.0/token"
    curl = ["curl", "-s", "--cacert", str(ca), token_url, "-d", "grant_type=client_credentials",
            "-d", f"client_id={DAEMON}", "-d", f"client_secret={secret}", "-d", f"scope=api://{API_V2}/.default"]
    return [
        f"Entra ID simulator:     {authority}  (CA {ca})",
        f"Entra demo tenant:      {TENANT_ID}: directory {CONTOSO} ({CONTOSO_DOMAIN}), v2.0 tokens for {API_V2}",
        f"                        check: {summary}",
        "Try a client-credentials token from the simulator:",
        "  " + shlex.join(curl),
        f"then paste its access_token into the token lab of {TENANT_ID} (or POST /v1/token/validate with "
        f'"tenantId": "{TENANT_ID}").',
    ]
