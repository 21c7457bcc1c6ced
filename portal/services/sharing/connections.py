"""How the portal reaches IS 7 and API Manager: the stored connection of each product, the clients built from it,
and the "Test connection" check.

IS 7 takes mutual TLS (the portal's client certificate and `WSO2-Identity-User`, wso2-apis.md §2) or Basic; API
Manager's SOAP admin service and notify API take Basic only (§4, §6). Which stored certificates the portal trusts
for each product's server certificate is part of the connection (certificate roles, services.certificates). The
password is write-only: a blank one keeps the stored value while the base URL and user name stay the same
(services.secret_binding), and it is never rendered, logged or audited in clear.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from portal.clients import transport
from portal.clients.api_manager import ApiManagerClient
from portal.clients.checks import CheckResult
from portal.clients.errors import Cause, UpstreamError
from portal.clients.identity_server import IdentityServerClient
from portal.extensions import db
from portal.models.sharing import AUTH_METHODS, PRODUCTS, ProductConnection, SharingSettings
from portal.services import check_budget
from portal.services.admin import audit
from portal.services.certificates import service as certificates
from portal.services.context import Actor
from portal.services.errors import (
    CheckFailed,
    Conflict,
    NotFound,
    ServiceError,
    ValidationError,
)
from portal.services.tenants import secret_binding

LABELS = {"is": "IS 7", "apim": "API Manager"}
DEFAULT_TRUST = {"is": ("ca", "is"), "apim": ("ca", "apim")}
TRUST_ROLES = ("ca", "is", "apim")  # "client" is the portal's own certificate, never a trust anchor for a server
DEFAULT_TIMEOUTS = (5.0, 30.0)
MAX_CONNECT_TIMEOUT = 60.0
MAX_READ_TIMEOUT = 300.0
MAX_TEXT = 255


class NotConfigured(ServiceError):
    """A client was asked for but the connection (or a certificate it needs) is not set up yet."""

    status = 409


@dataclass(frozen=True)
class Settings:
    """A connection's values, validated: either what is stored or what an administrator is about to save."""

    product: str
    base_url: str
    auth: str
    username: str
    password: str | None
    identity_user: str
    trust_roles: tuple[str, ...]
    connect_timeout: float
    read_timeout: float

    def __repr__(self) -> str:  # the password stays out of tracebacks and logs
        return f"Settings(product={self.product!r}, base_url={self.base_url!r}, auth={self.auth!r})"

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.connect_timeout, self.read_timeout)


def label(product: str) -> str:
    return LABELS[_product(product)]


def _product(product: str) -> str:
    if product not in PRODUCTS:
        raise NotFound(f"No product {product!r}: the portal connects to IS 7 ('is') and API Manager ('apim').")
    return product


def get(product: str) -> ProductConnection | None:
    return db.session.get(ProductConnection, _product(product))


def all_connections() -> dict[str, ProductConnection | None]:
    return {p: get(p) for p in PRODUCTS}


def view(product: str) -> dict[str, Any]:
    """What a page or an audit entry may show: every field, the password only as set / not set."""
    conn = get(product)
    if conn is None:
        return {"product": product, "configured": False, "password_set": False,
                "trust_roles": list(DEFAULT_TRUST[product])}
    return {"product": product, "configured": True, "base_url": conn.base_url, "auth": conn.auth,
            "username": conn.username, "password_set": bool(conn.password), "identity_user": conn.identity_user,
            "trust_roles": list(conn.trust_roles), "connect_timeout": conn.connect_timeout,
            "read_timeout": conn.read_timeout, "updated_by": conn.updated_by, "updated_at": conn.updated_at}


# --- Validation ---------------------------------------------------------------------------------------------------


def normalise_url(text: Any, what: str) -> str:
    """`https://host[:port][/prefix]` without a trailing slash (the clients' rule, transport.https_base_url);
    raises ValueError with a sentence naming `what`."""
    return transport.https_base_url(
        text, max_length=2048,
        empty=f"Enter {what}'s base URL, e.g. https://{what.lower().replace(' ', '-')}.example.com:9443.",
        unsafe="The base URL contains spaces or control characters, or is too long.",
        not_https=f"{what}'s base URL must start with https://: credentials never travel in clear.")


def check_text(value: Any, field_label: str) -> str:
    """A user name or header value: at most 255 characters, no control characters."""
    text = value.strip() if isinstance(value, str) else ""
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        raise ValueError(f"The {field_label} contains control characters.")
    if len(text) > MAX_TEXT:
        raise ValueError(f"The {field_label} is longer than {MAX_TEXT} characters.")
    return text


