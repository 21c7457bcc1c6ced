"""`make demo`: both WSO2 simulators and the portal wired to them, on one machine, for clicking through the flow.

A fresh SQLite database in instance/demo/ (replaced on every start), the first administrator's one-time password
printed, the simulators' CA and the portal's connections stored, one sharing direction on with
auto_configure_key_manager (API Manager makes a WSO2-IS-7 key manager per tenant), API Manager's client certificate
uploaded and mapped for IS's mutual-TLS handler, IS's mappings taken from the portal's generated deployment.toml, and
one demo tenant registered and delivered, and the Entra ID simulator with an entra-demo tenant
(simulators/demo_entra.py: a client-credentials command to try is printed). The launcher then prints what the
portal's lint said about the key manager users and whether API Manager generated keys for the tenant through IS,
and serves the portal on http://127.0.0.1:<port> (`--port`, default 5000) with a worker until Ctrl-C stops
everything. Before serving it prints
what to sign in with: the portal's first administrator, each simulator's `admin` (a password made for this run) and
the users the portal and the products use with each other, and the demo tenant's owner. `--check` stops after that
report (exit 0 when what happened is what the lint predicted); `--key-manager-users admin` shows the failure the
lint warns about.

This is the one module under simulators/ that imports the portal: it wires the portal to the simulators.
"""
from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from simulators.demo_entra import start_entra_demo

ROOT = Path(__file__).resolve().parents[1]
DEMO_TENANT = {"tenantId": "demo", "displayName": "Demo tenant", "tenantDomain": "demo.example.com",
               "clientId": "demo-client", "identityProviderType": "LDAP",
               "owner": {"username": "demo-admin", "email": "admin@demo.example.com", "firstName": "Dee",
                         "lastName": "Moe", "provisioningMethod": "inline-password", "password": "Demo#Owner2026"},
               "ldapSchema": {"ldapURLForDirectoryService": "ldap://127.0.0.1:389",
                              "directoryServiceDomainName": "example.com",
                              "directoryServiceRootDistinguishedName": "dc=example,dc=com"}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=_port, default=5000,
                        help='the portal\'s port on 127.0.0.1 (default 5000): make demo DEMO_ARGS="--port 5001"')
    parser.add_argument("--direction", choices=("off", "is_to_apim", "apim_to_is"), default="is_to_apim",
                        help="the tenant-sharing direction to start with (default is_to_apim; with off, API "
                             "Manager auto-configures no key manager)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every simulated WSO2 call")
    parser.add_argument("--key-manager-users", default="*",
                        help="allowed_username of the mapping for API Manager's certificate, comma-separated "
                             "(default '*', as the seed; 'admin' shows the 401 every tenant's key manager gets)")
    parser.add_argument("--instance", type=Path, default=ROOT / "instance" / "demo",
                        help="the demo's instance folder, emptied on start (default instance/demo)")
    parser.add_argument("--check", action="store_true",
                        help="set up, register the demo tenant, print the report and exit (no server)")
    args = parser.parse_args(argv)
    if not args.check and not _port_is_free(args.port):
        print(f"Port {args.port} on 127.0.0.1 is taken. Choose another: make demo DEMO_ARGS=\"--port "
              f"{args.port + 1}\" (or .venv/bin/python -m simulators.demo --port {args.port + 1}).", file=sys.stderr)
        return 2

    instance = args.instance.resolve()
    shutil.rmtree(instance, ignore_errors=True)
    instance.mkdir(parents=True)
    os.environ["PORTAL_INSTANCE_PATH"] = str(instance)
    os.environ.pop("DATABASE_URL", None)

    import flask_migrate

    from portal import create_app
    from portal.services.admin import admins
    from tests.sync_env import wso2

    app = create_app({"INSTANCE_PATH": str(instance), "SQLALCHEMY_DATABASE_URI": f"sqlite:///{instance}/portal.sqlite3",
                      "DEBUG": True, "LOG_LEVEL": "WARNING"})
    with app.app_context():
        flask_migrate.upgrade()
        first = admins.bootstrap_first_admin()
        sign_in = (first.admin.username, first.password) if first is not None else None
    users = tuple(u.strip() for u in args.key_manager_users.split(",") if u.strip())
    with wso2(latency=args.latency, key_manager_users=()) as products:
        products.connect(app)
        products.share(app, args.direction)
        report = _onboard_demo_tenant(app, products, users)
        _entra, entra_lines = start_entra_demo(app, instance, lambda body: _register(app, body))
        simulator_users = add_simulator_admins(products)
        ca_file = instance / "simulators-ca.pem"
        ca_file.write_text(products.pki.server_ca.cert_pem)
        print("=" * 72)
        print(f"Portal:                 http://127.0.0.1:{args.port}  (sharing: {args.direction})")
        print(f"IS 7 simulator:         {products.is7.base_url}")
        print(f"API Manager simulator:  {products.apim.base_url}")
        for line in report.lines:
            print(line)
        print("-" * 72)
        for line in entra_lines:
            print(line)
        print("-" * 72)
        for line in sign_in_lines(sign_in, simulator_users, ca_file):
            print(line)
        if args.check:
            print("=" * 72, flush=True)
            return 0 if report.as_predicted else 1
        print("Ctrl-C stops the portal, the worker and both simulators.")
        print("=" * 72, flush=True)
        _serve(args.port)
    return 0


