"""A Microsoft Entra ID simulator: real HTTPS on 127.0.0.1 serving what a resource server and a daemon client see
of Entra (`reference/entra-id.md`), quirks included. It never imports the portal.

    python -m simulators.entra --port 8443 --config entra.json --cert-dir /tmp/entra   # trust /tmp/entra/ca.pem
    python -m simulators.entra --write-default-config entra.json                      # the default config

Authority = the base URL, e.g. https://127.0.0.1:8443. For a directory `{t}` (a GUID, a verified domain,
`organizations`, `common` or `consumers`, in any case):

- GET /{t}/v2.0/.well-known/openid-configuration and /{t}/.well-known/openid-configuration: discovery. For a GUID
  or a domain the endpoints name the directory's GUID and the issuer is {authority}/{tid}/v2.0 (v2) or
  https://sts.windows.net/{tid}/ (v1, never fetched, so it is Entra's real one); `common` and `organizations`
  publish the literal templates {authority}/{tenantid}/v2.0 and https://sts.windows.net/{tenantid}/; `consumers`
  is the personal-account directory 9188040d-6c67-4c5b-b112-36a304b66dad.
- GET /{t}/discovery/v2.0/keys and /{t}/discovery/keys: the JWKS (RSA 2048, RS256; kty, use, kid = x5t, n, e, x5c,
  and an `issuer` member: {authority}/{tid}/v2.0 for a directory, {authority}/{tenantid}/v2.0 for the aliases).
- POST /{t}/oauth2/v2.0/token: client credentials (client_id + client_secret in the form or HTTP Basic,
  scope=<resource>/.default where the resource is an App ID URI, api://<clientId>, the client id or
  https://graph.microsoft.com). POST /{t}/oauth2/token is the v1 endpoint (resource= instead of scope). The
  directory in the path issues the token: the client's home or one holding its service principal; the aliases are
  refused (AADSTS50059). The ACCESS TOKEN's version follows the RESOURCE app's accessTokenAcceptedVersion (null/1:
  v1, 2: v2), whatever the endpoint. Graph tokens are v1 with a `nonce` header (see entra_tokens.encode).
- GET /{t}/oauth2/v2.0/authorize: 400 AADSTS50058 (simulator: no interactive sign-in).
- Errors: Entra's JSON (error, error_description "AADSTSnnn: … Trace ID … Correlation ID … Timestamp …",
  error_codes, timestamp, trace_id, correlation_id, error_uri); an unknown directory is 400 AADSTS90002.

Test controls (never part of Entra), over HTTP and in-process (`EntraSimulator.rotate/retire/mint/keys`):
- POST /_sim/rotate: a new key signs from now on, the old ones stay published -> {"kid", "signer", "published",
  "retired"}.
- POST /_sim/retire?kid=K: drop K from every key set -> the same summary; 404 unknown, 409 for the signer.
- GET /_sim/keys: the summary.
- POST /_sim/token with a JSON object, every member optional -> {"access_token": "..."}:
  "directory" (GUID or domain of a configured directory, or any GUID: a foreign directory; default the first),
  "clientId" (default the directory's first app without an App ID URI), "resource" (an identifier as in a scope;
  default the directory's first app with an App ID URI; https://graph.microsoft.com for a Graph token),
  "version" ("1.0" / "2.0"; default the resource's manifest), "expiresIn" (seconds, negative for an expired
  token; default 3600), "kid" (sign with this key, even a retired one; default the signer), "graphNonce" (bool;
  default true for Graph), "header" (members to add or replace, null removes), "claims" (claims to add or
  replace, null removes; a "tid" without "iss" also moves the issuer to that directory).
"""
from __future__ import annotations

import argparse
import base64
import binascii
import hmac
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlsplit

from simulators.entra_directory import (
    App,
    Registry,
    Resolved,
    default_config,
    is_guid,
    write_default_config,
)
from simulators.entra_tokens import (
    EntraError,
    KeyRing,
    app_token_claims,
    discovery,
    encode,
    is_graph,
    missing_parameter,
    tenant_malformed,
    tenant_not_found,
    token_response,
    v1_issuer,
    v2_issuer,
)
from simulators.https import BaseState, HttpsSimulator, TlsHandler, run_until_interrupted, server_context

