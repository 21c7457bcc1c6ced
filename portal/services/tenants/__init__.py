"""Tenants: registration by form, API and bulk, their fields and validation, and the secrets bound to them."""
