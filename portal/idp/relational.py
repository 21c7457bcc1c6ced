"""Relational user stores (ORACLE, POSTGRES): relationalSchema with a JDBC URL, a user and a password."""
from __future__ import annotations

import random
import secrets
from collections.abc import Mapping
from typing import Any

from portal.clients import jdbc, tenant_users, user_stores
from portal.clients.checks import CheckResult
from portal.idp import jdbc_url, parsing, schema as js
from portal.idp.base import CheckEnv, Field, IdpFamily, ParseContext
from portal.idp.outbound import policy
from portal.services.tenants import secret_binding

SECTION = "relationalSchema"
JDBC_PATTERN = r"^jdbc:(postgresql://[^/?#]+/[A-Za-z_][A-Za-z0-9_$]*(\?.*)?|oracle:thin:@.+)$"
_PRODUCT = {"POSTGRES": "PostgreSQL", "ORACLE": "Oracle"}


class Relational(IdpFamily):
    types = ("ORACLE", "POSTGRES")
    labels = {"ORACLE": "ORACLE: Oracle database", "POSTGRES": "POSTGRES: PostgreSQL database"}
    title = "Database (relationalSchema)"
    keys = (SECTION,)
    objects = frozenset({SECTION})
    stored_under = SECTION
    fields = (
        Field(jdbc_url.URL_FIELD, "dataSourceURL", "JDBC URL", "jdbc_url", description=(
            "jdbc:postgresql://host:port/db?currentSchema=schema, jdbc:oracle:thin:@//host:port/service "
            "or jdbc:oracle:thin:@host:port:SID"), render={"autocomplete": "off", "spellcheck": "false"}),
        Field(jdbc_url.USER_FIELD, "dataSourceUserName", "Database user", render={"autocomplete": "off"}),
        Field(jdbc_url.PASSWORD_FIELD, "dataSourcePassword", "Database password", "password", secret=True,
              render={"autocomplete": "new-password"}),
    )
    bound_secret_hint = "enter it again when you change the host, port, database, URL parameters or user"
    password_grant = True
    users_access = "manage"
    demo_weight = {"POSTGRES": 40, "ORACLE": 20}

    def parse(self, idp_type: str, body: dict, ctx: ParseContext, errors: parsing.Errors) -> tuple[dict, str | None]:
        """ctx.stored: the stored settings when a password is stored for this type (a blank one may keep it)."""
        stored = ctx.stored
        schema = parsing.section(body, SECTION, self.allowed(SECTION), errors, required=True)
        if schema is None:
            return {}, None
        url = parsing.text(schema, "dataSourceURL", errors, path=jdbc_url.URL_FIELD, required=True, limit=2048)
        user = parsing.text(schema, "dataSourceUserName", errors, path=jdbc_url.USER_FIELD, required=True, limit=128)
        password = parsing.text(schema, "dataSourcePassword", errors, path=jdbc_url.PASSWORD_FIELD,
                                required=stored is None, limit=512, strip=False, secret=True)
        if url and secret_binding.url_has_password(url):
            errors.add(jdbc_url.URL_FIELD, secret_binding.URL_PASSWORD_MESSAGE)  # never parsed, echoed or stored
            url = None
        if stored is not None and (problem := secret_binding.refusal(
                stored=True, entered=password is not None, before=self.secret_target(stored),
                after=self.secret_target({"dataSourceURL": url or schema.get("dataSourceURL"),
                                          "dataSourceUserName": user}))):
            errors.add(jdbc_url.PASSWORD_FIELD, problem)
        if url:
            try:
                target = jdbc_url.parse_jdbc_url(url)
            except ValueError as exc:
                errors.add(jdbc_url.URL_FIELD, str(exc))
            else:
                if target.kind != jdbc_url.expected_kind(idp_type):
                    errors.add(jdbc_url.URL_FIELD, f"identityProviderType is {idp_type} but this is not a "
                                               f"{_PRODUCT[idp_type]} JDBC URL.")
        return {"dataSourceURL": url, "dataSourceUserName": user}, password

    def secret_target(self, settings: Mapping[str, Any]) -> secret_binding.Target:
        return secret_binding.jdbc_target(settings.get("dataSourceURL"), settings.get("dataSourceUserName"))

    def check(self, idp_type: str, settings: Mapping[str, Any], secret: str | None, algorithm: str,
              env: CheckEnv) -> CheckResult:
        return jdbc.check_relational(
            idp_type, settings["dataSourceURL"], settings["dataSourceUserName"], secret or "",
            timeout=env.timeout, provision=bool(env.config["IDP_PROVISION_USER_STORE"]), policy=policy(),
        )

    def user_lookup(self, idp_type: str, settings: Mapping[str, Any], secret: str | None, username: str,
                    password: str, config: Mapping[str, Any]) -> user_stores.UserCheck:
        target = jdbc_url.parse_jdbc_url(settings["dataSourceURL"])
        check = user_stores.check_postgres if idp_type == "POSTGRES" else user_stores.check_oracle
        return check(target, settings.get("dataSourceUserName") or "", secret or "", username, password,
                     timeout=float(config["USER_STORE_TIMEOUT"]))

    def tenant_users(self, idp_type: str, settings: Mapping[str, Any], secret: str | None,
                     config: Mapping[str, Any]) -> tenant_users.RelationalUsers:
        return tenant_users.RelationalUsers(jdbc_url.parse_jdbc_url(settings["dataSourceURL"]),
                                            settings.get("dataSourceUserName") or "", secret or "",
                                            timeout=float(config["USER_STORE_TIMEOUT"]))

    def api_view(self, settings: Mapping[str, Any], secret_set: bool) -> dict[str, Any]:
        view = super().api_view(settings, secret_set)
        if "dataSourceURL" in settings:  # a password pasted into the URL before that was refused stays hidden
            view[SECTION]["dataSourceURL"] = secret_binding.redact_url(settings["dataSourceURL"])
        return view

    def audit_view(self, settings: Mapping[str, Any], secret: str | None) -> dict[str, Any]:
        view = super().audit_view(settings, secret)
        if "dataSourceURL" in view:
            view["dataSourceURL"] = secret_binding.redact_url(view["dataSourceURL"])
        return view

    def openapi_components(self) -> dict[str, js.Schema]:
        return {"RelationalSchemaRequest": _schema(update=False), "RelationalSchemaUpdate": _schema(update=True)}

    def openapi_variants(self, update: bool):
        suffix = "Update" if update else "Request"
        return [("Relational (ORACLE, POSTGRES)", self.types, {SECTION: js.ref("RelationalSchema" + suffix)})]

    def openapi_response(self):
        return {SECTION: {
            "type": "object", "additionalProperties": False,
            "required": ["dataSourceURL", "dataSourceUserName", "dataSourcePasswordSet"],
            "properties": {"dataSourceURL": {"type": "string"}, "dataSourceUserName": {"type": "string"},
                           "dataSourcePasswordSet": {"type": "boolean"}}}}, [SECTION]

    def demo(self, idp_type: str, tenant_id: str, n: int, rng: random.Random) -> tuple[dict[str, Any], str | None]:
        slug = tenant_id.replace("-", "_")
        if idp_type == "POSTGRES":
            return {"dataSourceURL": f"jdbc:postgresql://pg-{n % 8 + 1:02d}.demo.internal:5432/{slug}"
                                     "?currentSchema=users", "dataSourceUserName": slug}, secrets.token_urlsafe(18)
        return {"dataSourceURL": f"jdbc:oracle:thin:@//ora-{n % 4 + 1:02d}.demo.internal:1521/TENANTS",
                "dataSourceUserName": slug.upper()}, secrets.token_urlsafe(18)


def _schema(update: bool) -> js.Schema:
    keep = " On update, leave it out to keep the stored password." if update else ""
    password = js.text("The database password. Stored encrypted, never returned." + keep, 512, writeOnly=True)
    return {
        "type": "object", "additionalProperties": False,
        "required": ["dataSourceURL", "dataSourceUserName"] + ([] if update else ["dataSourcePassword"]),
        "properties": {
            "dataSourceURL": js.text(
                "JDBC URL: jdbc:postgresql://host[:port]/database[?currentSchema=schema] for POSTGRES; "
                "jdbc:oracle:thin:@//host[:port]/service, jdbc:oracle:thin:@host:port/service or "
                "jdbc:oracle:thin:@host:port:SID for ORACLE. The check connects for real and creates the user "
                "store (um_user, um_role, um_user_role) in the schema when absent.", 2048, pattern=JDBC_PATTERN),
            "dataSourceUserName": js.text("The database user.", 128),
            "dataSourcePassword": js.nullable(password) if update else password,
        },
    }


FAMILY = Relational()