__all__ = ["EntraError", "EntraSimulator", "main"]

JSON = "application/json; charset=utf-8"
TEMPLATE = "{tenantid}"
_MINT_OPTIONS = {"directory", "clientId", "resource", "version", "expiresIn", "kid", "graphNonce", "header", "claims"}


@dataclass
class LoggedRequest:
    method: str
    path: str
    status: int | str | None = None


class EntraState(BaseState):
    def __init__(self, config: dict[str, Any], *, latency: float = 0.0) -> None:
        super().__init__(latency=latency)
        self.registry = Registry(config)
        self.ring = KeyRing()


def _credentials(params: dict[str, str], authorization: str | None) -> tuple[str | None, str | None]:
    """client_id and client_secret from the form, else from HTTP Basic (form-urlencoded, then base64)."""
    if params.get("client_id") or not authorization or authorization[:6].lower() != "basic ":
        return params.get("client_id"), params.get("client_secret")
    try:
        user, _, password = base64.b64decode(authorization[6:].strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    return unquote_plus(user), unquote_plus(password)


def _scope_resource(params: dict[str, str], v1_endpoint: bool) -> str:
    if v1_endpoint:
        return params.get("resource") or _raise(missing_parameter("resource"))
    scope = params.get("scope") or _raise(missing_parameter("scope"))
    scopes = scope.split()
    if len(scopes) != 1 or not scopes[0].endswith("/.default"):
        raise EntraError(400, "invalid_scope", 70011, "The provided request must include a 'scope' input parameter. "
                         f"The provided value for the input parameter 'scope' is not valid. The scope {scope} is "
                         "not valid. Client credential flows must have a scope value with /.default suffixed to the "
                         "resource identifier (application ID URI).")
    return scopes[0].removesuffix("/.default")


def _raise(error: EntraError) -> Any:
    raise error


class EntraSimulator(HttpsSimulator):
    """The simulator in-process (tests may also run it as a subprocess: see tests/entra_fixtures.py)."""

    thread_name = "entra-simulator"

    def __init__(self, config: dict[str, Any] | None = None, *, server_cert_pem: str, server_key_pem: str,
                 host: str = "127.0.0.1", port: int = 0, hostname: str | None = None, latency: float = 0.0,
                 verbose: bool = False) -> None:
        self.state: EntraState = EntraState(config or default_config(), latency=latency)
        super().__init__(context=server_context(server_cert_pem, server_key_pem), handler=EntraHandler, host=host,
                         port=port, hostname=hostname, verbose=verbose)

    @property
    def authority(self) -> str:
        return self.base_url

    @property
    def registry(self) -> Registry:
        return self.state.registry

    def resolve(self, segment: str, *, error: str = "invalid_tenant") -> Resolved:
        resolved = self.registry.resolve(segment)
        if resolved == "900023":
            raise tenant_malformed(segment)
        if isinstance(resolved, str):
            raise tenant_not_found(segment, error=error)
        return resolved

    # --- discovery and keys ---

    def discovery(self, segment: str, *, v2: bool) -> dict[str, Any]:
        resolved = self.resolve(segment)
        path = resolved.tid if resolved.directory else resolved.alias
        return discovery(self.authority, path, resolved.tid or TEMPLATE, v2=v2)

    def jwks(self, segment: str) -> dict[str, Any]:
        resolved = self.resolve(segment)
        with self.state.lock:
            return self.state.ring.jwks(v2_issuer(self.authority, resolved.tid or TEMPLATE))

    # --- tokens ---

    def client_credentials(self, segment: str, params: dict[str, str], authorization: str | None = None, *,
                           v1_endpoint: bool = False) -> dict[str, Any]:
        """The token endpoint's answer to a client credentials request; raises EntraError as Entra refuses."""
        resolved = self.resolve(segment, error="invalid_request")
        grant = params.get("grant_type") or _raise(missing_parameter("grant_type"))
        if grant != "client_credentials":
            raise EntraError(400, "unsupported_grant_type", 70003, f"The app requested an unsupported grant type "
                             f"'{grant}'.")
        client_id, secret = _credentials(params, authorization)
        if not client_id:
            raise missing_parameter("client_id")
        directory = resolved.directory
        if directory is None:
            raise EntraError(400, "invalid_request", 50059, "No tenant-identifying information found in either the "
                             "request or implied by any provided credentials.")
        client = self.registry.client(client_id, directory.tid)
        if client is None:
            raise EntraError(400, "unauthorized_client", 700016, f"Application with identifier '{client_id}' was not "
                             f"found in the directory '{directory.name}'. This can happen if the application has "
                             "not been installed by the administrator of the tenant or consented to by any user in "
                             "the tenant. You may have sent your authentication request to the wrong tenant.")
        if not secret:
            raise EntraError(401, "invalid_client", 7000218, "The request body must contain the following parameter: "
                             "'client_assertion' or 'client_secret'.")
        if not hmac.compare_digest(secret.encode(), client.secret.encode()):
            raise EntraError(401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being "
                             "sent in the request is the client secret value, not the client secret ID, for a "
                             f"secret added to app '{client.client_id}'.")
        requested = _scope_resource(params, v1_endpoint)
        resource = None if is_graph(requested) else self.registry.resource(requested, directory.tid)
        if resource is None and not is_graph(requested):
            raise EntraError(400, "invalid_resource", 500011, f"The resource principal named {requested} was not "
                             f"found in the tenant named {directory.name}. This can happen if the application has "
                             "not been installed by the administrator of the tenant or consented to by any user in "
                             "the tenant. You might have sent your authentication request to the wrong tenant.")
        requested = requested.rstrip("/") if resource is None else requested
        claims = app_token_claims(authority=self.authority, tid=directory.tid, client=client,
                                  client_id=client.client_id, resource=resource, requested=requested,
                                  version=resource.token_version if resource else "1.0")
        with self.state.lock:
            key = self.state.ring.keys[self.state.ring.signer]
        token = encode(claims, key, graph_nonce=resource is None)
        return token_response(token, claims, v1_endpoint=v1_endpoint, resource=requested)

    def token(self, client_id: str, secret: str, scope: str, directory: str | None = None) -> str:
        """In-process shortcut: an access token as the v2 token endpoint would issue it (EntraError if refused)."""
        app = self.registry.apps.get(client_id.lower())
        home = app.home if app else next(iter(self.registry.directories))
        params = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret, "scope": scope}
        return self.client_credentials(directory or home, params)["access_token"]

    # --- test controls ---

    def rotate(self) -> str:
        """A new signing key, at once and without notice; returns its kid."""
        with self.state.lock:
            return self.state.ring.rotate().kid

    def retire(self, kid: str) -> None:
        """Drop a key from the key sets (KeyError: not published; ValueError: it is the signer)."""
        with self.state.lock:
            self.state.ring.retire(kid)

    def keys(self) -> dict[str, Any]:
        with self.state.lock:
            return self.state.ring.summary()

    def mint(self, *, directory: str | None = None, client_id: str | None = None, resource: str | None = None,
             version: str | int | None = None, expires_in: int | None = None, kid: str | None = None,
             graph_nonce: bool | None = None, header: dict[str, Any] | None = None,
             claims: dict[str, Any] | None = None) -> str:
        """A token as /_sim/token makes it (the module docstring explains each option); ValueError if unusable."""
        registry = self.registry
        first = next(iter(registry.directories.values()))
        known = registry.directory_of(directory) if directory else first
        if known is None and not (directory and is_guid(directory)):
            raise ValueError(f"directory {directory!r} is neither configured nor a GUID")
        tid = known.tid if known else str(directory).lower()
        home = [app for app in registry.apps.values() if app.home == (known or first).tid]
        client_id = client_id or next((a.client_id for a in home if not a.app_id_uri), home[0].client_id)
        resource = resource or next((a.app_id_uri for a in home if a.app_id_uri), None)
        if not resource:
            raise ValueError("no resource given and the directory has no app with an App ID URI")
        target: App | None = None if is_graph(resource) else next(
            (app for app in registry.apps.values() if app.identifies(resource)), None)
        if version is None:
            version = target.token_version if target else "1.0"
        version = {"1": "1.0", "2": "2.0"}.get(str(version), str(version))
        if version not in ("1.0", "2.0"):
            raise ValueError("version is 1.0 or 2.0")
        made = app_token_claims(authority=self.authority, tid=tid, client=registry.apps.get(client_id.lower()),
                                client_id=client_id, resource=target, requested=resource, version=version,
                                lifetime=3600 if expires_in is None else int(expires_in))
        overrides = dict(claims or {})
        if "tid" in overrides and "iss" not in overrides:
            made["iss"] = v2_issuer(self.authority, overrides["tid"]) if version == "2.0" else \
                v1_issuer(overrides["tid"])
        for name, value in overrides.items():
            if value is None:
                made.pop(name, None)
            else:
                made[name] = value
        with self.state.lock:
            key = self.state.ring.keys.get(kid or self.state.ring.signer)
        if key is None:
            raise ValueError(f"unknown kid {kid!r}")
        nonce = is_graph(resource) if graph_nonce is None else bool(graph_nonce)
        return encode(made, key, header=header, graph_nonce=nonce)

    def mint_from_json(self, body: Any) -> str:
        if not isinstance(body, dict) or set(body) - _MINT_OPTIONS:
            raise ValueError(f"a JSON object with members among {sorted(_MINT_OPTIONS)}")
        names = {"clientId": "client_id", "expiresIn": "expires_in", "graphNonce": "graph_nonce"}
        return self.mint(**{names.get(key, key): value for key, value in body.items()})


