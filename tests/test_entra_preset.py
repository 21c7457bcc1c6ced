"""The Entra ID preset of EXTERNAL tenants, parsed as both doors parse it (services.tenants.spec): what the portal
derives, and each bad value's message at its field path. No network."""
from __future__ import annotations

import pytest

from portal.idp import entra
from portal.services.errors import ValidationError
from portal.services.tenants import spec as tenant_spec
from simulators.entra_directory import API_MULTI, API_V2, CONTOSO, FABRIKAM
from tests.entra_helpers import LEGACY_URI, entra_body, multi_tenant

AUTHORITY = "https://login.microsoftonline.com"
RULES = tenant_spec.Rules()


def parse(body: dict) -> dict:
    return tenant_spec.parse(body, RULES).idp_settings


def errors_of(body: dict) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        tenant_spec.parse(body, RULES)
    return caught.value.errors


def test_single_tenant_preset_derives_the_generic_settings():
    settings = parse(entra_body("contoso", AUTHORITY, directory=CONTOSO.upper()))
    base = f"{AUTHORITY}/{CONTOSO}"
    assert settings == {
        "jwkSetUrl": f"{base}/discovery/v2.0/keys", "issuer": f"{base}/v2.0",
        "oidcSchema": {"authUrl": f"{base}/oauth2/v2.0/authorize", "accessTokenUrl": f"{base}/oauth2/v2.0/token",
                       "scope": f"{API_V2}/.default"},
        "entraId": {"directory": CONTOSO, "authority": AUTHORITY, "tokenVersions": ["2.0"], "audiences": [API_V2],
                    "allowedDirectories": [], "anyDirectory": False},
    }


def test_authority_defaults_to_the_public_cloud_and_multi_tenant_uses_the_template():
    body = multi_tenant(AUTHORITY)
    del body["entraId"]["authority"]
    settings = parse(body)
    assert settings["issuer"] == f"{AUTHORITY}/{{tenantid}}/v2.0"
    assert settings["jwkSetUrl"] == f"{AUTHORITY}/organizations/discovery/v2.0/keys"
    assert settings["entraId"]["allowedDirectories"] == [FABRIKAM]


def test_csv_and_form_strings_are_lists():
    body = entra_body("legacy", "https://login.microsoftonline.us/", directory="Contoso.onmicrosoft.com",
                      audiences=f"{LEGACY_URI}, {API_V2}", versions="2.0 1.0")
    preset = parse(body)["entraId"]
    assert preset == {"directory": "contoso.onmicrosoft.com", "authority": "https://login.microsoftonline.us",
                      "tokenVersions": ["1.0", "2.0"], "audiences": [LEGACY_URI, API_V2], "allowedDirectories": [],
                      "anyDirectory": False}
    assert parse(body)["oidcSchema"]["scope"] == f"{LEGACY_URI}/.default"


def test_any_directory_is_an_explicit_choice():
    body = entra_body("anyone", AUTHORITY, directory="common", audiences=[API_MULTI], anyDirectory=True)
    assert parse(body)["entraId"]["anyDirectory"] is True
    body["entraId"]["allowedDirectories"] = [FABRIKAM]
    assert errors_of(body) == {"entraId.anyDirectory": "Choose either allowedDirectories or anyDirectory, not both."}


@pytest.mark.parametrize(("preset", "path", "words"), [
    ({"directory": "consumers"}, "entraId.directory", "personal Microsoft accounts"),
    ({"directory": "not a tenant"}, "entraId.directory", "GUID, a verified domain"),
    ({"directory": None}, "entraId.directory", "required"),
    ({"authority": "http://login.example"}, "entraId.authority", "https://"),
    ({"authority": "https://login.example/tenant"}, "entraId.authority", "scheme and host"),
    ({"tokenVersions": ["2.0", "3.0"]}, "entraId.tokenVersions[1]", "not a token version"),
    ({"tokenVersions": []}, "entraId.tokenVersions", '"2.0", "1.0" or both'),
    ({"audiences": []}, "entraId.audiences", "at least one"),
    ({"audiences": [API_V2, "orders"]}, "entraId.audiences[1]", "neither a client id"),
    ({"audiences": "x" * 3}, "entraId.audiences[0]", "neither a client id"),
    ({"audiences": {"a": 1}}, "entraId.audiences", "list of strings"),
    ({"allowedDirectories": [FABRIKAM]}, "entraId.allowedDirectories", "Only a multi-tenant directory"),
    ({"anyDirectory": True}, "entraId.anyDirectory", "Only a multi-tenant directory"),
    ({"anyDirectory": "yes"}, "entraId.anyDirectory", "true or false"),
    ({"tenant": CONTOSO}, "entraId.tenant", "Unknown field"),
])
def test_each_bad_value_is_reported_at_its_field(preset, path, words):
    body = entra_body("bad", AUTHORITY)
    body["entraId"].update(preset)
    errors = errors_of(body)
    assert path in errors and words in errors[path], errors


def test_multi_tenant_needs_an_allow_list_or_any_directory_and_guids_in_it():
    body = multi_tenant(AUTHORITY)
    body["entraId"]["allowedDirectories"] = []
    assert "anyDirectory" in errors_of(body)["entraId.allowedDirectories"]
    body["entraId"]["allowedDirectories"] = [FABRIKAM, "fabrikam.onmicrosoft.com"]
    assert errors_of(body) == {"entraId.allowedDirectories[1]": "'fabrikam.onmicrosoft.com' is not a directory "
                                                                "(tenant) id: give its GUID."}


def test_given_generic_values_must_agree_with_the_derived_ones():
    body = entra_body("agree", AUTHORITY)
    derived = entra.derive(parse(body)["entraId"])
    assert parse({**body, "issuer": derived["issuer"], "oidcSchema": {"scope": derived["oidcSchema"]["scope"]}})
    errors = errors_of({**body, "jwkSetUrl": "https://login.microsoftonline.com/common/discovery/v2.0/keys",
                        "oidcSchema": {"scope": "openid", "extra": "x"}})
    assert set(errors) == {"jwkSetUrl", "oidcSchema.scope", "oidcSchema.extra"}
    assert derived["jwkSetUrl"] in errors["jwkSetUrl"]


def test_entra_signs_with_rs256_only_and_generic_oidc_stays_available():
    assert "RS256 only" in errors_of({**entra_body("alg", AUTHORITY), "supportAlgorithm": "RS384"})["supportAlgorithm"]
    generic = {"tenantId": "generic", "clientId": "c", "clientSecret": "s" * 16, "identityProviderType": "EXTERNAL",
               "supportAlgorithm": "RS384", "jwkSetUrl": "https://idp.example/jwks", "issuer": "https://idp.example",
               "oidcSchema": {"authUrl": "https://idp.example/a", "accessTokenUrl": "https://idp.example/t",
                              "scope": "openid"}}
    assert "entraId" not in parse(generic)
