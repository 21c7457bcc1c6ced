"""One table of IS 7 client-certificate vectors (tests/vectors/cert_auth_vectors.json) through two independent
evaluators, on both handler lines: the IS 7 simulator's oracle (a port of WSO2's handler, with its own Java DN
rendering and thumbprint) and the portal's `cert_auth.evaluate` (with `certificates.java_dn`). The simulator is
also driven over real HTTPS with each vector's certificate and header. Plus: no simulator module imports the
portal."""
from __future__ import annotations

import ast
import hashlib
import json
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.x509.oid import NameOID

from portal.services.certificates import cert_auth, service as certificates
from simulators import cert_oracle, x509_names
from simulators.is7 import API_PREFIX, Is7Simulator
from simulators.pki import Authority, Issued

ROOT = Path(__file__).resolve().parent.parent
TABLE = json.loads((ROOT / "tests/vectors/cert_auth_vectors.json").read_text())
VECTORS = TABLE["vectors"]
LINES = ("master", "backport")
CASES = [pytest.param(v, line, id=f"{line}: {v['name']}") for v in VECTORS for line in LINES]
_ATTRIBUTES = {"C": NameOID.COUNTRY_NAME, "ST": NameOID.STATE_OR_PROVINCE_NAME, "L": NameOID.LOCALITY_NAME,
               "O": NameOID.ORGANIZATION_NAME, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME, "CN": NameOID.COMMON_NAME,
               "UID": NameOID.USER_ID, "emailAddress": NameOID.EMAIL_ADDRESS, "DC": NameOID.DOMAIN_COMPONENT}


def test_the_table_is_big_and_covers_both_lines_differently():
    assert len(VECTORS) >= 30
    assert len({v["name"] for v in VECTORS}) == len(VECTORS)
    differing = [v["name"] for v in VECTORS if v["expect"]["master"] != v["expect"]["backport"]]
    assert len(differing) >= 5, differing


@cache
def authority(key: str) -> Authority:
    rdns = [x509.RelativeDistinguishedName([x509.NameAttribute(_ATTRIBUTES[k], v) for k, v in rdn])
            for rdn in TABLE["issuers"][key]]
    return Authority(x509.Name(rdns))


@cache
def client(key: str) -> Issued:
    return authority(key).client(f"client of {key}")


@cache
def stranger() -> Issued:
    return Authority("Stranger CA").client("stranger")


def _colon_hex(digest: bytes) -> str:
    return ":".join(f"{b:02X}" for b in digest)


def _fill(text: str, cert: Issued) -> str:
    """Placeholders of the table from the vector's own certificate (hashlib, not either evaluator)."""
    t = _colon_hex(hashlib.sha256(cert.der).digest())
    return (text.replace("{T_nocolons}", t.replace(":", "")).replace("{T}", t).replace("{t}", t.lower())
            .replace("{OTHER}", _colon_hex(hashlib.sha256(stranger().der).digest()))
            .replace("{SHA1}", _colon_hex(hashlib.sha1(cert.der).digest())))


def _mappings(vector: dict, cert: Issued) -> tuple[list[dict], list[dict]]:
    users = [{**m, "cert_thumbprint": _fill(m["cert_thumbprint"], cert)} for m in vector.get("user_mappings", [])]
    systems = [{**m, "cert_thumbprint": _fill(m["cert_thumbprint"], cert)}
               for m in vector.get("system_mappings", [])]
    return users, systems


def _existing(vector: dict) -> set[tuple[str, str]]:
    """(tenant, lower-case name) of the vector's users."""
    out = set()
    for user in vector.get("users", ["admin"]):
        name, at, tenant = user.rpartition("@")
        out.add((tenant, name.lower()) if at else ("carbon.super", user.lower()))
    return out


def _outcome(ok: bool, user: str | None) -> str:
    if not ok:
        return "401"
    return "anonymous" if user is None else user


def _portal_user_exists(vector: dict):
    """The portal's evaluator takes one callable over the raw name; this harness resolves names its own way."""
    existing = _existing(vector)

    def exists(username: str) -> bool:
        name, at, tenant = username.rpartition("@")
        if not at:
            name, tenant = username, "carbon.super"
        if "/" in name:
            store, _, name = name.partition("/")
            if store.upper() != "PRIMARY":
                return False
        return (tenant, name.lower()) in existing

    return exists


