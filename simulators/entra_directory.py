"""The Entra ID simulator's directories and applications: the config file, the default config, and how a path
segment, a client id and a resource identifier are resolved the way Entra resolves them.

Config JSON (what `python -m simulators.entra --config` reads):

    {"directories": [{"tid": GUID, "name": "Contoso", "domains": ["contoso.onmicrosoft.com"],
                      "apps": [{"clientId": GUID, "clientSecret": "...", "name": "portal-api",
                                "appIdUri": "api://..." | null, "accessTokenAcceptedVersion": 1 | 2 | null,
                                "roles": ["Tenant.Read"], "multiTenant": false}]}],
     "servicePrincipals": [{"tid": GUID, "clientId": GUID}]}

`name` (directory and app) is optional: Entra's error texts name the directory, and tests look apps up by it. A
multi-tenant app of directory A can be used (as client or as resource) from directory B when B holds a service
principal for it. `default_config()` / `write_default_config(path)` give the set the tests use (constants below).
"""
from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["API_MULTI", "API_V1", "API_V2", "CONTOSO", "CONTOSO_DOMAIN", "DAEMON", "FABRIKAM", "FABRIKAM_DAEMON",
           "FABRIKAM_DOMAIN", "GRAPH_APP_ID", "GRAPH_RESOURCE", "MSA_TID", "MULTI_TENANT_SEGMENTS", "App",
           "Directory", "Registry", "Resolved", "default_config", "write_default_config"]

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GRAPH_RESOURCE = "https://graph.microsoft.com"
MSA_TID = "9188040d-6c67-4c5b-b112-36a304b66dad"  # the directory of personal Microsoft accounts
MULTI_TENANT_SEGMENTS = ("common", "organizations")

# The default config (fixed ids, so tests and the demo can name them).
CONTOSO = "6f1a2c3d-0b4e-4c5f-9a7b-2d3e4f5a6b7c"
FABRIKAM = "a8b9c0d1-e2f3-4a5b-8c6d-7e8f9a0b1c2d"
CONTOSO_DOMAIN = "contoso.onmicrosoft.com"
FABRIKAM_DOMAIN = "fabrikam.onmicrosoft.com"
API_V2 = "3c2a1b0d-5e4f-4a3b-9c8d-1e2f3a4b5c6d"  # single-tenant API of Contoso, accessTokenAcceptedVersion 2
API_V1 = "4d3b2c1e-6f5a-4b4c-8d9e-2f3a4b5c6d7e"  # API of Contoso with an App ID URI, accessTokenAcceptedVersion null
API_MULTI = "5e4c3d2f-7a6b-4c5d-9e0f-3a4b5c6d7e8f"  # multi-tenant API of Contoso (v2), consented in Fabrikam
DAEMON = "6f5d4e3a-8b7c-4d6e-8f1a-4b5c6d7e8f9a"  # multi-tenant client app of Contoso, consented in Fabrikam
FABRIKAM_DAEMON = "7a6e5f4b-9c8d-4e7f-9a2b-5c6d7e8f9a0b"  # single-tenant client app of Fabrikam

_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def is_guid(text: str) -> bool:
    return bool(_GUID.match(text.lower()))


def _app(client_id: str, name: str, secret: str, *, uri: str | None = None, version: int | None = None,
         roles: tuple[str, ...] = (), multi: bool = False) -> dict[str, Any]:
    return {"clientId": client_id, "name": name, "clientSecret": secret, "appIdUri": uri,
            "accessTokenAcceptedVersion": version, "roles": list(roles), "multiTenant": multi}


def default_config() -> dict[str, Any]:
    """Two directories: Contoso with a single-tenant v2 API (`portal-api`, App ID URI api://<clientId>), a v1 API
    (`legacy-api`, App ID URI api://contoso.onmicrosoft.com/legacy-api, version null), a multi-tenant v2 API
    (`partner-api`) and a multi-tenant client (`daemon`); Fabrikam with its own client (`fabrikam-daemon`) and
    service principals for `partner-api` and `daemon`."""
    contoso_apps = [
        _app(API_V2, "portal-api", "Sim8Q~portal-api-secret", uri=f"api://{API_V2}", version=2,
             roles=("Tenant.Read", "Tenant.Write")),
        _app(API_V1, "legacy-api", "Sim8Q~legacy-api-secret", uri=f"api://{CONTOSO_DOMAIN}/legacy-api",
             roles=("Legacy.Read",)),
        _app(API_MULTI, "partner-api", "Sim8Q~partner-api-secret", uri=f"api://{API_MULTI}", version=2,
             roles=("Partner.Read",), multi=True),
        _app(DAEMON, "daemon", "Sim8Q~daemon-secret", multi=True),
    ]
    fabrikam_apps = [_app(FABRIKAM_DAEMON, "fabrikam-daemon", "Sim8Q~fabrikam-daemon-secret")]
    return {
        "directories": [
            {"tid": CONTOSO, "name": "Contoso", "domains": [CONTOSO_DOMAIN, "contoso.example"], "apps": contoso_apps},
            {"tid": FABRIKAM, "name": "Fabrikam", "domains": [FABRIKAM_DOMAIN], "apps": fabrikam_apps},
        ],
        "servicePrincipals": [{"tid": FABRIKAM, "clientId": API_MULTI}, {"tid": FABRIKAM, "clientId": DAEMON}],
    }


