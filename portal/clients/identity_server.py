"""Outbound calls to WSO2 Identity Server 7's tenant management REST API (wso2-apis.md §1, §2; security.md §4).

One `IdentityServerClient` owns one `requests.Session`:
- IS's server certificate is verified against the CA bundle given (only that bundle: `trust_env` is off, so
  `REQUESTS_CA_BUNDLE` and proxy variables cannot widen trust or reroute the call);
- the portal authenticates with its client certificate (mutual TLS, `WSO2-Identity-User` names the user), or with
  HTTP Basic (`username` / `password`); IS lets a presented certificate win over an Authorization header;
- the client certificate and key arrive as PEM text (the key is stored encrypted); `ssl` can only load them from
  files, so they are written to a private temporary directory, loaded into an `SSLContext`, and deleted at once;
- every call has a timeout and sends an `activityid` correlation id IS logs;
- idempotent calls (GET, HEAD, PUT) are retried on connection failures and 429/502/503/504, honouring a short
  Retry-After; POST never is, not even after a refused connection;
- every failure is an `UpstreamError` (portal.clients.errors): an HTTP error with IS's status, error code, message,
  description and trace id; or a transport failure with a plain `Cause`. A raw `Response` never leaves this module.

IS's quirks handled here: an unknown tenant is 400 TM-60014 / TM-60015 (not 404), so the getters return None for
exactly those; a create answers 201 with an EMPTY body and the new tenant's URL in `Location`; HEAD on a domain is
200 (taken) or 404 (free); `sortOrder` is compared case-sensitively; a metadata delete is refused with 400
TM-60016 unless tenant deletion is enabled (`DeletionDisabled`); the valve's 403 (identity.xml.j2's resource
permissions) becomes a `PermissionDenied` naming the permission the operation needs.
"""
from __future__ import annotations

import datetime
import json
import os
import shutil
import ssl
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import quote, urlsplit

import requests
from requests.auth import HTTPBasicAuth

from portal.clients.address_policy import AddressPolicy, AddressRefused, GuardedAdapter
from portal.clients.errors import (  # re-exported: existing imports of these names from here keep working
    HINTS,
    MAX_BODY_BYTES,
    PRODUCT_IS,
    Cause,
    DeletionDisabled,
    IdempotentRetry,
    PermissionDenied,
    TooLarge,
    UpstreamError,
    classify,
    detail_of,
    policy_error,
    read_capped,
)
from portal.clients.errors import parse_retry_after as _parse_retry_after

__all__ = ["API_PATH", "HINTS", "PERMISSION_LIST_TENANTS", "PERMISSION_MODIFY_TENANTS", "PRODUCT", "Cause",
           "DeletionDisabled", "IdentityServerClient", "IsTenant", "PermissionDenied", "TenantOwner",
           "TenantOwnerSpec", "TenantSummary", "TenantsPage", "UpstreamError", "build_ssl_context", "classify",
           "normalise_base_url"]

PRODUCT = PRODUCT_IS
API_PATH = "api/server/v1"
USER_HEADER = "WSO2-Identity-User"
CORRELATION_HEADER = "activityid"  # IS's RequestCorrelationIdValve maps it to the Correlation-ID it logs
TRACE_HEADER = "X-WSO2-TraceId"
DEFAULT_TIMEOUT = (3.05, 15.0)  # (connect, read) seconds
SORT_ORDERS = ("ASC", "DESC")  # IS compares case-sensitively; anything else silently means ASC
MAX_LIMIT = 100  # IS clamps larger limits to MaximumItemsPerPage
PROVISIONING_METHODS = ("inline-password", "invite-via-email")
# identity.xml.j2's resource access control for /api/server/v1/tenants(.*): GET/POST/HEAD need the list permission
# (scope internal_list_tenants), PUT and the metadata DELETE the modify permission (internal_modify_tenants).
PERMISSION_LIST_TENANTS = "/permission/protected/manage/monitor/tenants/list"
PERMISSION_MODIFY_TENANTS = "/permission/protected/manage/modify/tenants"
_SCOPES = {PERMISSION_LIST_TENANTS: "internal_list_tenants", PERMISSION_MODIFY_TENANTS: "internal_modify_tenants"}
DELETION_DISABLED = "TM-60016"


# --- Results ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TenantOwner:
    id: str | None
    username: str | None