def check_password(value: Any) -> str | None:
    """None or "" means "keep the stored password"."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or any(ord(ch) < 0x20 for ch in value) or len(value) > 1024:
        raise ValueError("The password must be text of at most 1024 characters, without control characters.")
    return value


def _timeout(value: Any, name: str, default: float, maximum: float) -> float:
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"The {name} timeout must be a number of seconds.") from None
    if not math.isfinite(number) or number <= 0 or number > maximum:
        raise ValueError(f"The {name} timeout must be more than 0 and at most {maximum:g} seconds.")
    return number


def _validate(product: str, data: dict, existing: ProductConnection | None) -> Settings:
    errors: dict[str, str] = {}
    what = LABELS[product]

    def run(field: str, check, *args):
        try:
            return check(*args)
        except ValueError as exc:
            errors.setdefault(field, str(exc))
            return None

    base_url = run("base_url", normalise_url, data.get("base_url"), what)
    auth = data.get("auth") or AUTH_OF_PRODUCT[product][0]
    if auth not in AUTH_METHODS:
        errors["auth"] = "Choose mutual TLS or Basic authentication."
    elif auth not in AUTH_OF_PRODUCT[product]:
        errors["auth"] = "API Manager's admin service and notify API take Basic authentication only."
    username = run("username", check_text, data.get("username"), "user name") or ""
    password = run("password", check_password, data.get("password"))
    identity_user = run("identity_user", check_text, data.get("identity_user"), "WSO2-Identity-User value") or ""
    if auth == "basic":
        if not username:
            errors.setdefault("username", f"Enter the {what} user the portal signs in as.")
        if password is None and not (existing is not None and existing.password):
            errors.setdefault("password", f"Enter the password of the {what} user.")
        elif base_url and existing is not None and (problem := secret_binding.refusal(
                stored=bool(existing.password), entered=password is not None,
                before=secret_binding.http_target(existing.base_url, existing.username),
                after=secret_binding.http_target(base_url, username))):
            errors.setdefault("password", problem)
    raw_roles = data.get("trust_roles")
    roles = tuple(DEFAULT_TRUST[product]) if raw_roles is None else tuple(raw_roles)
    if any(role not in TRUST_ROLES for role in roles):
        errors["trust_roles"] = "Trust is given to stored CA, IS 7 or API Manager certificates only."
    elif not roles:
        errors["trust_roles"] = f"Choose which stored certificates the portal trusts for {what}'s server certificate."
    connect = run("connect_timeout", _timeout, data.get("connect_timeout"), "connect", DEFAULT_TIMEOUTS[0],
                  MAX_CONNECT_TIMEOUT)
    read = run("read_timeout", _timeout, data.get("read_timeout"), "read", DEFAULT_TIMEOUTS[1], MAX_READ_TIMEOUT)
    if errors:
        raise ValidationError(errors)
    if password is None and existing is not None and auth == "basic":
        password = existing.password
    return Settings(product, base_url or "", auth, username, password, identity_user,
                    tuple(dict.fromkeys(roles)), connect or DEFAULT_TIMEOUTS[0], read or DEFAULT_TIMEOUTS[1])


def _stored(conn: ProductConnection) -> Settings:
    return Settings(conn.product, conn.base_url, conn.auth, conn.username, conn.password, conn.identity_user,
                    tuple(conn.trust_roles), conn.connect_timeout, conn.read_timeout)


# --- Clients ------------------------------------------------------------------------------------------------------


def trust_bundle(product: str, roles: tuple[str, ...] | None = None) -> str:
    """The PEM bundle the portal verifies `product`'s server certificate with; NotConfigured when empty."""
    roles = roles or tuple(getattr(get(product), "trust_roles", None) or DEFAULT_TRUST[product])
    pem = certificates.trust_pem(roles=roles)
    if not pem:
        names = " or ".join(certificates.ROLE_LABELS[r] for r in roles)
        raise NotConfigured(f"The portal trusts no certificate for {LABELS[product]}'s server yet: upload a {names} "
                            "on the Certificates page.")
    return pem


def _is_client(settings: Settings, *, username: str | None = None, password: str | None = None,
               base_url: str | None = None) -> IdentityServerClient:
    ca_pem = trust_bundle("is", settings.trust_roles)
    url = base_url or settings.base_url
    if username is not None:  # Basic with other credentials (the sharing pre-flight)
        return IdentityServerClient(url, ca_pem=ca_pem, username=username, password=password,
                                    timeout=settings.timeout)
    if settings.auth == "mtls":
        credentials = certificates.client_credentials()
        if credentials is None:
            raise NotConfigured("Mutual TLS to IS 7 needs the portal's client certificate with its private key: "
                                "upload it on the Certificates page, or switch the connection to Basic.")
        cert_pem, key_pem = credentials
        return IdentityServerClient(url, ca_pem=ca_pem, cert_pem=cert_pem, key_pem=key_pem,
                                    identity_user=settings.identity_user or None, timeout=settings.timeout)
    return IdentityServerClient(url, ca_pem=ca_pem, username=settings.username, password=settings.password,
                                timeout=settings.timeout)


