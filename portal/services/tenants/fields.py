"""A tenant's fields, defined once: API path, section, secret or not, form field name and label.

The common fields are listed here; each identity-provider family adds its own (portal/idp/). The form's maps, the
secret lists of the spec and the audit, the API view's *Set flags and the bulk file's columns derive from these."""
from __future__ import annotations

from portal.idp import registry
from portal.idp.base import Field

COMMON: tuple[Field, ...] = (
    Field("tenantId", "tenantId", "Tenant id", attribute="tenant_id"),
    Field("displayName", "displayName", "Display name", attribute="display_name"),
    Field("tenantDomain", "tenantDomain", "Tenant domain", attribute="domain"),
    Field("owner.username", "ownerUsername", "Owner username", attribute="owner_username"),
    Field("owner.email", "ownerEmail", "Owner email", attribute="owner_email"),
    Field("owner.firstName", "ownerFirstName", "Owner first name", attribute="owner_first_name"),
    Field("owner.lastName", "ownerLastName", "Owner last name", attribute="owner_last_name"),
    Field("owner.provisioningMethod", "ownerProvisioningMethod", "Owner provisioning", "select",
          attribute="owner_provisioning", audit_name="ownerProvisioning"),
    Field("owner.password", "ownerPassword", "Owner password", "password", secret=True, attribute="owner_password"),
    Field("clientId", "clientId", "Client id", attribute="client_id"),
    Field("clientSecret", "clientSecret", "Client secret", "password", secret=True, attribute="client_secret"),
    Field("identityProviderType", "identityProviderType", "Identity provider type", "select", attribute="idp_type"),
    Field("supportAlgorithm", "supportAlgorithm", "Token algorithm", "select", attribute="support_algorithm"),
    Field("signingKey", "signingKey", "Signing key", "secret_textarea", secret=True),  # audited as signingKeyId
    Field("rsaKeySize", "rsaKeySize", "RSA key size (bits)", "select"),  # only used to generate a key
)
SKIP_CHECK = "skipConnectionCheck"  # a request flag, not a stored field
# Where the API view says whether each stored secret is set (owner.password: owner.passwordSet, ...).
SET_FLAGS = {"clientSecret": ("clientSecretSet",), "owner.password": ("owner", "passwordSet")}
# A stored owner password belongs to the owner's user name (services.secret_binding.account_refusal).
OWNER_PASSWORD_HINT = "enter it again when you change the owner's user name"


def common(path: str) -> Field:
    return next(f for f in COMMON if f.path == path)


def all_fields() -> tuple[Field, ...]:
    """The common fields, then every registered identity-provider family's."""
    return COMMON + tuple(f for family in registry.families() for f in family.fields)


def stored_common() -> tuple[Field, ...]:
    """The common fields stored in a Tenant column, for the audit view."""
    return tuple(f for f in COMMON if f.attribute)


def audit_name(field: Field) -> str:
    return field.audit_name or field.form_name


def secret_paths() -> frozenset[str]:
    """Secrets: never echoed in messages, never stored in clear, never returned."""
    return frozenset(f.path for f in all_fields() if f.secret)


def audit_secret_names() -> frozenset[str]:
    """The audit view's names of secrets (flat, e.g. ownerPassword, dataSourcePassword)."""
    return frozenset({audit_name(f) for f in COMMON if f.secret}
                     | {f.name for family in registry.families() for f in family.fields if f.secret})


def top_level() -> frozenset[str]:
    """Every member name a registration body may have."""
    return frozenset({f.path.split(".")[0] for f in COMMON} | set(registry.all_keys()) | {SKIP_CHECK})


def section_fields(section: str) -> frozenset[str]:
    return frozenset(f.name for f in all_fields() if f.section == section)


def boolean_paths() -> frozenset[str]:
    return frozenset(f.path for f in all_fields() if f.kind == "boolean")


def set_flag(field: Field) -> tuple[str, ...] | None:
    """Where the API view says whether this stored secret is set, e.g. ("relationalSchema", "dataSourcePasswordSet")."""
    if field.path in SET_FLAGS:
        return SET_FLAGS[field.path]
    family = next((fam for fam in registry.families() if field in fam.fields), None)
    if family is None or not field.secret:
        return None
    flag = field.name + "Set"
    return (family.stored_under, flag) if family.stored_under else (flag,)
