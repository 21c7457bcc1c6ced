"""Tokens: issue and validate per tenant, the tenant's signing keys over time, external issuers' JWKS."""
