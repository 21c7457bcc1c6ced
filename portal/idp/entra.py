"""The Microsoft Entra ID preset of EXTERNAL tenants (../shared/reference/entra-id.md): the administrator names the
directory, the accepted token versions, the audiences and (multi-tenant) the allowed directories; the portal derives
jwkSetUrl, issuer and oidcSchema from them. Stored as the tenant's `entraId` settings (nothing secret).

Pure: parsing, derivation and the issuer forms token validation compares with. No network, no database."""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from portal.clients.entra import (  # the issuer forms, shared with the connection check
    GUID_RE,
    MULTI_TENANT,
    TENANT_TEMPLATE,
    is_guid,
    v2_issuer,
)
from portal.idp import parsing, schema as js
from portal.idp.base import Field

SECTION = "entraId"
DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
VERSIONS = ("1.0", "2.0")
GRAPH_AUDIENCES = frozenset({"00000003-0000-0000-c000-000000000000", "https://graph.microsoft.com",
                             "https://graph.microsoft.com/"})
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
DOMAIN_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")
APP_ID_URI_RE = re.compile(r"(api|https)://[^\s/?#]+(/[^\s?#]*)?")
MAX_LIST = 50
ALLOWED = frozenset({"directory", "authority", "tokenVersions", "audiences", "allowedDirectories", "anyDirectory"})
_ATTRS = {"autocomplete": "off", "spellcheck": "false"}

FIELDS = (
    Field("entraId.directory", "entraDirectory", "Entra ID directory", description=(
        "Microsoft Entra ID preset: the directory (tenant) id, a verified domain such as contoso.onmicrosoft.com, "
        "or organizations / common for a multi-tenant application. Leave empty for a generic OpenID provider."),
        render=_ATTRS),
    Field("entraId.authority", "entraAuthority", "Entra ID authority",
          description=f"Optional: {DEFAULT_AUTHORITY} unless a national cloud.", render=_ATTRS),
    Field("entraId.tokenVersions", "entraTokenVersions", "Accepted token versions",
          description='"2.0", "1.0" or "1.0 2.0": the resource application\'s accessTokenAcceptedVersion decides '
                      "which its tokens have. Default 2.0.", render=_ATTRS),
    Field("entraId.audiences", "entraAudiences", "Audiences",
          description="The API's client id (GUID) and/or App ID URI (api://…), separated by spaces.", render=_ATTRS),
    Field("entraId.allowedDirectories", "entraAllowedDirectories", "Allowed directories", "textarea",
          description="Multi-tenant only: the directory (tenant) ids whose tokens are accepted, one per line.",
          render=_ATTRS),
    Field("entraId.anyDirectory", "entraAnyDirectory", "Accept tokens from any directory", "boolean",
          description="Multi-tenant only, instead of the allow-list: every Entra ID directory's tokens are accepted "
                      "(audited and shown as a warning)."),
)


# --- facts ---------------------------------------------------------------------------------------------------


def is_multi_tenant(preset: Mapping[str, Any]) -> bool:
    return preset.get("directory") in MULTI_TENANT


def derive(preset: Mapping[str, Any]) -> dict[str, Any]:
    """jwkSetUrl, issuer and oidcSchema of a preset, in the generic EXTERNAL settings' shape."""
    base = f"{preset['authority']}/{preset['directory']}"
    issuer = v2_issuer(preset["authority"], TENANT_TEMPLATE if is_multi_tenant(preset) else preset["directory"])
    return {"jwkSetUrl": f"{base}/discovery/v2.0/keys", "issuer": issuer,
            "oidcSchema": {"authUrl": f"{base}/oauth2/v2.0/authorize", "accessTokenUrl": f"{base}/oauth2/v2.0/token",
                           "scope": f"{preset['audiences'][0]}/.default"}}


def discovery_url(preset: Mapping[str, Any]) -> str:
    return f"{preset['authority']}/{preset['directory']}/v2.0/.well-known/openid-configuration"


# --- parsing -------------------------------------------------------------------------------------------------


