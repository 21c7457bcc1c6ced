"""Sharing-area forms: shape only; services.connections and services.sharing validate the values."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    PasswordField,
    RadioField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
)
from wtforms.validators import Length
from wtforms.widgets import CheckboxInput, ListWidget

from portal.services.sharing.service import DIRECTION_LABELS


class ConnectionForm(FlaskForm):
    base_url = StringField("Base URL", validators=[Length(max=2048)],
                           description="The product's own address, e.g. https://is.example.com:9443.")
    auth = SelectField("Authentication", choices=[SelectChoice("mtls", "Mutual TLS (client certificate)"),
                                                  SelectChoice("basic", "Basic (user name and password)")])
    username = StringField("User name", validators=[Length(max=255)],
                           description="Basic authentication only: a super-tenant user.")
    password = PasswordField("Password", validators=[Length(max=1024)])
    identity_user = StringField("WSO2-Identity-User", validators=[Length(max=255)],
                                description="Mutual TLS only: the user the calls run as (e.g. admin); empty sends no "
                                            "header, so IS applies its system thumbprint mappings.")
    trust_roles = SelectMultipleField("Trust the stored certificates with the role",
                                      choices=[SelectChoice("ca", "CA certificate"),
                                               SelectChoice("is", "IS 7 public certificate"),
                                               SelectChoice("apim", "API Manager public certificate")],
                                      option_widget=CheckboxInput(), widget=ListWidget(prefix_label=False),
                                      validate_choice=False,
                                      description="The portal verifies the product's server certificate with these "
                                                  "stored certificates only.")
    connect_timeout = StringField("Connect timeout (seconds)", validators=[Length(max=16)])
    read_timeout = StringField("Read timeout (seconds)", validators=[Length(max=16)])
    skip_check = BooleanField("Save without testing the connection")

    def data_for_service(self) -> dict:
        return {"base_url": self.base_url.data, "auth": self.auth.data, "username": self.username.data,
                "password": self.password.data, "identity_user": self.identity_user.data,
                "trust_roles": list(self.trust_roles.data or []), "connect_timeout": self.connect_timeout.data,
                "read_timeout": self.read_timeout.data}


class SharingForm(FlaskForm):
    """Plain labels; the deployment.toml key a setting writes is named in its help text."""

    direction = RadioField("Direction", choices=[SelectChoice(k, v) for k, v in DIRECTION_LABELS.items()],
                           validate_choice=False)
    apim_username = StringField("API Manager user", validators=[Length(max=255)],
                                description="IS 7's listener signs in to API Manager's notify API as this user; it "
                                            "needs the super tenant's modify-tenant permission.")
    apim_password = PasswordField("API Manager password", validators=[Length(max=1024)])
    identity_server_base_url = StringField("IS 7 address, as API Manager reaches it", validators=[Length(max=2048)],
                                           description="e.g. https://is:9443: where API Manager pushes tenants (API "
                                                       "Manager → IS 7) and where the auto-configured key "
                                                       "manager's endpoints point (both directions). In "
                                                       "deployment.toml: identity_server_base_url.")
    is_username = StringField("IS 7 user", validators=[Length(max=255)],
                              description="API Manager signs in to IS 7's tenant API as this user (Basic).")
    is_password = PasswordField("IS 7 password", validators=[Length(max=1024)])
    auto_configure_key_manager = BooleanField("Make IS 7 the key manager of each new tenant",
                                              description="In deployment.toml: auto_configure_key_manager.")
    skip_create_resident_key_manager = BooleanField("Do not create API Manager's Resident Key Manager for new "
                                                    "tenants",
                                                    description="In deployment.toml: "
                                                                "skip_create_resident_key_manager.")
    dotless_domains = BooleanField("Tenant domains without a dot (IS 7.2)")
    confirm = BooleanField("I have removed the keys listed from the products' deployment.toml and restarted them")
    skip_check = BooleanField("Save without the pre-flight check")

    def settings(self) -> dict:
        return {name: self[name].data for name in (
            "apim_username", "apim_password", "identity_server_base_url", "is_username", "is_password",
            "auto_configure_key_manager", "skip_create_resident_key_manager", "dotless_domains")}
