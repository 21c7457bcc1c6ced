"""Deny-by-default access control.

Every view declares who may call it with @public or @roles(...). A view without a declaration answers 403 to
everyone, so a forgotten decorator fails closed. Auditors are read-only: any unsafe method is refused to them
except the self-service views (sign out, own password) marked @self_service.
"""
from __future__ import annotations

from collections.abc import Callable

from flask import Flask, abort, current_app, redirect, request, url_for
from flask_login import current_user

from portal.models import ROLES

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
EVERYONE = frozenset(ROLES)
PUBLIC = "public"
MACHINE = "machine"  # machine API: authenticates itself (API keys), never by session


def public(view: Callable) -> Callable:
    view._access = PUBLIC
    return view


def machine(view: Callable) -> Callable:
    view._access = MACHINE
    return view


def roles(*names: str) -> Callable[[Callable], Callable]:
    unknown = set(names) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {unknown}")

    def decorate(view: Callable) -> Callable:
        view._access = frozenset(names)
        return view

    return decorate


def self_service(view: Callable) -> Callable:
    """Any signed-in role may POST here: it only acts on the caller's own session or password."""
    view._self_service = True
    return view


def access_of(view: Callable) -> object:
    return getattr(view, "_access", None)


def enforce() -> object:
    """before_request: the single gate every request passes."""
    endpoint = request.endpoint
    if endpoint is None or endpoint == "static":
        return None  # routing errors (404/405) and static files
    view = current_app.view_functions[endpoint]
    access = access_of(view)
    if access in (PUBLIC, MACHINE):
        return None
    user = current_user._get_current_object()  # one proxy lookup instead of one per attribute
    if not user.is_authenticated:
        return current_app.login_manager.unauthorized()
    if not isinstance(access, frozenset) or user.role not in access:
        abort(403)
    own = getattr(view, "_self_service", False)
    if request.method not in SAFE_METHODS and user.role == "auditor" and not own:
        abort(403)
    if user.must_change_password and not own:
        return redirect(url_for("auth.change_password"))
    return None


def can(role_set: frozenset[str] | set[str] | tuple[str, ...]) -> bool:
    """For templates: is the current user in one of these roles?"""
    return current_user.is_authenticated and current_user.role in role_set


def init_app(app: Flask) -> None:
    app.before_request(enforce)
    app.jinja_env.globals["can"] = can
