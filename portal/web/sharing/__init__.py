"""Tenant sharing between IS 7 and API Manager, and the portal's connections to both products.
Admins change; operators and auditors read (operators may also run "Test connection", which changes nothing)."""
from flask import Blueprint

bp = Blueprint("sharing", __name__, url_prefix="/sharing")

READERS = ("admin", "operator", "auditor")
WRITERS = ("admin",)
TESTERS = ("admin", "operator")

from portal.web.sharing import views  # noqa: F401  (the routes register on bp)
