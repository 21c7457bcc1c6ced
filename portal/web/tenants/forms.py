"""Tenant forms. They check shape only (CSRF, known choices) and translate between the form's flat fields and the
registration API's nested body; every rule about the values lives in services/tenant_spec.py."""
from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, SelectChoice, SelectField, StringField, SubmitField, TextAreaField
from wtforms.validators import Length, Optional

from portal.models.tenant import ALGORITHMS, IDP_TYPES, PROVISIONING_METHODS
from portal.services import secret_binding
from portal.services.errors import ValidationError
from portal.services.signing_keys import RSA_KEY_SIZES
from portal.services.tenant_spec import RELATIONAL

TYPE_LABELS = {"ORACLE": "ORACLE: Oracle database", "POSTGRES": "POSTGRES: PostgreSQL database",
               "LDAP": "LDAP: directory service", "EXTERNAL": "EXTERNAL: OpenID Connect provider"}
STATUS_CHOICES = ("active", "inactive", "unverified")

# API field path (as services report errors) -> form field name. Paths not listed show at the top of the form.
FIELD_OF_PATH: dict[str, str] = {
    "tenantId": "tenantId", "displayName": "displayName", "tenantDomain": "tenantDomain",
    "owner.username": "ownerUsername", "owner.email": "ownerEmail", "owner.firstName": "ownerFirstName",
    "owner.lastName": "ownerLastName", "owner.provisioningMethod": "ownerProvisioningMethod",
    "owner.password": "ownerPassword",
    "clientId": "clientId", "clientSecret": "clientSecret",
    "identityProviderType": "identityProviderType", "supportAlgorithm": "supportAlgorithm",
    "signingKey": "signingKey", "rsaKeySize": "rsaKeySize",
    "relationalSchema.dataSourceURL": "dataSourceURL", "relationalSchema.dataSourceUserName": "dataSourceUserName",
    "relationalSchema.dataSourcePassword": "dataSourcePassword",
    "ldapSchema.ldapURLForDirectoryService": "ldapURLForDirectoryService",
    "ldapSchema.directoryServiceDomainName": "directoryServiceDomainName",
    "ldapSchema.directoryServiceRootDistinguishedName": "directoryServiceRootDistinguishedName",
    "ldapSchema.bindDN": "bindDN", "ldapSchema.bindPassword": "bindPassword", "ldapSchema.startTLS": "startTLS",
    "jwkSetUrl": "jwkSetUrl", "issuer": "issuer",
    "oidcSchema.authUrl": "authUrl", "oidcSchema.accessTokenUrl": "accessTokenUrl", "oidcSchema.scope": "scope",
}
OWNER_FIELDS = {"username": "ownerUsername", "email": "ownerEmail", "firstName": "ownerFirstName",
                "lastName": "ownerLastName"}
SECTION_FIELDS = {
    "relationalSchema": ("dataSourceURL", "dataSourceUserName", "dataSourcePassword"),
    "ldapSchema": ("ldapURLForDirectoryService", "directoryServiceDomainName",
                   "directoryServiceRootDistinguishedName", "bindDN", "bindPassword"),
    "oidcSchema": ("authUrl", "accessTokenUrl", "scope"),
}
# Which form fields are stored secrets, and the to_api() flag that says whether each is set.
SECRET_SET_FLAGS = {
    "clientSecret": ("clientSecretSet",), "dataSourcePassword": ("relationalSchema", "dataSourcePasswordSet"),
    "bindPassword": ("ldapSchema", "bindPasswordSet"), "ownerPassword": ("owner", "passwordSet"),
}

# Stored secrets that go somewhere: kept only while that place is unchanged (services.secret_binding).
BOUND_SECRETS = {
    "dataSourcePassword": "enter it again when you change the host, port, database, URL parameters or user",
    "bindPassword": "enter it again when you change the directory URL, StartTLS or bind DN",
    "ownerPassword": "enter it again when you change the owner's user name",
}


def form_errors(errors: dict[str, str]) -> ValidationError:
    """The service's errors re-keyed from API paths to form field names, for apply_errors. A path with no field
    keeps its own key (no field has that name), so apply_errors shows it at the top, prefixed with the path."""
    mapped: dict[str, str] = {}
    for path, message in errors.items():
        if path in FIELD_OF_PATH:
            mapped[FIELD_OF_PATH[path]] = message
        else:
            mapped[f"api:{path}" if path else ""] = f"{path}: {message}" if path else message
    return ValidationError(mapped)


class JdbcUrlField(StringField):
    """A JDBC URL written back into the page with any password in it replaced by *** (the service refuses it)."""

    def _value(self) -> str:
        return secret_binding.redact_url(super()._value())


