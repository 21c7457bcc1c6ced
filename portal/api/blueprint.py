"""The /v1 blueprint, in its own module so the route modules import it without importing their package."""
from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/v1")
