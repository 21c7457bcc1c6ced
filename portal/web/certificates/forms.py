"""Certificate-area forms: shape only; every rule about the values lives in the services."""
from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField, PasswordField, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import EqualTo, Length, Optional

from portal.services.certificates.mappings import HANDLER_LINES, split_usernames
from portal.services.certificates.service import MAX_UPLOAD_BYTES, ROLE_LABELS


class UploadForm(FlaskForm):
    role = SelectField("What it is", choices=[SelectChoice(k, v) for k, v in ROLE_LABELS.items()], default="apim")
    label = StringField("Label", validators=[Optional(), Length(max=128)],
                        description="Optional; the subject's CN when empty.")
    certificate = FileField("Certificate file", validators=[FileRequired("Choose a certificate file.")],
                            description=f"PEM (a bundle stores every certificate in it) or DER, at most "
                                        f"{MAX_UPLOAD_BYTES // 1024} KiB. Private keys and PKCS#12 files are refused.")
    private_key = FileField("Private key (portal client certificate only)",
                            description="PEM. Encrypted at rest and never shown; leave empty for other roles.")
    key_passphrase = PasswordField("Key passphrase", validators=[Optional(), Length(max=1024)],
                                   description="Only if the private key is encrypted.")


class MappingForm(FlaskForm):
    trusted_issuer = StringField("trusted_issuer", validators=[Length(max=2048)],
                                 description="The issuer DN as Java prints it: copy it from the certificate's page.")
    cert_thumbprint = StringField("cert_thumbprint", validators=[Length(max=512)],
                                  description="SHA-256, as on the certificate's page; pasted without colons or in "
                                              "lower case, it is saved as IS compares it (AA:BB:…). * for any "
                                              "certificate of this issuer.")
    allowed_usernames = TextAreaField("allowed_username", validators=[Length(max=20000)],
                                      description="One per line (or comma-separated); * for any user.")
    allowed_system_user = StringField("allowed_system_user", validators=[Length(max=512)],
                                      description="The user calls without WSO2-Identity-User run as; * for none.")

    def usernames(self) -> tuple[str, ...]:
        return split_usernames(self.allowed_usernames.data or "")


class HandlerLineForm(FlaskForm):
    line = SelectField("IS client-certificate handler line", choices=[SelectChoice(k, v) for k, v in
                                                                      HANDLER_LINES.items()],
                       validate_choice=False,
                       description="Which ClientCertificateBasedAuthenticationHandler your IS runs. master: "
                                   "thumbprints compared ignoring case, the user must exist, off unless "
                                   "enable = true. 1.8.x/1.11.x backport: user-mapping thumbprints compared "
                                   "case-sensitively, no user-existence check, on by default, reads "
                                   "log_client_cert_info.")


class ExplainForm(FlaskForm):
    """A GET form: explaining changes nothing, so auditors may use it too."""

    class Meta:
        csrf = False

    certificate = SelectField("Uploaded certificate", coerce=int, choices=[], validate_choice=False)
    pem = TextAreaField("…or paste a PEM certificate", validators=[Optional(), Length(max=65536)])
    user = StringField("WSO2-Identity-User", validators=[Optional(), Length(max=512)],
                       description="Leave empty for a call without the header (system mappings).")
    tenant = StringField("…or model the key manager of tenant (domain)", validators=[Optional(), Length(max=512)],
                         description="API Manager's auto-configured key manager calls as <tenant admin>@<domain>.")


class ConfigForm(FlaskForm):
    class Meta:
        csrf = False

    log_client_cert_info = BooleanField("log_client_cert_info = true (the 1.8.x/1.11.x backport logs each client "
                                        "certificate it sees; master ignores it)")


class TruststoreForm(FlaskForm):
    password = PasswordField("Truststore password", validators=[Length(max=256)],
                             description="At least 8 characters. Not stored: put it in the product's "
                                         "deployment.toml.")
    confirm = PasswordField("Repeat the password", validators=[EqualTo("password", "The passwords differ.")])
