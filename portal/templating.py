"""Template helpers for the parts of every page that are the same on every request (navigation, static files)."""
from __future__ import annotations

from flask import Flask, request, url_for

MAX_CACHED_URLS = 512  # far above what the templates use; a bound in case someone passes request data


def init_app(app: Flask) -> None:
    cache: dict[tuple, str] = {}

    def fixed_url(endpoint: str, **values: str) -> str:
        """url_for, memoised per app: for links whose arguments are constants of a template. The only input that
        varies between requests is the script root (a mount point, or nginx's X-Forwarded-Prefix), so it is part
        of the key; these URLs are never external, so host and scheme do not matter."""
        key = (request.script_root, endpoint, *sorted(values.items())) if values else (request.script_root, endpoint)
        url = cache.get(key)
        if url is None:
            if len(cache) >= MAX_CACHED_URLS:
                cache.clear()
            url = cache[key] = url_for(endpoint, **values)
        return url

    app.jinja_env.globals["fixed_url"] = fixed_url
