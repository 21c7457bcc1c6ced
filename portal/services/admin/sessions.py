"""Sign-in, sign-out and server-side sessions.

The browser cookie carries a random token; the database keeps its SHA-256 with the creation and last-seen times.
A session ends at logout, after 30 minutes idle or 12 hours in all, when the password changes or the account is
disabled; a copied cookie then finds no live session and is refused. A session is also bound to the browser that
opened it (its User-Agent, kept in the row) and optionally to its network: presented by another, it ends.
"""
from __future__ import annotations

import hashlib
import ipaddress
import secrets
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
import sqlalchemy.orm  # noqa: F401 - sa.orm.make_transient_to_detached, sa.orm.instrumentation
from flask import current_app

from portal.extensions import db
from portal.models import AdminSession, AdminUser
from portal.models.base import utcnow
from portal.services.admin import audit, passwords
from portal.services.context import Actor
from portal.services.errors import ValidationError

BAD_CREDENTIALS = "Unknown username or wrong password."


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class SignIn:
    admin: AdminUser
    token: str


def normalise_username(username: str) -> str:
    return (username or "").strip().lower()


def sign_in(username: str, password: str, actor: Actor, user_agent: str | None = None) -> SignIn:
    """Check the password and open a fresh session. Failures are audited and say nothing about which part was wrong."""
    name = normalise_username(username)
    admin = db.session.execute(sa.select(AdminUser).where(AdminUser.username == name)).scalar_one_or_none()
    if admin is None:
        passwords.burn_time(password)
        ok = False
    else:
        ok, needs_rehash = passwords.verify_password(admin.password_hash, password)
    if not ok or not admin.active:
        audit.record(Actor(name=name[:64] or "-", request_id=actor.request_id, ip=actor.ip), "auth.login_failed",
                     "admin", admin.id if admin else None,
                     {"reason": {"before": None, "after": "disabled" if ok else "bad credentials"}})
        db.session.commit()
        raise ValidationError(BAD_CREDENTIALS)
    if needs_rehash:
        admin.password_hash = passwords.hash_password(password)
    admin.last_login_at = utcnow()
    token = _open_session(admin, actor.ip, user_agent)
    audit.record(Actor(name=admin.username, id=admin.id, request_id=actor.request_id, ip=actor.ip),
                 "auth.login", "admin", admin.id)
    db.session.commit()
    return SignIn(admin=admin, token=token)


def _open_session(admin: AdminUser, ip: str | None, user_agent: str | None) -> str:
    token = secrets.token_urlsafe(32)
    row = AdminSession(token_hash=_hash(token), admin=admin, ip=ip, user_agent=(user_agent or "")[:255])
    db.session.add(row)
    admin.current_session, admin.session_token = row, token
    return token


# One query for the session and its admin, on every signed-in request. Core rather than the ORM, on a pooled
# connection of its own: the ORM's per-query instance processing and its session transaction cost more than the
# query itself, and a page that needs no other data (a redirect, a JSON answer) then never starts one. The statement
# is built once (SQLAlchemy caches its compiled form) and only the hash is bound per call.
_S, _A = AdminSession.__table__, AdminUser.__table__
_LOAD = (sa.select(*(c.label(f"s_{c.key}") for c in _S.c), *(c.label(f"a_{c.key}") for c in _A.c))
         .join_from(_S, _A, _S.c.admin_id == _A.c.id)
         .where(_S.c.token_hash == sa.bindparam("token_hash")))


def load(token: str, user_agent: str | None = None, ip: str | None = None) -> AdminUser | None:
    """The admin behind a session token, or None when the session is unknown, revoked, idle or too old, or
    presented by another browser (or network, by setting) than the one that opened it.

    Always the database, never a cache: a sign-out, password change or disabled account anywhere (any worker,
    any instance) ends the session on its very next request."""
    now = utcnow()
    with db.engine.connect() as conn:
        found = conn.execute(_LOAD, {"token_hash": _hash(token)}).one_or_none()
        if found is None or found.s_revoked_at is not None:
            return None
        reason = _ended(found, user_agent, ip, now)
        if reason:
            conn.execute(_REVOKE, {"session_id": found.s_id, "when": now, "reason": reason})
            conn.commit()
            return None
        if now - found.s_last_seen_at >= current_app.config["SESSION_TOUCH_INTERVAL"]:
            conn.execute(_TOUCH, {"session_id": found.s_id, "when": now})
            conn.commit()
    values = found._mapping
    admin = _detached(AdminUser, {c.key: values[f"a_{c.key}"] for c in _A.c})
    admin.current_session_id, admin.session_token = found.s_id, token
    return admin


