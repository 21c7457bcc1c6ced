"""Tenant sharing between IS 7 and API Manager: which product pushes tenants to the other, the settings of each
direction, the pre-flight before saving, and the deployment.toml fragments for the chosen direction (written by
sharing_toml).

The direction is one column with three values ("off", "apim_to_is", "is_to_apim"), so "both directions at once",
which the WSO2 docs forbid, has no spelling. Leaving a direction (for the other one or for off) needs a
confirmation, because the product that was pushing keeps pushing until its sharing keys are removed: the page lists
those keys first, table by table, and never asks to delete a table that can hold other keys. The settings of the
direction not chosen are kept for a later switch back.

API Manager's key manager for new tenants (auto_configure_key_manager with skip_create_resident_key_manager) works in
both directions: ISTenantSyncListener adds it to every tenant API Manager creates, whether by its own tenant sharing
or by IS 7's notify (fidelity findings #3), so the IS 7 → API Manager direction keeps it, with enable_tenant_sync off.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from portal.clients.checks import CheckResult
from portal.clients.errors import UpstreamError
from portal.extensions import db
from portal.models.sharing import DIRECTIONS, SharingSettings
from portal.services.admin import audit
from portal.services.certificates import service as certificates
from portal.services.context import Actor
from portal.services.errors import CheckFailed, Conflict, NotFound, ValidationError
from portal.services.sharing import connections, wso2_config
from portal.services.sharing.sharing_toml import (
    APIM_PERMISSION_NOTE,
    EMPTY,
    FILENAMES,
    FORCED_SKIP_REASON,
    GeneratedConfig,
    generate,
)
from portal.services.tenants import secret_binding

DIRECTION_LABELS = {
    "off": "Off: the portal creates and updates tenants in both products itself",
    "apim_to_is": "API Manager → IS 7: API Manager pushes its tenants to IS 7",
    "is_to_apim": "IS 7 → API Manager: IS 7 pushes its tenants to API Manager",
}
SHORT_LABELS = {"off": "Off", "apim_to_is": "API Manager → IS 7", "is_to_apim": "IS 7 → API Manager"}
SOURCE = {"apim_to_is": "apim", "is_to_apim": "is"}  # the product the portal writes to; the other catches up
# The pre-flight's event: TenantManagementEventHandler checks the caller's permission first, then ignores an UPDATE
# without owners (wso2-apis.md §4, steps 1 and 4), so a 200 proves sign-in and permission and changes nothing.
PROBE_DOMAIN = "preflight.tenant-portal.invalid"
PROBE_EVENT_URI = "https://schemas.identity.wso2.org/events/tenant/event-type/tenantOwnerUpdated"

IS_TO_APIM_FIELDS = ("apim_username", "apim_password", "identity_server_base_url", "auto_configure_key_manager",
                     "skip_create_resident_key_manager")
APIM_TO_IS_FIELDS = ("identity_server_base_url", "is_username", "is_password", "auto_configure_key_manager",
                     "skip_create_resident_key_manager")
KEY_MANAGER_DIRECTIONS = ("apim_to_is", "is_to_apim")  # where the generated configuration can auto-configure it
SECRET_FIELDS = frozenset({"apim_password", "is_password"})


class ConfirmationRequired(ValidationError):
    """Leaving a direction needs confirm=True. `generated` holds what to remove from the products first."""

    def __init__(self, current: str, target: str, generated: GeneratedConfig):
        self.current = current
        self.target = target
        self.generated = generated
        super().__init__({"confirm": f"Sharing is {SHORT_LABELS[current]}. Remove the keys listed below from the "
                                     f"products' deployment.toml (and restart them), then confirm the switch to "
                                     f"{SHORT_LABELS[target]}."})


def _defaults() -> SharingSettings:
    return SharingSettings(id=1, direction="off", apim_username="", apim_password=None,
                           identity_server_base_url="", is_username="", is_password=None,
                           auto_configure_key_manager=True, skip_create_resident_key_manager=True,
                           dotless_domains=False, updated_by="")


def current() -> SharingSettings:
    """The stored settings, or the defaults (sharing off) when none were saved yet (not added to the session)."""
    return db.session.get(SharingSettings, 1) or _defaults()


def direction() -> str:
    return current().direction


def view() -> dict[str, Any]:
    """The settings for a page: passwords only as set / not set."""
    s = current()
    return {"direction": s.direction, "apim_username": s.apim_username, "apim_password_set": bool(s.apim_password),
            "identity_server_base_url": s.identity_server_base_url, "is_username": s.is_username,
            "is_password_set": bool(s.is_password), "auto_configure_key_manager": s.auto_configure_key_manager,
            "skip_create_resident_key_manager": s.skip_create_resident_key_manager,
            "dotless_domains": s.dotless_domains, "updated_by": s.updated_by,
            "updated_at": s.updated_at if db.session.get(SharingSettings, 1) is not None else None}


def notify_endpoint() -> str | None:
    """Where IS 7's listener posts: API Manager's notify API under the stored API Manager base URL."""
    conn = connections.get("apim")
    return wso2_config.notify_endpoint(conn.base_url) if conn is not None else None


def requires_confirmation(current_direction: str, target: str) -> bool:
    return current_direction != target and current_direction != "off"


# --- Validation ---------------------------------------------------------------------------------------------------


def _bool(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("1", "true", "y", "yes", "on"))


@dataclass
class _Change:
    values: dict[str, Any]  # column -> new value (passwords only when replaced)
    forced: list[str] = field(default_factory=list)


def _run(errors: dict[str, str], name: str, check, *args):
    """check(*args), or None with its ValueError kept as the field's error (the first one wins)."""
    try:
        return check(*args)
    except ValueError as exc:
        errors.setdefault(name, str(exc))
        return None


