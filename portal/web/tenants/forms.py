"""Tenant forms. They check shape only (CSRF, known choices) and translate between the form's flat fields and the
registration API's nested body; every rule about the values lives in services/tenant_spec.py."""
from __future__ import annotations

import re
from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    HiddenField,
    PasswordField,
    SelectChoice,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import Length, Optional

from portal.idp import registry
from portal.idp.base import Field
from portal.models.tenant import ALGORITHMS, PROVISIONING_METHODS
from portal.services.errors import ValidationError
from portal.services.tenants import fields as tenant_fields, secret_binding
from portal.services.tokens.signing_keys import RSA_KEY_SIZES

STATUS_CHOICES = ("active", "inactive", "unverified")
KEPT = "kept (typed earlier) — leave blank to keep, type to replace"
KEPT_DROPPED = "The value typed earlier was for another server or user: type it again."


def field_of_path() -> dict[str, str]:
    """API field path (as services report errors) -> form field name. Paths not listed show at the top of the form."""
    return {f.path: f.form_name for f in tenant_fields.all_fields()}


def label_of(path: str) -> str:
    """The form's label of the field at an API path (the path itself when no field has it)."""
    return next((f.label for f in tenant_fields.all_fields() if f.path == path), path)


def _label(path: str) -> str:
    return tenant_fields.common(path).label


def form_errors(errors: dict[str, str]) -> ValidationError:
    """The service's errors re-keyed from API paths to form field names, for apply_errors. A path with no field
    keeps its own key (no field has that name), so apply_errors shows it at the top, prefixed with the path. An item
    of a list (entraId.audiences[1]) belongs to the list's field."""
    mapped: dict[str, str] = {}
    names = field_of_path()
    for path, message in errors.items():
        field = names.get(path) or names.get(re.sub(r"\[\d+\]$", "", path))
        if field is not None:
            mapped.setdefault(field, message)
        else:
            mapped[f"api:{path}" if path else ""] = f"{path}: {message}" if path else message
    return ValidationError(mapped)


class JdbcUrlField(StringField):
    """A JDBC URL written back into the page with any password in it replaced by *** (the service refuses it)."""

    def _value(self) -> str:
        return secret_binding.redact_url(super()._value())


class SecretTextAreaField(TextAreaField):
    """A textarea that never writes its value back into the page: a pasted key is not echoed (data-secret: the
    register form's review step shows it only as typed or not)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("render_kw", {"data-secret": ""})
        super().__init__(*args, **kwargs)

    def _value(self) -> str:
        return ""


def _choices(values, labels: dict[str, str] | None = None) -> list[SelectChoice]:
    return [SelectChoice(str(v), (labels or {}).get(str(v), str(v))) for v in values]


def _text(value: str | None) -> str | None:
    """Blank optional strings are left out of the body: the service decides what is required."""
    return value if value is not None and value.strip() else None


def _type_choices() -> list[SelectChoice]:
    return [SelectChoice(t, family.labels.get(t, t)) for family in registry.families() for t in family.types]


_FIELD_CLASSES = {"text": StringField, "password": PasswordField, "boolean": BooleanField, "textarea": TextAreaField,
                  "secret_textarea": SecretTextAreaField, "jdbc_url": JdbcUrlField}


def _form_field(spec: Field):
    return _FIELD_CLASSES[spec.kind](spec.label, description=spec.description)


class _IdpFieldsMeta(type(FlaskForm)):
    """Gives the form the fields of every registered identity-provider family when it is instantiated, so a family
    registered later (a plug-in, a test) has its fields on the form, and an unregistered one loses them."""

    def __call__(cls, *args, **kwargs):
        wanted = {spec.form_name: spec for family in registry.families() for spec in family.fields}
        present: dict[str, Field] = cls.__dict__.get("_idp_fields", {})
        if wanted != present:
            for name in set(present) - set(wanted):
                delattr(cls, name)
            after = cls.rsaKeySize.creation_counter  # in the form's order between the token fields and skip_check
            for index, (name, spec) in enumerate(wanted.items(), 1):
                if present.get(name) != spec:
                    field = _form_field(spec)
                    field.creation_counter = after + index / 10000
                    setattr(cls, name, field)
            cls._idp_fields = wanted
        return super().__call__(*args, **kwargs)


class IdpSection:
    """One family's part of the form: its heading, the types that show it, and its fields with their attributes."""

    def __init__(self, form: TenantForm, family) -> None:
        self.title = family.title
        self.types = family.types
        self.fields = [(form[spec.form_name], dict(spec.render)) for spec in family.fields]


