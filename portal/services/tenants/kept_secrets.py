"""Secrets typed into the register or edit form, kept across a submission that failed or only tested the
connection, so the administrator does not type up to four secrets again.

A kept secret is never written into the page: the page carries only an opaque random handle (its SHA-256 is
stored), and the value is encrypted like every stored secret (portal/encryption.py). It is found again only by the
admin session that typed it (another session's handle finds nothing), for the same form (register, or the edit
form of that tenant), for KEPT_SECRET_SECONDS (15 minutes); it is used and deleted by the save that succeeds, and
expired ones are purged whenever the table is touched. A kept secret also remembers where it was going (the
identity provider's target or the owner's user name, as services.secret_binding defines it): if that changes, it
is dropped and must be typed again, as a stored secret would be.

The functions work on the registration API's body, so every secret field (a family's too) is handled the same.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app

from portal.extensions import db
from portal.idp import registry
from portal.models import KeptSecret
from portal.models.base import utcnow
from portal.services.tenants import fields as tenant_fields

REGISTER = "register"


def edit_form(tenant_key: str) -> str:
    """The form key of a tenant's edit form."""
    return f"edit:{tenant_key}"


def lifetime() -> timedelta:
    return timedelta(seconds=int(current_app.config["KEPT_SECRET_SECONDS"]))


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Recalled:
    """What a handle still holds for this session and form: values by API path, and the paths dropped because
    their target changed."""

    values: dict[str, str] = field(default_factory=dict, repr=False)
    dropped: list[str] = field(default_factory=list)


# --- bodies -------------------------------------------------------------------------------------------------------


def _get(body: dict, path: str) -> Any:
    holder: Any = body
    for step in path.split("."):
        holder = holder.get(step) if isinstance(holder, dict) else None
    return holder


def _set(body: dict, path: str, value: str) -> None:
    *parents, last = path.split(".")
    holder = body
    for step in parents:
        holder = holder.setdefault(step, {})
        if not isinstance(holder, dict):
            return
    holder[last] = value


def _binding(body: dict, path: str) -> str | None:
    """Where the secret at `path` goes, hashed: the provider's target for a family's secret, the owner's user name
    for the owner's password, nothing for the client secret and the signing key (they go nowhere)."""
    if path == "owner.password":
        return _hash("owner\0" + str(_get(body, "owner.username") or ""))
    idp_type = str(body.get("identityProviderType") or "").upper()
    family = registry.find(idp_type)
    if family is None or all(f.path != path for f in family.fields):
        return None
    section = body.get(family.stored_under) if family.stored_under else body
    try:
        target = family.secret_target(section if isinstance(section, dict) else {})
    except (TypeError, ValueError):
        target = None
    return _hash(f"{idp_type}\0{path}\0{target.parts if target else ''}")


def secrets_in(body: dict) -> dict[str, str]:
    """The secrets typed into a body, by API path."""
    found = {}
    for path in tenant_fields.secret_paths():
        value = _get(body, path)
        if isinstance(value, str) and value.strip():
            found[path] = value
    return found


# --- the table ----------------------------------------------------------------------------------------------------


def new_handle() -> str:
    return secrets.token_urlsafe(24)


def purge(now: datetime | None = None) -> int:
    """Delete every expired kept secret (of any session)."""
    result = db.session.execute(sa.delete(KeptSecret).where(KeptSecret.expires_at <= (now or utcnow())))
    return result.rowcount or 0


def recall(handle: str | None, session_id: int | None, form_key: str, body: dict) -> Recalled:
    """Fill the body's blank secrets from what this session kept under `handle` for this form (typed values win).
    A kept secret whose target changed is deleted and reported in `dropped`."""
    recalled = Recalled()
    purge()
    if not handle or session_id is None:
        db.session.commit()
        return recalled
    rows = db.session.execute(sa.select(KeptSecret).where(
        KeptSecret.handle_hash == _hash(handle), KeptSecret.session_id == session_id,
        KeptSecret.form_key == form_key, KeptSecret.expires_at > utcnow())).scalars().all()
    typed = secrets_in(body)
    for row in rows:
        if row.field in typed:
            continue
        if row.bound_to != _binding(body, row.field):
            recalled.dropped.append(row.field)
            db.session.delete(row)
            continue
        _set(body, row.field, row.value)
        recalled.values[row.field] = row.value
    db.session.commit()
    return recalled


def keep(handle: str | None, session_id: int | None, form_key: str, body: dict) -> tuple[str | None, list[str]]:
    """Keep the body's secrets (typed now or recalled) under the handle, a new one if none was given or it is
    not this session's: (handle, kept paths). Without a session (nothing to bind to) nothing is kept."""
    found = secrets_in(body)
    if session_id is None or not found:
        return None, []
    if not handle or db.session.execute(sa.select(KeptSecret.session_id).where(
            KeptSecret.handle_hash == _hash(handle), KeptSecret.session_id != session_id).limit(1)).first():
        handle = new_handle()
    digest, expires = _hash(handle), utcnow() + lifetime()
    existing = {row.field: row for row in db.session.execute(sa.select(KeptSecret).where(
        KeptSecret.handle_hash == digest)).scalars()}
    for path, value in found.items():
        row = existing.get(path) or KeptSecret(handle_hash=digest, session_id=session_id, form_key=form_key,
                                               field=path)
        row.value, row.bound_to, row.expires_at, row.form_key = value, _binding(body, path), expires, form_key
        db.session.add(row)
    db.session.commit()
    return handle, sorted(found)


def forget(handle: str | None, session_id: int | None) -> None:
    """After a successful save: the kept secrets were used; delete them."""
    if handle and session_id is not None:
        db.session.execute(sa.delete(KeptSecret).where(KeptSecret.handle_hash == _hash(handle),
                                                       KeptSecret.session_id == session_id))
    purge()
    db.session.commit()
