"""The certificates blueprint and who may read or change through it: its own module, so the view modules
import it without importing their package (no import cycle)."""
from flask import Blueprint

bp = Blueprint("certificates", __name__, url_prefix="/certificates")

READERS = ("admin", "operator", "auditor")
WRITERS = ("admin",)
