"""Error pages and problem+json bodies: a request id, never a stack trace."""
from __future__ import annotations

import logging

from flask import Flask, jsonify, make_response, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from portal.extensions import db
from portal.hardening import request_id

log = logging.getLogger(__name__)

MESSAGES = {
    400: "The request could not be understood.",
    401: "Sign in to continue.",
    403: "Your role does not allow this.",
    404: "There is nothing here.",
    405: "This address does not accept that method.",
    413: "The upload or form is larger than this portal accepts.",
    429: "Too many attempts. Wait a little and try again.",
    500: "Something went wrong on our side. The error has been logged.",
}


def wants_json() -> bool:
    if request.path.startswith(("/v1/", "/oauth/", "/healthz", "/readyz")):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json", "application/problem+json"])
    return best in ("application/json", "application/problem+json")


def problem(status: int, title: str, detail: str | None = None, errors: dict | None = None, **extra):
    """An RFC 9457 problem body."""
    body = {"type": "about:blank", "title": title, "status": status, "request_id": request_id(), **extra}
    if detail:
        body["detail"] = detail
    if errors:
        body["errors"] = errors
    response = jsonify(body)
    response.status_code = status
    response.mimetype = "application/problem+json"
    return response


def _render(status: int, detail: str | None = None):
    title = MESSAGES.get(status, "Error")
    if wants_json():
        return problem(status, title, detail)
    return render_template("errors/error.html", status=status, title=title, detail=detail), status


def handle_http(exc: HTTPException):
    status = exc.code or 500
    detail = None
    if status in (400, 403, 404, 429) and exc.description and exc.description != type(exc).description:
        detail = exc.description  # our own abort(…, "message"), never werkzeug's boilerplate
    response = make_response(_render(status, detail))
    if status == 405 and getattr(exc, "valid_methods", None):
        response.headers["Allow"] = ", ".join(exc.valid_methods)  # RFC 9110 15.5.6: a 405 names what is allowed
    return response


def handle_csrf(exc: CSRFError):
    log.warning("CSRF check failed: %s", exc.description)
    return _render(400, "The form expired or was not sent from this portal. Reload the page and try again.")


def handle_unexpected(exc: Exception):
    if isinstance(exc, HTTPException):
        return handle_http(exc)
    db.session.rollback()
    log.exception("Unhandled error on %s %s", request.method, request.path)
    return _render(500)


def init_app(app: Flask) -> None:
    app.register_error_handler(CSRFError, handle_csrf)
    app.register_error_handler(HTTPException, handle_http)
    app.register_error_handler(InternalServerError, handle_unexpected)
    app.register_error_handler(Exception, handle_unexpected)
