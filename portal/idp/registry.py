"""The identity-provider types the portal knows, in the order forms and messages list them. Every layer loops over
this registry instead of naming types; a family registered here (even from a test) is offered everywhere."""
from __future__ import annotations

from portal.idp.base import IdpFamily

_FAMILIES: list[IdpFamily] = []


def register(family: IdpFamily) -> IdpFamily:
    taken = set(names())
    if clash := taken & set(family.types):
        raise ValueError(f"identity provider type(s) {', '.join(sorted(clash))} already registered")
    if any(not t or t != t.upper() or len(t) > 16 for t in family.types):
        raise ValueError("identity provider types are upper-case names of at most 16 characters")
    _FAMILIES.append(family)
    return family


def unregister(family: IdpFamily) -> None:
    _FAMILIES.remove(family)


def families() -> tuple[IdpFamily, ...]:
    return tuple(_FAMILIES)


def names() -> tuple[str, ...]:
    """Every registered type, e.g. ("ORACLE", "POSTGRES", "LDAP", "EXTERNAL")."""
    return tuple(t for family in _FAMILIES for t in family.types)


def find(idp_type: str | None) -> IdpFamily | None:
    return next((family for family in _FAMILIES if idp_type in family.types), None)


def issues_tokens(idp_type: str | None) -> bool:
    """Does the portal sign this type's tokens? False when the tenant's own provider does (its JWKS validates them,
    and the portal holds no key to rotate or publish)."""
    family = find(idp_type)
    return family is None or family.issues_tokens


def get(idp_type: str) -> IdpFamily:
    family = find(idp_type)
    if family is None:
        raise KeyError(f"unknown identity provider type {idp_type!r}")
    return family


def object_keys() -> frozenset[str]:
    """Every family's object sections (relationalSchema, ldapSchema, ...)."""
    return frozenset(key for family in _FAMILIES for key in family.objects)


def all_keys() -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for family in _FAMILIES:
        seen.update(dict.fromkeys(family.keys))
    return tuple(seen)


def _builtins() -> None:
    from portal.idp import external, ldap, relational

    for family in (relational.FAMILY, ldap.FAMILY, external.FAMILY):
        register(family)


_builtins()
