"""HTTP hardening: request ids, security headers, and cookies that are Secure with __Host- on HTTPS.

Everything here runs on every request, so the fixed parts (header values, the cookie signer) are built once and
machine routes never touch the cookie session at all.
"""
from __future__ import annotations

import re
import secrets
import time
from datetime import timedelta

from flask import Flask, Response, g, has_request_context, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from itsdangerous import BadSignature
from werkzeug.exceptions import SecurityError
from werkzeug.middleware.proxy_fix import ProxyFix

REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
       "base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
SECURITY_HEADERS = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    # same-origin keeps the Referer Flask-WTF checks on HTTPS, and leaks nothing to other sites.
    ("Referrer-Policy", "same-origin"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
)
_SECURITY_HEADER_KEYS = tuple(name.lower() for name, _ in SECURITY_HEADERS)
# Paths served to machines (API keys, client secrets, public documents) or to nobody in particular: they never
# read or write the browser's cookie session, so they cannot be ridden by a session nor pay for one.
SESSIONLESS_PREFIXES = ("/v1/", "/oauth/", "/t/", "/static/")
SESSIONLESS_PATHS = frozenset({"/v1", "/oauth", "/healthz", "/readyz"})


def is_sessionless(path: str) -> bool:
    return path in SESSIONLESS_PATHS or path.startswith(SESSIONLESS_PREFIXES)


def request_id() -> str | None:
    """nginx's X-Request-ID when it looks sane, else a new one; fixed for the rest of the request."""
    if not has_request_context():
        return None
    rid = g.get("request_id")
    if rid is None:
        incoming = request.environ.get("HTTP_X_REQUEST_ID", "")
        # 16 random bytes in hex, the shape of nginx's $request_id.
        g.request_id = rid = incoming if REQUEST_ID_RE.match(incoming) else secrets.token_hex(16)
    return rid


def secure_cookie_name(app: Flask, name: str) -> str:
    """`__Host-` requires Secure, Path=/ and no Domain: used whenever the request came in over HTTPS."""
    return f"__Host-{name}" if has_request_context() and request.is_secure else name


class MachineSession(SecureCookieSession):
    """The session of a sessionless path: always empty, never saved. Writes are dropped with the request."""


class PortalSession(SecureCookieSession):
    issued_at: float = 0.0  # when the cookie this session came from was signed (epoch seconds; 0 = new)


class PortalSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session with three changes: `__Host-`/Secure on HTTPS; no session at all on
    sessionless paths; and a permanent session's cookie is re-issued (to slide its expiry) at most once per
    SESSION_TOUCH_INTERVAL instead of on every response. The idle limit that counts is the server-side one in
    services/sessions.py, touched at the same interval, so the browser's copy keeps pace with it."""

    session_class = PortalSession

    def __init__(self):
        self._serializers: dict[tuple, object] = {}

    def get_signing_serializer(self, app: Flask):
        # One serializer per key set instead of one per call (twice a request); rebuilt if the keys change.
        key = (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
        serializer = self._serializers.get(key)
        if serializer is None:
            serializer = super().get_signing_serializer(app)
            if serializer is not None:
                self._serializers = {key: serializer}
        return serializer

    def get_cookie_name(self, app: Flask) -> str:
        return secure_cookie_name(app, app.config["SESSION_COOKIE_NAME"])

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"] or (has_request_context() and request.is_secure))

    def open_session(self, app: Flask, request) -> SecureCookieSession | None:
        if is_sessionless(request.path):
            return MachineSession()
        s = self.get_signing_serializer(app)
        if s is None:
            return None
        val = request.cookies.get(self.get_cookie_name(app))
        if not val:
            return self.session_class()
        try:
            data, signed = s.loads(val, max_age=int(app.permanent_session_lifetime.total_seconds()),
                                   return_timestamp=True)
        except BadSignature:
            return self.session_class()
        session = self.session_class(data)
        session.issued_at = signed.timestamp()
        return session

    def should_set_cookie(self, app: Flask, session) -> bool:
        if session.modified:
            return True
        if not (session.permanent and app.config["SESSION_REFRESH_EACH_REQUEST"]):
            return False
        interval = app.config.get("SESSION_TOUCH_INTERVAL") or 0
        if isinstance(interval, timedelta):
            interval = interval.total_seconds()
        return time.time() - getattr(session, "issued_at", 0.0) >= interval

    def save_session(self, app: Flask, session, response) -> None:
        if isinstance(session, MachineSession):
            return
        super().save_session(app, session, response)


def init_app(app: Flask) -> None:
    app.session_interface = PortalSessionInterface()
    hops = {k: int(app.config[f"PROXY_FIX_{k.upper()}"]) for k in ("x_for", "x_proto", "x_host", "x_prefix")}
    if any(hops.values()):
        app.wsgi_app = ProxyFix(app.wsgi_app, **hops)
    app.jinja_env.globals["request_id"] = request_id
    hsts = ("Strict-Transport-Security", f"max-age={int(app.config['HSTS_SECONDS'])}; includeSubDomains")

    def security_headers(response):
        """The fixed headers unless the view set its own; no-store on everything but static files and views that
        chose their own caching (published public keys)."""
        h = response.headers
        present = {name.lower() for name, _ in h.items()}
        missing = [pair for pair, key in zip(SECURITY_HEADERS, _SECURITY_HEADER_KEYS, strict=True)
                   if key not in present]
        if request.is_secure and "strict-transport-security" not in present:
            missing.append(hsts)
        h.extend(missing)
        if request.endpoint != "static" and "cache-control" not in present:
            h["Cache-Control"] = "no-store"
        h["X-Request-ID"] = request_id()
        return response

    app.after_request(security_headers)
    app.register_error_handler(SecurityError, untrusted_host)


def untrusted_host(_exc: SecurityError):
    """A Host outside TRUSTED_HOSTS (config.apply_trusted_hosts). Plain text: with no trusted host there is no URL
    adapter, so no page of the portal (whose links come from url_for) can be rendered, and nothing is reflected."""
    return Response("This portal does not answer to that host name.\n", 400, mimetype="text/plain")
