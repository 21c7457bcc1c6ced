"""The API Manager simulator's auto-configured WSO2-IS-7 key manager (fidelity findings #1, #3, #4, #8; wso2-apis.md
§5): which tenants get one, by SOAP and by notify, with API Manager's own sync on or off; and the key manager's
calls to the IS 7 simulator over mutual TLS (client registration, then a token), which succeed with a mapping that
allows "*" and fail with 401 when the mapping only allows "admin" - the failure issue 12 is about."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from portal.services.certificates.cert_auth import SystemMapping, UserMapping
from portal.services.certificates.service import java_dn
from simulators.apim import ApimSimulator, KeyManagerConfig, TenantSharingConfig
from simulators.is7 import Is7Simulator, TenantSyncConfig

KIM_PASSWORD = "Kim#12345"
KIM_OWNER = {"username": "kim", "password": KIM_PASSWORD, "email": "kim@abc.com", "firstname": "Kim",
             "lastname": "Lee", "provisioningMethod": "inline-password"}


@pytest.fixture(scope="module")
def apim_cert(pki):
    """API Manager's own certificate (its keystore), issued by the CA IS trusts for client certificates."""
    return pki.client_ca.client("apim-keystore")


@pytest.fixture
def is7(pki, apim_cert):
    issuer = java_dn(apim_cert.cert.issuer)
    with Is7Simulator(server_cert_pem=pki.server.cert_pem, server_key_pem=pki.server.key_pem,
                      client_ca_pem=pki.client_ca.cert_pem,
                      user_mappings=[UserMapping(issuer, apim_cert.thumbprint, ("*",))]) as sim:
        yield sim


@pytest.fixture
def apim(pki, apim_cert):
    with ApimSimulator(server_cert_pem=pki.server.cert_pem, server_key_pem=pki.server.key_pem,
                       client_cert_pem=apim_cert.cert_pem, client_key_pem=apim_cert.key_pem) as sim:
        yield sim


def km_config(is7, pki, auto: bool = True) -> KeyManagerConfig:
    return KeyManagerConfig(is7.base_url, auto, ca_pem=pki.server_ca.cert_pem, timeout=5.0)


