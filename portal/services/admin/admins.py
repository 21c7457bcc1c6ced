"""Administrators: create, disable, reset and change passwords. The only way admin accounts change."""
from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa

from portal.extensions import db
from portal.models import ROLES, AdminUser
from portal.models.base import utcnow
from portal.services.admin import audit, passwords, sessions
from portal.services.context import Actor
from portal.services.errors import Conflict, Forbidden, NotFound, ValidationError

WRONG_CURRENT_PASSWORD = "This is not your current password."
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,63}$")


@dataclass
class OneTimePassword:
    admin: AdminUser
    password: str  # shown once to whoever created or reset the account, never stored in clear


def list_admins() -> list[AdminUser]:
    return list(db.session.execute(sa.select(AdminUser).order_by(AdminUser.username)).scalars())


def get_admin(admin_id: int) -> AdminUser:
    admin = db.session.get(AdminUser, admin_id)
    if admin is None:
        raise NotFound("No such administrator.")
    return admin


def _validate_new(username: str, role: str, password: str | None) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not USERNAME_RE.match(username):
        errors["username"] = ("Use 2 to 64 lower-case letters, digits, '.', '_', '@' or '-', "
                              "starting with a letter or digit.")
    if role not in ROLES:
        errors["role"] = f"Choose one of: {', '.join(ROLES)}."
    if password is not None and (problem := passwords.policy_error(password, username)):
        errors["password"] = problem
    return errors


def create_admin(username: str, role: str, actor: Actor, password: str | None = None) -> OneTimePassword:
    """Create an account. Without a password one is generated and must be changed at first sign-in."""
    name = sessions.normalise_username(username)
    if errors := _validate_new(name, role, password):
        raise ValidationError(errors)
    if db.session.execute(sa.select(AdminUser.id).where(AdminUser.username == name)).first():
        raise Conflict(f"An administrator named {name!r} already exists.")
    one_time = password is None
    secret = passwords.generate_password() if one_time else password
    admin = AdminUser(username=name, role=role, password_hash=passwords.hash_password(secret),
                      must_change_password=one_time, active=True)
    db.session.add(admin)
    db.session.flush()
    audit.record(actor, "admin.create", "admin", admin.id, audit.diff(None, {**_view(admin), "password": "set"}))
    db.session.commit()
    return OneTimePassword(admin=admin, password=secret if one_time else "")


def bootstrap_first_admin(username: str = "admin") -> OneTimePassword | None:
    """Used by `make run`: the first administrator, only when there is none at all."""
    if db.session.execute(sa.select(AdminUser.id).limit(1)).first():
        return None
    return create_admin(username, "admin", Actor.cli())


def _view(admin: AdminUser) -> dict:
    return {"username": admin.username, "role": admin.role, "active": admin.active,
            "password_change_required": admin.must_change_password}


def _active_admin_count() -> int:
    return db.session.execute(
        sa.select(sa.func.count()).select_from(AdminUser).where(AdminUser.role == "admin", AdminUser.active)
    ).scalar_one()


def set_admin_active(admin_id: int, active: bool, actor: Actor) -> AdminUser:
    admin = get_admin(admin_id)
    if admin.active == active:
        return admin
    if not active:
        if admin.id == actor.id:
            raise Forbidden("You cannot disable your own account.")
        if admin.role == "admin" and _active_admin_count() <= 1:
            raise Forbidden("This is the last active administrator with the admin role.")
    before = _view(admin)
    admin.active = active
    ended = sessions.revoke_all(admin, "disabled") if not active else 0
    audit.record(actor, "admin.enable" if active else "admin.disable", "admin", admin.id,
                 {**audit.diff(before, _view(admin)), **({"sessions_ended": {"before": None, "after": ended}}
                                                          if ended else {})})
    db.session.commit()
    return admin


