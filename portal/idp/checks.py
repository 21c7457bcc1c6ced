"""Connection checks per identity-provider type: one entry point for the form's "Test connection" button,
registration, re-checks and bulk onboarding; the tenant's family makes the connection.

Every check connects through the outbound address policy (OUTBOUND_* settings; OIDC: public only plus
OIDC_ALLOWED_NETWORKS) and spends one unit of the actor's check budget (services/check_budget.py)."""
from __future__ import annotations

from typing import Any

from flask import current_app

from portal.clients.checks import CheckResult
from portal.idp import registry
from portal.idp.base import CheckEnv
from portal.services import check_budget
from portal.services.context import Actor


def run(idp_type: str, settings: dict[str, Any], secret: str | None, algorithm: str,
        actor: Actor | None = None, client: tuple[str, str] | None = None) -> CheckResult:
    """Make the real connection the tenant's type calls for. Never raises for a failed check; raises
    check_budget.TooManyChecks (429) before connecting when the actor (given, or the request's) has used up its
    connection-check budget. `client` (the tenant's client id and secret) lets a check ask for a test token."""
    family = registry.find(idp_type)
    if family is None:
        raise ValueError(f"unknown identity provider type {idp_type!r}")
    check_budget.spend(actor)
    env = CheckEnv(config=current_app.config, timeout=float(current_app.config["IDP_CHECK_TIMEOUT"]), client=client)
    return family.check(idp_type, settings, secret, algorithm, env)