class SecretTextAreaField(TextAreaField):
    """A textarea that never writes its value back into the page: a pasted key is not echoed."""

    def _value(self) -> str:
        return ""


def _choices(values, labels: dict[str, str] | None = None) -> list[SelectChoice]:
    return [SelectChoice(str(v), (labels or {}).get(str(v), str(v))) for v in values]


def _text(value: str | None) -> str | None:
    """Blank optional strings are left out of the body: the service decides what is required."""
    return value if value is not None and value.strip() else None


class TenantForm(FlaskForm):
    tenantId = StringField("Tenant id", description="1 to 64 letters, digits, '_' or '-'. Cannot change later.")
    displayName = StringField("Display name", description="Optional; the tenant id when blank.")
    tenantDomain = StringField("Tenant domain", description=(
        "Optional: derived as <tenant id>.<suffix> when blank. Lower-case letters, digits, '.', '_' and '-'. "
        "Cannot change later: Identity Server 7 cannot rename a tenant."))

    ownerUsername = StringField("Owner username", description="Leave every owner field empty for no owner.")
    ownerEmail = StringField("Owner email")
    ownerFirstName = StringField("Owner first name")
    ownerLastName = StringField("Owner last name")
    ownerProvisioningMethod = SelectField("Owner provisioning", choices=_choices(PROVISIONING_METHODS, {
        "inline-password": "inline-password: set the password here",
        "invite-via-email": "invite-via-email: the owner sets it from an email link"}),
        default="invite-via-email")
    ownerPassword = PasswordField("Owner password", description="Only for inline-password.")

    clientId = StringField("Client id")
    clientSecret = PasswordField("Client secret")
    identityProviderType = SelectField("Identity provider type", choices=_choices(IDP_TYPES, TYPE_LABELS),
                                       default="POSTGRES")
    supportAlgorithm = SelectField("Token algorithm", choices=_choices(ALGORITHMS), default="HS256")
    signingKey = SecretTextAreaField("Signing key", description=(
        "Leave blank to generate. HS256/384/512: a shared secret of at least 32/48/64 bytes. "
        "RS256/384/512: a PEM RSA private key of at least 2048 bits."))
    rsaKeySize = SelectField("RSA key size (bits)", choices=_choices(RSA_KEY_SIZES), default="2048",
                             description="Used when the portal generates an RSA key pair (RS256/384/512).")

    dataSourceURL = JdbcUrlField("JDBC URL", description=(
        "jdbc:postgresql://host:port/db?currentSchema=schema, jdbc:oracle:thin:@//host:port/service "
        "or jdbc:oracle:thin:@host:port:SID"))
    dataSourceUserName = StringField("Database user")
    dataSourcePassword = PasswordField("Database password")

    ldapURLForDirectoryService = StringField("Directory URL", description="ldap://host[:port] or ldaps://host[:port]")
    directoryServiceDomainName = StringField("Directory domain name", description="e.g. example.com")
    directoryServiceRootDistinguishedName = StringField("Root DN", description="e.g. dc=example,dc=com")
    bindDN = StringField("Bind DN", description="Optional: leave bind DN and password empty to bind anonymously.")
    bindPassword = PasswordField("Bind password")
    startTLS = BooleanField("Use StartTLS (ldap:// only)")

    jwkSetUrl = StringField("JWK set URL", description="https://… the provider's JWKS")
    issuer = StringField("Issuer", description="Must equal the issuer in <issuer>/.well-known/openid-configuration.")
    authUrl = StringField("Authorization URL")
    accessTokenUrl = StringField("Token URL")
    scope = StringField("Scope", description='Space-separated, e.g. "openid profile".')

    skip_check = BooleanField("Register without a passing connection check",
                              description="The tenant is stored but shows as unverified until a check passes.")
    refresh = SubmitField("Show fields for this type")
    test_connection = SubmitField("Test connection")
    save = SubmitField("Register tenant")

    def chosen_type(self) -> str:
        value = self.identityProviderType.data
        return value if value in IDP_TYPES else ""

    def body(self, *, editing: bool = False) -> dict[str, Any]:
        """The registration API's body: nested, exact field names, only the chosen type's section.
        On edit tenantId and tenantDomain are left out: the service keeps the stored ones."""
        body: dict[str, Any] = {}
        names = ["displayName", "clientId", "clientSecret", "signingKey"]
        if not editing:
            names[:0] = ["tenantId", "tenantDomain"]
        for name in names:
            if (value := _text(self[name].data)) is not None:
                body[name] = value
        body["identityProviderType"] = self.identityProviderType.data
        body["supportAlgorithm"] = self.supportAlgorithm.data
        size = self.rsaKeySize.data
        body["rsaKeySize"] = int(size) if size and size.isdigit() else size
        owner = {key: value for key, name in OWNER_FIELDS.items() if (value := _text(self[name].data)) is not None}
        password = _text(self.ownerPassword.data)
        if owner or password:
            owner["provisioningMethod"] = self.ownerProvisioningMethod.data
            if password is not None:
                owner["password"] = password
            body["owner"] = owner
        idp_type = self.chosen_type()
        if idp_type in RELATIONAL:
            body["relationalSchema"] = self._section("relationalSchema")
        elif idp_type == "LDAP":
            body["ldapSchema"] = {**self._section("ldapSchema"), "startTLS": bool(self.startTLS.data)}
        elif idp_type == "EXTERNAL":
            for name in ("jwkSetUrl", "issuer"):
                if (value := _text(self[name].data)) is not None:
                    body[name] = value
            body["oidcSchema"] = self._section("oidcSchema")
        return body

    def _section(self, section: str) -> dict[str, str]:
        return {name: value for name in SECTION_FIELDS[section] if (value := _text(self[name].data)) is not None}

    def for_edit(self, api: dict[str, Any]) -> None:
        """Edit mode: fixed identifiers read-only, secrets described as set / not set, never filled in."""
        self.tenantId.data, self.tenantDomain.data = api["tenantId"], api["tenantDomain"]  # fixed, whatever is posted
        self.save.label.text = "Save changes"
        self.skip_check.label.text = "Save without a passing connection check"
        self.signingKey.description = ("Leave blank to keep the current key; a new one is generated when you change "
                                       "the algorithm. Or paste a new key to rotate.")
        for name, flag in SECRET_SET_FLAGS.items():
            holder: Any = api
            for step in flag:
                holder = holder.get(step) if isinstance(holder, dict) else None
            self[name].description = ("set — leave blank to keep" if holder else "not set")
            if holder and name in BOUND_SECRETS:
                self[name].description += f" ({BOUND_SECRETS[name]})"

    @staticmethod
    def data_from_api(api: dict[str, Any]) -> dict[str, Any]:
        """Form values for editing, from the service's secret-free view of the tenant."""
        data: dict[str, Any] = {name: api.get(name) for name in (
            "tenantId", "displayName", "tenantDomain", "clientId", "identityProviderType", "supportAlgorithm",
            "jwkSetUrl", "issuer")}
        owner = api.get("owner") or {}
        for key, name in OWNER_FIELDS.items():
            data[name] = owner.get(key)
        if owner.get("provisioningMethod"):
            data["ownerProvisioningMethod"] = owner["provisioningMethod"]
        for section, names in SECTION_FIELDS.items():
            values = api.get(section) or {}
            for name in names:
                if name not in ("dataSourcePassword", "bindPassword"):
                    data[name] = values.get(name)
        data["startTLS"] = bool((api.get("ldapSchema") or {}).get("startTLS"))
        key = api.get("signingKey") or {}
        if key.get("bits") in RSA_KEY_SIZES and str(key.get("algorithm", "")).startswith("RS"):
            data["rsaKeySize"] = str(key["bits"])
        return data