class EntraHandler(TlsHandler):
    server_version = "Microsoft-IIS/10.0"
    log_prefix = "entra-sim"

    @property
    def sim(self) -> EntraSimulator:
        return self.server.sim  # type: ignore[return-value]

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._dispatch()

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch()

    def _json(self, status: int, body: Any, *, cache: str = "no-store, no-cache") -> None:
        headers = {"Cache-Control": cache, "Pragma": "no-cache", "x-ms-ests-server": "entra-simulator"}
        self.write_answer(status, json.dumps(body).encode(), JSON, headers)
        entry = getattr(self, "_entry", None)
        if entry is not None:
            entry.status = status

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        self._entry = LoggedRequest(self.command, url.path)
        body = self.read_body()
        if body is None:
            return
        fault = self.admit(self.sim.state, self._entry, url.path)
        if fault is False:
            return
        if fault:
            self._json(fault.action, fault.body if fault.body is not None else {"error": "server_error"})
            return
        try:
            if url.path.startswith("/_sim/"):
                self._control(url.path, parse_qs(url.query), body)
            else:
                self._entra(url.path, body)
        except EntraError as error:
            self._json(error.status, error.body(self.sim.authority, self.headers.get("client-request-id")))

    def _entra(self, path: str, body: bytes) -> None:
        segment, _, rest = path.lstrip("/").partition("/")
        gets = {"v2.0/.well-known/openid-configuration": lambda: self.sim.discovery(segment, v2=True),
                ".well-known/openid-configuration": lambda: self.sim.discovery(segment, v2=False),
                "discovery/v2.0/keys": lambda: self.sim.jwks(segment),
                "discovery/keys": lambda: self.sim.jwks(segment)}
        if rest in gets:
            if self.command != "GET":
                raise EntraError(400, "invalid_request", 900561, f"The endpoint only accepts GET requests. Received "
                                 f"a {self.command} request.")
            self._json(200, gets[rest](), cache="max-age=86400, private")
        elif rest in ("oauth2/v2.0/token", "oauth2/token"):
            if self.command != "POST":
                raise EntraError(400, "invalid_request", 900561, "The endpoint only accepts POST, OPTIONS requests. "
                                 f"Received a {self.command} request.")
            form = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
            params = {key: values[0] for key, values in parse_qs(body.decode("utf-8", "replace")).items()} \
                if form == "application/x-www-form-urlencoded" else {}
            self._json(200, self.sim.client_credentials(segment, params, self.headers.get("Authorization"),
                                                        v1_endpoint=rest == "oauth2/token"))
        elif rest in ("oauth2/v2.0/authorize", "oauth2/authorize"):
            self.sim.resolve(segment)
            raise EntraError(400, "login_required", 50058, "A silent sign-in request was sent but no user is signed "
                             "in. (simulator: interactive sign-in is not simulated)")
        else:
            self._json(404, {"error": "not_found"})

    def _control(self, path: str, query: dict[str, list[str]], body: bytes) -> None:
        sim = self.sim
        if path == "/_sim/keys" and self.command == "GET":
            self._json(200, sim.keys())
        elif path == "/_sim/rotate" and self.command == "POST":
            kid = sim.rotate()
            self._json(200, {"kid": kid, **sim.keys()})
        elif path == "/_sim/retire" and self.command == "POST":
            kid = (query.get("kid") or [""])[0]
            try:
                sim.retire(kid)
            except KeyError:
                self._json(404, {"error": f"no published key {kid!r}"})
                return
            except ValueError as exc:
                self._json(409, {"error": str(exc)})
                return
            self._json(200, sim.keys())
        elif path == "/_sim/token" and self.command == "POST":
            try:
                token = sim.mint_from_json(json.loads(body or b"{}"))
            except (ValueError, TypeError) as exc:
                self._json(400, {"error": str(exc)})
                return
            self._json(200, {"access_token": token, "token_type": "Bearer"})
        else:
            self._json(404, {"error": "not_found"})


