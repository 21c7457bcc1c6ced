"""deployment.toml fragments for tenant sharing (seed-wso2-tenant-sharing.md; wso2-apis.md §3, §4, §5).

Built as dicts and written by tomli_w: user names, passwords and URLs hold quotes, backslashes and commas, so TOML
is never assembled from strings. No database and no Flask here: services.sharing feeds it the stored settings.

Passwords are a `$secret{alias}` reference by default (WSO2's secure vault: the alias is declared under `[secrets]`
and encrypted with ciphertool), so a generated file can be shown, copied and downloaded without leaking anything.
The real password is written only when the caller asks for it (the administrator's explicit download).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import tomli_w

NOTIFY_PATH = "/internal/data/v1/notify"
KEY_MANAGER_HEADER = "header.X-WSO2-KEY-MANAGER"
TENANT_MANAGEMENT = "TENANT_MANAGEMENT"
LISTENER_ID = "tenant_creation"
LISTENER_TYPE = "org.wso2.carbon.user.core.listener.UserOperationEventListener"
LISTENER_NAME = "org.wso2.carbon.identity.mgt.listener.TenantSyncListener"
SHARING_TYPE = "WSO2-IS-7"

# Secure-vault aliases the placeholders point at.
IS_LISTENER_ALIAS = "tenant_sync_apim_password"
APIM_SHARING_ALIAS = "tenant_sharing_is_password"


def secret_ref(alias: str) -> str:
    return f"$secret{{{alias}}}"


def notify_endpoint(apim_base_url: str) -> str:
    """API Manager's internal notify API, where IS's TenantSyncListener posts tenant events."""
    return apim_base_url.rstrip("/") + NOTIFY_PATH


@dataclass(frozen=True)
class Document:
    """One generated fragment: the TOML text and the data it was written from (what tests parse back to)."""

    toml: str
    data: dict = field(default_factory=dict)


def _dump(data: dict, array_tables: tuple[str, ...] = ()) -> Document:
    text = tomli_w.dumps(data) if data else ""
    for path in array_tables:
        # tomli_w writes small arrays of tables inline (`x = [{...}]`), which could not be appended to the
        # product's existing [[x]] entries. Ours always carry long class names or several keys, so they come out
        # as [[x]]; this guards against a tomli_w change quietly producing the other form.
        if f"[[{path}]]" not in text:
            raise RuntimeError(f"tomli_w did not write [[{path}]] as an array of tables")
    return Document(text, data)


def is_listener(endpoint: str, username: str, password: str | None, *, include_password: bool = False) -> Document:
    """IS 7 → API Manager: the `[[event_listener]]` TenantSyncListener block for IS 7's deployment.toml."""
    properties = {
        "notification_endpoint": endpoint,
        "username": username,
        "password": (password or "") if include_password else secret_ref(IS_LISTENER_ALIAS),
        KEY_MANAGER_HEADER: TENANT_MANAGEMENT,
    }
    # `enable = true`: newer IS releases fire the listener only when it is set (the docs' sample omits it).
    listener = {"id": LISTENER_ID, "type": LISTENER_TYPE, "name": LISTENER_NAME, "order": 1, "enable": True,
                "properties": properties}
    return _dump({"event_listener": [listener]}, ("event_listener",))


def apim_sharing(identity_server_base_url: str, username: str, password: str | None, *,
                 auto_configure_key_manager: bool, skip_create_resident_key_manager: bool,
                 include_password: bool = False) -> Document:
    """API Manager → IS 7: `[[apim.tenant_sharing]]` and `[apim.key_manager]` for API Manager's deployment.toml.

    skip_create_resident_key_manager goes under [apim.key_manager]: API Manager reads it there
    (`<APIKeyValidator><SkipCreateResidentKeyManager>`); the docs' sharing-properties variant does nothing."""
    properties = {
        "enable_tenant_sync": True,
        "username": username,
        "password": (password or "") if include_password else secret_ref(APIM_SHARING_ALIAS),
        "identity_server_base_url": identity_server_base_url,
        "auto_configure_key_manager": auto_configure_key_manager,
    }
    apim: dict = {"tenant_sharing": [{"type": SHARING_TYPE, "properties": properties}]}
    if skip_create_resident_key_manager:
        apim["key_manager"] = {"skip_create_resident_key_manager": True}
    return _dump({"apim": apim}, ("apim.tenant_sharing",))


