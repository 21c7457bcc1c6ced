"""One rule for every request, before any view: no NUL character in a path argument, query argument or form field.

No field of the portal has a use for one, and PostgreSQL refuses NUL in text ("cannot contain NUL (0x00) bytes"), so a
NUL typed into a search box, a paging cursor or a URL would otherwise travel to the database and fail there as a 500.
Uploaded files are not fields: they stay binary."""
from __future__ import annotations

from flask import Flask, abort, request


def refuse_nul() -> None:
    limit = request.max_content_length
    if request.content_length is not None and limit is not None and request.content_length > limit:
        return None  # the size is the view's to judge (bulk raises its cap) or werkzeug's 413; don't read it here
    values = [*(request.view_args or {}).values(), *request.args.values()]
    if request.method not in ("GET", "HEAD", "OPTIONS") and request.mimetype in (
            "application/x-www-form-urlencoded", "multipart/form-data"):
        values += request.form.values()
    if any(isinstance(value, str) and "\x00" in value for value in values):
        abort(400, "A field or the address contains a NUL character.")


def init_app(app: Flask) -> None:
    app.before_request(refuse_nul)
