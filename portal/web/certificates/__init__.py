"""Certificates and IS 7's thumbprint mappings: uploads, mapping lint, explain a call, deployment.toml, truststores.
Admins change; operators and auditors read."""
from flask import Blueprint

bp = Blueprint("certificates", __name__, url_prefix="/certificates")

READERS = ("admin", "operator", "auditor")
WRITERS = ("admin",)

from portal.web.certificates import mapping_views, views  # noqa: F401  (the routes register on bp)
