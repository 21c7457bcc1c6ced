"""Tenant sharing between IS 7 and API Manager: the product connections, the direction, its TOML, key managers."""
