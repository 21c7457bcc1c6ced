"""Sign-in throttling that slows guessing without locking the real administrator out.

Three limits on POST /login: all attempts per IP; failures per IP and username; failures per username across
all IPs. The last one is waived for a browser holding a device cookie from an earlier successful sign-in of that
user (OWASP "device cookies"), so an attacker hammering a username from elsewhere cannot lock its owner out.
"""
from __future__ import annotations

from flask import current_app, g, request
from flask_limiter.util import get_remote_address
from itsdangerous import BadSignature, URLSafeTimedSerializer

from portal.extensions import limiter
from portal.hardening import secure_cookie_name
from portal.services.sessions import normalise_username


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