class TenantForm(FlaskForm, metaclass=_IdpFieldsMeta):
    tenantId = StringField(_label("tenantId"), description="1 to 64 letters, digits, '_' or '-'. Cannot change later.")
    displayName = StringField(_label("displayName"), description="Optional; the tenant id when blank.")
    tenantDomain = StringField(_label("tenantDomain"), description=(
        "Optional: derived as <tenant id>.<suffix> when blank. Lower-case letters, digits, '.', '_' and '-'. "
        "Cannot change later: Identity Server 7 cannot rename a tenant."))

    ownerUsername = StringField(_label("owner.username"), description="Leave every owner field empty for no owner.")
    ownerEmail = StringField(_label("owner.email"))
    ownerFirstName = StringField(_label("owner.firstName"))
    ownerLastName = StringField(_label("owner.lastName"))
    ownerProvisioningMethod = SelectField(_label("owner.provisioningMethod"), choices=_choices(PROVISIONING_METHODS, {
        "inline-password": "inline-password: set the password here",
        "invite-via-email": "invite-via-email: the owner sets it from an email link"}),
        default="invite-via-email")
    ownerPassword = PasswordField(_label("owner.password"), description="Only for inline-password.")

    clientId = StringField(_label("clientId"))
    clientSecret = PasswordField(_label("clientSecret"))
    identityProviderType = SelectField(_label("identityProviderType"), default="POSTGRES")
    supportAlgorithm = SelectField(_label("supportAlgorithm"), choices=_choices(ALGORITHMS), default="HS256")
    signingKey = SecretTextAreaField(_label("signingKey"), description=(
        "Leave blank to generate. HS256/384/512: a shared secret of at least 32/48/64 bytes. "
        "RS256/384/512: a PEM RSA private key of at least 2048 bits."))
    rsaKeySize = SelectField(_label("rsaKeySize"), choices=_choices(RSA_KEY_SIZES), default="2048",
                             description="Used when the portal generates an RSA key pair (RS256/384/512).")

    # Each identity-provider family's fields are added by _IdpFieldsMeta.

    confirmAlgorithmChange = BooleanField("Change the algorithm and rotate the signing key")
    kept = HiddenField()  # the handle of the secrets kept for this form (services.tenants.kept_secrets)

    skip_check = BooleanField("Register without a passing connection check",
                              description="The tenant is stored but shows as unverified until a check passes.")
    refresh = SubmitField("Show fields for this type")
    test_connection = SubmitField("Test connection")
    save = SubmitField("Register tenant")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.identityProviderType.choices = _type_choices()

    def chosen_type(self) -> str:
        value = self.identityProviderType.data
        return value if value in registry.names() else ""

    def idp_sections(self) -> list[IdpSection]:
        return [IdpSection(self, family) for family in registry.families()]

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
        owner = {key: value for key, name in _owner_fields().items() if (value := _text(self[name].data)) is not None}
        password = _text(self.ownerPassword.data)
        if owner or password:
            owner["provisioningMethod"] = self.ownerProvisioningMethod.data
            if password is not None:
                owner["password"] = password
            body["owner"] = owner
        if family := registry.find(self.chosen_type()):
            body.update(family.form_body({spec.form_name: self[spec.form_name].data for spec in family.fields}))
        return body

    def for_edit(self, api: dict[str, Any]) -> None:
        """Edit mode: fixed identifiers read-only, secrets described as set / not set, never filled in."""
        self.tenantId.data, self.tenantDomain.data = api["tenantId"], api["tenantDomain"]  # fixed, whatever is posted
        self.save.label.text = "Save changes"
        self.skip_check.label.text = "Save without a passing connection check"
        self.signingKey.description = ("Leave blank to keep the current key; a new one is generated when you change "
                                       "the algorithm. Or paste a new key to rotate.")
        for spec, flag, hint in _stored_secrets():
            holder: Any = api
            for step in flag:
                holder = holder.get(step) if isinstance(holder, dict) else None
            self[spec.form_name].description = ("set — leave blank to keep" if holder else "not set")
            if holder and hint:
                self[spec.form_name].description += f" ({hint})"

    def mark_kept(self, kept: list[str], dropped: list[str]) -> list[str]:
        """Describe the secrets kept for this form (by API path) as kept; the labels of those kept."""
        names = field_of_path()
        for path in dropped:
            if path in names and path not in kept:
                self[names[path]].description = KEPT_DROPPED
        labels = []
        for path in kept:
            if path in names:
                self[names[path]].description = KEPT
                labels.append(str(self[names[path]].label.text))
        return labels

    @staticmethod
    def data_from_api(api: dict[str, Any]) -> dict[str, Any]:
        """Form values for editing, from the service's secret-free view of the tenant."""
        data: dict[str, Any] = {name: api.get(name) for name in (
            "tenantId", "displayName", "tenantDomain", "clientId", "identityProviderType", "supportAlgorithm")}
        owner = api.get("owner") or {}
        for key, name in _owner_fields().items():
            data[name] = owner.get(key)
        if owner.get("provisioningMethod"):
            data["ownerProvisioningMethod"] = owner["provisioningMethod"]
        for family in registry.families():
            for spec in family.fields:
                if spec.secret:
                    continue
                holder = (api.get(spec.section) or {}) if spec.section else api
                value = holder.get(spec.name)
                if isinstance(value, list):  # e.g. entraId.audiences: the form edits a list as text
                    value = ("\n" if spec.kind == "textarea" else " ").join(map(str, value))
                data[spec.form_name] = bool(value) if spec.kind == "boolean" else value
        key = api.get("signingKey") or {}
        if key.get("bits") in RSA_KEY_SIZES and str(key.get("algorithm", "")).startswith("RS"):
            data["rsaKeySize"] = str(key["bits"])
        return data


