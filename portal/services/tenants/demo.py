"""Demo tenants in bulk, for trying the tenant list at scale and for the benchmark (`flask seed-demo`).

register_tenant takes milliseconds per tenant (validation, key generation, one commit each): fine for people,
far too slow for 100,000 rows. Here rows are built directly in the shapes tenant_spec.parse produces and inserted
with SQLAlchemy Core in batches, one commit per batch. The encrypted columns are still encrypted one value at a
time (Fernet has no batch mode): about 3 values per tenant, a third of the time. Measured on a 2-core machine:
100,000 tenants in about 18 s on SQLite and 23 s on PostgreSQL.
"""
from __future__ import annotations

import random
import secrets
from typing import Any

import sqlalchemy as sa

from portal.extensions import db
from portal.idp import registry
from portal.models import SigningKey, Tenant
from portal.models.base import utcnow
from portal.services.admin import audit
from portal.services.context import Actor
from portal.services.tenants import schema_sharing, service as tenants, spec as tenant_spec
from portal.services.tokens import signing_keys

BATCH = 5000
PREFIX = "demo-"
RSA_POOL = 4  # RS* demo tenants share a few generated key pairs: generating 2048-bit keys takes ~0.1 s each

WORDS = ("Acme", "Blue", "Cedar", "Delta", "Evergreen", "Falcon", "Granite", "Harbor", "Iris", "Juniper", "Kestrel",
         "Lumen", "Maple", "Nimbus", "Orchid", "Pioneer", "Quartz", "Redwood", "Summit", "Tidal", "Umber", "Vertex",
         "Willow", "Zephyr")
TRADES = ("Logistics", "Retail", "Health", "Foods", "Energy", "Labs", "Finance", "Media", "Motors", "Travel",
          "Insurance", "Pharma", "Systems", "Textiles", "Farms", "Telecom")
FIRST = ("Ana", "Ben", "Chen", "Dara", "Emil", "Fatima", "Goran", "Hana", "Ivo", "Jun", "Kofi", "Lena", "Mateo",
         "Nia", "Omar", "Priya")
LAST = ("Adler", "Bianchi", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Horvat", "Ito", "Jensen", "Kowalski",
        "Larsen", "Moreau", "Novak", "Okafor", "Petrov")


def seed_demo(count: int) -> int:
    """Insert `count` demo tenants numbered after the highest existing demo-NNNNNN id; returns how many."""
    rules = tenants.rules()
    rng = random.Random()
    rsa_pool = _rsa_pool()
    number = _highest_demo_number() + 1
    added, first, last = 0, None, None
    while added < count:
        ids = [f"{PREFIX}{n:06d}" for n in range(number, number + min(BATCH, count - added))]
        number += len(ids)
        domains = {tenant_id: tenant_spec.default_domain(tenant_id, rules) for tenant_id in ids}
        taken = set(db.session.execute(sa.select(Tenant.domain).where(Tenant.domain.in_(domains.values()))).scalars())
        ids = [tenant_id for tenant_id in ids if domains[tenant_id] not in taken]  # a hand-made tenant got there first
        if not ids:
            continue
        now = utcnow()
        rows = [_tenant_row(tenant_id, domains[tenant_id], rng, now) for tenant_id in ids]
        # Core inserts on the tables: the ORM's bulk insert splits a batch wherever the set of None columns
        # changes from one row to the next, which here is nearly every row.
        db.session.execute(sa.insert(Tenant.__table__), rows)
        inserted = db.session.execute(  # a second query beats RETURNING: the ORM splices returned rows slowly
            sa.select(Tenant.id, Tenant.support_algorithm).where(Tenant.tenant_key.in_([r["tenant_key"] for r in rows]))
        ).all()
        db.session.execute(sa.insert(SigningKey.__table__), [_key_row(tenant_pk, algorithm, rsa_pool, rng, now)
                                                   for tenant_pk, algorithm in inserted])
        added += len(ids)
        first, last = first or ids[0], ids[-1]
        if added < count:
            db.session.commit()
    audit.record(Actor.cli(), "tenant.seed_demo", "tenant", None, {"count": added, "first": first, "last": last})
    db.session.commit()
    return added


