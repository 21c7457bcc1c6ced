"""A tenant's signing keys over time: rotation (new active key, old one passive for a grace period), retirement,
the published JWKS, and the parsed key objects the token service signs and verifies with.

Key material never changes once a row exists (a rotation adds a row), so parsed keys are cached per process by
row id and kid (a row id alone can come back after deletes, e.g. SQLite reuses the highest rowid): PEM parsing
happens once per key and process, not per request. The status is always read from the
database, so a retirement takes effect at once in every worker.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from flask import current_app
from sqlalchemy.orm import defer

from portal import encryption
from portal.extensions import db
from portal.idp import registry
from portal.models import SigningKey, Tenant
from portal.models.base import utcnow
from portal.services.admin import audit
from portal.services.context import Actor
from portal.services.errors import Conflict, NotFound, ValidationError
from portal.services.tenants import lookups
from portal.services.tokens import signing_keys

USABLE = ("active", "passive")
_CACHE_LIMIT = 10000
_parsed: dict[tuple[int, str, str], Any] = {}
_secrets: dict[str, str] = {}  # client secret ciphertext -> plaintext (TenantRow.client_secret)
_lock = threading.Lock()


def grace_period() -> timedelta:
    return timedelta(seconds=int(current_app.config["KEY_GRACE_PERIOD"]))


def install(tenant: Tenant, material: signing_keys.KeyMaterial, now: datetime | None = None) -> SigningKey:
    """Make `material` the active key; the active key turns passive for the grace period, so tokens it signed keep
    validating, also when the algorithm changes (validation accepts a passive key's own algorithm for its kid,
    services.tokens.service). Passive keys keep their own end."""
    now = now or utcnow()
    for old in tenant.keys:
        status = old.status_at(now)
        if status == "retired":
            if old.status != "retired":
                old.status, old.retired_at = "retired", old.passive_until
            continue
        if status == "active":
            old.status, old.passive_until = "passive", now + grace_period()
    key = SigningKey(kid=material.kid, algorithm=material.algorithm, status="active", secret=material.secret,
                     public_pem=material.public_pem, key_bits=material.bits, generated=material.generated,
                     created_at=now)
    tenant.keys.append(key)
    return key


def change_warning(tenant: Tenant, algorithm: str) -> str:
    """What changing the tenant's algorithm does to its keys, asked for before an edit does it."""
    key = tenant.active_key
    hours = int(grace_period().total_seconds() // 3600)
    kept = (f"the current key {key.kid} ({key.algorithm}) stays passive for {hours} hours, so tokens it signed keep "
            "validating until then" if key is not None else "no current key is affected")
    return (f"Changing the algorithm from {tenant.support_algorithm} to {algorithm} rotates the signing key: a new "
            f"{algorithm} key becomes active and {kept}. Confirm the change to go ahead.")


def rotate(tenant_id: str, actor: Actor, *, supplied: str | None = None, key_size: int = 2048) -> SigningKey:
    """A new active key for the tenant's algorithm (generated, or the supplied one); audited."""
    tenant = _tenant(tenant_id)
    try:
        material = signing_keys.make_key(tenant.support_algorithm, supplied, key_size)
    except signing_keys.KeyProblem as exc:
        raise ValidationError({"signingKey": str(exc)}) from None
    if any(k.kid == material.kid for k in tenant.keys):
        raise Conflict("This key is already one of the tenant's keys; supply a new one.",
                       {"signingKey": "This key is already one of the tenant's keys."})
    previous = tenant.active_key
    key = install(tenant, material)
    audit.record(actor, "tenant.key_rotate", "tenant", tenant.tenant_id, {
        "activeKid": {"before": previous.kid if previous else None, "after": key.kid},
        "passiveUntil": {"before": None, "after": lookups.iso(previous.passive_until) if previous else None},
    })
    db.session.commit()
    return key


def retire(tenant_id: str, kid: str, actor: Actor) -> SigningKey:
    """End a passive key's grace period now: tokens it signed stop validating."""
    tenant = _tenant(tenant_id)
    key = next((k for k in tenant.keys if k.kid == kid), None)
    if key is None:
        raise NotFound(f"Tenant {tenant.tenant_id} has no key {kid!r}.")
    status = key.status_at(utcnow())
    if status == "active":
        raise Conflict("The active key signs new tokens and cannot be retired; rotate first, then retire it.",
                       {"kid": "Rotate before retiring the active key."})
    if status == "retired" and key.status == "retired":
        return key
    key.status, key.retired_at = "retired", utcnow()
    audit.record(actor, "tenant.key_retire", "tenant", tenant.tenant_id,
                 {"kid": {"before": status, "after": "retired"}})
    db.session.commit()
    return key


def key_views(tenant: Tenant) -> list[dict[str, Any]]:
    """Every key with the status that counts now, newest first; public parts only."""
    now = utcnow()
    views = []
    for k in sorted(tenant.keys, key=lambda k: (k.created_at, k.id), reverse=True):
        status = k.status_at(now)
        retired_at = k.retired_at or (k.passive_until if status == "retired" else None)
        views.append({"kid": k.kid, "algorithm": k.algorithm, "status": status, "bits": k.key_bits,
                      "generated": k.generated, "createdAt": lookups.iso(k.created_at),
                      "passiveUntil": lookups.iso(k.passive_until) if status == "passive" else None,
                      "retiredAt": lookups.iso(retired_at), "publicKeyPem": k.public_pem})
    return views


def usable_keys(tenant_pk: int) -> list[SigningKey]:
    """The tenant's active and passive keys, read fresh from the database. The encrypted column is deferred: it
    costs a decryption per row and publishing never needs it."""
    query = (sa.select(SigningKey).where(SigningKey.tenant_id == tenant_pk, SigningKey.status.in_(USABLE))
             .options(defer(SigningKey.secret)))
    now = utcnow()
    return [k for k in db.session.execute(query).scalars() if k.status_at(now) != "retired"]


@dataclass(frozen=True)
class KeyRow:
    """A signing key as the token hot path reads it: plain columns, the secret still encrypted until needed."""

    id: int
    kid: str
    algorithm: str
    status: str
    passive_until: datetime | None
    public_pem: str | None
    secret_cipher: str = field(repr=False)

    @property
    def secret(self) -> str:
        return encryption.cipher().decrypt(self.secret_cipher)

    def status_at(self, now: datetime) -> str:
        return SigningKey.status_at(self, now)  # type: ignore[arg-type]  (the same rule as the model)


@dataclass(frozen=True)
class TenantRow:
    """The tenant columns a token request needs, with at most one key, read in a single query."""

    pk: int
    tenant_id: str
    tenant_key: str
    client_id: str
    client_secret_cipher: str = field(repr=False)
    active: bool
    idp_type: str
    algorithm: str
    key: KeyRow | None

    @property
    def client_secret(self) -> str:
        """Decrypted once per process and ciphertext, like the parsed signing keys (_cached): a Fernet decryption
        per token request cost more than the rest of client authentication. A changed or re-encrypted secret is
        another ciphertext, so it is never served stale."""
        plain = _secrets.get(self.client_secret_cipher)
        if plain is None:
            plain = encryption.cipher().decrypt(self.client_secret_cipher)
            with _lock:
                if len(_secrets) >= _CACHE_LIMIT:
                    _secrets.clear()
                _secrets[self.client_secret_cipher] = plain
        return plain


_TENANT_COLUMNS = (Tenant.id, Tenant.tenant_id, Tenant.tenant_key, Tenant.client_id,
                   sa.type_coerce(Tenant.client_secret, sa.Text), Tenant.active, Tenant.idp_type,
                   Tenant.support_algorithm)
_KEY_COLUMNS = (SigningKey.id, SigningKey.kid, SigningKey.algorithm, SigningKey.status, SigningKey.passive_until,
                SigningKey.public_pem, sa.type_coerce(SigningKey.secret, sa.Text))


def lookup(*, tenant_key: str | None = None, client_id: str | None = None, kid: str | None = None,
           limit: int = 2) -> list[TenantRow]:
    """Tenants by key or client id, each with its key `kid` (any status) or else its active key: one prepared
    query on the Core connection and no ORM objects, because every token request starts here."""
    by, value = ("key", tenant_key) if tenant_key is not None else ("client", client_id)
    statement = _LOOKUPS[(by, kid is not None)]
    with db.engine.connect() as conn:  # a pooled connection of its own: no ORM session transaction to begin and end
        rows = conn.execute(statement, {"value": value, "kid": kid}).all()[:limit]
    return [TenantRow(*row[:8], KeyRow(*row[8:]) if row[8] is not None else None) for row in rows]


def _lookup_statement(by: str, with_kid: bool) -> sa.Select:
    on = SigningKey.kid == sa.bindparam("kid") if with_kid else SigningKey.status == "active"
    match = (Tenant.tenant_key if by == "key" else Tenant.client_id) == sa.bindparam("value")
    return (sa.select(*_TENANT_COLUMNS, *_KEY_COLUMNS)
            .outerjoin(SigningKey, sa.and_(SigningKey.tenant_id == Tenant.id, on)).where(match).limit(2))


# Built once: constructing a statement costs more than running it on SQLite.
_LOOKUPS = {(by, with_kid): _lookup_statement(by, with_kid) for by in ("key", "client") for with_kid in (False, True)}


def signing_object(key: SigningKey | KeyRow) -> Any:
    """What PyJWT signs with: the HMAC key bytes, or the parsed RSA private key."""
    return _cached(key, "sign", lambda: key.secret.encode() if not signing_keys.is_rsa(key.algorithm)
                   else serialization.load_pem_private_key(key.secret.encode(), password=None))


def verifying_object(key: SigningKey | KeyRow) -> Any:
    """What PyJWT verifies with: the HMAC key bytes, or the parsed RSA public key (the private key is never
    decrypted to verify)."""
    if signing_keys.is_rsa(key.algorithm):
        return _cached(key, "verify", lambda: serialization.load_pem_public_key(key.public_pem.encode()))
    return _cached(key, "sign", lambda: key.secret.encode())


def published_jwks(tenant: Tenant) -> dict[str, list[dict[str, str]]]:
    """The JWK set for /t/<tenantId>/.well-known/jwks.json: RSA public keys that still validate. HMAC keys are
    shared secrets and never leave the portal."""
    keys = []
    for key in usable_keys(tenant.id):
        if not signing_keys.is_rsa(key.algorithm) or not key.public_pem:
            continue
        numbers = verifying_object(key).public_numbers()
        keys.append({"kty": "RSA", "use": "sig", "alg": key.algorithm, "kid": key.kid,
                     "n": signing_keys.b64_uint(numbers.n), "e": signing_keys.b64_uint(numbers.e)})
    return {"keys": keys}


def _cached(key: SigningKey | KeyRow, purpose: str, make) -> Any:
    slot = (key.id, key.kid, purpose)
    found = _parsed.get(slot)
    if found is None:
        found = make()
        with _lock:
            if len(_parsed) >= _CACHE_LIMIT:
                _parsed.clear()
            _parsed[slot] = found
    return found


def _tenant(tenant_id: str) -> Tenant:
    tenant = lookups.tenant(tenant_id)
    if not registry.issues_tokens(tenant.idp_type):
        raise Conflict(f"An {tenant.idp_type} tenant's tokens are signed by its own identity provider; the portal "
                       "holds no key to rotate for it.", {"supportAlgorithm": "Keys live at the external provider."})
    return tenant
