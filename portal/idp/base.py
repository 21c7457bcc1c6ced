"""The protocol every identity-provider type family implements, with defaults that fit a family whose settings
are one API section (e.g. relationalSchema) stored flat, plus at most one secret stored in Tenant.idp_secret.

A family answers, for its types: the API keys it owns, how to parse and validate them (errors keyed by API path),
where its secret goes (services.secret_binding), the connection check, the secret-free API view, the audit view,
its form fields and their section of the form, its OpenAPI schema, demo values and the password-grant user lookup.
"""
from __future__ import annotations

import abc
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from portal.clients.checks import CheckResult
from portal.idp import schema as js
from portal.idp.parsing import Errors, blank
from portal.services.tenants.secret_binding import Target


@dataclass(frozen=True)
class Field:
    """One tenant field, defined once: its API path, whether it is a secret, its form field and label.
    kind: text, password (write-only), boolean, textarea, secret_textarea (never written back), select,
    jdbc_url (a password in it is shown as ***)."""

    path: str
    form_name: str
    label: str
    kind: str = "text"
    description: str = ""
    secret: bool = False
    render: Mapping[str, Any] = field(default_factory=dict)  # template attributes, e.g. autocomplete="off"
    attribute: str | None = None  # the Tenant column holding a common field (families store theirs in idp_settings)
    audit_name: str | None = None  # its name in the audit diff, when not the form name

    @property
    def name(self) -> str:
        """The field's own name (the last part of its path)."""
        return self.path.rsplit(".", 1)[-1]

    @property
    def section(self) -> str | None:
        """The API section holding it (e.g. "owner"), or None for a top-level field."""
        return self.path.rsplit(".", 1)[0] if "." in self.path else None


@dataclass(frozen=True)
class ParseContext:
    """What a family's parser may need beyond its own part of the body."""

    algorithm: str  # the validated supportAlgorithm
    allow_http_urls: bool
    stored: dict[str, Any] | None  # stored settings when a secret of this type is stored (blank keeps it), else None


@dataclass(frozen=True)
class CheckEnv:
    """What a connection check may use: the app config and the outbound policies (portal/idp/outbound.py)."""

    config: Mapping[str, Any]
    timeout: float
    client: tuple[str, str] | None = None  # the tenant's client id and secret, for a check that asks for a token


