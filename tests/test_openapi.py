"""The OpenAPI 3.1 document at /v1/openapi.json: it documents every /v1 route, its schemas are valid JSON Schema
2020-12, the API's own examples fit it, and a schemathesis run against the real app finds no failure."""
from __future__ import annotations

import re
import threading

import pytest
import schemathesis
from jsonschema import Draft202012Validator
from schemathesis import engine
from schemathesis.engine import Status, StopReason, events
from werkzeug.serving import WSGIRequestHandler, make_server

from portal.api.openapi_paths import REGISTRATION_EXAMPLES
from tests.api_helpers import SEED_POSTGRES, contract_fixture, make_api  # noqa: F401 - contract_fixture is a fixture

HTTP_METHODS = {"get", "put", "post", "delete", "patch"}

# Schema-valid bodies can still be refused with a 400: a JSON Schema cannot state the JDBC URL grammar, the
# placeholder "string", or that the identity provider must answer the real connection check. Everything else the
# schemathesis defaults expect of valid data (2xx, or 401/404/409) still holds.
POSITIVE_STATUSES = ["2xx", "400", "401", "404", "409"]
SCHEMATHESIS_EXAMPLES = 25
SCHEMATHESIS_SEED = 20260601


def _documented_operations(document: dict) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in document["paths"].items() for method in item
            if method in HTTP_METHODS}


def _routed_operations(app) -> set[tuple[str, str]]:
    found = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/v1/"):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: "{" + _camel(m.group(1)) + "}", rule.rule)
        found |= {(method, path) for method in rule.methods - {"HEAD", "OPTIONS"}}
    return found


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)


def test_document_describes_every_v1_route_and_nothing_else(app, contract):
    assert contract.document["openapi"] == "3.1.0"
    assert _documented_operations(contract.document) == _routed_operations(app)


def test_every_operation_documents_its_errors(contract):
    schemes = contract.document["components"]["securitySchemes"]
    assert {(s["type"], s["in"], s["name"]) for s in schemes.values()} == {
        ("apiKey", "header", "X-API-AppId"), ("apiKey", "header", "X-API-Key")}
    assert contract.document["security"] == [{"AppId": [], "ApiKey": []}]
    for path, item in contract.document["paths"].items():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            codes = set(operation["responses"])
            assert "500" in codes, (method, path)
            if path == "/v1/openapi.json":
                assert operation["security"] == []
                continue
            assert "401" in codes, (method, path)
            if "{tenantId}" in path:
                assert "404" in codes, (method, path)
            if "requestBody" in operation:
                assert {"400", "413", "415"} <= codes, (method, path)
            for code, response in operation["responses"].items():
                if code.startswith(("4", "5")):
                    assert response["$ref"].startswith("#/components/responses/"), (method, path, code)
    for response in contract.document["components"]["responses"].values():
        assert response["content"] == {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


def test_every_operation_declares_the_scope_its_route_enforces(app, contract):
    from portal.api.auth import scope_of
    from portal.services.admin.api_clients import SCOPES

    enforced = {}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/v1/") and rule.rule != "/v1/openapi.json":
            path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: "{" + _camel(m.group(1)) + "}", rule.rule)
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                enforced[(method.lower(), path)] = scope_of(app.view_functions[rule.endpoint])
    declared = {}
    for path, item in contract.document["paths"].items():
        for method, operation in item.items():
            if method not in HTTP_METHODS or path == "/v1/openapi.json":
                continue
            scope = operation["x-required-scope"]
            assert scope in SCOPES, (method, path)
            assert operation["security"] == [{"AppId": [], "ApiKey": [scope]}], (method, path)
            assert "403" in operation["responses"], (method, path)
            assert f"Requires the `{scope}` scope." in operation["description"]
            declared[(method, path)] = scope
    assert declared == enforced
    problem = contract.document["components"]["schemas"]["Problem"]["properties"]["requiredScope"]
    assert problem["enum"] == list(SCOPES)


def test_a_403_fits_the_document(app, contract):
    reader = make_api(app, "reader", scopes=("read",))
    response = reader.post("/v1/tenant", json=SEED_POSTGRES)
    body = contract.check_response(response, "POST", "/v1/tenant")
    assert response.status_code == 403 and body["requiredScope"] == "register"


