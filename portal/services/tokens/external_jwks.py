"""EXTERNAL tenants' signing keys: their issuer's JWKS, fetched through the SSRF-guarded fetcher and cached in
the database so every worker process shares one copy.

A refresh happens when the copy is older than JWKS_LIFESPAN or a token names a kid the copy lacks, and at most
once per JWKS_REFRESH_COOLDOWN per tenant across all workers: the worker that wins a conditional UPDATE fetches,
the others use what is cached. A failed fetch keeps the last good set (PyJWT's own client used to drop it,
GHSA-fhv5-28vv-h8m8). Only keys fit for the tenant's algorithm are kept (RSA, >= 2048 bits, use sig), with their
`issuer` member when they have one (Entra ID's multi-tenant sets). Kids that a refresh no longer finds are remembered
as rotated out, so a token signed by one is refused for that reason rather than as an unknown key. For an Entra ID
tenant named by a verified domain, a refresh also reads the directory id from the domain's discovery document.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from portal.clients import entra as issuers, oidc, oidc_discovery
from portal.extensions import db
from portal.idp import entra, outbound
from portal.models import JwksCache, Tenant
from portal.models.base import utcnow

log = logging.getLogger(__name__)

# Parsed keys per process, keyed by the cached set's fetch time: a new fetch anywhere invalidates them here.
_parsed: dict[int, tuple[datetime, dict[str, Any]]] = {}
_lock = threading.Lock()
MAX_RETIRED = 50  # rotated-out kids remembered per tenant


@dataclass(frozen=True)
class Found:
    """The verifying key for a kid, or the reason there is none; the key's issuer member; an Entra ID verified
    domain's directory id, as the last refresh resolved it."""

    key: Any
    reason: str = ""
    key_issuer: str | None = None
    directory_tid: str | None = None


def key_for(tenant: Tenant, kid: str) -> Found:
    """The verifying key, or the reason code (jwks_unavailable, key_rotated_out, unknown_kid)."""
    cfg = current_app.config
    now = utcnow()
    lifespan = timedelta(seconds=int(cfg["JWKS_LIFESPAN"]))
    row = db.session.get(JwksCache, tenant.id)
    url = (tenant.idp_settings or {}).get("jwkSetUrl") or ""
    stale = row is None or row.fetched_at is None or row.fetched_at + lifespan <= now or row.url != url
    keys = _keys(tenant.id, row) if row is not None and row.url == url else {}
    if stale or kid not in keys:
        row = _refresh(tenant, url, now)
        keys = _keys(tenant.id, row) if row is not None and row.url == url else {}
    document = (row.jwks if row is not None else None) or {}
    if kid in keys:
        issuer = next((k.get("issuer") for k in document.get("keys", []) if k.get("kid") == kid), None)
        return Found(keys[kid], "", issuer, document.get("tid"))
    if not keys and (row is None or row.jwks is None):
        return Found(None, "jwks_unavailable")
    return Found(None, "key_rotated_out" if kid in document.get("retired", []) else "unknown_kid")


def cache_view(tenant: Tenant) -> dict[str, Any] | None:
    """What the token lab shows about the cached set."""
    row = db.session.get(JwksCache, tenant.id)
    if row is None:
        return None
    return {"url": row.url, "kids": sorted(k.get("kid", "") for k in (row.jwks or {}).get("keys", [])),
            "fetchedAt": row.fetched_at, "attemptedAt": row.attempted_at, "lastError": row.last_error,
            "fetchCount": row.fetch_count}