def _register(app, body: dict) -> str:
    """Register a tenant as the CLI would (its connection check runs); the check's summary."""
    from portal.services.context import Actor
    from portal.services.tenants import service as tenants

    with app.app_context():
        check = tenants.register_tenant(body, Actor.cli()).check
    return check.summary if check else ""


def _port(text: str) -> int:
    """argparse type: a TCP port number."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (1-65535)")
    return port


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def add_simulator_admins(products) -> dict[str, dict[str, str]]:
    """An `admin` with a password made for this run in each simulator (as WSO2's own consoles have one), and every
    Basic user each simulator holds, by product: what `make demo` prints to sign in with."""
    from tests.sync_env import (
        APIM_PASSWORD,
        APIM_USER,
        IS_PASSWORD,
        IS_USER,
        LISTENER_PASSWORD,
        LISTENER_USER,
        SHARING_PASSWORD,
        SHARING_USER,
    )

    is_admin, apim_admin = "is-" + secrets.token_urlsafe(9), "apim-" + secrets.token_urlsafe(9)
    products.is7.add_basic_user("admin", is_admin)
    products.apim.add_user("admin", apim_admin)
    return {"IS 7": {"admin": is_admin, IS_USER: IS_PASSWORD, SHARING_USER: SHARING_PASSWORD},
            "API Manager": {"admin": apim_admin, APIM_USER: APIM_PASSWORD, LISTENER_USER: LISTENER_PASSWORD}}


def sign_in_lines(portal_admin: tuple[str, str] | None, simulator_users: dict[str, dict[str, str]],
                  ca_file: Path) -> list[str]:
    """What to sign in with, one account a line: `<where>: <user> / <password>` and what the account is for."""
    lines = ["Sign in with:"]
    if portal_admin is not None:
        lines.append(f"  Portal: {portal_admin[0]} / {portal_admin[1]}  (a one-time password: the portal asks for "
                     "a new one)")
    roles = {"admin": "the product's administrator", "portal": "the portal's own user",
             "apim-sharing": "API Manager's tenant sharing signs in as it",
             "is-listener": "IS 7's tenant listener signs in as it"}
    for product, users in simulator_users.items():
        for user, password in users.items():
            lines.append(f"  {product} simulator: {user} / {password}  ({roles.get(user, 'a Basic user')})")
    owner = DEMO_TENANT["owner"]
    lines.append(f"  Demo tenant owner (IS 7 and API Manager): {owner['username']}@{DEMO_TENANT['tenantDomain']} / "
                 f"{owner['password']}")
    lines.append(f"  The simulators' HTTPS certificates chain to {ca_file} (curl --cacert {ca_file} ...)")
    return lines


class Report:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.as_predicted = True


def _onboard_demo_tenant(app, products, users: tuple[str, ...]) -> Report:
    """API Manager's certificate and its user mapping into the portal, the portal's TOML into IS, the demo tenant
    through the outbox, then what the lint predicted beside what API Manager's key manager got."""
    from portal.services.certificates import mapping_lint, mappings, service as certificates
    from portal.services.outbox.worker import Worker
    from portal.services.tenants import service as tenants
    from simulators.is7 import load_mappings
    from tests.sync_env import ACTOR

    report = Report()
    with app.app_context():
        stored = certificates.upload_certificate("apim", products.apim_client.cert_pem.encode(), ACTOR,
                                                 label="API Manager client certificate").stored[0]
        prefill = mappings.prefill_from_certificate(stored.id, "user")
        if users:
            prefill = mappings.MappingInput(prefill.trusted_issuer, prefill.cert_thumbprint, users)
        mappings.create_mapping("user", prefill, ACTOR)
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "is7-deployment.toml"
            path.write_text(mappings.deployment_toml())
            products.is7.set_mappings(*load_mappings(path))
        body = {**DEMO_TENANT, "clientSecret": secrets.token_urlsafe(32)}
        domain = tenants.register_tenant(body, ACTOR, skip_check=True).tenant.domain
    with app.app_context():  # the lint models the tenant's key manager user once it is registered
        findings = [f for f in mapping_lint.lint().general if "key manager user" in f.message]
    Worker(app, concurrency=2, poll_interval=0.05).drain(timeout=60)
    for finding in findings:
        report.lines.append(f"Mapping lint ({finding.level}): {finding.message}")
    generation = products.apim.key_generation(domain)
    if generation is None:
        report.lines.append(f"API Manager made no WSO2-IS-7 key manager for {domain} (sharing off: none expected).")
        return report
    report.lines.append(f"API Manager {generation} (as {generation.identity_user}, through IS's mutual-TLS handler)")
    predicted_ok = all(f.level == "info" for f in findings)
    report.as_predicted = predicted_ok == generation.ok
    return report


def _serve(port: int) -> None:
    env = {**os.environ, "FLASK_APP": "portal"}
    flask = [sys.executable, "-m", "flask", "--app", "portal"]
    children = [
        subprocess.Popen([*flask, "worker", "--concurrency", "4"], cwd=ROOT, env=env),
        subprocess.Popen([*flask, "run", "--host", "127.0.0.1", "--port", str(port)], cwd=ROOT, env=env),
    ]
    try:
        children[1].wait()
    except KeyboardInterrupt:
        pass
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()


if __name__ == "__main__":
    sys.exit(main())
