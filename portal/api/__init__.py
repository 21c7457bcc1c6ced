"""Blueprint for machines (/v1, token endpoints, JWKS): added with the tenant registry."""