class DecommissionForm(FlaskForm):
    """The tenant page's decommission: the administrator types the tenant id; the service compares it."""

    confirm = StringField("Type the tenant id to confirm", validators=[Length(max=64)])
    submit = SubmitField("Decommission tenant")


class TenantSearchForm(FlaskForm):
    """The list's search and filters: a GET form that changes nothing, so no CSRF token."""

    class Meta:
        csrf = False

    q = StringField("Search", validators=[Optional(), Length(max=255)])
    type = SelectField("Type", choices=[SelectChoice("", "any"), *_choices(IDP_TYPES)], default="")
    status = SelectField("Status", choices=[SelectChoice("", "any"), *_choices(STATUS_CHOICES)], default="")


class TokenLabForm(FlaskForm):
    """The token lab: one button issues a test token; the other decodes and validates the pasted one."""

    token = TextAreaField("Token", validators=[Optional(), Length(max=16384)],
                          description="A JWT, with or without 'Bearer '.")
    audience = StringField("Expected audience", validators=[Optional(), Length(max=255)],
                           description="Leave empty for the portal's audience (EXTERNAL tenants: the client id).")
    issue = SubmitField("Issue test token")
    check = SubmitField("Decode and validate")  # not validate_token: WTForms would take it for an inline validator

    def validate(self, extra_validators=None) -> bool:
        if not super().validate(extra_validators):
            return False
        if not self.issue.data and not (self.token.data or "").strip():
            self.token.errors = ["Paste a token to decode and validate."]
            return False
        return True