def parse(body: dict, allow_http: bool, algorithm: str, errors: parsing.Errors) -> dict[str, Any] | None:
    """The entraId section, normalised (lower-case GUIDs, sorted versions), or None with its problems recorded."""
    section = parsing.section(body, SECTION, ALLOWED, errors, required=True)
    if section is None:
        return None
    before = len(errors)
    directory = _directory(section, errors)
    authority = _authority(section, allow_http, errors)
    versions = _list(section, "tokenVersions", errors, _version) or ([] if "tokenVersions" in section else ["2.0"])
    if "tokenVersions" in section and not versions and f"{SECTION}.tokenVersions" not in errors:
        errors.add(f"{SECTION}.tokenVersions", 'Give "2.0", "1.0" or both.')
    audiences = _list(section, "audiences", errors, _audience)
    if not audiences and f"{SECTION}.audiences" not in errors and not any(
            k.startswith(f"{SECTION}.audiences[") for k in errors):
        errors.add(f"{SECTION}.audiences", "Give at least one audience: the API's client id and/or App ID URI.")
    allowed = _list(section, "allowedDirectories", errors, _tid)
    any_directory = parsing.boolean(section, "anyDirectory", errors, path=f"{SECTION}.anyDirectory")
    _directory_rules(directory, allowed, any_directory, "allowedDirectories" in section, errors)
    if algorithm != "RS256":
        errors.add("supportAlgorithm", "Microsoft Entra ID signs its tokens with RS256 only; choose RS256.")
    if len(errors) > before:
        return None
    return {"directory": directory, "authority": authority, "tokenVersions": sorted(set(versions)),
            "audiences": list(dict.fromkeys(audiences)), "allowedDirectories": sorted(set(allowed)),
            "anyDirectory": any_directory}


def agree(body: dict, derived: Mapping[str, Any], errors: parsing.Errors) -> None:
    """Values the body gives besides the preset must equal the derived ones."""
    for name in ("jwkSetUrl", "issuer"):
        given = body.get(name)
        if given not in (None, "") and given != derived[name]:
            errors.add(name, f"With the Entra ID preset this is derived as {derived[name]}; leave it out or give "
                             "exactly that.")
    schema = body.get("oidcSchema")
    if schema is None:
        return
    if not isinstance(schema, dict):
        errors.add("oidcSchema", "Must be an object.")
        return
    for name, value in schema.items():
        expected = derived["oidcSchema"].get(name)
        if expected is None:
            errors.add(f"oidcSchema.{name}", f"Unknown field {name!r}.")
        elif value not in (None, "") and value != expected:
            errors.add(f"oidcSchema.{name}", f"With the Entra ID preset this is derived as {expected}; leave it "
                                             "out or give exactly that.")


def _directory(section: dict, errors: parsing.Errors) -> str | None:
    path = f"{SECTION}.directory"
    value = parsing.text(section, "directory", errors, path=path, required=True, limit=253)
    if value is None:
        return None
    if value.lower() in MULTI_TENANT or is_guid(value) or DOMAIN_RE.fullmatch(value):
        return value.lower()
    if value.lower() == "consumers":
        errors.add(path, "consumers (personal Microsoft accounts only) issues no tokens for an organisation's API; "
                         "use organizations or common.")
    else:
        errors.add(path, "Give the directory (tenant) id as a GUID, a verified domain such as "
                         "contoso.onmicrosoft.com, or organizations / common.")
    return None


def _authority(section: dict, allow_http: bool, errors: parsing.Errors) -> str:
    path = f"{SECTION}.authority"
    if parsing.blank(section.get("authority")):
        return DEFAULT_AUTHORITY
    value = parsing.url(section, "authority", path, allow_http, errors)
    if value is None or path in errors:
        return DEFAULT_AUTHORITY
    parts = urlsplit(value)
    if parts.query or parts.path.strip("/"):
        errors.add(path, "Give only the authority's scheme and host, e.g. https://login.microsoftonline.us.")
    return f"{parts.scheme}://{parts.netloc}".lower()


