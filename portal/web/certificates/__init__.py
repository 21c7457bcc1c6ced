"""Certificates and IS 7's thumbprint mappings: uploads, mapping lint, explain a call, deployment.toml, truststores.
Admins change; operators and auditors read."""
from portal.web.certificates import mapping_views, views  # noqa: F401  (the routes register on bp)
from portal.web.certificates.blueprint import bp  # the app factory registers it

__all__ = ["bp"]