def set_role(admin_id: int, role: str, actor: Actor) -> AdminUser:
    admin = get_admin(admin_id)
    if role not in ROLES:
        raise ValidationError({"role": f"Choose one of: {', '.join(ROLES)}."})
    if role == admin.role:
        return admin
    if admin.id == actor.id:
        raise Forbidden("You cannot change your own role.")
    if admin.role == "admin" and admin.active and _active_admin_count() <= 1:
        raise Forbidden("This is the last active administrator with the admin role.")
    before = _view(admin)
    admin.role = role
    sessions.revoke_all(admin, "role_changed")
    audit.record(actor, "admin.role", "admin", admin.id, audit.diff(before, _view(admin)))
    db.session.commit()
    return admin


def reset_password(admin_id: int, actor: Actor) -> OneTimePassword:
    """A new one-time password for someone else; their sessions end and they must choose a new one."""
    admin = get_admin(admin_id)
    if admin.id == actor.id:
        raise Forbidden("Use 'Change password' for your own account.")
    before = _view(admin)
    secret = passwords.generate_password()
    admin.password_hash = passwords.hash_password(secret)
    admin.must_change_password = True
    admin.password_changed_at = utcnow()
    sessions.revoke_all(admin, "password_reset")
    audit.record(actor, "admin.reset_password", "admin", admin.id,
                 {**audit.diff(before, _view(admin)), "password": {"before": audit.REDACTED, "after": audit.REDACTED}})
    db.session.commit()
    return OneTimePassword(admin=admin, password=secret)


def change_own_password(admin: AdminUser, current: str, new: str, actor: Actor,
                        user_agent: str | None = None) -> str:
    """Change one's own password. Every session ends, this browser gets a fresh one; returns its token.
    A wrong current password is audited (auth.password_change_failed) before the errors are raised."""
    admin = sessions.attached(admin)
    errors: dict[str, str] = {}
    ok, _ = passwords.verify_password(admin.password_hash, current)
    if not ok:
        errors["current_password"] = WRONG_CURRENT_PASSWORD
        _audit_change_failed(admin, actor, "wrong current password")
    if problem := passwords.policy_error(new, admin.username):
        errors["new_password"] = problem
    elif ok and current == new:
        errors["new_password"] = "Choose a password different from the current one."
    if errors:
        raise ValidationError(errors)
    before = _view(admin)
    admin.password_hash = passwords.hash_password(new)
    admin.must_change_password = False
    admin.password_changed_at = utcnow()
    sessions.revoke_all(admin, "password_changed")
    token = sessions.reopen(admin, actor.ip, user_agent)
    audit.record(actor, "admin.change_password", "admin", admin.id,
                 {**audit.diff(before, _view(admin)), "password": {"before": audit.REDACTED, "after": audit.REDACTED}})
    db.session.commit()
    return token


def refuse_password_change(admin: AdminUser, actor: Actor, retry_after: int) -> None:
    """Too many wrong current passwords (per admin or per session): refused without checking, audited, and said."""
    _audit_change_failed(admin, actor, "throttled")
    minutes = max(1, -(-retry_after // 60))
    raise ValidationError({"current_password": f"Too many wrong current passwords. Try again in {minutes} "
                                              f"minute{'s' if minutes != 1 else ''}."})


def _audit_change_failed(admin: AdminUser, actor: Actor, reason: str) -> None:
    """Its own commit: the refusal is recorded even though nothing changes. Never the password tried."""
    audit.record(actor, "auth.password_change_failed", "admin", admin.id, {"reason": {"before": None, "after": reason}})
    db.session.commit()


def set_password_cli(username: str, password: str) -> AdminUser:
    """`flask create-admin` on an existing name is refused; this is for tests and recovery only via CLI."""
    admin = db.session.execute(
        sa.select(AdminUser).where(AdminUser.username == sessions.normalise_username(username))
    ).scalar_one_or_none()
    if admin is None:
        raise NotFound("No such administrator.")
    if problem := passwords.policy_error(password, admin.username):
        raise ValidationError({"password": problem})
    admin.password_hash = passwords.hash_password(password)
    admin.must_change_password = False
    sessions.revoke_all(admin, "password_reset")
    audit.record(Actor.cli(), "admin.reset_password", "admin", admin.id,
                 {"password": {"before": audit.REDACTED, "after": audit.REDACTED}})
    db.session.commit()
    return admin