def _owner_fields() -> dict[str, str]:
    """Owner's API name -> form field, for the fields typed as text (not the provisioning method or password)."""
    return {f.name: f.form_name for f in tenant_fields.COMMON
            if f.section == "owner" and f.kind == "text"}


def _stored_secrets() -> list[tuple[Field, tuple[str, ...], str | None]]:
    """Each stored secret's field, where the API view says it is set, and when it must be entered again
    (services.secret_binding: a stored secret is kept only while its target is unchanged)."""
    found = []
    for spec in tenant_fields.all_fields():
        flag = tenant_fields.set_flag(spec)
        if flag is None:
            continue
        family = next((fam for fam in registry.families() if spec in fam.fields), None)
        hint = family.bound_secret_hint if family else (
            tenant_fields.OWNER_PASSWORD_HINT if spec.path == "owner.password" else None)
        found.append((spec, flag, hint))
    return found


class DecommissionForm(FlaskForm):
    """The tenant page's decommission: the administrator types the tenant id; the service compares it."""

    confirm = StringField("Type the tenant id to confirm", validators=[Length(max=64)])
    submit = SubmitField("Decommission tenant")


class TenantSearchForm(FlaskForm):
    """The list's search and filters: a GET form that changes nothing, so no CSRF token."""

    class Meta:
        csrf = False

    q = StringField("Search", validators=[Optional(), Length(max=255)])
    type = SelectField("Type", default="")
    status = SelectField("Status", choices=[SelectChoice("", "any"), *_choices(STATUS_CHOICES)], default="")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.type.choices = [SelectChoice("", "any"), *_choices(registry.names())]


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
