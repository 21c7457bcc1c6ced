"""The `entra_sim` fixture: the Entra ID simulator (simulators/entra.py) as a SUBPROCESS on a free port, with the
default config (simulators/entra_directory.py: Contoso and Fabrikam, apps portal-api (v2), legacy-api (v1, App ID
URI), partner-api (multi-tenant, consented in Fabrikam), daemon (multi-tenant client), fabrikam-daemon).

    def test_x(entra_sim):
        token = entra_sim.token(DAEMON, entra_sim.app("daemon")["clientSecret"], f"api://{API_V2}/.default")
        requests.get(f"{entra_sim.base_url}/{CONTOSO}/discovery/v2.0/keys", verify=entra_sim.ca_bundle_path)

Module-scoped: rotations and retirements in one module do not leak into another. Registered in tests/conftest.py
through `pytest_plugins`; `start_entra_sim` starts one by hand (another config, several at once).
"""
from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from simulators.entra_directory import default_config

ROOT = Path(__file__).resolve().parent.parent
READY = "entra simulator listening on "
STARTUP_TIMEOUT = 20.0


@dataclass
class EntraSim:
    """A running simulator: where it is, how to trust it, its config, and helpers over its HTTP endpoints."""

    base_url: str
    ca_bundle_path: str
    config: dict[str, Any]
    process: subprocess.Popen = field(repr=False)
    session: requests.Session = field(default_factory=requests.Session, repr=False)

    def __post_init__(self) -> None:
        # Without trust_env=False, REQUESTS_CA_BUNDLE in the environment would win over session.verify.
        self.session.trust_env = False
        self.session.verify = self.ca_bundle_path

    @property
    def authority(self) -> str:
        return self.base_url

    def app(self, name_or_client_id: str) -> dict[str, Any]:
        """An app of the config (its JSON object, with clientSecret) by name or client id."""
        return next(app for directory in self.config["directories"] for app in directory["apps"]
                    if name_or_client_id in (app.get("name"), app["clientId"]))

    def home_of(self, client_id: str) -> str:
        return next(d["tid"] for d in self.config["directories"] for app in d["apps"] if app["clientId"] == client_id)

    def request_token(self, client_id: str, secret: str | None, scope: str, directory: str | None = None, *,
                      basic: bool = False) -> requests.Response:
        """POST /{directory}/oauth2/v2.0/token (client credentials; the secret in the form, or HTTP Basic)."""
        form = {"grant_type": "client_credentials", "client_id": client_id, "scope": scope}
        auth = None
        if basic:
            auth, form = (client_id, secret or ""), {"grant_type": "client_credentials", "scope": scope}
        elif secret is not None:
            form["client_secret"] = secret
        url = f"{self.base_url}/{directory or self.home_of(client_id)}/oauth2/v2.0/token"
        return self.session.post(url, data=form, auth=auth, timeout=10)

    def token(self, client_id: str, secret: str, scope: str, directory: str | None = None) -> str:
        """An access token from the v2 token endpoint (directory: the client's home by default)."""
        response = self.request_token(client_id, secret, scope, directory)
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def jwks(self, directory: str, *, v2: bool = True) -> dict[str, Any]:
        path = "discovery/v2.0/keys" if v2 else "discovery/keys"
        response = self.session.get(f"{self.base_url}/{directory}/{path}", timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def _control(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self.session.request(method, f"{self.base_url}/_sim/{path}", timeout=10, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()

    def rotate(self) -> str:
        """A new signing key now (the old ones stay published); returns its kid."""
        return self._control("POST", "rotate")["kid"]

    def retire(self, kid: str) -> None:
        """Drop a key from every key set."""
        self._control("POST", "retire", params={"kid": kid})

    def keys(self) -> dict[str, Any]:
        """{"signer": kid, "published": [kids], "retired": [kids]}."""
        return self._control("GET", "keys")

    def mint(self, *, directory: str | None = None, client_id: str | None = None, resource: str | None = None,
             version: str | None = None, expires_in: int | None = None, kid: str | None = None,
             graph_nonce: bool | None = None, header: dict[str, Any] | None = None, **claims: Any) -> str:
        """A token from POST /_sim/token: the options as documented in simulators/entra.py, every other keyword a
        claim to add or replace (None removes it; a `tid` alone also moves `iss`)."""
        options = {"directory": directory, "clientId": client_id, "resource": resource, "version": version,
                   "expiresIn": expires_in, "kid": kid, "graphNonce": graph_nonce, "header": header}
        body = {key: value for key, value in options.items() if value is not None}
        if claims:
            body["claims"] = claims
        return self._control("POST", "token", json=body)["access_token"]


def _wait_ready(process: subprocess.Popen, log: Path) -> str:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    assert process.stdout is not None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], max(0.0, deadline - time.monotonic()))
        line = process.stdout.readline() if ready else ""
        if line.startswith(READY):
            return line[len(READY):].strip()
        if not line and process.poll() is not None:
            break
    raise RuntimeError(f"the Entra simulator did not start: {log.read_text()}")


@contextlib.contextmanager
def start_entra_sim(directory: Path, config: dict[str, Any] | None = None) -> Iterator[EntraSim]:
    """Run `python -m simulators.entra --port 0` with `config` (default: the default config) and its certificates
    in `directory`; terminate it afterwards."""
    config = config or default_config()
    directory.mkdir(parents=True, exist_ok=True)
    config_path, log = directory / "entra.json", directory / "entra.log"
    config_path.write_text(json.dumps(config))
    with log.open("w") as errors:
        process = subprocess.Popen(
            [sys.executable, "-m", "simulators.entra", "--port", "0", "--config", str(config_path),
             "--cert-dir", str(directory / "certs")],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        base_url = _wait_ready(process, log)
        sim = EntraSim(base_url, str(directory / "certs" / "ca.pem"), config, process)
        yield sim
        sim.session.close()
    finally:
        process.terminate()  # SIGTERM ends the simulator at once (no handler)
        process.wait(timeout=10)
        if process.stdout:
            process.stdout.close()


@pytest.fixture(scope="module")
def entra_sim(tmp_path_factory) -> Iterator[EntraSim]:
    with start_entra_sim(tmp_path_factory.mktemp("entra")) as sim:
        yield sim
