"""Enumerate the app's routes for the blanket access and CSRF tests."""
from __future__ import annotations

from flask import Flask, url_for

from portal.access import MACHINE, PUBLIC, access_of


def routes(app: Flask, method: str) -> list[tuple[str, str]]:
    """(endpoint, url) for every route accepting `method`, path arguments filled with sample values."""
    found = []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            if method not in rule.methods or rule.endpoint == "static":
                continue
            found.append((rule.endpoint, url_for(rule.endpoint, **{arg: 1 for arg in rule.arguments})))
    return sorted(found)


def is_open(app: Flask, endpoint: str) -> bool:
    return endpoint == "static" or access_of(app.view_functions[endpoint]) in (PUBLIC, MACHINE)


def is_self_service(app: Flask, endpoint: str) -> bool:
    return getattr(app.view_functions[endpoint], "_self_service", False)