def test_component_schemas_are_valid_json_schema(contract):
    for name, schema in contract.document["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema)
        assert contract.component(name) is not None


def test_registration_schema_has_a_section_per_type(contract):
    variants = contract.document["components"]["schemas"]["TenantRegistration"]["oneOf"]
    sections = {v["title"]: (tuple(v["properties"]["identityProviderType"]["enum"]), set(v["required"]))
                for v in variants}
    common = {"tenantId", "clientId", "clientSecret", "identityProviderType"}
    assert sections == {
        "Relational (ORACLE, POSTGRES)": (("ORACLE", "POSTGRES"), common | {"relationalSchema"}),
        "LDAP": (("LDAP",), common | {"ldapSchema"}),
        "EXTERNAL (OpenID Connect)": (("EXTERNAL",), common | {"supportAlgorithm", "jwkSetUrl", "issuer",
                                                               "oidcSchema"}),
        "EXTERNAL (Microsoft Entra ID preset)": (("EXTERNAL",), common | {"supportAlgorithm", "entraId"}),
    }


def test_examples_and_the_seed_sample_fit_the_request_schema(contract):
    for example in REGISTRATION_EXAMPLES.values():
        contract.validate(example["value"], "TenantRegistration")
    contract.validate(SEED_POSTGRES, "TenantRegistration")
    assert contract.errors([SEED_POSTGRES], "TenantRegistration")
    assert contract.errors({**SEED_POSTGRES, "relationalSchema": None}, "TenantRegistration")
    assert contract.errors({**SEED_POSTGRES, "surprise": 1}, "TenantRegistration")


def test_response_schemas_refuse_secret_members(contract):
    """The Tenant schema itself forbids secret members, so every response checked against it is free of them."""
    tenant = contract.document["components"]["schemas"]["Tenant"]
    assert tenant["additionalProperties"] is False
    for name in ("clientSecret", "signingKey", "dataSourcePassword", "bindPassword", "password"):
        text = str({k: v for k, v in tenant["properties"].items() if k != "signingKey"})
        assert f"'{name}'" not in text, name
    key = contract.document["components"]["schemas"]["SigningKey"]
    assert key["additionalProperties"] is False and "secret" not in key["properties"]


# --- schemathesis ----------------------------------------------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:  # one line per generated request would drown the output
        pass


@pytest.fixture
def served_app(make_app):
    """The app on a real socket (schemathesis's in-process WSGI transport cannot run its full engine). Connection
    checks get a 1 s timeout so no generated host can hold the run up."""
    app = make_app(IDP_CHECK_TIMEOUT=1)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(10)
    server.server_close()


def _failures(event) -> list[str]:
    found = []
    for checks in event.recorder.checks.values():
        for check in checks:
            if check.status == Status.FAILURE:
                failure = check.failure_info.failure
                found.append(f"{event.recorder.label} [{event.phase}] {check.name}: {failure.title}\n"
                             f"{getattr(failure, 'message', '')}\n{check.failure_info.code_sample}")
            elif check.status == Status.ERROR:
                found.append(f"{event.recorder.label} [{event.phase}] {check.name} crashed")
    return found


def test_schemathesis_finds_no_failure(served_app, contract):
    """Every schemathesis phase (examples, coverage, fuzzing, stateful) with every default check, over HTTP with a
    real API client's headers. Seeded and derandomized so CI sees the same requests every run."""
    app, base_url = served_app
    caller = make_api(app, "schemathesis")
    config = schemathesis.Config.from_dict({
        "seed": SCHEMATHESIS_SEED,
        "generation": {"max-examples": SCHEMATHESIS_EXAMPLES, "deterministic": True, "database": "none"},
        "checks": {"positive_data_acceptance": {"expected-statuses": POSITIVE_STATUSES}},
        "auth": {"openapi": {"AppId": {"api_key": caller.app_id}, "ApiKey": {"api_key": caller.key}}},
        "request-timeout": 30,
    })
    schema = schemathesis.openapi.from_url(f"{base_url}/v1/openapi.json", config=config)
    failures: list[str] = []
    answered: dict[str, set[int]] = {}
    finished = None
    for event in engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            failures += _failures(event)
            for interaction in event.recorder.interactions.values():
                if interaction.response is not None:
                    answered.setdefault(event.recorder.label, set()).add(interaction.response.status_code)
        elif isinstance(event, (events.NonFatalError, events.FatalError)):
            failures.append(f"error: {getattr(event, 'value', None) or getattr(event, 'exception', None)!r}")
        elif isinstance(event, events.EngineFinished):
            finished = event
    assert finished is not None and finished.stop_reason == StopReason.COMPLETED
    assert not failures, "\n\n".join(failures)
    assert not finished.failures
    # The run reached every operation with valid credentials, and the API answered successfully too.
    documented = {f"{method} {path}" for method, path in _documented_operations(contract.document)}
    assert documented - {"GET /v1/openapi.json"} <= set(answered)
    successes = {label for label, codes in answered.items() if any(200 <= code < 300 for code in codes)}
    assert {"POST /v1/tenant", "GET /v1/tenant", "GET /v1/tenant/{tenantId}", "PUT /v1/tenant/{tenantId}"} <= successes
    assert all(500 not in codes for codes in answered.values())