@dataclass(frozen=True)
class IsTenant:
    """A TenantListItem / TenantResponseModel. `created` is IS's createdDate (UTC), None if IS sent none."""

    id: str
    domain: str
    name: str | None
    activated: bool
    owners: list[TenantOwner] = field(default_factory=list)
    created: datetime.datetime | None = None


TenantSummary = IsTenant  # the name issue 4 used


@dataclass(frozen=True)
class TenantsPage:
    total_results: int
    start_index: int
    count: int
    tenants: tuple[IsTenant, ...] = ()
    links: tuple[tuple[str, str], ...] = ()  # (rel, href) as IS sends them: relative hrefs


@dataclass(frozen=True)
class TenantOwnerSpec:
    """The owner of a tenant to create. `invite-via-email` makes IS ignore the password and mail the owner."""

    username: str
    email: str
    firstname: str | None = None
    lastname: str | None = None
    provisioning_method: str = "inline-password"
    password: str | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, str]:
        method = self.provisioning_method.lower()
        if method not in PROVISIONING_METHODS:
            raise ValueError("provisioning_method must be inline-password or invite-via-email")
        document = {"username": self.username, "email": self.email, "firstname": self.firstname,
                    "lastname": self.lastname, "provisioningMethod": method}
        if method == "inline-password":
            document["password"] = self.password
        return {key: value for key, value in document.items() if value is not None}


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes = field(repr=False)


# --- TLS set-up ------------------------------------------------------------------------------------------------


class TlsAdapter(GuardedAdapter):
    """Hands urllib3 our SSLContext (CA bundle + client certificate already loaded) and stops requests from adding
    its default CA bundle or certificate files to it: trust is exactly the bundle the portal was given. Connections
    go through the outbound address policy (`policy`, else the app's OUTBOUND_* settings)."""

    def __init__(self, context: ssl.SSLContext, **kwargs: Any) -> None:
        self._context = context
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._context
        super().init_poolmanager(*args, **kwargs)

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        for key in ("ca_certs", "ca_cert_dir", "cert_file", "key_file"):
            pool_kwargs.pop(key, None)
        pool_kwargs["ssl_context"] = self._context
        pool_kwargs["cert_reqs"] = "CERT_REQUIRED"
        return host_params, pool_kwargs

    def cert_verify(self, conn, url, verify, cert) -> None:
        conn.cert_reqs = "CERT_REQUIRED"  # never relaxed, whatever `verify` says
        conn.ca_certs = None
        conn.ca_cert_dir = None


_TlsAdapter = TlsAdapter


def _no_password() -> bytes:
    # Without a callback OpenSSL would prompt on the terminal for an encrypted key and block the worker.
    return b""


def _write_private(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def build_ssl_context(ca_pem: str, cert_pem: str | None = None, key_pem: str | None = None, *,
                      product: str = PRODUCT_IS) -> ssl.SSLContext:
    """A client context trusting only `ca_pem`, presenting the client certificate when given.

    Raises UpstreamError(BAD_CREDENTIALS | KEY_MISMATCH) before any connection is made."""
    short = "IS" if product == PRODUCT_IS else "API Manager"
    if not ca_pem or "-----BEGIN CERTIFICATE-----" not in ca_pem:
        raise UpstreamError(Cause.BAD_CREDENTIALS, f"The CA bundle for {short}'s server certificate is empty or not "
                            "PEM.", product=product)
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=ca_pem)
    except (ssl.SSLError, ValueError) as exc:
        raise UpstreamError(Cause.BAD_CREDENTIALS, f"The CA bundle for {short}'s server certificate could not be "
                            "read.", detail=str(exc), product=product) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_pem is None and key_pem is None:
        return context
    if not cert_pem or not key_pem:
        raise UpstreamError(Cause.BAD_CREDENTIALS,
                            "The portal's client certificate needs both the certificate and its private key.",
                            product=product)
    if "ENCRYPTED" in key_pem:
        raise UpstreamError(Cause.BAD_CREDENTIALS, "The portal's private key is password-protected; store it "
                            "unencrypted (the portal encrypts it at rest).", product=product)
    directory = tempfile.mkdtemp(prefix="portal-mtls-")  # mode 0700
    try:
        cert_path = os.path.join(directory, "client.pem")
        key_path = os.path.join(directory, "client-key.pem")
        _write_private(cert_path, cert_pem)
        _write_private(key_path, key_pem)
        context.load_cert_chain(cert_path, key_path, password=_no_password)
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            raise UpstreamError(Cause.KEY_MISMATCH, "The private key does not match the portal's client "
                                "certificate.", detail=str(exc), product=product) from None
        raise UpstreamError(Cause.BAD_CREDENTIALS, "The portal's client certificate or private key could not be "
                            "read.", detail=str(exc), product=product) from None
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return context