def _apim_client(settings: Settings, *, username: str | None = None, password: str | None = None,
                 base_url: str | None = None) -> ApiManagerClient:
    """`base_url` is accepted for symmetry with IS and ignored: API Manager is always reached at its stored URL."""
    ca_pem = trust_bundle("apim", settings.trust_roles)
    return ApiManagerClient(settings.base_url, ca_pem=ca_pem,
                            username=settings.username if username is None else username,
                            password=settings.password if username is None else password,
                            timeout=settings.timeout)


# How the portal builds each product's client, and which authentications each product takes (first: the default).
_BUILDERS: dict[str, Callable[..., IdentityServerClient | ApiManagerClient]] = {
    "is": _is_client, "apim": _apim_client}
AUTH_OF_PRODUCT = {"is": ("mtls", "basic"), "apim": ("basic",)}


def _settings(product: str) -> Settings:
    conn = get(product)
    if conn is None:
        raise NotConfigured(f"The {LABELS[product]} connection is not set up: enter it under Sharing → "
                            "Connections.")
    return _stored(conn)


def is_client() -> IdentityServerClient:
    """A client for IS 7 built from the stored connection. The caller closes it."""
    return _is_client(_settings("is"))


def apim_client() -> ApiManagerClient:
    """A client for API Manager built from the stored connection. The caller closes it."""
    return _apim_client(_settings("apim"))


def client_for(product: str, *, username: str | None = None, password: str | None = None,
               base_url: str | None = None) -> IdentityServerClient | ApiManagerClient:
    """A client for `product` with other Basic credentials (and for IS another base URL) but the stored trust and
    timeouts: the sharing pre-flight checks the users the products will use for each other."""
    settings = _stored(get(product)) if get(product) is not None else Settings(
        product, base_url or "", "basic", "", None, "", DEFAULT_TRUST[product], *DEFAULT_TIMEOUTS)
    return _BUILDERS[product](settings, username=username or "", password=password, base_url=base_url)


# --- Checks -------------------------------------------------------------------------------------------------------

_FIELD_OF_CAUSE = {
    Cause.HOST_UNKNOWN: "base_url", Cause.REFUSED: "base_url", Cause.TIMEOUT: "base_url",
    Cause.SERVER_NAME_MISMATCH: "base_url", Cause.BAD_RESPONSE: "base_url", Cause.NETWORK: "base_url",
    Cause.SERVER_NOT_TRUSTED: "trust_roles", Cause.POLICY: "base_url",
}


def credentials_refused(exc: UpstreamError) -> bool:
    """IS answers 401/403; API Manager's SOAP service answers a fault from Carbon's authentication or authorization
    handler (no service exception in its detail)."""
    if exc.status in (401, 403):
        return True
    return exc.status == 500 and exc.code != "TenantMgtAdminServiceException" and \
        exc.message.startswith(("Authentication failure", "Access Denied", "Denied accessing"))


def describe_failure(exc: UpstreamError, *, auth: str) -> CheckResult:
    """A failed call as a CheckResult: what happened (the summary; as `cause` and `reference`, the product's words
    and its status, error code and trace id apart), what to do, and the field to look at."""
    details = [exc.hint]
    field = _FIELD_OF_CAUSE.get(exc.cause)
    if credentials_refused(exc):
        field = "identity_user" if auth == "mtls" else "password"
        details.insert(0, "The credentials were refused: check the user name and password." if auth == "basic" else
                       "IS refused the client certificate or the WSO2-Identity-User: Certificates → Test mutual TLS "
                       "to IS 7 explains why.")
    return CheckResult(False, str(exc), details, {field: exc.message} if field else {}, cause=exc.words,
                       reference=exc.reference)


def _ping(product: str, build: Callable[[], Any], auth: str) -> CheckResult:
    """Build a client and ping it; never raises for a product's answer or a missing set-up. Each ping counts
    against the actor's connection-check budget (TooManyChecks, 429, before anything is connected)."""
    check_budget.spend()
    try:
        client = build()
    except NotConfigured as exc:
        return CheckResult.failed(exc.message)
    except UpstreamError as exc:  # the CA bundle, certificate or key could not be loaded
        return CheckResult(False, str(exc), [exc.hint])
    except ValueError as exc:  # the client refused a value (a base URL, a header)
        return CheckResult.failed(str(exc), base_url=str(exc))
    try:
        answer = client.ping()
    except UpstreamError as exc:
        return describe_failure(exc, auth=auth)
    finally:
        client.close()
    details = [f"Called {client.base_url}" + (f" as {auth_label(auth)}." if auth else ".")]
    if isinstance(answer, str) and answer:
        details.append(answer)
    return CheckResult(True, f"{LABELS[product]} answered: the URL is reachable, the portal trusts its server "
                             "certificate and the credentials were accepted.", details)


