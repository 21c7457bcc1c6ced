"""LDAP directories: ldapSchema with the directory URL, domain, root DN, an optional bind DN and its password."""
from __future__ import annotations

import random
import secrets
from collections.abc import Mapping
from typing import Any

from portal.clients import ldap, tenant_users, user_stores
from portal.clients.checks import CheckResult
from portal.idp import ldap_settings, parsing, schema as js
from portal.idp.base import CheckEnv, Field, IdpFamily, ParseContext
from portal.idp.outbound import policy
from portal.services.tenants import secret_binding

SECTION = "ldapSchema"
LDAP_URL_PATTERN = r"^ldaps?://[^/?#@]+/?$"
DN_PATTERN = r"^[A-Za-z][A-Za-z0-9-]*=[^,]+(,[A-Za-z][A-Za-z0-9-]*=[^,]+)*$"
_NO_SPELLCHECK = {"autocomplete": "off", "spellcheck": "false"}


class Ldap(IdpFamily):
    types = ("LDAP",)
    labels = {"LDAP": "LDAP: directory service"}
    title = "Directory (ldapSchema)"
    keys = (SECTION,)
    objects = frozenset({SECTION})
    stored_under = SECTION
    fields = (
        Field(ldap_settings.URL_FIELD, "ldapURLForDirectoryService", "Directory URL",
              description="ldap://host[:port] or ldaps://host[:port]", render=_NO_SPELLCHECK),
        Field(ldap_settings.DOMAIN_FIELD, "directoryServiceDomainName", "Directory domain name",
              description="e.g. example.com", render={"autocomplete": "off"}),
        Field(ldap_settings.ROOT_DN_FIELD, "directoryServiceRootDistinguishedName", "Root DN",
              description="e.g. dc=example,dc=com", render=_NO_SPELLCHECK),
        Field(ldap_settings.BIND_DN_FIELD, "bindDN", "Bind DN",
              description="Optional: leave bind DN and password empty to bind anonymously.", render=_NO_SPELLCHECK),
        Field(ldap_settings.PASSWORD_FIELD, "bindPassword", "Bind password", "password", secret=True,
              render={"autocomplete": "new-password"}),
        Field("ldapSchema.startTLS", "startTLS", "Use StartTLS (ldap:// only)", "boolean"),
    )
    bound_secret_hint = "enter it again when you change the directory URL, StartTLS or bind DN"
    password_grant = True
    users_access = "browse"
    demo_weight = {"LDAP": 25}

    def parse(self, idp_type: str, body: dict, ctx: ParseContext, errors: parsing.Errors) -> tuple[dict, str | None]:
        """ctx.stored: the stored settings when a bind password is stored (a blank one may keep it)."""
        stored = ctx.stored
        schema = parsing.section(body, SECTION, self.allowed(SECTION), errors, required=True)
        if schema is None:
            return {}, None
        url = parsing.text(schema, "ldapURLForDirectoryService", errors, path=ldap_settings.URL_FIELD, required=True,
                           limit=2048)
        domain = parsing.text(schema, "directoryServiceDomainName", errors, path=ldap_settings.DOMAIN_FIELD,
                              required=True, limit=253)
        root = parsing.text(schema, "directoryServiceRootDistinguishedName", errors, path=ldap_settings.ROOT_DN_FIELD,
                            required=True, limit=1024)
        bind_dn = parsing.text(schema, "bindDN", errors, path=ldap_settings.BIND_DN_FIELD, limit=1024)
        password = parsing.text(schema, "bindPassword", errors, path=ldap_settings.PASSWORD_FIELD, limit=512,
                                strip=False, secret=True)
        start_tls = parsing.boolean(schema, "startTLS", errors, path="ldapSchema.startTLS")
        secret_set = stored is not None and bool(stored.get("bindDN"))
        if secret_set and bind_dn and (problem := secret_binding.refusal(
                stored=True, entered=password is not None, before=self.secret_target(stored),
                after=self.secret_target({"ldapURLForDirectoryService": url or schema.get("ldapURLForDirectoryService"),
                                          "startTLS": start_tls, "bindDN": bind_dn}))):
            errors.add(ldap_settings.PASSWORD_FIELD, problem)
        if url and domain and root:
            # A stored password counts for the pairing rule: on update a blank password keeps it.
            check_password = password or ("(stored)" if secret_set and bind_dn else None)
            _, problems, _ = ldap_settings.validate_settings(url, domain, root, bind_dn, check_password, start_tls)
            for path, message in problems.items():
                errors.add(path, message)
        settings = {"ldapURLForDirectoryService": url, "directoryServiceDomainName": domain,
                    "directoryServiceRootDistinguishedName": root, "bindDN": bind_dn, "startTLS": start_tls}
        return settings, password if bind_dn else None

    def secret_target(self, settings: Mapping[str, Any]) -> secret_binding.Target:
        return secret_binding.ldap_target(settings.get("ldapURLForDirectoryService"), bool(settings.get("startTLS")),
                                          settings.get("bindDN"))

    def keeps_secret(self, settings: Mapping[str, Any]) -> bool:
        return bool(settings.get("bindDN"))  # anonymous bind: no password to keep

    def check(self, idp_type: str, settings: Mapping[str, Any], secret: str | None, algorithm: str,
              env: CheckEnv) -> CheckResult:
        return ldap.check_ldap(
            settings["ldapURLForDirectoryService"], settings["directoryServiceDomainName"],
            settings["directoryServiceRootDistinguishedName"], bind_dn=settings.get("bindDN"),
            bind_password=secret, start_tls=bool(settings.get("startTLS")),
            ca_file=env.config["LDAP_CA_FILE"], timeout=env.timeout, policy=policy(),
        )

    def user_lookup(self, idp_type: str, settings: Mapping[str, Any], secret: str | None, username: str,
                    password: str, config: Mapping[str, Any]) -> user_stores.UserCheck:
        return user_stores.check_ldap(dict(settings), secret, username, password, ca_file=config.get("LDAP_CA_FILE"),
                                      timeout=float(config["USER_STORE_TIMEOUT"]))

    def tenant_users(self, idp_type: str, settings: Mapping[str, Any], secret: str | None,
                     config: Mapping[str, Any]) -> tenant_users.DirectoryUsers:
        return tenant_users.DirectoryUsers(settings, secret, ca_file=config.get("LDAP_CA_FILE"),
                                           timeout=float(config["USER_STORE_TIMEOUT"]))

    def openapi_components(self) -> dict[str, js.Schema]:
        return {"LdapSchemaRequest": _schema(update=False), "LdapSchemaUpdate": _schema(update=True)}

    def openapi_variants(self, update: bool):
        return [("LDAP", self.types, {SECTION: js.ref("LdapSchema" + ("Update" if update else "Request"))})]

    def openapi_response(self):
        nullable_text = {"type": ["string", "null"]}
        return {SECTION: {
            "type": "object", "additionalProperties": False,
            "required": ["ldapURLForDirectoryService", "directoryServiceDomainName",
                         "directoryServiceRootDistinguishedName", "bindPasswordSet"],
            "properties": {"ldapURLForDirectoryService": {"type": "string"},
                           "directoryServiceDomainName": {"type": "string"},
                           "directoryServiceRootDistinguishedName": {"type": "string"},
                           "bindDN": nullable_text, "startTLS": {"type": "boolean"},
                           "bindPasswordSet": {"type": "boolean"}}}}, [SECTION]

    def demo(self, idp_type: str, tenant_id: str, n: int, rng: random.Random) -> tuple[dict[str, Any], str | None]:
        root = f"dc={tenant_id},dc=demo,dc=internal"
        bind = rng.random() < 0.7
        return {"ldapURLForDirectoryService": f"ldaps://ldap-{n % 4 + 1}.demo.internal:636",
                "directoryServiceDomainName": f"{tenant_id}.demo.internal",
                "directoryServiceRootDistinguishedName": root, "bindDN": f"cn=portal,{root}" if bind else None,
                "startTLS": False}, secrets.token_urlsafe(18) if bind else None


