"""The benchmark's WSGI app: the portal, plus a bare Flask page at /bare/ served by the same gunicorn workers.

The bare page is the yardstick: whatever gunicorn, the machine and the HTTP client cost is in both figures, so
list ÷ bare says what the portal itself (sessions, access checks, the query, the template) costs per request.
The portal also gets one page of the benchmark's own, /bench/empty: an empty answer to any signed-in role, so the
signed-in request path (session and admin lookup, access check, the portal's before/after-request work) is
measured without a page's queries and template.
Configuration comes from the environment the benchmark sets (PORTAL_INSTANCE_PATH, DATABASE_URL, ...).
"""
from __future__ import annotations

from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from portal import create_app
from portal.access import roles
from portal.models import ROLES

bare = Flask("bare")


@bare.get("/")
def bare_page() -> str:
    return "<!doctype html><html lang=\"en\"><title>bare</title><p>A bare Flask page.</p></html>"


@roles(*ROLES)
def signed_in_empty() -> str:
    return ""


portal = create_app()
portal.add_url_rule("/bench/empty", "bench_empty", signed_in_empty)
application = DispatcherMiddleware(portal, {"/bare": bare})
