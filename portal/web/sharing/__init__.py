"""Tenant sharing between IS 7 and API Manager, and the portal's connections to both products.
Admins change; operators and auditors read (operators may also run "Test connection", which changes nothing)."""
from portal.web.sharing import views  # noqa: F401  (the routes register on bp)
from portal.web.sharing.blueprint import bp  # the app factory registers it

__all__ = ["bp"]