# --- The client ------------------------------------------------------------------------------------------------


def normalise_base_url(base_url: str, *, product: str = PRODUCT_IS) -> str:
    """`https://host[:port][/prefix]`, without a trailing slash. Raises ValueError with a reason."""
    short, example = ("IS", "is") if product == PRODUCT_IS else ("API Manager", "apim")
    text = (base_url or "").strip()
    if not text:
        raise ValueError(f"Enter {short}'s base URL, e.g. https://{example}.example.com:9443.")
    if any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in text):
        raise ValueError("The base URL contains spaces or control characters.")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ValueError(f"The base URL is not valid ({exc}).") from None
    if parts.scheme.lower() != "https":
        reason = "mutual TLS needs TLS" if product == PRODUCT_IS else "passwords travel in every call"
        raise ValueError(f"{short}'s base URL must start with https:// ({reason}).")
    if not parts.hostname:
        raise ValueError("The base URL has no host name.")
    if parts.username or parts.password:
        raise ValueError("The base URL must not contain a user name or password.")
    if parts.query or parts.fragment:
        raise ValueError("The base URL must not contain a query or fragment.")
    return f"https://{parts.netloc}{parts.path.rstrip('/')}"


def _check_header_value(value: str) -> str:
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValueError("The WSO2-Identity-User value contains control characters.")
    if len(value) > 255:
        raise ValueError("The WSO2-Identity-User value is longer than 255 characters.")
    return value


def _segment(value: str) -> str:
    """One path segment, percent-encoded so a value cannot add segments or a query."""
    if not isinstance(value, str) or not value:
        raise ValueError("an id or domain is required")
    return quote(value, safe="")