def _validate(target: str, settings: dict, stored: SharingSettings) -> _Change:
    errors: dict[str, str] = {}
    values: dict[str, Any] = {"direction": target}
    forced: list[str] = []
    if "dotless_domains" in settings:
        values["dotless_domains"] = _bool(settings.get("dotless_domains"))
    if target in KEY_MANAGER_DIRECTIONS:
        forced = _key_manager_values(target, settings, values, errors)
    if target == "is_to_apim":
        if connections.get("apim") is None:
            errors["direction"] = ("Set up the API Manager connection first: IS 7's listener posts to the notify "
                                   "endpoint under its base URL.")
        username, password = _account("apim", settings, stored, values, errors,
                                      "Enter the API Manager user IS 7's listener signs in as.",
                                      "Enter the password of that API Manager user.")
        if username and (problem := secret_binding.account_refusal(
                stored=bool(stored.apim_password), entered=password is not None, before=stored.apim_username,
                after=username)):
            # Where it goes, the notify endpoint, moves with the API Manager connection, which clears this
            # password when its base URL changes (connections._release_notify_password).
            errors.setdefault("apim_password", problem)
    elif target == "apim_to_is":
        username, password = _account("is", settings, stored, values, errors,
                                      "Enter the IS 7 user API Manager signs in as (it creates and updates tenants).",
                                      "Enter the password of that IS 7 user.")
        if "identity_server_base_url" not in errors and (problem := secret_binding.refusal(
                stored=bool(stored.is_password), entered=password is not None,
                before=secret_binding.http_target(stored.identity_server_base_url, stored.is_username),
                after=secret_binding.http_target(values.get("identity_server_base_url"), username))):
            errors.setdefault("is_password", problem)
    if errors:
        raise ValidationError(errors)
    return _Change(values, forced)


def _key_manager_values(target: str, settings: dict, values: dict[str, Any], errors: dict[str, str]) -> list[str]:
    """auto_configure_key_manager, skip_create_resident_key_manager (forced on with it: the reasons are returned)
    and IS 7's base URL, which API Manager → IS 7 always needs and IS 7 → API Manager for the key manager."""
    forced: list[str] = []
    auto = _bool(settings.get("auto_configure_key_manager"))
    skip = _bool(settings.get("skip_create_resident_key_manager"))
    if auto and not skip:
        skip = True
        forced.append(FORCED_SKIP_REASON)
    values.update(auto_configure_key_manager=auto, skip_create_resident_key_manager=skip)
    text = settings.get("identity_server_base_url")
    entered = isinstance(text, str) and bool(text.strip())
    if target == "apim_to_is" or auto or entered:
        url = _run(errors, "identity_server_base_url", connections.normalise_url, text, "IS 7")
        if url is None and target == "is_to_apim" and not entered:
            errors["identity_server_base_url"] = (
                "Enter IS 7's base URL as API Manager reaches it: the auto-configured key manager's endpoints "
                "are under it.")
        values["identity_server_base_url"] = url or ""
    return forced


