"""The products' own tenant sync, end to end between the two simulators (wso2-apis.md §3-§5), driven through the
portal's clients: IS's TenantSyncListener pushing to API Manager's notify API (retrying only when the connection
fails), and API Manager's ISTenantSyncListener calling IS (with its fallbacks and rollbacks)."""
from __future__ import annotations

import itertools
import time

import pytest

from portal.clients.api_manager import ApiManagerClient, ApimTenantSpec
from portal.clients.identity_server import IdentityServerClient, TenantOwnerSpec
from simulators import start_pair

TIMEOUT = (3.0, 5.0)


@pytest.fixture
def pair():
    with start_pair(retry_delay=0.02) as pair:
        yield pair


@pytest.fixture
def is_client(pair):
    """The portal's IS client over mutual TLS, as the portal uses it."""
    with IdentityServerClient(pair.is7.base_url, ca_pem=pair.ca_pem, cert_pem=pair.client.cert_pem,
                              key_pem=pair.client.key_pem, identity_user="admin", timeout=TIMEOUT) as client:
        yield client


@pytest.fixture
def apim_client(pair):
    with ApiManagerClient(pair.apim.base_url, ca_pem=pair.ca_pem, username="admin", password="admin",
                          timeout=TIMEOUT) as client:
        yield client


KIM = TenantOwnerSpec("kim", "kim@abc.com", "Kim", "Lee", password="Kim#12345")


def kim(**overrides) -> ApimTenantSpec:
    values = {"domain": "abc.com", "admin": "kim", "admin_password": "Kim#12345", "email": "kim@abc.com",
              "firstname": "Kim", "lastname": "Lee"}
    values.update(overrides)
    return ApimTenantSpec(**values)


def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


# --- IS 7 -> API Manager ------------------------------------------------------------------------------------------


def test_is7_to_apim_converges_through_create_update_and_lifecycle(pair, is_client):
    pair.set_direction("is7_to_apim")
    tenant_id = is_client.create_tenant("abc.com", KIM)
    assert pair.is7.wait_for_sync()
    mirrored = pair.apim.tenant("abc.com")
    assert (mirrored.admin, mirrored.email, mirrored.firstname, mirrored.lastname, mirrored.password,
            mirrored.active) == ("kim", "kim@abc.com", "Kim", "Lee", "Kim#12345", True)

    owner = is_client.get_owners(tenant_id)[0]
    is_client.update_owner(tenant_id, owner.id, "kim@new.com", "Kimberly", "Lee", password="New#Pass1")
    assert pair.is7.wait_for_sync()
    mirrored = pair.apim.tenant("abc.com")
    assert (mirrored.email, mirrored.firstname, mirrored.password) == ("kim@new.com", "Kimberly", "New#Pass1")

    is_client.set_lifecycle(tenant_id, False)
    assert pair.is7.wait_for_sync()
    assert pair.apim.tenant("abc.com").active is False
    is_client.set_lifecycle(tenant_id, True)
    assert pair.is7.wait_for_sync()
    assert pair.apim.tenant("abc.com").active is True
    assert [a.outcome for a in pair.is7.sync_attempts] == [200, 200, 200, 200]
    assert [r.basic_user for r in pair.apim.requests] == ["admin"] * 4


def test_an_http_500_from_apim_ends_the_event_without_retry(pair, is_client):
    pair.set_direction("is7_to_apim")
    pair.apim.push_fault("POST", "/internal/data/v1/notify", 500)
    is_client.create_tenant("abc.com", KIM)
    assert pair.is7.wait_for_sync()
    assert [(a.action, a.attempt, a.outcome) for a in pair.is7.sync_attempts] == [("CREATE", 1, 500)]
    assert pair.apim.tenant("abc.com") is None  # lost for good: the portal has to repair it
    assert len(pair.apim.requests) == 1


def test_any_http_status_ends_the_event(pair, is_client):
    pair.apim_user = ("admin", "wrong")
    pair.set_direction("is7_to_apim")
    is_client.create_tenant("abc.com", KIM)
    assert pair.is7.wait_for_sync()
    assert [a.outcome for a in pair.is7.sync_attempts] == [401]
    assert pair.apim.tenant("abc.com") is None