class IdentityServerClient:
    """REST client for one IS 7 server. Build it once per process (or per check) and `close()` it."""

    def __init__(self, base_url: str, *, ca_pem: str, cert_pem: str | None = None, key_pem: str | None = None,
                 identity_user: str | None = None, username: str | None = None, password: str | None = None,
                 timeout: float | tuple[float, float] = DEFAULT_TIMEOUT, retries: int = 2,
                 pool_maxsize: int = 4, policy: AddressPolicy | None = None) -> None:
        self.base_url = normalise_base_url(base_url)
        self.api_base = f"{self.base_url}/{API_PATH}"
        user = (identity_user or "").strip()
        self.identity_user = _check_header_value(user) if user else None
        self.timeout = (float(timeout), float(timeout)) if isinstance(timeout, int | float) else tuple(timeout)
        if len(self.timeout) != 2 or min(self.timeout) <= 0:
            raise ValueError("timeouts must be positive")
        if (username is None) != (password is None) or username == "":
            raise ValueError("Basic authentication needs both a user name and a password")
        self.presents_certificate = cert_pem is not None
        context = build_ssl_context(ca_pem, cert_pem, key_pem)
        self._session = requests.Session()
        self._session.trust_env = False  # no REQUESTS_CA_BUNDLE, no proxies, no .netrc
        self._session.verify = True
        self._session.headers.update({"Accept": "application/json", "User-Agent": "tenant-portal"})
        if username is not None:
            self._session.auth = HTTPBasicAuth(username, password or "")
        retry = IdempotentRetry(total=retries, connect=retries, read=min(retries, 1), status=retries, other=0,
                                redirect=False, backoff_factor=0.5, backoff_jitter=0.3,
                                status_forcelist={429, 502, 503, 504},
                                allowed_methods=IdempotentRetry.DEFAULT_ALLOWED_METHODS,
                                respect_retry_after_header=True, raise_on_status=False, raise_on_redirect=False)
        adapter = TlsAdapter(context, policy=policy, pool_connections=1, pool_maxsize=pool_maxsize, max_retries=retry)
        self._session.mount("https://", adapter)
        # Unreachable (base URLs are https only), and guarded all the same.
        self._session.mount("http://", GuardedAdapter(policy=adapter.policy, max_retries=0))

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- Tenant management API ----------------------------------------------------------------------------

    def ping(self) -> None:
        """Pre-flight: one tiny authenticated read. Raises UpstreamError (with a plain cause) when it fails."""
        self.list_tenants(limit=1)

    def list_tenants(self, *, limit: int | None = None, offset: int | None = None, sort_order: str | None = None,
                     sort_by: str | None = None, filter: str | None = None,
                     correlation_id: str | None = None) -> TenantsPage:
        """GET /tenants. `filter` is "domainName <sw|ew|eq|co> <value>"; IS defaults limit to 15, caps it at 100."""
        params: dict[str, str | int] = {}
        if limit is not None:
            params["limit"] = int(limit)
        if offset is not None:
            params["offset"] = int(offset)
        if sort_order is not None:
            if sort_order.upper() not in SORT_ORDERS:
                raise ValueError("sort_order must be ASC or DESC")
            params["sortOrder"] = sort_order.upper()
        if sort_by is not None:
            params["sortBy"] = sort_by
        if filter is not None:
            params["filter"] = filter
        answer = self._call("GET", "tenants", params=params, correlation_id=correlation_id)
        return _tenants_page(_json_document(answer, self.base_url))

    def iter_all_tenants(self, page_size: int = MAX_LIMIT) -> Iterator[IsTenant]:
        """Every tenant, by domain, one page at a time (offsets follow what IS returned, so a limit IS clamps does
        not skip tenants). Tenants created or removed meanwhile may be missed or seen twice; reconcile re-reads."""
        if page_size < 1:
            raise ValueError("page_size must be positive")
        offset = 0
        while True:
            page = self.list_tenants(limit=page_size, offset=offset, sort_order="ASC")
            yield from page.tenants
            offset += len(page.tenants)
            if not page.tenants or offset >= page.total_results:
                return

    def create_tenant(self, domain: str, owner: TenantOwnerSpec, name: str | None = None, *,
                      correlation_id: str | None = None) -> str:
        """POST /tenants; returns the new tenant's id, read from `Location` (IS answers 201 with an empty body).

        Never retried: a lost answer may mean the tenant exists, so callers check by domain before trying again."""
        body: dict[str, Any] = {"domain": domain, "owners": [owner.to_json()]}
        if name is not None:
            body["name"] = name
        answer = self._call("POST", "tenants", json_body=body, expected=(201,), correlation_id=correlation_id)
        location = {k.lower(): v for k, v in answer.headers.items()}.get("location", "")
        path = urlsplit(location).path.rstrip("/")
        head, _, tenant_id = path.rpartition("/")
        if not tenant_id or not head.endswith("/tenants"):
            raise UpstreamError(Cause.BAD_RESPONSE, "IS answered 201 without the new tenant's URL in Location; look "
                                f"the tenant up by its domain {domain}.", target=self.base_url,
                                correlation_id=correlation_id)
        return tenant_id

    def get_tenant(self, tenant_uuid: str, *, correlation_id: str | None = None) -> IsTenant | None:
        """GET /tenants/{id}; None when IS says 400 TM-60014 (its "not found")."""
        try:
            answer = self._call("GET", f"tenants/{_segment(tenant_uuid)}", correlation_id=correlation_id)
        except UpstreamError as exc:
            if exc.status == 400 and exc.code == "TM-60014":
                return None
            raise
        return _tenant(_json_document(answer, self.base_url))

    def get_tenant_by_domain(self, domain: str, *, correlation_id: str | None = None) -> IsTenant | None:
        """GET /tenants/domain/{domain}; None when IS says 400 TM-60015. IS fills a blank name with the domain."""
        try:
            answer = self._call("GET", f"tenants/domain/{_segment(domain)}", correlation_id=correlation_id)
        except UpstreamError as exc:
            if exc.status == 400 and exc.code == "TM-60015":
                return None
            raise
        return _tenant(_json_document(answer, self.base_url))

    def tenant_exists(self, domain: str, *, correlation_id: str | None = None) -> bool:
        """HEAD /tenants/domain/{domain}: 200 taken, 404 free (carbon.super counts as taken)."""
        answer = self._call("HEAD", f"tenants/domain/{_segment(domain)}", expected=(200, 404),
                            correlation_id=correlation_id)
        return answer.status == 200

    def set_lifecycle(self, tenant_uuid: str, activated: bool, *, correlation_id: str | None = None) -> None:
        """PUT /tenants/{id}/lifecycle-status. IS answers 200 with no Location (the body is a URI string)."""
        self._call("PUT", f"tenants/{_segment(tenant_uuid)}/lifecycle-status", json_body={"activated": bool(activated)},
                   correlation_id=correlation_id)

    def get_owners(self, tenant_uuid: str, *, correlation_id: str | None = None) -> list[TenantOwner]:
        """GET /tenants/{id}/owners: IS lists one owner, the tenant admin."""
        answer = self._call("GET", f"tenants/{_segment(tenant_uuid)}/owners", correlation_id=correlation_id)
        document = _json_document(answer, self.base_url)
        if not isinstance(document, list):
            raise _bad_shape("the owners are not a list")
        return [TenantOwner(o.get("id"), o.get("username")) for o in document if isinstance(o, dict)]

    def update_owner(self, tenant_uuid: str, owner_id: str, email: str, firstname: str, lastname: str,
                     password: str | None = None, *, correlation_id: str | None = None) -> None:
        """PUT /tenants/{id}/owners/{owner-id}. IS keeps the old value of a blank name or email; a password is
        applied when given."""
        body: dict[str, str] = {"email": email, "firstname": firstname, "lastname": lastname}
        if password:
            body["password"] = password
        self._call("PUT", f"tenants/{_segment(tenant_uuid)}/owners/{_segment(owner_id)}", json_body=body,
                   correlation_id=correlation_id)

    def delete_tenant_metadata(self, tenant_uuid: str, *, correlation_id: str | None = None) -> None:
        """DELETE /tenants/{id}/metadata (204): removes the tenant from IS. Raises `DeletionDisabled` when IS
        refuses because tenant deletion is off (400 TM-60016, IS's default), so callers can tell that apart."""
        self._call("DELETE", f"tenants/{_segment(tenant_uuid)}/metadata", expected=(204,),
                   correlation_id=correlation_id)

    # --- Plumbing -----------------------------------------------------------------------------------------

    def _call(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json_body: Any = None,
              expected: tuple[int, ...] = (200,), correlation_id: str | None = None) -> _Answer:
        """One request; returns the answer when its status is expected, else raises UpstreamError."""
        correlation_id = correlation_id or str(uuid.uuid4())
        headers = {CORRELATION_HEADER: correlation_id}
        if self.identity_user:
            headers[USER_HEADER] = self.identity_user
        url = f"{self.api_base}/{path.lstrip('/')}"
        try:
            response = self._session.request(method, url, params=params, json=json_body, headers=headers,
                                             timeout=self.timeout, allow_redirects=False, stream=True)
            try:
                body = read_capped(response)
            finally:
                response.close()
        except requests.RequestException as exc:
            raise self._transport_error(exc, correlation_id) from None
        except AddressRefused as exc:  # nothing was connected
            raise policy_error(exc, PRODUCT_IS, self.base_url, correlation_id) from None
        except TooLarge:
            raise UpstreamError(Cause.BAD_RESPONSE, f"The answer to {method} {path} is larger than "
                                f"{MAX_BODY_BYTES // 1024} KiB.", target=self.base_url,
                                correlation_id=correlation_id) from None
        answer = _Answer(response.status_code, dict(response.headers), body)
        if answer.status not in expected:
            error = _http_error(answer, self.base_url, correlation_id)
            raise _typed(error, method, path, self._who())
        return answer

    def _who(self) -> str:
        if self.presents_certificate:
            return f"the user {self.identity_user!r}" if self.identity_user else "the certificate's system user"
        auth = self._session.auth
        return f"the user {auth.username!r}" if isinstance(auth, HTTPBasicAuth) else "the portal's IS user"

    def _transport_error(self, exc: requests.RequestException, correlation_id: str) -> UpstreamError:
        cause, message = classify(exc, sent_certificate=self.presents_certificate, timeout=self.timeout)
        return UpstreamError(cause, message, detail=detail_of(exc), target=self.base_url,
                             correlation_id=correlation_id)


