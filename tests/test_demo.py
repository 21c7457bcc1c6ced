"""`make demo` as a newcomer runs it: the launcher wires the portal to both simulators, registers a tenant and reports
whether API Manager's auto-configured key manager got keys from IS over mutual TLS, beside what the lint predicted;
it prints what to sign in with (portal, both simulators, the demo tenant's owner) and takes a port."""
from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from simulators.demo import add_simulator_admins, sign_in_lines
from tests.sync_env import wso2

ROOT = Path(__file__).resolve().parents[1]
ACCOUNT = re.compile(r"^  (?P<where>.+?): (?P<user>\S+) / (?P<password>\S+)")


def run_demo(tmp_path: Path, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "simulators.demo", *(["--check"] if check else []), "--instance",
                           str(tmp_path / "demo"), *extra], cwd=ROOT, capture_output=True, text=True, timeout=120)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def accounts(stdout: str) -> dict[str, dict[str, str]]:
    """{where: {user: password}} from the printed "Sign in with:" block."""
    found: dict[str, dict[str, str]] = {}
    for line in stdout.splitlines():
        if match := ACCOUNT.match(line):
            found.setdefault(match["where"], {})[match["user"]] = match["password"]
    return found


@pytest.mark.parametrize("direction", ["is_to_apim", "apim_to_is"])
def test_demo_tenant_gets_keys_through_the_mtls_handler(tmp_path: Path, direction: str):
    port = free_port()
    done = run_demo(tmp_path, "--direction", direction, "--port", str(port))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Mapping lint (info)" in done.stdout
    assert ("API Manager key generation for demo.example.com: ok (as demo-admin@demo.example.com, through IS's "
            "mutual-TLS handler)") in done.stdout
    assert f"Portal:                 http://127.0.0.1:{port}  (sharing: {direction})" in done.stdout
    printed = accounts(done.stdout)
    assert set(printed["Portal"]) == {"admin"} and len(printed["Portal"]["admin"]) >= 12
    assert set(printed["IS 7 simulator"]) == {"admin", "portal", "apim-sharing"}
    assert set(printed["API Manager simulator"]) == {"admin", "portal", "is-listener"}
    assert printed["Demo tenant owner (IS 7 and API Manager)"] == {"demo-admin@demo.example.com": "Demo#Owner2026"}
    assert (tmp_path / "demo" / "simulators-ca.pem").read_text().startswith("-----BEGIN CERTIFICATE-----")


def test_demo_with_a_mapping_limited_to_admin_fails_as_the_lint_predicted(tmp_path: Path):
    done = run_demo(tmp_path, "--key-manager-users", "admin")
    assert done.returncode == 0, done.stdout + done.stderr  # 0: what happened is what the lint predicted
    lint = next(line for line in done.stdout.splitlines() if line.startswith("Mapping lint"))
    assert lint.startswith("Mapping lint (error)") and "demo-admin@demo.example.com" in lint
    assert "key generation for demo.example.com: failed 401" in done.stdout


def test_a_taken_port_is_refused_before_anything_starts(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_demo(tmp_path, "--port", str(port), check=False)
    assert done.returncode == 2 and done.stdout == ""
    assert f'Port {port} on 127.0.0.1 is taken. Choose another: make demo DEMO_ARGS="--port {port + 1}"' in done.stderr
    assert not (tmp_path / "demo").exists()


@pytest.mark.parametrize("port", ["0", "65536", "http"])
def test_a_bad_port_is_a_usage_error(tmp_path: Path, port: str):
    done = run_demo(tmp_path, "--port", port, check=False)
    assert done.returncode == 2 and "--port" in done.stderr and "is not a port number" in done.stderr


def test_the_printed_simulator_users_sign_in_and_nothing_else_does(tmp_path: Path):
    """Each simulator account printed works against that simulator's REST API over HTTPS; a wrong password does not."""
    with wso2() as products:
        users = add_simulator_admins(products)
        ca_file = tmp_path / "ca.pem"
        ca_file.write_text(products.pki.server_ca.cert_pem)
        printed = accounts("\n".join(sign_in_lines(("admin", "one-time"), users, ca_file)))
        urls = {"IS 7 simulator": f"{products.is7.base_url}/api/server/v1/tenants",
                "API Manager simulator": f"{products.apim.base_url}/api/am/admin/v4/key-managers"}
        for where, url in urls.items():
            assert printed[where]["admin"] not in ("admin", printed["Portal"]["admin"])  # made for this run
            for user, password in printed[where].items():
                assert requests.get(url, auth=(user, password), verify=ca_file, timeout=5).status_code == 200, user
                assert requests.get(url, auth=(user, password + "x"), verify=ca_file, timeout=5).status_code == 401
