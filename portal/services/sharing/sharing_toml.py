"""The deployment.toml fragments for a sharing direction: what to add to IS 7's and API Manager's files, which keys
an earlier direction may have left there to remove (key by key, never a shared table), and the notes that say why.
Written with wso2_config's TOML documents, never assembled from strings; the settings come from sharing.service."""
from __future__ import annotations

from dataclasses import dataclass, field

from flask import current_app

from portal.models.sharing import SharingSettings
from portal.services.sharing import connections, wso2_config

FORCED_SKIP_REASON = ("skip_create_resident_key_manager is forced on while auto_configure_key_manager is on: API "
                      "Manager would otherwise try to add the IS 7 key manager on top of the Resident Key Manager "
                      "it creates for each tenant, and fail (WSO2 docs).")
APIM_PERMISSION_NOTE = ("The API Manager user needs the super tenant's modify-tenant permission "
                        "(/permission/protected/manage/modify/tenants). The pre-flight proves it: it posts a no-op "
                        "event (an owner update without owners, which API Manager ignores) to the notify endpoint as "
                        "this user.")
FILENAMES = {"is": "is7-deployment-tenant-sharing.toml", "apim": "apim-deployment-tenant-sharing.toml"}
EMPTY = "# Nothing to add to this product's deployment.toml for this direction.\n"
SKIP_LOCATION_NOTE = ("skip_create_resident_key_manager is written under [apim.key_manager], where API Manager reads "
                      "it (<APIKeyValidator><SkipCreateResidentKeyManager>); the docs' variant under "
                      "[apim.tenant_sharing.properties] does nothing. If your deployment.toml already has an "
                      "[apim.key_manager] table, add the key to that table instead of a second header.")
SKIP_ALONE_NOTE = ("skip_create_resident_key_manager without auto_configure_key_manager leaves each new tenant "
                   "with no key manager at all: key generation fails (\"Key Manager not Registered\") until one is "
                   "added by hand.")
SUPER_TENANT_NOTE = ("The super tenant existed before: configure its key manager by hand (auto-configure only "
                     "applies to tenants created from now on).")
IS_TO_APIM_KEY_MANAGER_NOTE = (
    "API Manager gives each tenant that IS 7's notify creates the WSO2-IS-7 key manager: its ISTenantSyncListener "
    "reads auto_configure_key_manager and identity_server_base_url from the WSO2-IS-7 [[apim.tenant_sharing]] entry "
    "whatever enable_tenant_sync says. enable_tenant_sync = false keeps API Manager from pushing tenants back to "
    "IS 7, so sharing stays one-directional. The key manager calls IS 7 under identity_server_base_url/t/<domain>/ "
    "over mutual TLS as <tenant admin>@<domain>.")
EDIT_ENTRY_NOTE = ("If API Manager's deployment.toml still has the WSO2-IS-7 [[apim.tenant_sharing]] entry from "
                   "API Manager → IS 7, edit that entry instead of adding a second one of the same type: set "
                   "enable_tenant_sync = false and remove username and password, as listed under \"Remove\".")


@dataclass(frozen=True)
class GeneratedConfig:
    """deployment.toml fragments for one direction: what to add to each product, which keys to remove (if they are
    there, from an earlier direction), and why."""

    is_toml: str
    apim_toml: str
    removals: tuple[wso2_config.Removal, ...] = ()
    notes: list[str] = field(default_factory=list)
    direction: str = "off"

    def for_product(self, product: str) -> str:
        return {"is": self.is_toml, "apim": self.apim_toml}[product]

    def removals_for(self, product: str) -> list[wso2_config.Removal]:
        return [r for r in self.removals if r.product == product]

    @property
    def remove_from_is(self) -> list[str]:
        return [r.text() for r in self.removals_for("is")]

    @property
    def remove_from_apim(self) -> list[str]:
        return [r.text() for r in self.removals_for("apim")]


def _is_listener(s: SharingSettings, notify: str | None, include_passwords: bool) -> wso2_config.Document:
    endpoint = notify or wso2_config.notify_endpoint("https://api-manager.example.com:9443")
    return wso2_config.is_listener(endpoint, s.apim_username or "<api-manager-user>", s.apim_password,
                                   include_password=include_passwords)


def _is_base_url(s: SharingSettings) -> str:
    is_conn = connections.get("is")
    return s.identity_server_base_url or (is_conn.base_url if is_conn else "https://is.example.com:9443")


def _apim_sharing(s: SharingSettings, include_passwords: bool) -> wso2_config.Document:
    return wso2_config.apim_sharing(_is_base_url(s), s.is_username or "<is-user>", s.is_password,
                                    auto_configure_key_manager=s.auto_configure_key_manager,
                                    skip_create_resident_key_manager=(s.skip_create_resident_key_manager
                                                                      or s.auto_configure_key_manager),
                                    include_password=include_passwords)


