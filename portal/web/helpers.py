"""Small helpers shared by the views: the acting user, and service errors shown at the right field."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import abort, request
from flask_login import current_user
from flask_wtf import FlaskForm

from portal.hardening import request_id
from portal.services.context import Actor
from portal.services.errors import NotFound, ValidationError

MAX_NEXT = 2048  # a longer `next` is not a page of this portal

T = TypeVar("T")


def current_actor() -> Actor:
    user = current_user if current_user.is_authenticated else None
    return Actor(name=user.username if user else "anonymous", id=user.id if user else None,
                 role=user.role if user else None, request_id=request_id(), ip=request.remote_addr)


def apply_errors(form: FlaskForm, error: ValidationError) -> None:
    """Put each service error under its field; errors for unknown fields go to the form as a whole."""
    form.form_errors = list(getattr(form, "form_errors", []))
    for field, message in error.errors.items():
        if field and field in form:
            form[field].errors = [*form[field].errors, message]
        else:
            form.form_errors.append(message)


def safe_next(target: str | None, default: str) -> str:
    """Only same-site relative paths: `next` must never send a signed-in admin elsewhere, nor break the redirect.
    Control characters are refused outright: CR/LF cannot go into a Location header (a 500 after sign-in), and
    browsers drop tabs and newlines from URLs, so "/\t/evil.example" would become "//evil.example"."""
    if not target or len(target) > MAX_NEXT or any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in target):
        return default
    try:
        parts = urlsplit(target)
    except ValueError:  # "//[" and the like: an unbalanced IPv6 bracket
        return default
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def or_404(lookup: Callable[..., T], *args: Any) -> T:
    """lookup(*args), or a 404 page carrying the service's NotFound message."""
    try:
        return lookup(*args)
    except NotFound as exc:
        abort(404, exc.message)
