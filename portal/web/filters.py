"""Template filters in Python: they run once per table cell, where a Jinja macro costs several times more."""
from __future__ import annotations

from datetime import datetime

from flask import Flask
from markupsafe import Markup


def when(value: datetime | None) -> Markup:
    """A UTC timestamp as a <time> element, or a dash."""
    if value is None:
        return Markup("—")
    # isoformat/strftime of a datetime yield digits and punctuation only: nothing to escape.
    return Markup(f'<time datetime="{value.isoformat()}">{value.strftime("%Y-%m-%d %H:%M:%S")} UTC</time>')


def init_app(app: Flask) -> None:
    app.jinja_env.filters["when"] = when