def _account(prefix: str, settings: dict, stored: SharingSettings, values: dict[str, Any], errors: dict[str, str],
             no_user: str, no_password: str) -> tuple[str | None, str | None]:
    """The user one product signs in to the other as (`prefix`_username, `prefix`_password): checked, required
    (a stored password may stand), copied into `values` (the password only when one was entered)."""
    user_field, password_field = f"{prefix}_username", f"{prefix}_password"
    username = _run(errors, user_field, connections.check_text, settings.get(user_field), "user name")
    password = _run(errors, password_field, connections.check_password, settings.get(password_field))
    if not username and user_field not in errors:
        errors[user_field] = no_user
    if password is None and not getattr(stored, password_field) and password_field not in errors:
        errors[password_field] = no_password
    values[user_field] = username or ""
    if password is not None:
        values[password_field] = password
    return username, password


def _preflight(target: str, change: _Change, stored: SharingSettings) -> CheckResult | None:
    """The products' users for each other, tried from the portal: URL reachable, certificate trusted, sign-in
    accepted. The portal's network path and trust stand in for the product's own, which the result says."""
    values = change.values
    if target == "is_to_apim":
        result = _notify_probe(values["apim_username"], values.get("apim_password") or stored.apim_password or "")
    elif target == "apim_to_is":
        result = connections.check_credentials(
            "is", username=values["is_username"], password=values.get("is_password") or stored.is_password,
            base_url=values["identity_server_base_url"],
            fields={"password": "is_password", "base_url": "identity_server_base_url",
                    "trust_roles": "identity_server_base_url"})
    else:
        return None
    result.details.append("Checked from the portal: API Manager's and IS 7's own network paths and truststores are "
                          "not visible to it (see the trust legs on the sharing page).")
    return result


def _notify_probe(username: str, password: str) -> CheckResult:
    """Post the no-op event to API Manager's notify endpoint as IS 7's listener will, with its user."""
    try:
        client = connections.apim_client()
    except connections.NotConfigured as exc:
        return CheckResult.failed(exc.message)
    except (UpstreamError, ValueError) as exc:
        return CheckResult.failed(str(exc))
    event = {"iss": "tenant-portal", "jti": str(uuid.uuid4()), "iat": int(time.time()),
             "events": {PROBE_EVENT_URI: {"initiatorType": "SYSTEM", "action": "UPDATE",
                                          "tenant": {"domain": PROBE_DOMAIN, "owners": []}}}}
    try:
        client.notify(event, username=username, password=password)
    except UpstreamError as exc:
        result = connections.describe_failure(exc, auth="basic")
        fields = {"password": "apim_password", "base_url": "direction", "trust_roles": "direction"}
        result.field_errors = {fields[k]: v for k, v in result.field_errors.items() if k in fields}
        if exc.status == 403:
            result.field_errors["apim_username"] = "API Manager accepts events only from a super-tenant user."
        elif exc.status == 500:
            result.field_errors["apim_username"] = ("API Manager refused the event: this user probably lacks the "
                                                    "modify-tenant permission.")
        result.details.append(APIM_PERMISSION_NOTE)
        return result
    finally:
        client.close()
    return CheckResult(True, "API Manager's notify endpoint accepted an event from this user.",
                       [f"Posted a no-op event to {client.base_url}{wso2_config.NOTIFY_PATH}.", APIM_PERMISSION_NOTE])


# --- Saving -------------------------------------------------------------------------------------------------------


