"""Sign-in throttling that slows guessing without locking the real administrator out.

Three limits on POST /login: all attempts per IP; failures per IP and username; failures per username across
all IPs. The last one is waived for a browser holding a device cookie from an earlier successful sign-in of that
user (OWASP "device cookies"), so an attacker hammering a username from elsewhere cannot lock its owner out.

A fourth, global budget of failed sign-ins (all addresses, all usernames) bounds what a flood from many addresses
costs: once spent, sign-ins are refused before any password is hashed, again except from browsers with a device
cookie for the username. Failed current-password checks on the change-password form are limited per administrator
and per session the same way.
"""
from __future__ import annotations

import functools
import time

from flask import current_app, g, request
from flask_limiter.util import get_remote_address
from itsdangerous import BadSignature, URLSafeTimedSerializer
from limits import parse_many

from portal.extensions import limiter
from portal.hardening import secure_cookie_name
from portal.services.admin.sessions import normalise_username


def _posted_username() -> str:
    return normalise_username(request.form.get("username", ""))[:64]


def _ip_user_key() -> str:
    return f"{get_remote_address()}|{_posted_username()}"


def _user_key() -> str:
    return f"user|{_posted_username()}"


def _failed(_response) -> bool:
    return bool(g.get("login_failed"))


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt="portal.device-cookie")


def _device_cookie_name() -> str:
    return secure_cookie_name(current_app, current_app.config["DEVICE_COOKIE_NAME"])


def has_device_cookie() -> bool:
    raw = request.cookies.get(_device_cookie_name())
    if not raw:
        return False
    try:
        owner = _serializer().loads(raw, max_age=current_app.config["DEVICE_COOKIE_MAX_AGE"])
    except BadSignature:
        return False
    return owner == _posted_username()


def set_device_cookie(response, username: str) -> None:
    response.set_cookie(
        _device_cookie_name(), _serializer().dumps(username), max_age=current_app.config["DEVICE_COOKIE_MAX_AGE"],
        httponly=True, samesite="Lax", secure=request.is_secure, path="/",
    )


MESSAGE = "Too many sign-in attempts. Wait a few minutes before trying again."

throttle_login = [
    limiter.limit(lambda: current_app.config["LOGIN_LIMIT_PER_IP"], methods=["POST"],
                  key_func=get_remote_address, scope="login-ip", error_message=MESSAGE),
    limiter.limit(lambda: current_app.config["LOGIN_FAILURE_LIMIT_PER_IP_USER"], methods=["POST"],
                  key_func=_ip_user_key, scope="login-ip-user", deduct_when=_failed, error_message=MESSAGE),
    limiter.limit(lambda: current_app.config["LOGIN_FAILURE_LIMIT_PER_USER"], methods=["POST"],
                  key_func=_user_key, scope="login-user", deduct_when=_failed, exempt_when=has_device_cookie,
                  error_message=MESSAGE),
]


def throttled(view):
    for limit in throttle_login:
        view = limit(view)
    return view


@functools.lru_cache(maxsize=16)
def _parsed(text: str) -> list:
    return parse_many(text)


class FailureBudget:
    """Failures counted on Flask-Limiter's storage under `scope`, per key; `retry_after()` is None while every
    limit in `setting` has room, else the seconds until one frees up. Off when RATELIMIT_ENABLED is false."""

    def __init__(self, setting: str, scope: str, key: str) -> None:
        self.setting, self.scope, self.key = setting, scope, key
        self.enabled = bool(current_app.config.get("RATELIMIT_ENABLED", True))

    def _limits(self) -> list:
        return _parsed(current_app.config[self.setting])

    def retry_after(self) -> int | None:
        if not self.enabled:
            return None
        waits = [limiter.limiter.get_window_stats(item, self.scope, self.key).reset_time - time.time()
                 for item in self._limits() if not limiter.limiter.test(item, self.scope, self.key)]
        return max(1, int(max(waits)) + 1) if waits else None

    def count(self) -> None:
        if self.enabled:
            for item in self._limits():
                limiter.limiter.hit(item, self.scope, self.key)


def global_login_budget() -> FailureBudget:
    return FailureBudget("LOGIN_FAILURE_LIMIT_GLOBAL", "login-global", "all")


def global_budget_spent() -> int | None:
    """Seconds to wait when the portal-wide failure budget is spent and this browser has no device cookie for the
    posted username; None when the sign-in may go ahead (and be hashed)."""
    if has_device_cookie():
        return None
    return global_login_budget().retry_after()


def password_change_budgets(admin_id: int, session_id: int | None) -> list[FailureBudget]:
    budgets = [FailureBudget("PASSWORD_CHANGE_FAILURE_LIMIT_PER_ADMIN", "password-change-admin", str(admin_id))]
    if session_id is not None:
        budgets.append(FailureBudget("PASSWORD_CHANGE_FAILURE_LIMIT_PER_SESSION", "password-change-session",
                                     str(session_id)))
    return budgets
