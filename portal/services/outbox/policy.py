"""Outbox policy: delivery tuning (SYNC_* config), whether propagation is on, the owner rules it implies, and the
sharing direction delivery follows."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import current_app

from portal.extensions import db
from portal.models import ProductConnection
from portal.services.sharing import service as sharing

DIRECTIONS = {"apim_to_is": ("apim", "is"), "is_to_apim": ("is", "apim")}  # (source, target)


@dataclass(frozen=True)
class Settings:
    """Delivery tuning, from SYNC_* config keys (the defaults suit real WSO2 servers; tests shorten them)."""

    max_attempts: int = 8
    backoff_base: float = 2.0  # seconds before the 2nd attempt; doubles each time
    backoff_cap: float = 600.0
    retry_after_cap: float = 3600.0  # a Retry-After beyond this is read as this
    lease_seconds: float = 120.0  # a job held longer by a silent worker is taken over
    verify_seconds: float = 20.0  # how long the other product gets to catch up when sharing is on
    poll_interval: float = 0.25

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Settings:
        return cls(max_attempts=int(config.get("SYNC_MAX_ATTEMPTS", cls.max_attempts)),
                   backoff_base=float(config.get("SYNC_BACKOFF_BASE", cls.backoff_base)),
                   backoff_cap=float(config.get("SYNC_BACKOFF_CAP", cls.backoff_cap)),
                   retry_after_cap=float(config.get("SYNC_RETRY_AFTER_CAP", cls.retry_after_cap)),
                   lease_seconds=float(config.get("SYNC_LEASE_SECONDS", cls.lease_seconds)),
                   verify_seconds=float(config.get("SYNC_VERIFY_SECONDS", cls.verify_seconds)),
                   poll_interval=float(config.get("SYNC_POLL_INTERVAL", cls.poll_interval)))


def settings() -> Settings:
    return Settings.from_config(current_app.config)


# --- Propagation and owners ----------------------------------------------------------------------------------


def propagation_on() -> bool:
    """Will the registry's tenants be written to IS 7 / API Manager? Yes as soon as one product connection is
    configured: the worker then delivers every queued change. The one definition every caller uses."""
    return db.session.execute(sa.select(ProductConnection.product).limit(1)).first() is not None


OWNER_REQUIRED = ("An owner is required: a product connection is configured, so this tenant is written to IS 7, "
                  "and IS 7 creates every tenant with its owner (the tenant administrator). Enter the owner's {what}.")
INVITE_REFUSED = ("API Manager → IS 7 sharing is on: API Manager creates the IS 7 owner with the password it was "
                  "given (inline-password), so an invitation email can never be sent. Choose inline-password and "
                  "set the owner's password, or switch the sharing direction.")


@dataclass(frozen=True)
class OwnerRules:
    """What registration and edits must ask of the owner now (messages, or None when there is no such rule)."""

    required: str | None = None  # a message with {what}: "user name" / "email"
    invite_refused: str | None = None


def owner_rules() -> OwnerRules:
    """The owner rules for the current connections and sharing direction (one place; tenants and bulk use it)."""
    if not propagation_on():
        return OwnerRules()
    return OwnerRules(required=OWNER_REQUIRED,
                      invite_refused=INVITE_REFUSED if current_direction() == "apim_to_is" else None)


def current_direction() -> str:
    return sharing.current().direction
