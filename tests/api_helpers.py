"""Helpers for the /v1 tests: an authenticated caller, the served OpenAPI document as validators of real responses,
the seed's three sample bodies and the seed's PostgreSQL user store (role userll, database userdbll). The fixtures
over them (`api`, `contract`, `seed_user_store`) are in tests/fixtures/."""
from __future__ import annotations

import copy
import importlib
import re
from datetime import datetime
from typing import Any

import psycopg
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from portal.services.admin import api_clients
from portal.services.context import Actor

PG_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SEED_DATABASE, SEED_ROLE, SEED_PASSWORD = "userdbll", "userll", "userll"

# The three sample bodies of ../shared/reference/seed-tenant-registration-api.md, exactly as printed there.
SEED_POSTGRES = {
    "tenantId": "TIBCO",
    "clientId": "order",
    "clientSecret": "order",
    "identityProviderType": "POSTGRES",
    "supportAlgorithm": "HS256",
    "signingKey": "100f4c1f-f333-4c25-bd8c-e4809722b6a7",
    "relationalSchema": {
        "dataSourceURL": "jdbc:postgresql://localhost:5432/userdbll?currentSchema=userschemall",
        "dataSourceUserName": "userll",
        "dataSourcePassword": "userll",
    },
}
SEED_LDAP = {
    "tenantId": "TIBCOLDAP",
    "clientId": "tibco-ldap-client",
    "clientSecret": "tibco-ldap-secret",
    "identityProviderType": "LDAP",
    "supportAlgorithm": "HS256",
    "signingKey": "100f4c1f-f333-4c25-bd8c-e4809722b6a7",
    "ldapSchema": {
        "ldapURLForDirectoryService": "string",
        "directoryServiceDomainName": "string",
        "directoryServiceRootDistinguishedName": "string",
    },
}
SEED_EXTERNAL = {
    "tenantId": "string",
    "clientId": "string",
    "clientSecret": "string",
    "identityProviderType": "EXTERNAL",
    "signingKey": "100f4c1f-f333-4c25-bd8c-e4809722b6a7",
    "supportAlgorithm": "RS256",
    "jwkSetUrl": "string",
    "issuer": "string",
    "oidcSchema": {
        "authUrl": "string",
        "accessTokenUrl": "string",
        "scope": "string",
    },
}


def postgres_body(tenant_id: str, *, skip_check: bool = True, **overrides: Any) -> dict[str, Any]:
    """A valid POSTGRES registration pointing at the seed's user store; the check is skipped unless asked for.
    Skipped, each tenant gets a password of its own: two tenants on one schema with the same credentials are refused
    (services/tenants/schema_sharing.py), and nothing connects to check it anyway."""
    body = copy.deepcopy(SEED_POSTGRES)
    body.update(tenantId=tenant_id, clientId=f"{tenant_id.lower()}-client", signingKey="k" * 32)
    if skip_check:
        body["skipConnectionCheck"] = True
        body["relationalSchema"]["dataSourcePassword"] = f"{SEED_PASSWORD}-{tenant_id.lower()}"
    body.update(overrides)
    return body


def ldap_body(tenant_id: str, **overrides: Any) -> dict[str, Any]:
    body = {"tenantId": tenant_id, "clientId": f"{tenant_id.lower()}-client", "clientSecret": "ldap-client-secret",
            "identityProviderType": "LDAP",
            "ldapSchema": {"ldapURLForDirectoryService": "ldap://127.0.0.1:1389",
                           "directoryServiceDomainName": "example.com",
                           "directoryServiceRootDistinguishedName": "dc=example,dc=com"},
            "skipConnectionCheck": True}
    body.update(overrides)
    return body


# --- callers -----------------------------------------------------------------------------------------------


class Api:
    """A test client that sends an API client's credentials with every call."""

    def __init__(self, app, app_id: str, key: str):
        self.app, self.app_id, self.key = app, app_id, key
        self.client = app.test_client()

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-AppId": self.app_id, "X-API-Key": self.key}

    def open(self, path: str, method: str = "GET", headers: dict | None = None, **kwargs):
        return self.client.open(path, method=method, headers={**self.headers, **(headers or {})}, **kwargs)

    def get(self, path: str, **kwargs):
        return self.open(path, "GET", **kwargs)

    def post(self, path: str, **kwargs):
        return self.open(path, "POST", **kwargs)

    def put(self, path: str, **kwargs):
        return self.open(path, "PUT", **kwargs)

    def delete(self, path: str, **kwargs):
        return self.open(path, "DELETE", **kwargs)