def _schema(update: bool) -> js.Schema:
    keep = " On update, leave it out to keep the stored password." if update else ""
    return {
        "type": "object", "additionalProperties": False,
        "required": ["ldapURLForDirectoryService", "directoryServiceDomainName",
                     "directoryServiceRootDistinguishedName"],
        "properties": {
            "ldapURLForDirectoryService": js.text("ldap://host[:port] or ldaps://host[:port], nothing else.", 2048,
                                                  pattern=LDAP_URL_PATTERN),
            "directoryServiceDomainName": js.text("The directory's DNS domain name, e.g. example.com.", 253,
                                                  pattern=r"^([A-Za-z0-9-]+\.)+[A-Za-z][A-Za-z0-9-]*$"),
            "directoryServiceRootDistinguishedName": js.text("The root DN the check reads, e.g. dc=example,dc=com.",
                                                             1024, pattern=DN_PATTERN),
            "bindDN": js.nullable(js.text("DN to bind as (with bindPassword); left out, the check binds anonymously.",
                                          1024)),
            "bindPassword": js.nullable(js.text("Password of bindDN. Stored encrypted, never returned." + keep, 512,
                                                writeOnly=True)),
            "startTLS": {"type": "boolean", "default": False,
                         "description": "Upgrade an ldap:// connection with StartTLS."},
        },
    }


FAMILY = Ldap()