def test_connection_refused_is_retried_with_doubling_delays_until_apim_is_back(pair, is_client):
    pair.set_direction("is7_to_apim", retry_delay=0.1)
    pair.apim.go_down()
    is_client.create_tenant("abc.com", KIM)
    wait_until(lambda: len(pair.is7.sync_attempts) >= 2)
    pair.apim.come_up()
    assert pair.is7.wait_for_sync()
    attempts = pair.is7.sync_attempts
    assert all(str(a.outcome).startswith("error: ConnectionRefusedError") for a in attempts[:-1])
    assert attempts[-1].outcome == 200 and 3 <= attempts[-1].attempt <= 5
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(attempts)]
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2  # 1 s, 2 s, 4 s, 8 s in IS, scaled by retry_delay
    assert pair.apim.tenant("abc.com").active is True


def test_a_reset_connection_is_retried(pair, is_client):
    pair.set_direction("is7_to_apim")
    pair.apim.push_fault("POST", "/internal/data/v1/notify", "reset")
    is_client.create_tenant("abc.com", KIM)
    assert pair.is7.wait_for_sync()
    assert [a.attempt for a in pair.is7.sync_attempts] == [1, 2]
    assert pair.is7.sync_attempts[-1].outcome == 200 and pair.apim.tenant("abc.com") is not None


def test_the_listener_gives_up_after_five_attempts(pair, is_client):
    pair.set_direction("is7_to_apim")
    pair.apim.go_down()
    is_client.create_tenant("abc.com", KIM)
    assert pair.is7.wait_for_sync()
    pair.apim.come_up()
    assert [a.attempt for a in pair.is7.sync_attempts] == [1, 2, 3, 4, 5]
    assert all(isinstance(a.outcome, str) for a in pair.is7.sync_attempts)
    assert pair.apim.tenant("abc.com") is None


# --- API Manager -> IS 7 ------------------------------------------------------------------------------------------


def test_apim_to_is7_converges_through_create_update_and_lifecycle(pair, apim_client, is_client):
    pair.set_direction("apim_to_is7")
    apim_client.add_tenant(kim())
    assert [(c.method, c.path, c.outcome) for c in pair.apim.sharing_calls] == [
        ("POST", "/api/server/v1/tenants", 201), ("GET", "/api/server/v1/tenants/domain/abc.com", 200)]
    created = pair.is7.requests[-2]
    assert created.basic_user == "admin" and created.client_thumbprint is None
    assert created.json()["owners"] == [{"username": "kim", "password": "Kim#12345", "email": "kim@abc.com",
                                         "firstname": "Kim", "lastname": "Lee",
                                         "provisioningMethod": "inline-password"}]
    assert pair.is7.requests[-1].headers["content-type"] == "application/json"  # Feign sends it on GETs too
    owner = pair.is7.tenant("abc.com").owner
    assert (owner.username, owner.email, owner.password) == ("kim", "kim@abc.com", "Kim#12345")
    assert apim_client.get_tenant("abc.com").active is True

    apim_client.update_tenant(kim(email="kim@new.com", lastname="Perera", admin_password="New#Pass1"))
    owner = pair.is7.tenant("abc.com").owner
    assert (owner.email, owner.lastname, owner.password) == ("kim@new.com", "Perera", "New#Pass1")
    assert [c.method for c in pair.apim.sharing_calls[2:]] == ["GET", "GET", "PUT"]

    apim_client.deactivate_tenant("abc.com")
    assert is_client.get_tenant_by_domain("abc.com").activated is False
    assert apim_client.get_tenant("abc.com").active is False
    calls = len(pair.apim.sharing_calls)
    apim_client.deactivate_tenant("abc.com")  # IS is already there: a GET and no PUT
    assert [c.method for c in pair.apim.sharing_calls[calls:]] == ["GET"]
    apim_client.activate_tenant("abc.com")
    assert is_client.get_tenant_by_domain("abc.com").activated is True


def test_an_owner_update_creates_the_tenant_in_is_when_it_is_missing(pair, apim_client):
    pair.apim.add_tenant("abc.com", admin="kim", password="Kim#12345", email="kim@abc.com")
    pair.set_direction("apim_to_is7")
    apim_client.update_tenant(kim(admin_password="New#Pass1"))
    assert [(c.method, c.outcome) for c in pair.apim.sharing_calls] == [("GET", 400), ("POST", 201)]
    assert pair.is7.tenant("abc.com").owner.password == "New#Pass1"


