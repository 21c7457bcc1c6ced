"""Identity-provider types as plug-ins: one module per type family (relational, LDAP, external), each an IdpFamily
(base.py), and a registry (registry.py) that the tenant spec, services, form, API, OpenAPI document, bulk files,
demo seeding and token service loop over. Adding a type means writing one family and registering it."""