def _refresh(tenant: Tenant, url: str, now: datetime) -> JwksCache | None:
    """Fetch if this process wins the cool-down slot; return the (possibly unchanged) cached row."""
    cooldown = timedelta(seconds=int(current_app.config["JWKS_REFRESH_COOLDOWN"]))
    if not _claim(tenant.id, url, now, cooldown):
        db.session.expire_all()
        return db.session.get(JwksCache, tenant.id)
    row = db.session.get(JwksCache, tenant.id)
    try:
        document = outbound.fetcher().get_json(url)
        kept = _fit_keys(document, tenant.support_algorithm)
        if not kept:
            raise oidc.FetchFailed(f"no key in the JWKS can verify {tenant.support_algorithm} tokens")
        extra = _directory_of_domain(tenant)
    except oidc.FetchError as exc:
        log.warning("JWKS refresh for tenant %s failed: %s", tenant.tenant_id, exc.reason)
        row.last_error = exc.reason[:1000]
    else:
        row.jwks = {"keys": kept, "retired": _retired(row, url, kept), **extra}
        row.fetched_at, row.last_error = utcnow(), None
        row.fetch_count = (row.fetch_count or 0) + 1
    db.session.commit()
    return row


def _retired(row: JwksCache, url: str, kept: list[dict]) -> list[str]:
    """Kids the previous copy of the same set had and this one lacks, added to those remembered before."""
    before = (row.jwks or {}) if row.url == url else {}
    now = {key["kid"] for key in kept}
    gone = sorted({key.get("kid") for key in before.get("keys", [])} - now)
    return [kid for kid in [*before.get("retired", []), *gone] if kid not in now][-MAX_RETIRED:]


def _directory_of_domain(tenant: Tenant) -> dict[str, str]:
    """{"tid": ...} for an Entra ID tenant named by a verified domain: the directory id its discovery names."""
    preset = (tenant.idp_settings or {}).get(entra.SECTION)
    if not preset or entra.is_multi_tenant(preset) or entra.is_guid(preset["directory"]):
        return {}
    issuer = outbound.fetcher().get_json(entra.discovery_url(preset)).get("issuer")
    tid = issuers.tid_of_issuer(preset["authority"], issuer) if isinstance(issuer, str) else None
    if tid is None:
        raise oidc.FetchFailed(f"the discovery document of {preset['directory']} names no directory id")
    return {"tid": tid}


def _claim(tenant_pk: int, url: str, now: datetime, cooldown: timedelta) -> bool:
    """One fetch per cool-down across processes: an atomic conditional UPDATE (or the first INSERT) wins."""
    won = db.session.execute(
        sa.update(JwksCache)
        .where(JwksCache.tenant_id == tenant_pk,
               sa.or_(JwksCache.attempted_at.is_(None), JwksCache.attempted_at <= now - cooldown,
                      JwksCache.url != url))
        .values(attempted_at=now, url=url)
        .execution_options(synchronize_session=False)
    ).rowcount == 1
    if won:
        db.session.commit()
        return True
    db.session.rollback()
    if db.session.get(JwksCache, tenant_pk) is not None:
        return False
    db.session.add(JwksCache(tenant_id=tenant_pk, url=url, attempted_at=now, fetch_count=0))
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()  # another worker inserted first and fetches
        return False
    return True


def _fit_keys(document: dict, algorithm: str) -> list[dict]:
    keys = document.get("keys")
    if not isinstance(keys, list):
        raise oidc.FetchFailed('the document is not a JWK set: it has no "keys" list')
    fit = []
    for index, key in enumerate(keys[:oidc.MAX_JWKS_KEYS], start=1):
        _label, _bits, problem = oidc_discovery.assess_key(key, index, algorithm)
        if problem is None and isinstance(key.get("kid"), str):
            fit.append({name: key[name] for name in ("kty", "kid", "n", "e", "alg", "use", "issuer")
                        if name in key and (name != "issuer" or isinstance(key[name], str))})
    return fit


def _keys(tenant_pk: int, row: JwksCache) -> dict[str, Any]:
    if row.jwks is None or row.fetched_at is None:
        return {}
    cached = _parsed.get(tenant_pk)
    if cached is not None and cached[0] == row.fetched_at:
        return cached[1]
    parsed = {}
    for key in row.jwks.get("keys", []):
        try:
            parsed[key["kid"]] = jwt.PyJWK.from_dict(key).key
        except (jwt.PyJWTError, KeyError, ValueError):
            continue
    with _lock:
        _parsed[tenant_pk] = (row.fetched_at, parsed)
    return parsed
