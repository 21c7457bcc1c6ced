"""EXTERNAL OpenID Connect providers: jwkSetUrl and issuer at the top level, oidcSchema with the endpoints, or the
Microsoft Entra ID preset (entraId, portal/idp/entra.py) from which the portal derives those three.
They sign their tenants' tokens themselves, with RSA keys from their JWKS; nothing secret is stored."""
from __future__ import annotations

import random
import re
from collections.abc import Mapping
from typing import Any

from portal.clients import entra as entra_check, oidc_discovery
from portal.clients.checks import CheckResult
from portal.idp import entra, parsing, schema as js
from portal.idp.base import CheckEnv, Field, IdpFamily, ParseContext
from portal.idp.outbound import fetcher

SECTION = "oidcSchema"
SCOPE_RE = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]+( [\x21\x23-\x5B\x5D-\x7E]+)*")
RSA_ALGORITHMS = ["RS256", "RS384", "RS512"]
_URL_ATTRS = {"autocomplete": "off", "spellcheck": "false"}


class External(IdpFamily):
    types = ("EXTERNAL",)
    labels = {"EXTERNAL": "EXTERNAL: OpenID Connect provider"}
    title = "OpenID Connect provider: Microsoft Entra ID or another"
    keys = ("jwkSetUrl", "issuer", SECTION, entra.SECTION)
    objects = frozenset({SECTION, entra.SECTION})
    stored_under = None
    fields = (
        *entra.FIELDS,
        Field("jwkSetUrl", "jwkSetUrl", "JWK set URL", render=_URL_ATTRS,
              description="https://… the provider's JWKS (with the Entra ID preset: derived, leave empty)."),
        Field("issuer", "issuer", "Issuer", render=_URL_ATTRS,
              description="Must equal the issuer in <issuer>/.well-known/openid-configuration (with the Entra ID "
                          "preset: derived, leave empty)."),
        Field("oidcSchema.authUrl", "authUrl", "Authorization URL", render=_URL_ATTRS),
        Field("oidcSchema.accessTokenUrl", "accessTokenUrl", "Token URL", render=_URL_ATTRS),
        Field("oidcSchema.scope", "scope", "Scope", description='Space-separated, e.g. "openid profile".',
              render={"autocomplete": "off"}),
    )
    issues_tokens = False
    demo_weight = {"EXTERNAL": 15}
    demo_algorithms = (("RS256", 80), ("RS384", 10), ("RS512", 10))

    def parse(self, idp_type: str, body: dict, ctx: ParseContext, errors: parsing.Errors) -> tuple[dict, str | None]:
        if body.get(entra.SECTION) is not None:
            return self._parse_entra(body, ctx, errors), None
        allow_http = ctx.allow_http_urls
        jwks = parsing.url(body, "jwkSetUrl", "jwkSetUrl", allow_http, errors)
        issuer = parsing.url(body, "issuer", "issuer", allow_http, errors)
        schema = parsing.section(body, SECTION, self.allowed(SECTION), errors, required=True)
        auth = token = scope = None
        if schema is not None:
            auth = parsing.url(schema, "authUrl", "oidcSchema.authUrl", allow_http, errors)
            token = parsing.url(schema, "accessTokenUrl", "oidcSchema.accessTokenUrl", allow_http, errors)
            scope = parsing.text(schema, "scope", errors, path="oidcSchema.scope", required=True, limit=1024)
            if scope and not SCOPE_RE.fullmatch(scope):
                errors.add("oidcSchema.scope",
                           "Scopes are space-separated tokens, e.g. \"openid profile\" (RFC 6749 3.3).")
        if ctx.algorithm.startswith("HS"):
            errors.add("supportAlgorithm",
                       f"An EXTERNAL provider signs with its own RSA keys published in its JWKS; {ctx.algorithm} "
                       "cannot be verified that way. Choose RS256, RS384 or RS512.")
        return {"jwkSetUrl": jwks, "issuer": issuer,
                SECTION: {"authUrl": auth, "accessTokenUrl": token, "scope": scope}}, None

    @staticmethod
    def _parse_entra(body: dict, ctx: ParseContext, errors: parsing.Errors) -> dict:
        preset = entra.parse(body, ctx.allow_http_urls, ctx.algorithm, errors)
        if preset is None:
            return {}
        derived = entra.derive(preset)
        entra.agree(body, derived, errors)
        return {**derived, entra.SECTION: preset}

    def check(self, idp_type: str, settings: Mapping[str, Any], secret: str | None, algorithm: str,
              env: CheckEnv) -> CheckResult:
        preset = settings.get(entra.SECTION)
        if preset:
            return entra_check.check_entra(entra_check.Preset.of(preset, settings), algorithm, fetcher(),
                                           env.client)
        return oidc_discovery.check_oidc(settings["issuer"], settings["jwkSetUrl"], algorithm, fetcher())

    def api_view(self, settings: Mapping[str, Any], secret_set: bool) -> dict[str, Any]:
        view = super().api_view(settings, secret_set)
        if view.get(entra.SECTION) is None:
            view.pop(entra.SECTION, None)  # a generic OpenID provider
        return view

    def form_body(self, data: Mapping[str, Any]) -> dict[str, Any]:
        body = super().form_body(data)
        preset = body.get(entra.SECTION) or {}
        if not any(value not in (None, False) for value in preset.values()):
            body.pop(entra.SECTION, None)  # no preset field filled in: a generic OpenID provider
        else:  # derived from the preset: an edit form's copies of the old values must not contradict a new directory
            for name in ("jwkSetUrl", "issuer", SECTION):
                body.pop(name, None)
        return body

    def openapi_variants(self, update: bool):
        return [self._openapi_generic(), ("EXTERNAL (Microsoft Entra ID preset)", self.types, {
            "supportAlgorithm": {"type": "string", "enum": ["RS256"],
                                 "description": "Entra ID signs with RS256 only (case-insensitive)."},
            entra.SECTION: js.ref("EntraIdRequest"),
            "jwkSetUrl": js.text("Optional: derived from entraId; if given it must equal the derived value.", 2048),
            "issuer": js.text("Optional: derived from entraId; if given it must equal the derived value.", 2048),
            SECTION: {"type": "object", "description": "Optional: derived from entraId; members given must equal "
                                                       "the derived values."},
        }, ("jwkSetUrl", "issuer", SECTION))]

    def _openapi_generic(self):
        return ("EXTERNAL (OpenID Connect)", self.types, {
            "supportAlgorithm": {
                "type": "string", "enum": RSA_ALGORITHMS,
                "description": "Required for EXTERNAL: the provider signs with its own RSA keys (case-insensitive)."},
            "jwkSetUrl": js.text("The provider's JWKS URL (https; http only where the portal allows it for labs). "
                                 "The check fetches it and requires keys that fit supportAlgorithm (RSA of at least "
                                 "2048 bits).", 2048, format="uri", pattern=js.HTTPS_PATTERN),
            "issuer": js.text("The provider's issuer. The check fetches <issuer>/.well-known/openid-configuration "
                              "and requires its `issuer` to equal this value exactly.", 2048, format="uri",
                              pattern=js.HTTPS_PATTERN),
            SECTION: js.ref("OidcSchemaRequest"),
        })

    def openapi_components(self) -> dict[str, js.Schema]:
        return {"EntraIdRequest": entra.openapi_request(), "OidcSchemaRequest": {
            "type": "object", "additionalProperties": False,
            "required": ["authUrl", "accessTokenUrl", "scope"],
            "properties": {
                "authUrl": js.text("The provider's authorization endpoint (https).", 2048, format="uri",
                                   pattern=js.HTTPS_PATTERN),
                "accessTokenUrl": js.text("The provider's token endpoint (https).", 2048, format="uri",
                                          pattern=js.HTTPS_PATTERN),
                "scope": js.text('Space-separated scopes (RFC 6749 3.3), e.g. "openid profile".', 1024,
                                 pattern=f"^{SCOPE_RE.pattern}$"),
            },
        }}

    def openapi_response(self):
        return {
            "jwkSetUrl": {"type": "string"},
            "issuer": {"type": "string"},
            SECTION: {
                "type": "object", "additionalProperties": False, "required": ["authUrl", "accessTokenUrl", "scope"],
                "properties": {"authUrl": {"type": "string"}, "accessTokenUrl": {"type": "string"},
                               "scope": {"type": "string"}}},
            entra.SECTION: entra.openapi_response(),
        }, ["jwkSetUrl", "issuer", SECTION]

    def demo(self, idp_type: str, tenant_id: str, n: int, rng: random.Random) -> tuple[dict[str, Any], str | None]:
        issuer = f"https://login.demo.example/{tenant_id}/v2.0"
        return {"jwkSetUrl": f"{issuer}/keys", "issuer": issuer,
                SECTION: {"authUrl": f"{issuer}/authorize", "accessTokenUrl": f"{issuer}/token",
                          "scope": "openid profile email"}}, None


FAMILY = External()