def _http_error(answer: _Answer, target: str, correlation_id: str) -> UpstreamError:
    """IS's error bodies: {"code": "TM-60014", "message", "description", "traceId"} from the API, or the auth
    valve's {"code": 401, "message": "Unauthorized", ...} with an integer code."""
    code = message = description = trace_id = None
    try:
        document = json.loads(answer.body) if answer.body else None
    except ValueError:
        document = None
    if isinstance(document, dict):
        raw_code = document.get("code")
        code = str(raw_code) if isinstance(raw_code, str | int) and not isinstance(raw_code, bool) else None
        message = document.get("message") if isinstance(document.get("message"), str) else None
        description = document.get("description") if isinstance(document.get("description"), str) else None
        trace_id = document.get("traceId") if isinstance(document.get("traceId"), str) else None
    headers = {k.lower(): v for k, v in answer.headers.items()}
    trace_id = trace_id or headers.get(TRACE_HEADER.lower())
    if message is None:
        message = f"HTTP {answer.status} without an IS error body."
    return UpstreamError(Cause.HTTP_ERROR, message, status=answer.status, code=code, description=description,
                         trace_id=trace_id, target=target, correlation_id=correlation_id,
                         retry_after=_parse_retry_after(headers.get("retry-after")))


def _typed(error: UpstreamError, method: str, path: str, who: str) -> UpstreamError:
    """The subclass a caller acts on: the valve's 403 (an integer code, not a TM code) as PermissionDenied naming
    the permission the operation needs; TM-60016 as DeletionDisabled; anything else unchanged."""
    fields = {"product": error.product, "status": error.status, "code": error.code, "description": error.description,
              "trace_id": error.trace_id, "target": error.target, "correlation_id": error.correlation_id,
              "retry_after": error.retry_after}
    if error.status == 403 and (error.code is None or error.code == "403"):
        permission = PERMISSION_MODIFY_TENANTS if method in ("PUT", "DELETE") else PERMISSION_LIST_TENANTS
        operation = f"{method} /{API_PATH}/{path.split('?')[0]}"
        return PermissionDenied(Cause.HTTP_ERROR, f"IS refused {operation}: {who} lacks the permission {permission} "
                                f"(scope {_SCOPES[permission]}), which IS requires for it.", permission=permission,
                                **fields)
    if error.status == 400 and error.code == DELETION_DISABLED:
        return DeletionDisabled(Cause.HTTP_ERROR, "IS does not allow deleting tenants: tenant deletion is disabled "
                                "(Tenant.TenantDelete), so the tenant stays in IS.", **fields)
    return error


