"""Token endpoints outside /v1, where OAuth clients and JOSE libraries expect them: POST /oauth/token and each
tenant's /t/<tenantId>/.well-known/ documents. Responses follow RFC 6749 (token) and RFC 8414 (metadata)."""
from __future__ import annotations

import functools
import time
from urllib.parse import unquote_plus

from flask import Blueprint, Response, current_app, jsonify, request
from limits import parse_many

from portal.access import machine, public
from portal.errors import problem
from portal.extensions import limiter
from portal.services.errors import NotFound
from portal.services.tokens import service as tokens

bp = Blueprint("oauth", __name__)

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
PUBLISHED_MAX_AGE = 300


@bp.post("/oauth/token")
@machine
def token():
    auth = request.authorization
    throttle = _FailureThrottle()
    try:
        throttle.check()
        if auth is None or auth.type != "basic" or auth.username is None or auth.password is None:
            raise tokens.OAuthError("invalid_client", "Authenticate with HTTP Basic: base64(clientId:clientSecret).",
                                    401)
        if request.mimetype != "application/x-www-form-urlencoded":
            raise tokens.OAuthError("invalid_request", "Send the parameters as application/x-www-form-urlencoded.")
        issued = _issue(auth.username, auth.password)
    except tokens.OAuthError as exc:
        if exc.status in (400, 401):
            throttle.count_failure()
        response = jsonify(error=exc.error, error_description=exc.description)
        response.status_code = exc.status
        response.headers.update(NO_STORE)
        if isinstance(exc, _Throttled):
            response.headers["Retry-After"] = str(exc.retry_after)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = 'Basic realm="tenant-portal", charset="UTF-8"'
        return response
    response = jsonify(issued.response())
    response.headers.update(NO_STORE)
    return response


class _FailureThrottle:
    """Failed client authentications and grants per address (TOKEN_FAILURE_LIMIT_PER_IP), on Flask-Limiter's
    storage and strategy. Only failures count, so a busy client with the right secret is never slowed; once the
    limit is reached the address is refused, right secret or not, until the window moves on."""

    def __init__(self) -> None:
        self.enabled = bool(current_app.config.get("RATELIMIT_ENABLED", True))  # this app's setting
        self.address = request.remote_addr or "unknown"

    def _limits(self) -> list:
        return _parsed_limits(current_app.config["TOKEN_FAILURE_LIMIT_PER_IP"])

    def check(self) -> None:
        if not self.enabled:
            return
        for item in self._limits():
            if not limiter.limiter.test(item, "oauth-token", self.address):
                reset = limiter.limiter.get_window_stats(item, "oauth-token", self.address).reset_time
                raise _Throttled(max(1, int(reset - time.time())))

    def count_failure(self) -> None:
        if self.enabled:
            for item in self._limits():
                limiter.limiter.hit(item, "oauth-token", self.address)


class _Throttled(tokens.OAuthError):
    def __init__(self, retry_after: int) -> None:
        super().__init__("temporarily_unavailable", "Too many failed attempts from this address; try again in "
                                                    f"{retry_after} s.", 429)
        self.retry_after = retry_after


@functools.lru_cache(maxsize=8)
def _parsed_limits(text: str) -> list:
    return parse_many(text)


def _issue(client_id: str, client_secret: str) -> tokens.IssuedToken:
    """RFC 6749 2.3.1 has clients form-encode the id and secret before Basic; many don't. The credentials are
    tried as sent, then decoded when decoding changes them, so both kinds of client get in."""
    try:
        return tokens.issue(client_id, client_secret, request.form, request.url_root)
    except tokens.OAuthError as exc:
        decoded = unquote_plus(client_id), unquote_plus(client_secret)
        if exc.error != "invalid_client" or decoded == (client_id, client_secret):
            raise
        return tokens.issue(*decoded, request.form, request.url_root)


@bp.get("/t/<tenant_id>/.well-known/jwks.json")
@public
def jwks(tenant_id: str):
    return _published(lambda: tokens.jwks_document(tenant_id))


@bp.get("/t/<tenant_id>/.well-known/openid-configuration")
@public
def openid_configuration(tenant_id: str):
    # Its URLs come from the request's address when PUBLIC_BASE_URL is unset: never cached for others then.
    return _published(lambda: tokens.discovery_document(tenant_id, request.url_root),
                      shared_cache=not tokens.root_from_request())


def _published(make, shared_cache: bool = True) -> Response:
    try:
        response = jsonify(make())
    except NotFound as exc:
        return problem(404, "Not found", exc.message)
    response.headers["Cache-Control"] = f"public, max-age={PUBLISHED_MAX_AGE}" if shared_cache else "no-store"
    response.headers["Access-Control-Allow-Origin"] = "*"  # public keys: any verifier may read them
    return response