@pytest.fixture(scope="module")
def ca_file(pki, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("ca") / "server-ca.pem"
    path.write_text(pki.server_ca.cert_pem)
    return str(path)


@pytest.fixture
def create_in_is(is7, ca_file):
    """Create a tenant through IS's REST API as the super admin (kim is its owner)."""
    def create(domain: str = "abc.com") -> None:
        response = requests.post(f"{is7.base_url}/api/server/v1/tenants", json={"domain": domain, "owners": [
            {**KIM_OWNER, "email": f"kim@{domain}"}]}, auth=("admin", "admin"), verify=ca_file, timeout=5)
        assert response.status_code == 201, response.text
    return create


def is7_to_apim(is7, apim, pki) -> None:
    """IS's TenantSyncListener pushes to API Manager's notify API; API Manager's own sync stays off."""
    is7.configure_tenant_sync(TenantSyncConfig(apim.notify_url, "admin", "admin", ca_pem=pki.server_ca.cert_pem,
                                               retry_delay=0.02, timeout=10.0))


# --- Which tenants get the WSO2-IS-7 key manager ------------------------------------------------------------------


def test_soap_add_with_sharing_on_configures_it_and_its_keys_work(is7, apim, pki):
    apim.configure(skip_create_resident_key_manager=True)
    apim.configure_tenant_sharing(TenantSharingConfig(is7.base_url, "admin", "admin", auto_configure_key_manager=True,
                                                      ca_pem=pki.server_ca.cert_pem, retry_period=0.01))
    apim.service.add_tenant({"tenantDomain": "abc.com", "admin": "kim", "adminPassword": KIM_PASSWORD,
                             "email": "kim@abc.com", "firstname": "Kim", "lastname": "Lee"})
    (manager,) = apim.key_managers("abc.com")
    properties = manager["additionalProperties"]
    assert (manager["name"], manager["type"]) == ("Resident Key Manager", "WSO2-IS-7")
    assert (properties["Authentication"], properties["MutualTLSOptions"], properties["IdentityUser"]) == (
        "MutualTLS", "ServerWide", "kim@abc.com")
    assert properties["client_registration_endpoint"] == \
        f"{is7.base_url}/t/abc.com/api/identity/oauth2/dcr/v1.1/register"
    assert str(apim.key_generation("abc.com")) == "key generation for abc.com: ok"


def test_notify_create_with_sharing_off_still_configures_it(is7, apim, pki, create_in_is):
    apim.configure(skip_create_resident_key_manager=True)
    apim.configure_key_manager(km_config(is7, pki))
    is7_to_apim(is7, apim, pki)
    create_in_is()
    assert is7.wait_for_sync()
    assert apim.tenant("abc.com").active is True and apim.sharing_calls == []  # no sync back to IS
    assert [(m["type"], m["additionalProperties"]["IdentityUser"]) for m in apim.key_managers("abc.com")] == [
        ("WSO2-IS-7", "kim@abc.com")]


@pytest.mark.parametrize(("skip", "auto", "types"), [
    (False, True, ["default"]),  # auto-configure without skip: silently no WSO2-IS-7 key manager (findings #8)
    (True, False, []),
    (False, False, ["default"]),
])
def test_without_both_settings_no_is7_key_manager(is7, apim, pki, skip, auto, types, create_in_is):
    apim.configure(skip_create_resident_key_manager=skip)
    apim.configure_key_manager(km_config(is7, pki, auto))
    is7_to_apim(is7, apim, pki)
    create_in_is()
    assert is7.wait_for_sync()
    assert apim.tenant("abc.com").active is True
    assert [m["type"] for m in apim.key_managers("abc.com")] == types
    assert apim.key_generation("abc.com") is None
    assert not any(r.path.startswith("/t/") for r in is7.requests)


# --- The key manager's calls to IS ------------------------------------------------------------------------------


def test_key_generation_registers_a_client_and_gets_a_token_over_mutual_tls(is7, apim, pki, apim_cert, create_in_is):
    apim.configure(skip_create_resident_key_manager=True)
    apim.configure_key_manager(km_config(is7, pki))
    is7_to_apim(is7, apim, pki)
    create_in_is()
    assert is7.wait_for_sync()
    result = apim.key_generation("abc.com")
    assert result.ok and result.client_id and result.identity_user == "kim@abc.com"
    assert [(c.method, c.path, c.status) for c in result.calls] == [
        ("POST", "/t/abc.com/api/identity/oauth2/dcr/v1.1/register", 201), ("POST", "/t/abc.com/oauth2/token", 200)]
    register = next(r for r in is7.requests if r.path.endswith("/dcr/v1.1/register"))
    assert register.headers["wso2-identity-user"] == "kim@abc.com"
    assert register.client_thumbprint == apim_cert.thumbprint  # API Manager's own certificate, not Basic
    assert "authorization" not in register.headers
    assert register.json() == {"client_name": "apim_abc.com_km_probe", "grant_types": ["client_credentials"],
                               "ext_param_owner": "kim@abc.com"}
    token = next(r for r in is7.requests if r.path == "/t/abc.com/oauth2/token")
    assert token.body == b"grant_type=client_credentials" and token.headers["authorization"].startswith("Basic ")


def test_a_mapping_limited_to_admin_makes_key_generation_fail_with_401(is7, apim, pki, apim_cert, create_in_is):
    """Findings #1: the prefilled mapping with one fixed `admin` rejects `kim@abc.com`; the tenant still exists."""
    is7.set_mappings(user=[UserMapping(java_dn(apim_cert.cert.issuer), apim_cert.thumbprint, ("admin",))])
    apim.configure(skip_create_resident_key_manager=True)
    apim.configure_key_manager(km_config(is7, pki))
    is7_to_apim(is7, apim, pki)
    create_in_is()
    assert is7.wait_for_sync()
    assert [a.outcome for a in is7.sync_attempts] == [200]  # the notify succeeded: the tenant was created
    assert apim.tenant("abc.com").active is True
    result = apim.key_generation("abc.com")
    assert not result.ok and result.outcome.startswith("failed 401") and result.status == 401
    assert str(result).startswith("key generation for abc.com: failed 401")
    assert [c.path for c in result.calls] == ["/t/abc.com/api/identity/oauth2/dcr/v1.1/register"]
    assert any("key generation for abc.com: failed 401" in event for event in apim.events)

    is7.set_mappings(user=[UserMapping(java_dn(apim_cert.cert.issuer), apim_cert.thumbprint, ("*",))])
    again = apim.generate_keys("abc.com")  # fixed in IS: the next key generation works
    assert again.ok and len(apim.key_generations["abc.com"]) == 2


def test_without_a_client_certificate_no_call_is_made(is7, pki):
    with ApimSimulator(server_cert_pem=pki.server.cert_pem, server_key_pem=pki.server.key_pem,
                       skip_create_resident_key_manager=True, key_manager=km_config(is7, pki)) as apim:
        apim.service.add_tenant({"tenantDomain": "abc.com", "admin": "kim", "adminPassword": KIM_PASSWORD,
                                 "email": "kim@abc.com"})
        assert apim.key_generation("abc.com").outcome == "not attempted: API Manager has no client certificate"
    assert not any(r.path.startswith("/t/") for r in is7.requests)


def test_an_unreachable_is_fails_key_generation_but_not_the_tenant(apim, is7, pki):
    apim.configure(skip_create_resident_key_manager=True)
    apim.configure_key_manager(km_config(is7, pki))
    is7.go_down()
    apim.service.add_tenant({"tenantDomain": "abc.com", "admin": "kim", "adminPassword": KIM_PASSWORD,
                             "email": "kim@abc.com"})
    result = apim.key_generation("abc.com")
    assert result.outcome.startswith("failed: ") and result.status is None
    assert apim.tenant("abc.com").active is True


# --- API Manager's outbound client certificate (findings #4) ----------------------------------------------------


def test_sharing_calls_present_the_certificate_only_when_asked(is7, apim, pki, apim_cert):
    apim.configure_tenant_sharing(TenantSharingConfig(is7.base_url, "admin", "admin", ca_pem=pki.server_ca.cert_pem,
                                                      retry_period=0.01))
    apim.service.add_tenant({"tenantDomain": "abc.com", "admin": "kim", "adminPassword": KIM_PASSWORD,
                             "email": "kim@abc.com"})
    assert [(c.method, c.outcome) for c in apim.sharing_calls] == [("POST", 201), ("GET", 200)]
    assert {r.client_thumbprint for r in is7.requests} == {None}  # Basic only, by default

    apim.configure(present_client_certificate=True)  # IS's certificate handler now decides alone
    apim.service.add_tenant({"tenantDomain": "xyz.com", "admin": "kim", "adminPassword": KIM_PASSWORD,
                             "email": "kim@xyz.com"})
    calls = apim.sharing_calls[2:]
    assert [(c.method, c.outcome) for c in calls] == [("POST", 401), ("GET", 401)]  # no system mapping covers it
    assert {r.client_thumbprint for r in is7.requests[-2:]} == {apim_cert.thumbprint}
    assert apim.tenant("xyz.com").active is False  # the initial activation check failed: API Manager deactivates
    assert is7.tenant("xyz.com") is None

    is7.set_mappings(system=[SystemMapping(java_dn(apim_cert.cert.issuer), apim_cert.thumbprint, "admin")])
    apim.service.add_tenant({"tenantDomain": "def.com", "admin": "kim", "adminPassword": KIM_PASSWORD,
                             "email": "kim@def.com"})
    assert [(c.method, c.outcome) for c in apim.sharing_calls[4:]] == [("POST", 201), ("GET", 200)]
    assert apim.tenant("def.com").active is True


# --- The command line -----------------------------------------------------------------------------------------------


def test_the_command_line_runs_the_key_manager_calls(is7, pki, apim_cert, tmp_path, create_in_is):
    """`python -m simulators.apim` with the key manager options, as a demo would start it: IS pushes a new
    tenant by notify, the simulator (sync off) adds the WSO2-IS-7 key manager and its calls to IS succeed."""
    cert, key = apim_cert.write(tmp_path, "apim-client")
    is_ca = tmp_path / "is-ca.pem"
    is_ca.write_text(pki.server_ca.cert_pem)
    root = Path(__file__).resolve().parent.parent
    process = subprocess.Popen(
        [sys.executable, "-m", "simulators.apim", "--port", "0", "--demo-pki", str(tmp_path / "pki"),
         "--is-base-url", is7.base_url, "--no-tenant-sync", "--is-ca", str(is_ca), "--auto-configure-key-manager",
         "--skip-create-resident-key-manager", "--client-cert", str(cert), "--client-key", str(key)],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = None
        for _ in range(10):
            line = process.stdout.readline()
            match = re.search(r"simulator on (https://\S+) ", line)
            if match:
                base = match.group(1)
                break
        assert base and "auto-configured key managers" in line, process.stderr.read() if process.poll() else line
        apim_ca = (tmp_path / "pki" / "apim-ca.pem").read_text()
        is7.configure_tenant_sync(TenantSyncConfig(f"{base}/internal/data/v1/notify", "admin", "admin",
                                                   ca_pem=apim_ca, retry_delay=0.02, timeout=10.0))
        create_in_is()
        assert is7.wait_for_sync()
        assert [a.outcome for a in is7.sync_attempts] == [200]
        assert [(r.path, r.status) for r in is7.requests if r.path.startswith("/t/")] == [
            ("/t/abc.com/api/identity/oauth2/dcr/v1.1/register", 201), ("/t/abc.com/oauth2/token", 200)]
        assert not any(r.path.startswith("/api/server/v1") and r.method == "GET" for r in is7.requests)  # no sync
    finally:
        process.terminate()
        process.wait(timeout=10)
        stderr = process.stderr.read()
        process.stdout.close()
        process.stderr.close()
    assert "apim-sim: Key manager check: key generation for abc.com: ok" in stderr
