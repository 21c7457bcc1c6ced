"""Hostile JSON for the registration API, beyond what schemathesis derives from the OpenAPI document: lone
surrogates (valid JSON, "\\ud800"), digits that are not ASCII, numbers too long for int(), NUL characters, ids past
the database's INTEGER, and near-valid registrations whose values are then stored for real (SQLite and PostgreSQL).
Whatever arrives, the API answers 4xx, or 201 with a tenant it can read back: never a 500."""
from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from tests.api_helpers import make_api
from tests.test_hostile_parsers import HOSTILE, TEXT, VALID_BODIES, near_valid_bodies

BASE = VALID_BODIES[0]
_numbers = itertools.count(1)


@pytest.fixture
def api(app):
    return make_api(app, "hostile")


def _post(api, raw: str):
    return api.post("/v1/tenant", data=raw.encode("utf-8", "surrogatepass"), content_type="application/json")


@pytest.mark.parametrize("raw", [
    json.dumps({**BASE, "rsaKeySize": "\u00b2"}),
    json.dumps({**BASE, "rsaKeySize": "9" * 5000}),
    json.dumps({**BASE, "rsaKeySize": [2048]}),
    json.dumps({**BASE, "displayName": "\ud800"}),  # json.dumps writes it as the escape "\ud800": valid JSON
    json.dumps({**BASE, "clientSecret": "\udfff" * 20}),
    json.dumps({**BASE, "signingKey": "\ud83d" * 40}),
    json.dumps({**BASE, "tenantId": "atom"}),  # its derived domain's first label is one IS 7 refuses
    json.dumps({**BASE, "displayName": "a\u0000b"}),
    json.dumps({**BASE, "relationalSchema": {**BASE["relationalSchema"], "dataSourceURL": "jdbc:postgresql://h:"
                                             + "9" * 5000 + "/db"}}),
    "[" * 100_000,
    '{"tenantId": 1e999999}',
])
def test_bodies_that_once_failed_are_refused_with_a_400(api, raw):
    response = _post(api, raw)
    assert response.status_code in (400, 413), response.get_data(as_text=True)[:500]


@pytest.mark.parametrize("path", ["/v1/tenant/%00", "/v1/tenant?q=%00", "/v1/tenant?after=a%00",
                                  "/v1/tenant/x%00/activate"])
def test_nul_in_an_api_address_is_a_400(api, path):
    method = "POST" if path.endswith("/activate") else "GET"
    assert api.open(path, method).status_code == 400


FREE_TEXT = [  # fields whose rules leave room for nearly any text
    ("displayName",), ("clientId",), ("clientSecret",), ("owner", "firstName"), ("owner", "lastName"),
    ("relationalSchema", "dataSourceUserName"), ("relationalSchema", "dataSourcePassword"),
]
TEXT_VALUE = st.one_of(TEXT.filter(str.strip), st.builds(lambda c, n: c * n, st.sampled_from(
    ["\u00e9", "\U0001f600", "'", '"', "\\", "\x00", "a"]), st.integers(200, 520)))


@st.composite
def storable_bodies(draw) -> dict:
    """A valid registration with its free-text fields set to hostile text, so most of them get stored."""
    body = json.loads(json.dumps(BASE))
    for path in draw(st.lists(st.sampled_from(FREE_TEXT), min_size=1, max_size=4, unique=True)):
        holder = body
        for step in path[:-1]:
            holder = holder.setdefault(step, {})
        holder[path[-1]] = draw(TEXT_VALUE)
    return body


@settings(HOSTILE, max_examples=max(1, HOSTILE.max_examples * 3 // 10),
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.one_of(near_valid_bodies(), storable_bodies()))
def test_near_valid_registrations_are_stored_or_refused_never_500(api, body):
    """The values that pass validation are written to the database and read back: hostile text included."""
    number = next(_numbers)
    if body.get("tenantId") == BASE["tenantId"]:  # unique, so most examples get as far as storing
        body["tenantId"] = f"hostile-{number}"
        body.pop("tenantDomain", None)
    body["skipConnectionCheck"] = True
    response = _post(api, json.dumps(body))
    assert response.status_code < 500, response.get_data(as_text=True)[:2000]
    event(f"status {response.status_code}")
    if response.status_code == 201:
        stored = api.get(response.headers["Location"])
        assert stored.status_code == 200
        assert stored.get_json()["tenantId"] == body["tenantId"].strip()