def set_direction(target: str, settings: dict, actor: Actor, *, confirm: bool, check: bool = True) -> SharingSettings:
    """Save the direction and its settings. Leaving a direction needs `confirm` (ConfirmationRequired otherwise);
    the pre-flight runs unless `check` is False (the administrator's explicit "save without checking") and a
    failure refuses the save with CheckFailed. skip_create_resident_key_manager is forced on with auto-configure."""
    if target not in DIRECTIONS:
        raise ValidationError({"direction": "Choose off, API Manager → IS 7 or IS 7 → API Manager: sharing runs in "
                                            "one direction at a time."})
    stored = current()
    change = _validate(target, settings, stored)
    if requires_confirmation(stored.direction, target) and not confirm:
        raise ConfirmationRequired(stored.direction, target, render(target))
    if check:
        result = _preflight(target, change, stored)
        if result is not None and not result.ok:
            raise CheckFailed(result)
    locked = sa.select(SharingSettings).where(SharingSettings.id == 1).with_for_update()
    row = db.session.execute(locked.execution_options(populate_existing=True)).scalar()
    if row is not None and requires_confirmation(row.direction, target) and not confirm:
        raise ConfirmationRequired(row.direction, target, render(target))  # someone switched meanwhile
    before = _audit_view(row)
    if row is None:
        row = _defaults()
        db.session.add(row)
    for name, value in change.values.items():
        setattr(row, name, value)
    row.updated_by = actor.name[:64]
    changes = audit.diff(before, _audit_view(row, replaced={k for k in SECRET_FIELDS if k in change.values}),
                         SECRET_FIELDS)
    if change.forced:
        changes["forced"] = {"before": None, "after": change.forced}
    if not check and target != "off":
        changes["preflight"] = {"before": None, "after": "skipped"}
    audit.record(actor, "sharing.update", "sharing_settings", 1, changes)
    try:
        db.session.commit()
    except sa.exc.IntegrityError:
        db.session.rollback()
        raise Conflict("The sharing settings were saved by someone else at the same moment: reload the page and "
                       "try again.") from None
    return row


def render(target: str | None = None, *, include_passwords: bool = False) -> GeneratedConfig:
    """The fragments for `target` (the stored direction when None) from the stored settings. Passwords are
    `$secret{…}` references unless include_passwords (the administrator's explicit download)."""
    target = target or direction()
    if target not in DIRECTIONS:
        raise NotFound(f"No sharing direction {target!r}.")
    return generate(current(), target, notify_endpoint(), include_passwords=include_passwords)


def _audit_view(row: SharingSettings | None, replaced: set[str] = frozenset()) -> dict[str, Any]:
    if row is None:
        return {"direction": "off"}
    data = {"direction": row.direction, "apim_username": row.apim_username,
            "identity_server_base_url": row.identity_server_base_url, "is_username": row.is_username,
            "auto_configure_key_manager": row.auto_configure_key_manager,
            "skip_create_resident_key_manager": row.skip_create_resident_key_manager,
            "dotless_domains": row.dotless_domains}
    for name in SECRET_FIELDS:
        # Markers, never the values: "replaced" differs from "set", so a new password shows as a change.
        data[name] = ("replaced" if name in replaced else "set") if getattr(row, name) else None
    return data


@dataclass(frozen=True)
class KeyManagerExpectation:
    """Whether API Manager should have auto-configured a WSO2-IS-7 key manager for new tenants, and where its
    endpoints point: what services.key_managers checks against."""

    expected: bool
    identity_server_base_url: str
    reason: str


def key_manager_expectation() -> KeyManagerExpectation:
    s = current()
    if s.direction not in KEY_MANAGER_DIRECTIONS:
        return KeyManagerExpectation(False, "", "Sharing is off: the generated configuration has API Manager create "
                                                "no WSO2-IS-7 key manager per tenant.")
    if not s.auto_configure_key_manager:
        return KeyManagerExpectation(False, "", "auto_configure_key_manager is off in the sharing settings: API "
                                                "Manager creates no WSO2-IS-7 key manager per tenant.")
    is_conn = connections.get("is")
    url = s.identity_server_base_url or (is_conn.base_url if is_conn else "")
    return KeyManagerExpectation(True, url, "auto_configure_key_manager is on: API Manager should have created "
                                            "one WSO2-IS-7 key manager for the tenant.")


