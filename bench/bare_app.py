"""The benchmark's WSGI app: the portal, plus a bare Flask page at /bare/ served by the same gunicorn workers.

The bare page is the yardstick: whatever gunicorn, the machine and the HTTP client cost is in both figures, so
list ÷ bare says what the portal itself (sessions, access checks, the query, the template) costs per request.
Configuration comes from the environment the benchmark sets (PORTAL_INSTANCE_PATH, DATABASE_URL, ...).
"""
from __future__ import annotations

from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from portal import create_app

bare = Flask("bare")


@bare.get("/")
def bare_page() -> str:
    return "<!doctype html><html lang=\"en\"><title>bare</title><p>A bare Flask page.</p></html>"


portal = create_app()
application = DispatcherMiddleware(portal, {"/bare": bare})