def write_default_config(path: Path | str) -> dict[str, Any]:
    """Write `default_config()` as JSON to `path`; returns it."""
    config = default_config()
    Path(path).write_text(json.dumps(config, indent=2) + "\n")
    return config


@dataclass(frozen=True)
class App:
    client_id: str
    secret: str = field(repr=False)
    home: str  # tid of the directory it is registered in
    name: str
    app_id_uri: str | None
    version: int | None  # accessTokenAcceptedVersion
    roles: tuple[str, ...]
    multi_tenant: bool

    @property
    def token_version(self) -> str:
        """The version of access tokens issued FOR this app as a resource: its manifest decides, not the endpoint."""
        return "2.0" if self.version == 2 else "1.0"

    def identifies(self, resource: str) -> bool:
        """A resource identifier names this app: its App ID URI, api://<clientId>, or the client id itself."""
        return resource in {self.app_id_uri, f"api://{self.client_id}"} or resource.lower() == self.client_id


@dataclass(frozen=True)
class Directory:
    tid: str
    name: str
    domains: tuple[str, ...]


@dataclass(frozen=True)
class Resolved:
    """What a path segment names: one directory, a multi-tenant alias (`common`, `organizations`), or `consumers`
    (`directory` None and `tid` the personal-account directory)."""

    segment: str
    directory: Directory | None
    alias: str | None = None

    @property
    def tid(self) -> str | None:
        if self.directory:
            return self.directory.tid
        return MSA_TID if self.alias == "consumers" else None


class ConfigError(ValueError):
    pass


class Registry:
    """The directories, apps and service principals of one config, with Entra's lookups."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.directories: dict[str, Directory] = {}
        self.apps: dict[str, App] = {}
        self.principals: set[tuple[str, str]] = set()
        try:
            self._load(config)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"config: missing or malformed member {exc}") from None

    def _load(self, config: dict[str, Any]) -> None:
        for entry in config["directories"]:
            tid = entry["tid"].lower()
            if not is_guid(tid):
                raise ConfigError(f"config: directory tid {tid!r} is not a GUID")
            self.directories[tid] = Directory(tid, entry.get("name") or tid,
                                              tuple(d.lower() for d in entry.get("domains", ())))
            for app in entry.get("apps", ()):
                client_id = app["clientId"].lower()
                if not is_guid(client_id) or client_id in self.apps:
                    raise ConfigError(f"config: clientId {client_id!r} is not a GUID or is used twice")
                if app.get("accessTokenAcceptedVersion") not in (None, 1, 2):
                    raise ConfigError(f"config: app {client_id}: accessTokenAcceptedVersion is 1, 2 or null")
                self.apps[client_id] = App(client_id, app["clientSecret"], tid, app.get("name") or client_id,
                                           app.get("appIdUri"), app.get("accessTokenAcceptedVersion"),
                                           tuple(app.get("roles", ())), bool(app.get("multiTenant")))
        for principal in config.get("servicePrincipals", ()):
            tid, client_id = principal["tid"].lower(), principal["clientId"].lower()
            app = self.apps.get(client_id)
            if tid not in self.directories or app is None or not app.multi_tenant:
                raise ConfigError(f"config: service principal {client_id} in {tid}: needs a known directory and a "
                                  "multi-tenant app")
            self.principals.add((tid, client_id))

    def resolve(self, segment: str) -> Resolved | str:
        """The directory a path segment names, or the AADSTS reason it names none: "90002" (no such directory)
        or "900023" (neither a GUID nor a DNS name)."""
        lowered = segment.lower()
        if lowered in (*MULTI_TENANT_SEGMENTS, "consumers"):
            return Resolved(segment, None, lowered)
        if is_guid(lowered):
            directory = self.directories.get(lowered)
        elif _DOMAIN.match(lowered):
            directory = next((d for d in self.directories.values() if lowered in d.domains), None)
        else:
            return "900023"
        return Resolved(segment, directory) if directory else "90002"

    def present_in(self, app: App, tid: str) -> bool:
        """Whether an app can act (as client or resource) in a directory: its home, or a service principal."""
        return app.home == tid or (tid, app.client_id) in self.principals

    def client(self, client_id: str, tid: str) -> App | None:
        app = self.apps.get(client_id.lower())
        return app if app and self.present_in(app, tid) else None

    def resource(self, identifier: str, tid: str) -> App | None:
        return next((app for app in self.apps.values() if app.identifies(identifier) and self.present_in(app, tid)),
                    None)

    def directory_of(self, text: str) -> Directory | None:
        resolved = self.resolve(text)
        return resolved.directory if isinstance(resolved, Resolved) else None

    def by_name(self, name: str) -> App:
        found = next((app for app in self.apps.values() if app.name == name), None)
        if found is None:
            raise KeyError(name)
        return found


def service_principal_oid(tid: str, client_id: str) -> str:
    """The object id of an app's service principal in a directory: app-only tokens carry it as `oid` and `sub`
    (simulator: derived, stable across runs)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"entra-sim:sp:{tid}:{client_id}"))