@pytest.mark.parametrize("vector, line", CASES)
def test_portal_evaluator(vector, line):
    cert = client(vector["issuer"])
    users, systems = _mappings(vector, cert)
    decision = cert_auth.evaluate(
        certificates.java_dn(cert.cert.issuer), certificates.thumbprint(cert.cert), vector["header"],
        [cert_auth.UserMapping(m["trusted_issuer"], m["cert_thumbprint"], tuple(m["allowed_username"]))
         for m in users],
        [cert_auth.SystemMapping(m["trusted_issuer"], m["cert_thumbprint"], m["allowed_system_user"])
         for m in systems],
        user_exists=_portal_user_exists(vector), line=line)
    assert _outcome(decision.ok, decision.user) == vector["expect"][line], decision.reason


@pytest.mark.parametrize("vector, line", CASES)
def test_simulator_oracle(vector, line):
    cert = client(vector["issuer"])
    users, systems = _mappings(vector, cert)
    existing = _existing(vector)
    tenants = {tenant for tenant, _ in existing} | {"carbon.super"}

    def user_store(tenant: str, store: str, name: str) -> bool:
        if tenant not in tenants:
            raise cert_oracle.TenantNotFound(tenant)
        return store == "PRIMARY" and (tenant, name.lower()) in existing

    config = cert_oracle.ClientCertAuthConfig(user_mappings=tuple(map(cert_oracle.user_mapping, users)),
                                              system_mappings=tuple(map(cert_oracle.system_mapping, systems)))
    thumbprint = _colon_hex(hashlib.sha256(cert.der).digest())  # what getSha256Fingerprint prints
    result = cert_oracle.authenticate(x509_names.issuer_name(cert.cert), thumbprint, vector["header"], config,
                                      line=line, user_store=user_store)
    assert _outcome(result.ok, result.user) == vector["expect"][line], result.reason


# --- The same vectors over HTTPS against the simulator ----------------------------------------------------------


@pytest.fixture(scope="module")
def https_sim(tmp_path_factory):
    server_ca = Authority("vector server CA")
    server = server_ca.server()
    bundle = "".join(authority(key).cert_pem for key in TABLE["issuers"])
    folder = tmp_path_factory.mktemp("vectors")
    (folder / "ca.pem").write_text(server_ca.cert_pem)
    files = {key: client(key).write(folder, key) for key in TABLE["issuers"]}
    with Is7Simulator(server_cert_pem=server.cert_pem, server_key_pem=server.key_pem, client_ca_pem=bundle) as sim:
        yield sim, str(folder / "ca.pem"), files


@pytest.mark.parametrize("vector, line", CASES)
def test_simulator_over_https(https_sim, vector, line):
    sim, ca, files = https_sim
    cert = client(vector["issuer"])
    users, systems = _mappings(vector, cert)
    sim.set_mappings(user=users, system=systems)
    sim.set_users(u for u in vector.get("users", ["admin"]))
    sim.set_handler_line(line)
    headers = {} if vector["header"] is None else {"wso2-identity-user": vector["header"]}  # any header-name case
    response = requests.get(f"{sim.base_url}{API_PREFIX}/tenants", verify=ca, cert=files[vector["issuer"]],
                            headers=headers, timeout=5)
    entry = sim.requests[-1]
    expected = vector["expect"][line]
    if expected == "401":
        assert response.status_code == 401 and response.json()["code"] == 401, entry.decision
    else:
        assert response.status_code != 401, entry.decision.reason
        assert _outcome(True, entry.decision.user) == expected


# --- The two Java DN renderers agree with each other on the table's issuers (each is checked against the JDK
# elsewhere: tests/test_certificates.py and tests/test_x509_names.py).

@pytest.mark.parametrize("key", list(TABLE["issuers"]))
def test_both_renderers_print_the_issuer_alike(key):
    cert = client(key).cert
    assert x509_names.issuer_name(cert) == certificates.java_dn(cert.issuer)
    assert x509_names.subject_name(cert) == certificates.java_dn(cert.subject)


# --- Independence ------------------------------------------------------------------------------------------------

SIMULATORS = ROOT / "simulators"


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted(p for p in SIMULATORS.glob("*.py") if p.name != "demo.py"),
                         ids=lambda p: p.name)
def test_no_simulator_module_imports_the_portal(path):
    offending = {name for name in _imported_modules(path) if name == "portal" or name.startswith("portal.")}
    assert not offending, f"{path.name} imports {sorted(offending)}"


def test_importing_the_simulators_loads_nothing_of_the_portal():
    code = ("import sys, simulators, simulators.is7, simulators.apim, "
            "simulators.cert_oracle, simulators.x509_names, simulators.pki\n"
            "from simulators import start_pair\n"
            "pair = start_pair()\npair.stop()\n"
            "print(sorted(m for m in sys.modules if m == 'portal' or m.startswith('portal.')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