# --- Command line ----------------------------------------------------------------------------------------------


def server_certificate(cert_dir: Path) -> tuple[str, str]:
    """The server certificate from DIR/server.pem + DIR/server-key.pem; when absent a throwaway CA issues one for
    127.0.0.1/localhost and DIR gets ca.pem (trust it), server.pem and server-key.pem."""
    cert_path, key_path = cert_dir / "server.pem", cert_dir / "server-key.pem"
    if not (cert_path.exists() and key_path.exists()):
        from simulators.pki import Authority
        authority = Authority("Entra ID simulator test CA")
        cert_dir.mkdir(parents=True, exist_ok=True)
        (cert_dir / "ca.pem").write_text(authority.cert_pem)
        authority.server().write(cert_dir, "server")
    return cert_path.read_text(), key_path.read_text()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulators.entra",
                                     description="Microsoft Entra ID simulator (test tool): discovery, JWKS with "
                                                 "rotation, client-credentials tokens v1/v2 and Graph-style ones.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default 0: a free one, printed)")
    parser.add_argument("--hostname", help="host name in the authority (default: --host)")
    parser.add_argument("--config", type=Path, help="directories and apps JSON (default: the default config)")
    parser.add_argument("--cert-dir", type=Path, help="server.pem + server-key.pem, or where to make them with "
                                                      "ca.pem (default: a new temporary directory)")
    parser.add_argument("--write-default-config", type=Path, metavar="PATH",
                        help="write the default config to PATH and exit")
    parser.add_argument("--verbose", action="store_true", help="log requests to stderr")
    args = parser.parse_args(argv)
    if args.write_default_config:
        write_default_config(args.write_default_config)
        print(f"Wrote the default Entra simulator config to {args.write_default_config}")
        return 0
    config = json.loads(args.config.read_text()) if args.config else default_config()
    cert_dir = args.cert_dir or Path(tempfile.mkdtemp(prefix="entra-sim-"))
    cert_pem, key_pem = server_certificate(cert_dir)
    simulator = EntraSimulator(config, server_cert_pem=cert_pem, server_key_pem=key_pem, host=args.host,
                               port=args.port, hostname=args.hostname, verbose=args.verbose)
    simulator.start()
    if (cert_dir / "ca.pem").exists():
        print(f"entra simulator CA certificate: {cert_dir / 'ca.pem'}", file=sys.stderr, flush=True)
    print(f"entra simulator listening on {simulator.base_url}", flush=True)
    return run_until_interrupted(simulator)


if __name__ == "__main__":
    sys.exit(main())