def download(product: str, target: str | None, actor: Actor, *, include_passwords: bool = False) -> tuple[str, str]:
    """(filename, text) of one product's fragment. A download with passwords is audited: it copies secrets out."""
    if product not in FILENAMES:
        raise NotFound(f"No configuration for {product!r}: choose IS 7 ('is') or API Manager ('apim').")
    generated = render(target, include_passwords=include_passwords)
    text = generated.for_product(product) or EMPTY
    if include_passwords:
        audit.record(actor, "sharing.config_export", "sharing_settings", 1,
                     {"product": {"before": None, "after": product},
                      "direction": {"before": None, "after": generated.direction},
                      "passwords": {"before": None, "after": "included"}})
        db.session.commit()
    return FILENAMES[product], text


# --- TLS trust legs -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrustLeg:
    """One TLS hop and what the portal can know about it. state: "ready" (the portal holds valid certificates for
    it), "expired", "missing" or "n/a"; `unknown` says what the portal cannot see."""

    key: str
    title: str
    state: str
    detail: str
    unknown: str
    active: bool


def _certs_state(roles: tuple[str, ...]) -> tuple[str, int]:
    stored = certificates.list_certificates(roles)
    if not stored:
        return "missing", 0
    valid = [c for c in stored if certificates.info(c).validity != "expired"]
    return ("ready" if valid else "expired"), len(valid)


def trust_legs(target: str | None = None) -> list[TrustLeg]:
    """The TLS legs between the portal and the products, and between the products for `target`."""
    target = target or direction()
    is_conn, apim_conn = connections.get("is"), connections.get("apim")
    legs: list[TrustLeg] = []
    is_roles = tuple(is_conn.trust_roles) if is_conn else connections.DEFAULT_TRUST["is"]
    state, count = _certs_state(is_roles)
    legs.append(TrustLeg("portal-is", "Portal → IS 7: the portal trusts IS 7's server certificate", state,
                         f"{count} valid certificate(s) with role {', '.join(is_roles)}." if count else
                         "Upload IS 7's certificate or the CA that issued it.",
                         "Whether they match IS 7's live certificate: use Test connection.", True))
    if is_conn is None or is_conn.auth == "mtls":
        credentials = certificates.list_certificates(("client",))
        with_key = [c for c in credentials if c.private_key]
        if not with_key:
            state, detail = "missing", "Upload the portal's client certificate with its private key."
        elif all(certificates.info(c).validity == "expired" for c in with_key):
            state, detail = "expired", "The portal's client certificate has expired."
        else:
            state, detail = "ready", "The portal holds a client certificate with its private key."
        legs.append(TrustLeg("portal-is-client", "Portal → IS 7: IS 7 trusts the portal's client certificate", state,
                             detail, "Whether IS 7's client-truststore holds it (or its CA) and a thumbprint mapping "
                             "allows it: the portal cannot see IS 7's files; Test connection tries it.", True))
    apim_roles = tuple(apim_conn.trust_roles) if apim_conn else connections.DEFAULT_TRUST["apim"]
    state, count = _certs_state(apim_roles)
    legs.append(TrustLeg("portal-apim", "Portal → API Manager: the portal trusts API Manager's server certificate",
                         state, f"{count} valid certificate(s) with role {', '.join(apim_roles)}." if count else
                         "Upload API Manager's certificate or the CA that issued it.",
                         "Whether they match API Manager's live certificate: use Test connection.", True))
    state, count = _certs_state(("is", "ca"))
    legs.append(TrustLeg("apim-is", "API Manager → IS 7: API Manager trusts IS 7's server certificate",
                         state, f"The API Manager truststore download holds {count} IS 7 / CA certificate(s)." if count
                         else "Upload IS 7's certificate (or its CA), then download API Manager's truststore.",
                         "Whether it is imported into API Manager's client-truststore.jks: the portal cannot see "
                         "API Manager's files.", target == "apim_to_is"))
    state, count = _certs_state(("apim", "ca"))
    legs.append(TrustLeg("is-apim", "IS 7 → API Manager: IS 7 trusts API Manager's server certificate",
                         state, f"The IS 7 truststore download holds {count} API Manager / CA certificate(s)." if count
                         else "Upload API Manager's certificate (or its CA), then download IS 7's truststore.",
                         "Whether it is imported into IS 7's client-truststore: the portal cannot see IS 7's files.",
                         target == "is_to_apim"))
    return legs
