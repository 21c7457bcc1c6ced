"""Blueprint for machines: the /v1 registration API, authenticated by X-API-AppId / X-API-Key."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/v1")
