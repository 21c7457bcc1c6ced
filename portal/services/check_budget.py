"""A per-actor budget for connection checks: each check makes the portal connect where a caller said, so an
administrator or API client may not turn the checks into a port scanner by repeating them quickly.

Counted on Flask-Limiter's storage (RATELIMIT_STORAGE_URI: per process with memory://, shared with Redis), like the
sign-in failure budgets (web/auth/throttle.py). Off when RATELIMIT_ENABLED is false (the test suite's default).
Only checks made inside a request are counted: bulk jobs and the worker run outside one, on behalf of an upload or a
schedule an administrator already started.
"""
from __future__ import annotations

import functools
import time

from flask import current_app, g, has_request_context, request
from flask_limiter.util import get_remote_address
from limits import parse_many
from werkzeug.exceptions import TooManyRequests

from portal.extensions import limiter
from portal.services.context import Actor

SETTING = "CONNECTION_CHECK_LIMIT_PER_ACTOR"
SCOPE = "connection-check"


class TooManyChecks(TooManyRequests):
    """The actor's connection-check budget is spent: answered 429 (an error page, or a problem body under /v1/)
    by the app's HTTP error handler, with the wait in the text."""

    def __init__(self, retry_after: int, limit: str) -> None:
        self.retry_after = retry_after
        self.message = (f"Too many connection checks: at most {limit} per administrator or API client. "
                        f"Try again in {retry_after} s.")
        super().__init__(self.message, retry_after=retry_after)


@functools.lru_cache(maxsize=8)
def _parsed(text: str) -> list:
    return parse_many(text)


def actor_key(actor: Actor | None = None) -> str | None:
    """Whose budget a check spends: the given actor, else the request's API client or signed-in administrator,
    else the remote address; None outside a request."""
    if actor is not None and actor.name not in ("anonymous", "system", "cli"):
        return actor.name if actor.role == "api" else f"admin:{actor.id if actor.id is not None else actor.name}"
    if not has_request_context():
        return None
    client = g.get("api_client")
    if client is not None:
        return f"api:{client.app_id}"
    try:
        from flask_login import current_user
        if current_user and current_user.is_authenticated:
            return f"admin:{current_user.id}"
    except (ImportError, AttributeError):
        pass
    return f"ip:{get_remote_address() or request.remote_addr or '-'}"


def spend(actor: Actor | None = None) -> None:
    """Count one connection check for the actor; TooManyChecks (429) when the budget is spent. Call it before
    anything is connected."""
    if not bool(current_app.config.get("RATELIMIT_ENABLED", True)):
        return
    key = actor_key(actor)
    if key is None:
        return
    text = str(current_app.config.get(SETTING) or "")
    limits = _parsed(text) if text else []
    for item in limits:
        if not limiter.limiter.hit(item, SCOPE, key):
            stats = limiter.limiter.get_window_stats(item, SCOPE, key)
            wait = max(1, int(stats.reset_time - time.time()) + 1)
            raise TooManyChecks(wait, str(item))