class IdpFamily(abc.ABC):
    """One identity-provider type family. Subclasses implement the abstract methods (parse, check, OpenAPI, demo);
    the rest has defaults that fit a family with one flat section."""

    types: tuple[str, ...] = ()
    labels: Mapping[str, str] = {}  # type -> the form's choice label
    title: str = ""  # heading of the form's section
    keys: tuple[str, ...] = ()  # top-level API keys the family owns, in the API view's order
    objects: frozenset[str] = frozenset()  # which of `keys` are objects (the others are scalars)
    stored_under: str | None = None  # the section stored flat in idp_settings; None: stored in the body's shape
    fields: tuple[Field, ...] = ()
    bound_secret_hint: str | None = None  # when a stored secret must be entered again (form description)
    password_grant: bool = False  # the portal issues tokens for users of this provider
    issues_tokens: bool = True  # False: the provider issues its tenants' tokens itself
    users_access: str | None = None  # the tenant users pages: "manage" (list, add, change), "browse" or None
    demo_weight: Mapping[str, int] = {}  # type -> weight among demo tenants
    demo_algorithms: tuple[tuple[str, int], ...] = (("HS256", 70), ("HS384", 10), ("HS512", 10), ("RS256", 10))

    # --- fields ---------------------------------------------------------------------------------------------

    @property
    def secret_field(self) -> Field | None:
        return next((f for f in self.fields if f.secret), None)

    @property
    def secret_path(self) -> str | None:
        return self.secret_field.path if self.secret_field else None

    def allowed(self, section: str) -> frozenset[str]:
        """The member names of one of the family's object sections."""
        return frozenset(f.name for f in self.fields if f.section == section)

    # --- parsing ----------------------------------------------------------------------------------------------

    @abc.abstractmethod
    def parse(self, idp_type: str, body: dict, ctx: ParseContext, errors: Errors) -> tuple[dict, str | None]:
        """The settings to store (non-secret, API names) and the secret, from the body; problems go to errors."""

    def secret_target(self, settings: Mapping[str, Any]) -> Target:
        """Where the secret goes (services.secret_binding): a stored secret is kept only while this is unchanged."""
        return Target(())

    def keeps_secret(self, settings: Mapping[str, Any]) -> bool:
        """Whether a stored secret stays when none was entered (e.g. not for an anonymous LDAP bind)."""
        return self.secret_field is not None

    # --- outbound ---------------------------------------------------------------------------------------------

    @abc.abstractmethod
    def check(self, idp_type: str, settings: Mapping[str, Any], secret: str | None, algorithm: str,
              env: CheckEnv) -> CheckResult:
        """The real connection the type calls for; never raises for a failed check."""

    def user_lookup(self, idp_type: str, settings: Mapping[str, Any], secret: str | None, username: str,
                    password: str, config: Mapping[str, Any]):
        """The password grant's user check (clients.user_stores.UserCheck); only when password_grant."""
        raise TypeError(f"{type(self).__name__} has no password grant: its users sign in at their own provider")

    def tenant_users(self, idp_type: str, settings: Mapping[str, Any], secret: str | None,
                     config: Mapping[str, Any]):
        """The tenant's users in its own store (clients.tenant_users: RelationalUsers when users_access is
        "manage", DirectoryUsers when "browse"); only when users_access is set."""
        raise TypeError(f"{type(self).__name__} keeps no users the portal can show")

    # --- views ------------------------------------------------------------------------------------------------

    def api_view(self, settings: Mapping[str, Any], secret_set: bool) -> dict[str, Any]:
        """The family's part of the tenant's API view: secrets only as <name>Set booleans."""
        if self.stored_under is None:
            return {key: settings.get(key) for key in self.keys}
        view = dict(settings)
        if self.secret_field is not None:
            view[self.secret_field.name + "Set"] = secret_set
        return {self.stored_under: view}

    def audit_view(self, settings: Mapping[str, Any], secret: str | None) -> dict[str, Any]:
        """Flat names for the audit diff; the secret's value is redacted by audit.diff."""
        view = dict(settings)
        if self.secret_field is not None:
            view[self.secret_field.name] = secret
        return view

    def flat_settings(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        """Stored settings by API path, for comparing a bulk row with a registered tenant."""
        return _flatten(settings, f"{self.stored_under}." if self.stored_under else "")

    # --- form -------------------------------------------------------------------------------------------------

    def form_body(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """The registration body's part for this family, from the form's data (form field name -> value)."""
        body: dict[str, Any] = {name: {} for name in self.keys if name in self.objects}
        for f in self.fields:
            value = data.get(f.form_name)
            if f.kind == "boolean":
                value = bool(value)
            elif blank(value):
                continue
            holder = body.setdefault(f.section, {}) if f.section else body
            holder[f.name] = value
        return body

    # --- OpenAPI ----------------------------------------------------------------------------------------------

    def openapi_components(self) -> dict[str, js.Schema]:
        return {}

    @abc.abstractmethod
    def openapi_variants(self, update: bool) -> list[tuple]:
        """(title, types, properties) of the registration body's variants for this family, optionally with a 4th
        item: the properties that are not required."""

    @abc.abstractmethod
    def openapi_response(self) -> tuple[dict[str, js.Schema], list[str]]:
        """The tenant view's properties this family adds, and which of them its tenants always have."""

    # --- demo -------------------------------------------------------------------------------------------------

    @abc.abstractmethod
    def demo(self, idp_type: str, tenant_id: str, n: int, rng: random.Random) -> tuple[dict[str, Any], str | None]:
        """Settings and secret of a demo tenant, in the shapes parse produces."""


def _flatten(settings: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in settings.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{name}."))
        else:
            flat[prefix + name] = value
    return flat
