"""HTTP hardening: request ids, security headers, and cookies that are Secure with __Host- on HTTPS."""
from __future__ import annotations

import re
import uuid

from flask import Flask, current_app, g, has_request_context, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.middleware.proxy_fix import ProxyFix

REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
       "base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


def request_id() -> str | None:
    """nginx's X-Request-ID when it looks sane, else a new one; fixed for the rest of the request."""
    if not has_request_context():
        return None
    if "request_id" not in g:
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
    return g.request_id


def secure_cookie_name(app: Flask, name: str) -> str:
    """`__Host-` requires Secure, Path=/ and no Domain: used whenever the request came in over HTTPS."""
    return f"__Host-{name}" if has_request_context() and request.is_secure else name


class PortalSessionInterface(SecureCookieSessionInterface):
    def get_cookie_name(self, app: Flask) -> str:
        return secure_cookie_name(app, app.config["SESSION_COOKIE_NAME"])

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"] or (has_request_context() and request.is_secure))


def _security_headers(response):
    h = response.headers
    h.setdefault("Content-Security-Policy", CSP)
    h.setdefault("X-Content-Type-Options", "nosniff")
    # same-origin keeps the Referer Flask-WTF checks on HTTPS, and leaks nothing to other sites.
    h.setdefault("Referrer-Policy", "same-origin")
    h.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    h.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    if request.is_secure:
        h.setdefault("Strict-Transport-Security", f"max-age={current_app.config['HSTS_SECONDS']}; includeSubDomains")
    if request.endpoint != "static":
        h["Cache-Control"] = "no-store"
    h["X-Request-ID"] = request_id()
    return response


def init_app(app: Flask) -> None:
    app.session_interface = PortalSessionInterface()
    hops = {k: int(app.config[f"PROXY_FIX_{k.upper()}"]) for k in ("x_for", "x_proto", "x_host", "x_prefix")}
    if any(hops.values()):
        app.wsgi_app = ProxyFix(app.wsgi_app, **hops)
    app.jinja_env.globals["request_id"] = request_id
    app.after_request(_security_headers)