def auth_label(auth: str) -> str:
    return {"mtls": "mutual TLS", "basic": "Basic authentication"}.get(auth, auth)


def test(product: str) -> CheckResult:
    """The "Test connection" button: a real call through the client built from the stored connection."""
    product = _product(product)
    try:
        settings = _settings(product)
    except NotConfigured as exc:
        return CheckResult.failed(exc.message)
    return _ping(product, lambda: _BUILDERS[product](settings), settings.auth)


def check_credentials(product: str, *, username: str, password: str | None, base_url: str | None = None,
                      fields: dict[str, str] | None = None) -> CheckResult:
    """Ping `product` as another user (Basic), with the stored trust: the sharing pre-flight. `fields` renames
    the field errors (base_url, password, trust_roles) to the caller's form fields."""
    result = _ping(product, lambda: client_for(product, username=username, password=password, base_url=base_url),
                   "basic")
    if fields is not None:
        result.field_errors = {fields[k]: v for k, v in result.field_errors.items() if k in fields}
    return result


# --- Saving -------------------------------------------------------------------------------------------------------


def save(product: str, data: dict, actor: Actor, *, check: bool = True) -> ProductConnection:
    """Validate and store a product's connection. With `check` the new values are tried first (a real call) and
    a failure refuses the save with CheckFailed (its `.result` holds the steps); check=False is the
    administrator's explicit "save without checking"."""
    product = _product(product)
    existing = get(product)
    settings = _validate(product, data, existing)
    if check:
        result = _ping(product, lambda: _BUILDERS[product](settings), settings.auth)
        if not result.ok:
            raise CheckFailed(result)
    before = _audit_view(existing)
    conn = existing or ProductConnection(product=product)
    conn.base_url = settings.base_url
    conn.auth = settings.auth
    conn.username = settings.username
    if data.get("password") not in (None, ""):
        conn.password = settings.password
    conn.identity_user = settings.identity_user
    conn.trust_roles = list(settings.trust_roles)
    conn.connect_timeout = settings.connect_timeout
    conn.read_timeout = settings.read_timeout
    conn.updated_by = actor.name[:64]
    after = _audit_view(conn)
    if data.get("password") not in (None, ""):
        after["password"] = "replaced" if before.get("password") else "set"
    changes = audit.diff(before, after)
    if not check:
        changes["preflight"] = {"before": None, "after": "skipped"}
    if existing is None:
        db.session.add(conn)
    audit.record(actor, "connection.create" if existing is None else "connection.update", "product_connection",
                 product, changes)
    if product == "apim" and before and before["base_url"] != conn.base_url:
        _release_notify_password(before["base_url"], conn.base_url, actor)
    try:
        db.session.commit()
    except sa.exc.IntegrityError:
        db.session.rollback()
        raise Conflict(f"The {LABELS[product]} connection was saved by someone else at the same moment: reload "
                       "the page and try again.") from None
    return conn


def _release_notify_password(old_url: str, new_url: str, actor: Actor) -> None:
    """The sharing settings' API Manager password (IS 7's listener user, tried by the pre-flight) goes to the notify
    endpoint under this connection's base URL. When that moves, the stored password stays behind: it was entered for
    the old place, so it is cleared and must be entered again on the sharing page (secret_binding's rule)."""
    if secret_binding.http_target(old_url, None) == secret_binding.http_target(new_url, None):
        return
    settings = db.session.get(SharingSettings, 1)
    if settings is None or not settings.apim_password:
        return
    settings.apim_password = None
    settings.updated_by = actor.name[:64]
    audit.record(actor, "sharing.update", "sharing_settings", 1, {
        "apim_password": {"before": "set", "after": None},
        "reason": {"before": None, "after": "The API Manager base URL changed: enter the API Manager password for "
                                            "IS 7's listener again."}})


def _audit_view(conn: ProductConnection | None) -> dict[str, Any]:
    if conn is None:
        return {}
    return {"base_url": conn.base_url, "auth": conn.auth, "username": conn.username,
            "password": "set" if conn.password else None, "identity_user": conn.identity_user,
            "trust_roles": list(conn.trust_roles or []), "connect_timeout": conn.connect_timeout,
            "read_timeout": conn.read_timeout}