def make_api(app, name: str = "tests", scopes: tuple[str, ...] = api_clients.SCOPES, **limits: Any) -> Api:
    """An API client with these scopes (every scope unless told: most tests exercise operations, not scopes;
    tests/test_api_scopes.py creates narrow ones) and optional tenant limit (tenant_scope, tenant_pattern)."""
    with app.app_context():
        client, key = api_clients.create_client(name, Actor.cli(), scopes=scopes, **limits)
        return Api(app, client.app_id, key)


# --- the OpenAPI document as a test oracle -------------------------------------------------------------------


def _is_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})", value):
        return False
    datetime.fromisoformat(value)
    return True


FORMATS = FormatChecker()
FORMATS.checks("date-time", raises=ValueError)(_is_datetime)


class Contract:
    """The served OpenAPI document: validates instances against its component schemas and real responses against
    what it documents for their operation and status."""

    BASE = "urn:portal:openapi"

    def __init__(self, document: dict[str, Any]):
        self.document = document
        self.registry = Registry().with_resource(
            self.BASE, Resource.from_contents(document, default_specification=DRAFT202012))

    def validator(self, schema: dict[str, Any]) -> Draft202012Validator:
        return Draft202012Validator(schema, registry=self.registry, format_checker=FORMATS)

    def component(self, name: str) -> Draft202012Validator:
        return self.validator({"$ref": f"{self.BASE}#/components/schemas/{name}"})

    def errors(self, instance: Any, name: str) -> list[str]:
        return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                for e in self.component(name).iter_errors(instance)]

    def validate(self, instance: Any, name: str) -> None:
        problems = self.errors(instance, name)
        assert not problems, problems

    def _resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            node = self.registry.resolver(self.BASE).lookup(self.BASE + node["$ref"]).contents
        return node

    def check_response(self, response, method: str, template: str) -> Any:
        """Assert the response is documented for this operation and its body fits the documented schema."""
        operation = self.document["paths"][template][method.lower()]
        status = str(response.status_code)
        assert status in operation["responses"], f"{method} {template}: status {status} is not documented"
        documented = self._resolve(operation["responses"][status])
        media = documented["content"]
        assert response.mimetype in media, f"{method} {template} {status}: {response.mimetype} not in {list(media)}"
        body = response.get_json()
        schema = media[response.mimetype]["schema"]
        if "$ref" in schema:
            schema = {"$ref": self.BASE + schema["$ref"]}
        problems = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                    for e in self.validator(schema).iter_errors(body)]
        assert not problems, (method, template, status, problems)
        for name, header in documented.get("headers", {}).items():
            if header.get("required"):
                assert name in response.headers, f"{method} {template} {status}: header {name} missing"
        return body


def load_contract(app) -> Contract:
    response = app.test_client().get("/v1/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    return Contract(response.get_json())


def problem_of(response, status: int, contract: Contract) -> dict[str, Any]:
    """The response is a problem body with this status that fits the documented Problem schema."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    contract.validate(body, "Problem")
    assert body["status"] == status and body["title"] and body["type"] == "about:blank"
    return body


# --- the seed's user store on the local PostgreSQL -----------------------------------------------------------


def user_store_tables() -> set[str]:
    """The tables the connection check created in the seed's schema."""
    with psycopg.connect(PG_SERVER_URL.rsplit("/", 1)[0] + "/" + SEED_DATABASE) as conn:
        rows = conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'userschemall'")
        return {row[0] for row in rows}


_MOVED = {"api_fixture": ("api", "api"), "contract_fixture": ("api", "contract"),
          "seed_user_store_fixture": ("stores", "seed_user_store")}


def __getattr__(name: str):
    """The fixtures once defined here live in tests/fixtures/ and need no import; an old `import api_fixture` still
    finds them."""
    if name not in _MOVED:
        raise AttributeError(name)
    module, fixture = _MOVED[name]
    return getattr(importlib.import_module(f"tests.fixtures.{module}"), fixture)