def _list(section: dict, name: str, errors: parsing.Errors, check) -> list[str]:
    """A list of strings (a JSON array, or one string split at commas and white space: CSV cells, form fields);
    each bad item is reported at its index, e.g. entraId.allowedDirectories[1]."""
    path = f"{SECTION}.{name}"
    value = section.get(name)
    if value is None or value == "":
        return []
    if isinstance(value, str):
        value = [item for item in re.split(r"[\s,]+", value) if item]
    if not isinstance(value, list):
        errors.add(path, "Must be a list of strings.")
        return []
    if len(value) > MAX_LIST:
        errors.add(path, f"At most {MAX_LIST} entries.")
        return []
    found = []
    for index, item in enumerate(value):
        problem = "Must be a string." if not isinstance(item, str) else check(item.strip())
        if problem:
            errors.add(f"{path}[{index}]", problem)
        else:
            found.append(item.strip().lower() if is_guid(item.strip()) else item.strip())
    return found


def _version(value: str) -> str | None:
    return None if value in VERSIONS else f'{value!r} is not a token version; give "1.0" or "2.0".'


def _audience(value: str) -> str | None:
    if is_guid(value) or (len(value) <= 2048 and APP_ID_URI_RE.fullmatch(value)):
        return None
    return f"{value[:80]!r} is neither a client id (GUID) nor an App ID URI such as api://contoso.com/orders."


def _tid(value: str) -> str | None:
    return None if is_guid(value) else f"{value[:80]!r} is not a directory (tenant) id: give its GUID."


def _directory_rules(directory: str | None, allowed: list[str], any_directory: bool, listed: bool,
                     errors: parsing.Errors) -> None:
    if directory is None:
        return
    if directory not in MULTI_TENANT:
        if listed and allowed:
            errors.add(f"{SECTION}.allowedDirectories", "Only a multi-tenant directory (organizations or common) "
                                                        "takes an allow-list; this directory is the only one accepted.")
        if any_directory:
            errors.add(f"{SECTION}.anyDirectory", "Only a multi-tenant directory (organizations or common) can "
                                                  "accept any directory.")
    elif any_directory and allowed:
        errors.add(f"{SECTION}.anyDirectory", "Choose either allowedDirectories or anyDirectory, not both.")
    elif not any_directory and not allowed and not any(k.startswith(f"{SECTION}.allowedDirectories") for k in errors):
        errors.add(f"{SECTION}.allowedDirectories",
                   f"A {directory} application accepts tokens of every Entra ID directory: list the directory ids "
                   "allowed, or set anyDirectory to true to accept any (audited, shown as a warning).")


# --- OpenAPI -------------------------------------------------------------------------------------------------


def openapi_request() -> js.Schema:
    guid = {"type": "string", "pattern": f"^{GUID_RE.pattern}$"}
    return {
        "type": "object", "additionalProperties": False, "required": ["directory", "audiences"],
        "description": "Microsoft Entra ID preset: jwkSetUrl, issuer and oidcSchema are derived from it.",
        "properties": {
            "directory": js.text("The directory (tenant) id, a verified domain, or organizations / common for a "
                                 "multi-tenant application.", 253),
            "authority": js.text(f"Default {DEFAULT_AUTHORITY}; a national cloud's login host otherwise.", 2048,
                                 format="uri", pattern=js.HTTPS_PATTERN),
            "tokenVersions": {"type": "array", "items": {"type": "string", "enum": list(VERSIONS)}, "minItems": 1,
                              "uniqueItems": True, "description": 'Accepted access-token versions; default ["2.0"].'},
            "audiences": {"type": "array", "minItems": 1, "maxItems": MAX_LIST, "items": {"type": "string"},
                          "description": "The API's client id (GUID) and/or App ID URI (api://…)."},
            "allowedDirectories": {"type": "array", "maxItems": MAX_LIST, "items": guid,
                                   "description": "Multi-tenant only: the directory ids whose tokens are accepted "
                                                  "(required unless anyDirectory is true)."},
            "anyDirectory": {"type": "boolean", "description": "Multi-tenant only: accept every directory's tokens "
                                                               "(an explicit, audited choice)."},
        },
    }


def openapi_response() -> js.Schema:
    strings = {"type": "array", "items": {"type": "string"}}
    return {"type": "object", "additionalProperties": False,
            "required": ["directory", "authority", "tokenVersions", "audiences", "allowedDirectories",
                         "anyDirectory"],
            "properties": {"directory": {"type": "string"}, "authority": {"type": "string"},
                           "tokenVersions": strings, "audiences": strings, "allowedDirectories": strings,
                           "anyDirectory": {"type": "boolean"}}}