_REVOKE = (sa.update(_S).where(_S.c.id == sa.bindparam("session_id"))
           .values(revoked_at=sa.bindparam("when"), revoked_reason=sa.bindparam("reason")))
_TOUCH = sa.update(_S).where(_S.c.id == sa.bindparam("session_id")).values(last_seen_at=sa.bindparam("when"))


def _ended(found, user_agent: str | None, ip: str | None, now: datetime) -> str | None:
    """Why a live session row may not continue with this request, or None."""
    cfg = current_app.config
    if not found.a_active:
        return "disabled"
    if cfg["SESSION_BIND_USER_AGENT"] and (user_agent or "")[:255] != (found.s_user_agent or ""):
        return "other_browser"
    if not same_network(found.s_ip, ip, int(cfg["SESSION_BIND_IPV4_PREFIX"])):
        return "other_network"
    if now - found.s_last_seen_at > cfg["SESSION_IDLE_TIMEOUT"]:
        return "idle"
    if now - found.s_created_at > cfg["SESSION_ABSOLUTE_TIMEOUT"]:
        return "expired"
    return None


def _detached(cls: type, values: dict):
    """The ORM object of a row read with Core, as the ORM would have loaded it but in no session yet: most
    requests only read the signed-in admin (role, name, id), and an ORM session per request for that would cost more
    than the query. A service that changes the admin or reads its session row calls attached() first."""
    obj = sa.orm.instrumentation.manager_of_class(cls).new_instance()
    obj.__dict__.update(values)  # loaded values, as the ORM's own loading sets them: no change history
    sa.orm.make_transient_to_detached(obj)  # persistent identity, nothing pending
    return obj


def attached(admin: AdminUser) -> AdminUser:
    """The signed-in admin in the request's ORM session (changes to it are flushed as usual), without a query. If
    this session already holds the same admin, that object is used, with the signed-in session's id and token."""
    if sa.orm.object_session(admin) is db.session():
        return admin
    found = db.session.identity_map.get(sa.orm.util.identity_key(AdminUser, admin.id))
    if found is None:
        db.session.add(admin)
        return admin
    found.current_session_id, found.session_token = admin.current_session_id, admin.session_token
    return found


def same_network(opened_from: str | None, now_from: str | None, ipv4_prefix: int) -> bool:
    """Whether a session may continue from `now_from`: always with prefix 0; else both addresses in one IPv4 /prefix
    (IPv6: one /64). A cookie stolen by malware or a proxy log is then of no use from elsewhere."""
    if ipv4_prefix <= 0 or opened_from == now_from:
        return True
    try:
        before, after = ipaddress.ip_address(opened_from or ""), ipaddress.ip_address(now_from or "")
    except ValueError:
        return False
    if before.version != after.version:
        return False
    prefix = min(ipv4_prefix, 32) if before.version == 4 else 64
    return after in ipaddress.ip_network(f"{before}/{prefix}", strict=False)


def sign_out(admin: AdminUser, actor: Actor) -> None:
    admin = attached(admin)
    if admin.current_session is not None:
        _revoke(admin.current_session, "logout", utcnow())
    audit.record(actor, "auth.logout", "admin", admin.id)
    db.session.commit()


def revoke_all(admin: AdminUser, reason: str) -> int:
    """End every live session of an admin (password change, reset, disable). Caller commits."""
    now = utcnow()
    rows = db.session.execute(
        sa.select(AdminSession).where(AdminSession.admin_id == admin.id, AdminSession.revoked_at.is_(None))
    ).scalars().all()
    for row in rows:
        _revoke(row, reason, now)
    return len(rows)


def _revoke(row: AdminSession, reason: str, when: datetime) -> None:
    row.revoked_at, row.revoked_reason = when, reason


def reopen(admin: AdminUser, ip: str | None, user_agent: str | None) -> str:
    """A new session for the current browser after all were revoked (own password change). Caller commits."""
    return _open_session(admin, ip, user_agent)


def live_sessions(admin_id: int) -> list[AdminSession]:
    now = utcnow()
    cfg = current_app.config
    rows = db.session.execute(
        sa.select(AdminSession)
        .where(AdminSession.admin_id == admin_id, AdminSession.revoked_at.is_(None))
        .order_by(AdminSession.last_seen_at.desc())
    ).scalars().all()
    return [r for r in rows if now - r.last_seen_at <= cfg["SESSION_IDLE_TIMEOUT"]
            and now - r.created_at <= cfg["SESSION_ABSOLUTE_TIMEOUT"]]