def test_activation_is_rolled_back_when_is_cannot_follow(pair, apim_client):
    pair.set_direction("apim_to_is7")
    apim_client.add_tenant(kim())
    apim_client.deactivate_tenant("abc.com")
    pair.is7.go_down()
    apim_client.activate_tenant("abc.com")  # the SOAP call succeeds all the same
    assert apim_client.get_tenant("abc.com").active is False
    assert any(e.startswith("Rollback tenant activation") for e in pair.apim.events)
    pair.is7.come_up()
    pair.is7.push_fault("PUT", "/api/server/v1/tenants", 500)
    apim_client.activate_tenant("abc.com")
    assert apim_client.get_tenant("abc.com").active is False
    apim_client.activate_tenant("abc.com")  # IS healthy again: both active
    assert apim_client.get_tenant("abc.com").active is True and pair.is7.tenant("abc.com").activated is True


def test_deactivation_is_rolled_back_on_an_is_error(pair, apim_client):
    pair.set_direction("apim_to_is7")
    apim_client.add_tenant(kim())
    pair.is7.push_fault("GET", "/api/server/v1/tenants/domain", 503)
    apim_client.deactivate_tenant("abc.com")
    assert apim_client.get_tenant("abc.com").active is True
    assert pair.is7.tenant("abc.com").activated is True


def test_a_new_tenant_is_deactivated_when_is_cannot_confirm_it(pair, apim_client):
    pair.set_direction("apim_to_is7")
    pair.is7.go_down()
    apim_client.add_tenant(kim())  # API Manager answers success
    tenant = apim_client.get_tenant("abc.com")
    assert tenant is not None and tenant.active is False
    posts = [c for c in pair.apim.sharing_calls if c.method == "POST"]
    assert len(posts) == 5 and all(str(c.outcome).startswith("error:") for c in posts)  # Feign's retryer
    pair.is7.come_up()
    pair.is7.push_fault("POST", "/api/server/v1/tenants", 500)
    apim_client.add_tenant(kim(domain="xyz.com", email="kim@xyz.com"))  # IS refused the create: the GET is a 400
    assert apim_client.get_tenant("xyz.com").active is False and pair.is7.tenant("xyz.com") is None


def test_a_tenant_is_already_has_still_activates(pair, apim_client, is_client):
    is_client.create_tenant("abc.com", KIM)
    pair.set_direction("apim_to_is7")
    apim_client.add_tenant(kim())
    assert [(c.method, c.outcome) for c in pair.apim.sharing_calls] == [("POST", 400), ("GET", 200)]
    assert apim_client.get_tenant("abc.com").active is True


@pytest.mark.parametrize(("skip", "auto", "types"), [
    (True, True, ["WSO2-IS-7"]), (False, True, ["default"]), (True, False, []), (False, False, ["default"]),
])
def test_key_managers_follow_skip_and_auto_configure(pair, apim_client, skip, auto, types):
    pair.set_direction("apim_to_is7", auto_configure_key_manager=auto, skip_create_resident_key_manager=skip)
    apim_client.add_tenant(kim())
    managers = pair.apim.key_managers("abc.com")
    assert [m["type"] for m in managers] == types
    assert all(m["name"] == "Resident Key Manager" for m in managers)
    if types == ["WSO2-IS-7"]:
        properties = managers[0]["additionalProperties"]
        assert (properties["Authentication"], properties["MutualTLSOptions"], properties["IdentityUser"]) == (
            "MutualTLS", "ServerWide", "kim@abc.com")
        assert properties["token_endpoint"] == f"{pair.is7.base_url}/t/abc.com/oauth2/token"


# --- One direction at a time --------------------------------------------------------------------------------------


def test_switching_direction_turns_the_other_one_off(pair, is_client, apim_client):
    pair.set_direction("is7_to_apim")
    pair.set_direction("apim_to_is7")
    is_client.create_tenant("abc.com", KIM)
    assert pair.is7.wait_for_sync() and pair.is7.sync_events == []
    pair.set_direction("off")
    apim_client.add_tenant(kim(domain="xyz.com", email="kim@xyz.com"))
    assert pair.apim.sharing_calls == [] and pair.is7.tenant("xyz.com") is None
    with pytest.raises(ValueError):
        pair.set_direction("both")