def _json_document(answer: _Answer, target: str) -> Any:
    try:
        document = json.loads(answer.body)
    except ValueError:
        document = None
    if not isinstance(document, dict | list):
        content_type = answer.headers.get("Content-Type", "no content type")
        raise UpstreamError(Cause.BAD_RESPONSE, f"IS answered {answer.status} without a JSON document "
                            f"({content_type}).", target=target)
    return document


def _bad_shape(what: str) -> UpstreamError:
    return UpstreamError(Cause.BAD_RESPONSE, f"IS's answer is not in the expected shape: {what}.")


def _int(document: dict, key: str, default: int | None = None) -> int:
    value = document.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _bad_shape(f"{key} is not a number")
    return value


def _created(value: object) -> datetime.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def _tenant(item: object) -> IsTenant:
    if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not isinstance(item.get("domain"), str):
        raise _bad_shape("a tenant without an id or domain")
    owners = [TenantOwner(o.get("id"), o.get("username")) for o in item.get("owners") or [] if isinstance(o, dict)]
    status = item.get("lifecycleStatus")
    activated = status.get("activated") if isinstance(status, dict) else None
    if not isinstance(activated, bool):
        raise _bad_shape(f"tenant {item['domain']} has no lifecycleStatus.activated")
    name = item.get("name")
    return IsTenant(id=item["id"], domain=item["domain"], name=name if isinstance(name, str) else None,
                    activated=activated, owners=owners, created=_created(item.get("createdDate")))


def _tenants_page(document: Any) -> TenantsPage:
    if not isinstance(document, dict):
        raise _bad_shape("the tenant list is not an object")
    tenants = document.get("tenants") or []  # IS leaves `tenants` out when the page is empty
    if not isinstance(tenants, list):
        raise _bad_shape("tenants is not a list")
    links = tuple((link.get("rel", ""), link.get("href", "")) for link in document.get("links") or []
                  if isinstance(link, dict))
    return TenantsPage(total_results=_int(document, "totalResults"), start_index=_int(document, "startIndex", 1),
                       count=_int(document, "count", len(tenants)), tenants=tuple(_tenant(t) for t in tenants),
                       links=links)