def _highest_demo_number() -> int:
    """Numbering continues after the highest demo id, so running the command again never clashes."""
    keys = db.session.execute(sa.select(Tenant.tenant_key).where(Tenant.tenant_key.like(f"{PREFIX}%"))).scalars()
    return max((int(key[len(PREFIX):]) for key in keys if key[len(PREFIX):].isdigit()), default=0)


def _pick(rng: random.Random, weighted: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([name for name, _ in weighted], [weight for _, weight in weighted])[0]


def _tenant_row(tenant_id: str, domain: str, rng: random.Random, now) -> dict[str, Any]:
    """One tenant in the shapes tenant_spec.parse produces, so demo tenants edit and validate like real ones."""
    n = int(tenant_id[len(PREFIX):])
    idp_type = _pick(rng, _type_weights())
    family = registry.get(idp_type)  # each family draws its own settings and algorithms (EXTERNAL: RSA only)
    algorithm = _pick(rng, family.demo_algorithms)
    name = f"{WORDS[n % len(WORDS)]} {TRADES[(n // len(WORDS)) % len(TRADES)]} {n}"
    settings, idp_secret = family.demo(idp_type, tenant_id, n, rng)
    owner = rng.random() < 0.6
    first, last_name = rng.choice(FIRST), rng.choice(LAST)
    return {
        "tenant_id": tenant_id, "tenant_key": tenant_id.lower(), "display_name": name, "name_key": name.lower(),
        "domain": domain,
        "owner_username": f"{first.lower()}.{last_name.lower()}" if owner else None,
        "owner_email": f"{first.lower()}.{last_name.lower()}@{domain}" if owner else None,
        "owner_first_name": first if owner else None, "owner_last_name": last_name if owner else None,
        "owner_provisioning": "invite-via-email" if owner else None, "owner_password": None,
        "client_id": f"{tenant_id}-client", "client_secret": secrets.token_urlsafe(24),
        "idp_type": idp_type, "idp_settings": settings, "idp_secret": idp_secret, "support_algorithm": algorithm,
        "user_store": schema_sharing.store_key(idp_type, settings),
        "active": rng.random() < 0.95, "check_status": "unchecked", "check_summary": "Demo tenant: never checked.",
        "checked_at": None, "created_at": now, "updated_at": now,
    }


def _type_weights() -> tuple[tuple[str, int], ...]:
    """(type, weight) of every registered type that seeds demo tenants."""
    return tuple((idp_type, weight) for family in registry.families()
                 for idp_type, weight in family.demo_weight.items() if weight > 0)


def _rsa_pool() -> dict[str, list[signing_keys.KeyMaterial]]:
    """A few key pairs per RS algorithm, generated once per run and imported under each algorithm."""
    pems = [signing_keys.rsa_key("RS256", None).secret for _ in range(RSA_POOL)]
    return {algorithm: [signing_keys.rsa_key(algorithm, pem) for pem in pems]
            for algorithm in signing_keys.RSA_ALGORITHMS}


def _key_row(tenant_pk: int, algorithm: str, rsa_pool: dict[str, list[signing_keys.KeyMaterial]],
             rng: random.Random, now) -> dict[str, Any]:
    if signing_keys.is_rsa(algorithm):
        key = rng.choice(rsa_pool[algorithm])
    else:
        key = signing_keys.hmac_key(algorithm, None)  # a fresh random secret as long as the algorithm needs
    return {"tenant_id": tenant_pk, "kid": key.kid, "algorithm": key.algorithm, "status": "active",
            "secret": key.secret, "public_pem": key.public_pem, "key_bits": key.bits, "generated": True,
            "created_at": now, "retired_at": None}