def _apim_key_manager(s: SharingSettings) -> wso2_config.Document:
    return wso2_config.apim_key_manager(_is_base_url(s), auto_configure_key_manager=s.auto_configure_key_manager,
                                        skip_create_resident_key_manager=(s.skip_create_resident_key_manager
                                                                          or s.auto_configure_key_manager))


def _removals(target: str, apim: wso2_config.Document) -> tuple[wso2_config.Removal, ...]:
    """What an earlier direction may have left that `target` does not write: key by key, never a shared table."""
    removals: list[wso2_config.Removal | None] = []
    if target != "is_to_apim":
        removals.append(wso2_config.listener_removal())
    written = apim.data.get("apim", {})
    entries = written.get("tenant_sharing") or [{}]
    removals.append(wso2_config.sharing_removal(tuple(entries[0].get("properties", {}))))
    if "key_manager" not in written:
        removals.append(wso2_config.skip_resident_removal())
    return tuple(r for r in removals if r is not None)


def _key_manager_notes(s: SharingSettings, target: str) -> list[str]:
    notes: list[str] = []
    if s.auto_configure_key_manager:
        if target == "is_to_apim":
            notes.append(IS_TO_APIM_KEY_MANAGER_NOTE)
            notes.append(EDIT_ENTRY_NOTE)
        notes.append(FORCED_SKIP_REASON)
        notes.append(SUPER_TENANT_NOTE)
    elif s.skip_create_resident_key_manager:
        notes.append(SKIP_ALONE_NOTE)
    if s.skip_create_resident_key_manager or s.auto_configure_key_manager:
        notes.append(SKIP_LOCATION_NOTE)
    return notes


def generate(s: SharingSettings, target: str, notify: str | None, *,
             include_passwords: bool = False) -> GeneratedConfig:
    """The fragments for `target` from the settings `s`; `notify` is API Manager's notify endpoint when its
    connection is set up. Passwords are `$secret{…}` references unless include_passwords (the administrator's
    explicit download)."""
    notes: list[str] = []
    dotless = wso2_config.dotless_domains() if s.dotless_domains else wso2_config.Document("")
    is_toml = ""
    if target == "is_to_apim":
        is_toml = _is_listener(s, notify, include_passwords).toml
        apim = _apim_key_manager(s)
        if notify is None:
            notes.append("Set up the API Manager connection: the notification endpoint above is an example.")
        notes.append(APIM_PERMISSION_NOTE)
        notes.append("IS 7's listener retries only when API Manager cannot be reached (5 attempts); an HTTP error "
                     "from API Manager is final, so the portal checks afterwards that each tenant arrived and "
                     "repairs it if not.")
        notes.extend(_key_manager_notes(s, target))
    elif target == "apim_to_is":
        apim = _apim_sharing(s, include_passwords)
        notes.append("API Manager calls IS 7's tenant API with Basic authentication as the user above; that user "
                     "needs permission to create, update, activate and deactivate tenants.")
        notes.extend(_key_manager_notes(s, target))
        notes.append("API Manager rolls a tenant's activation back when IS 7 answers with an error, so keep IS 7 "
                     "reachable from API Manager before activating or deactivating tenants.")
    else:
        apim = wso2_config.Document("")
        notes.append("With sharing off the portal writes each tenant to both products itself: neither product may "
                     "push to the other.")
    removals = _removals(target, apim)
    if any(r.product == "apim" for r in removals):
        notes.append("Remove only the keys listed: the WSO2-IS-7 [[apim.tenant_sharing]] entry and [apim.key_manager] "
                     "can hold other settings of API Manager's that the portal does not write.")
    apim_toml = wso2_config.join(apim, dotless)
    if s.dotless_domains:
        notes.append("Dot-less tenant domains: API Manager needs [multi_tenancy] stratos.public_cloud_setup = false "
                     "(written above as [multi_tenancy.stratos], the same key). IS 7.2 accepts such domains; its "
                     "own setting is not generated here.")
        if not current_app.config.get("TENANT_DOTLESS_DOMAINS"):
            notes.append("The portal itself still refuses domains without a dot: set TENANT_DOTLESS_DOMAINS = true "
                         "in the portal's configuration too.")
    if target != "off" or s.dotless_domains:
        notes.append("Passwords are written as $secret{alias} references to WSO2's secure vault: declare each alias "
                     "under [secrets] and encrypt it with ciphertool. The download with passwords writes them in "
                     "clear; keep that file out of version control." if not include_passwords else
                     "This file holds passwords in clear: put them in the secure vault and delete the file.")
    notes.append("Enable tenant sync in one product only: never IS 7's TenantSyncListener and API Manager's "
                 "enable_tenant_sync = true at once (WSO2 docs).")
    return GeneratedConfig(is_toml, apim_toml, removals, notes, target)