def apim_key_manager(identity_server_base_url: str, *, auto_configure_key_manager: bool,
                     skip_create_resident_key_manager: bool) -> Document:
    """IS 7 → API Manager: what API Manager needs to give each tenant IS 7's notify creates the WSO2-IS-7 key
    manager, without pushing tenants back to IS 7.

    ISTenantSyncListener (apim-km-wso2is 2.x) reads auto_configure_key_manager and identity_server_base_url from the
    WSO2-IS-7 sharing properties whatever enable_tenant_sync says, and skip_create_resident_key_manager from
    [apim.key_manager]; onTenantCreate adds the key manager when both are set. enable_tenant_sync = false keeps the
    sync half off (sharing stays one-directional), and the listener needs identity_server_base_url whenever the entry
    exists (it appends "/" to it unchecked), as the key manager's endpoints do. No user or password: they are read
    only with sync on."""
    apim: dict = {}
    if auto_configure_key_manager:
        apim["tenant_sharing"] = [{"type": SHARING_TYPE, "properties": {
            "enable_tenant_sync": False,
            "identity_server_base_url": identity_server_base_url,
            "auto_configure_key_manager": True,
        }}]
    if skip_create_resident_key_manager:
        apim["key_manager"] = {"skip_create_resident_key_manager": True}
    return _dump({"apim": apim} if apim else {}, ("apim.tenant_sharing",) if auto_configure_key_manager else ())


# --- What to take out again ---------------------------------------------------------------------------------------

SHARING_PROPERTIES = ("enable_tenant_sync", "username", "password", "identity_server_base_url",
                      "auto_configure_key_manager")
SHARING_ENTRY = f'the [[apim.tenant_sharing]] entry with type = "{SHARING_TYPE}"'
LISTENER_ENTRY = f'the [[event_listener]] entry with id = "{LISTENER_ID}" (name = "{LISTENER_NAME}")'


@dataclass(frozen=True)
class Removal:
    """Keys to take out of one table of a product's deployment.toml. A table the product or the administrator may
    also use ([apim.key_manager], the WSO2-IS-7 sharing entry, which can carry connector settings such as
    dcr_request_extension) is never removed whole: only the keys the portal generated. `whole_entry` is for an
    entry that is the portal's own alone (IS 7's TenantSyncListener entry)."""

    product: str  # "is" or "apim"
    table: str
    keys: tuple[str, ...] = ()
    entry: str | None = None  # which entry of an array of tables
    whole_entry: bool = False

    def text(self) -> str:
        if self.whole_entry:
            return (f"Remove {self.entry} with its [{self.table}] keys. Keep every other entry of that array and "
                    "the rest of the file.")
        where = f"[{self.table}] of {self.entry}" if self.entry else f"[{self.table}]"
        keys = ", ".join(self.keys)
        tail = (" Keep the entry's other keys; remove the entry only if nothing but its type is left."
                if self.entry else " Keep the table and its other keys.")
        return f"In {where}: remove {keys} (those that are there).{tail}"


def listener_removal() -> Removal:
    return Removal("is", "event_listener.properties", entry=LISTENER_ENTRY, whole_entry=True)


def sharing_removal(keep: tuple[str, ...]) -> Removal | None:
    """The WSO2-IS-7 sharing properties the portal may have generated, except those in `keep`."""
    keys = tuple(k for k in SHARING_PROPERTIES if k not in keep)
    return Removal("apim", "apim.tenant_sharing.properties", keys, entry=SHARING_ENTRY) if keys else None


def skip_resident_removal() -> Removal:
    return Removal("apim", "apim.key_manager", ("skip_create_resident_key_manager",))


def dotless_domains() -> Document:
    """`[multi_tenancy] stratos.public_cloud_setup = false` for API Manager: IS 7.2 accepts tenant domains without a
    dot, and API Manager refuses them unless this is off. tomli_w writes the dotted key as [multi_tenancy.stratos],
    the same key in TOML."""
    return _dump({"multi_tenancy": {"stratos": {"public_cloud_setup": False}}})


def join(*documents: Document) -> str:
    """Fragments one after the other, a blank line between them."""
    return "\n".join(d.toml.rstrip("\n") + "\n" for d in documents if d.toml)
