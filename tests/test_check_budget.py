"""Connection checks are budgeted per actor (issue 13): a caller cannot turn "Test connection" or registration
checks into a port scanner. Beyond the budget the answer is 429 and nothing is connected."""
from __future__ import annotations

import pytest

from portal.idp import checks as idp_checks
from portal.services import check_budget
from portal.services.context import Actor
from tests.api_helpers import ldap_body, make_api
from tests.test_address_policy import Listener

LDAP_SETTINGS = {"directoryServiceDomainName": "example.com",
                 "directoryServiceRootDistinguishedName": "dc=example,dc=com"}


@pytest.fixture
def listener():
    item = Listener()
    yield item
    item.close()


@pytest.fixture
def limited(make_app):
    return make_app(RATELIMIT_ENABLED=True, CONNECTION_CHECK_LIMIT_PER_ACTOR="2 per minute")


def _register(api, tenant_id: str, port: int):
    body = ldap_body(tenant_id, skipConnectionCheck=False)
    body["ldapSchema"]["ldapURLForDirectoryService"] = f"ldap://127.0.0.1:{port}"
    return api.post("/v1/tenant", json=body)


def test_api_checks_beyond_the_budget_get_429_and_connect_nothing(limited, listener):
    first, second = make_api(limited, "first"), make_api(limited, "second")
    assert _register(first, "BUDGET1", listener.port).status_code == 400  # the check ran and failed
    assert _register(first, "BUDGET2", listener.port).status_code == 400
    seen = listener.settle()
    assert seen > 0
    refused = _register(first, "BUDGET3", listener.port)
    assert refused.status_code == 429
    body = refused.get_json()
    assert "Too many connection checks: at most 2 per 1 minute" in body["detail"]
    assert "Try again in" in body["detail"]
    assert listener.settle() == seen  # refused before connecting
    assert _register(second, "BUDGET4", listener.port).status_code == 400  # another client has its own budget
    assert listener.settle() > seen


def test_the_budget_is_per_actor_and_spent_before_connecting(limited, listener):
    settings = {**LDAP_SETTINGS, "ldapURLForDirectoryService": f"ldap://127.0.0.1:{listener.port}"}
    alice = Actor(name="alice", id=1)
    bob = Actor(name="bob", id=2)
    with limited.test_request_context():
        for _ in range(2):
            assert not idp_checks.run("LDAP", settings, None, "RS256", actor=alice).ok
        seen = listener.settle()
        with pytest.raises(check_budget.TooManyChecks) as caught:
            idp_checks.run("LDAP", settings, None, "RS256", actor=alice)
        assert caught.value.code == 429 and caught.value.retry_after >= 1
        assert listener.settle() == seen
        assert not idp_checks.run("LDAP", settings, None, "RS256", actor=bob).ok
    assert listener.settle() > seen


def test_no_budget_outside_a_request_or_when_rate_limits_are_off(limited, make_app, listener):
    settings = {**LDAP_SETTINGS, "ldapURLForDirectoryService": f"ldap://127.0.0.1:{listener.port}"}
    with limited.app_context():  # a bulk job's thread or the worker: no request, no actor to charge
        for _ in range(3):
            assert not idp_checks.run("LDAP", settings, None, "RS256").ok
    with make_app().test_request_context():  # RATELIMIT_ENABLED is off in the test suite's defaults
        for _ in range(3):
            assert not idp_checks.run("LDAP", settings, None, "RS256", actor=Actor(name="carol", id=3)).ok


def test_the_tenant_page_check_beyond_the_budget_is_a_429_page(limited, listener):
    from tests.fixtures.accounts import create_admin, login

    api = make_api(limited, "setup")
    body = ldap_body("budget-web")
    body["ldapSchema"]["ldapURLForDirectoryService"] = f"ldap://127.0.0.1:{listener.port}"
    assert api.post("/v1/tenant", json=body).status_code == 201  # skipConnectionCheck: nothing spent
    create_admin(limited, "budget-admin")
    pages = limited.test_client()
    assert login(pages, "budget-admin").status_code == 302
    for _ in range(2):
        response = pages.post("/tenants/budget-web/check", follow_redirects=True)
        assert "Connection check failed" in response.get_data(as_text=True)
    seen = listener.settle()
    response = pages.post("/tenants/budget-web/check")
    assert response.status_code == 429
    assert "Too many connection checks" in response.get_data(as_text=True)
    assert listener.settle() == seen
