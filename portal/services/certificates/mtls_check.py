"""The "Test mutual TLS to IS 7" check: a real call (GET /api/server/v1/tenants?limit=1) with the portal's client
certificate and `WSO2-Identity-User`, and an explanation when it fails.

IS answers every mutual-TLS problem with either a failed handshake or a bare 401, so the explanation is the point:
TLS failures are mapped to plain causes by the IS client (no client certificate, server not trusted, client CA
unknown to IS, key not matching the certificate, timeout, refused), and a 401 is replayed through
services.cert_auth.evaluate, IS's own mapping algorithm, over the mappings the portal holds, which names the mapping
that should have matched or precisely why none does.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509

from portal.clients.errors import Cause, UpstreamError
from portal.clients.identity_server import API_PATH, IdentityServerClient
from portal.clients.transport import normalise_base_url
from portal.services.certificates import mappings, service as certificates
from portal.services.certificates.cert_auth import MASTER, Decision, SystemMapping, UserMapping, evaluate
from portal.services.certificates.service import java_dn, thumbprint
from portal.services.errors import ValidationError

log = logging.getLogger(__name__)

MIN_TIMEOUT = 0.05
MAX_TIMEOUT = 60.0
NOT_CONFIGURED = "not_configured"
UNAUTHORIZED = "unauthorized"
FORBIDDEN = "forbidden"


@dataclass(frozen=True)
class Mappings:
    """The thumbprint mappings to explain a 401 with, in IS's order (first match wins)."""

    user: Sequence[UserMapping] = ()
    system: Sequence[SystemMapping] = ()
    line: str = MASTER  # the IS handler line the mappings are read with (services.mappings.handler_line)


@dataclass
class MtlsCheckResult:
    ok: bool
    summary: str  # one or two sentences for the administrator
    steps: list[str] = field(default_factory=list)  # what was checked, in order, for the result panel
    decision: Decision | None = None  # the mapping evaluation, when there was one
    cause: str | None = None  # a Cause value, "unauthorized", "forbidden" or "not_configured"
    status: int | None = None  # IS's HTTP status, when it answered
    code: str | None = None  # IS's error code
    trace_id: str | None = None


# --- The check ----------------------------------------------------------------------------------------------------


def _validate(base_url: str, user: str | None, timeout: float) -> tuple[str, str | None]:
    errors: dict[str, str] = {}
    base = ""
    try:
        base = normalise_base_url(base_url)
    except ValueError as exc:
        errors["base_url"] = str(exc)
    header = (user or "").strip() or None
    if header is not None and (len(header) > 255 or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in header)):
        errors["identity_user"] = "Enter a user name of at most 255 characters without control characters."
    if not isinstance(timeout, int | float) or not MIN_TIMEOUT <= timeout <= MAX_TIMEOUT:
        errors["timeout"] = f"The timeout must be a number of seconds, at most {MAX_TIMEOUT:g}."
    if errors:
        raise ValidationError(errors)
    return base, header


def _client_certificate(cert_pem: str | None, steps: list[str]) -> x509.Certificate | None:
    if not cert_pem:
        steps.append("The portal presents no client certificate.")
        return None
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
    except ValueError:
        return None
    steps.append(f"Client certificate: {java_dn(cert.subject)}")
    steps.append(f"Issuer, as IS reads it: {java_dn(cert.issuer)}")
    steps.append(f"SHA-256 thumbprint: {thumbprint(cert)}")
    now = datetime.now(UTC)
    if cert.not_valid_after_utc < now:
        steps.append(f"Warning: the client certificate expired on {cert.not_valid_after_utc:%Y-%m-%d}; IS will "
                     "refuse it.")
    elif cert.not_valid_before_utc > now:
        steps.append(f"Warning: the client certificate is not valid before {cert.not_valid_before_utc:%Y-%m-%d}.")
    return cert


def check_is_mtls(base_url: str, cert_pem: str | None, key_pem: str | None, ca_pem: str, user: str | None,
                  timeout: float = 10.0, *, explain: Mappings | None = None) -> MtlsCheckResult:
    """Call IS's tenant list (limit 1) over mutual TLS and explain the outcome.

    `cert_pem`/`key_pem` are the portal's client certificate and unencrypted key (None: present none), `ca_pem`
    the CA bundle IS's server certificate must chain to, `user` the WSO2-Identity-User value (blank: none, so IS
    uses the system mappings), `explain` the mappings to replay a 401 against. Raises ValidationError for a bad
    base URL, user or timeout (keys base_url, identity_user, timeout)."""
    base, header = _validate(base_url, user, timeout)
    result = _check(base, cert_pem, key_pem, ca_pem, header, timeout, explain)
    # No secrets here: the outcome, IS's status and code, and the trace id to find the call in IS's logs.
    log.info("mTLS check to %s: %s (status %s, code %s, trace id %s)", base, "ok" if result.ok else result.cause,
             result.status, result.code, result.trace_id)
    return result


def _check(base: str, cert_pem: str | None, key_pem: str | None, ca_pem: str, header: str | None, timeout: float,
           explain: Mappings | None) -> MtlsCheckResult:
    target = f"{base}/{API_PATH}/tenants?limit=1"
    steps = [f"GET {target} with a {timeout:g} s timeout."]
    cert = _client_certificate(cert_pem, steps)
    if cert_pem and cert is None:
        return MtlsCheckResult(False, "The portal's client certificate is not a readable PEM certificate; upload it "
                               "again.", steps, cause=Cause.BAD_CREDENTIALS.value)
    steps.append(f"WSO2-Identity-User: {header}; IS uses its user thumbprint mappings." if header else
                 "No WSO2-Identity-User header; IS uses its system thumbprint mappings.")
    try:
        client = IdentityServerClient(base, ca_pem=ca_pem, cert_pem=cert_pem, key_pem=key_pem,
                                      identity_user=header, timeout=(timeout, timeout), retries=0, pool_maxsize=1)
    except UpstreamError as exc:  # raised before connecting: unreadable PEM, key not matching the certificate
        return _transport_failure(exc, steps)
    with client:
        try:
            page = client.list_tenants(limit=1)
        except UpstreamError as exc:
            if exc.status is None:
                return _transport_failure(exc, steps)
            return _http_failure(exc, steps, cert, header, explain)
    steps.append(f"TLS handshake completed; IS answered 200 and reports {page.total_results} tenant(s).")
    who = f"as {header!r}" if header else "through a system mapping"
    result = MtlsCheckResult(True, f"IS 7 accepted the portal's client certificate {who}; the tenant management API "
                             f"answered ({page.total_results} tenant(s)).", steps, status=200)
    if explain is not None and cert is not None:
        result.decision = _evaluate(cert, header, explain)
        steps.append(f"By the portal's mappings: {result.decision.reason}")
    return result


def _evaluate(cert: x509.Certificate, header: str | None, explain: Mappings) -> Decision:
    # The portal cannot see IS's user stores, so whether the user exists is not evaluated (user_exists=None).
    return evaluate(java_dn(cert.issuer), thumbprint(cert), header, explain.user, explain.system, user_exists=None,
                    line=explain.line)


_RESTATED = ("Certificate issuer (as IS reads it):", "Certificate thumbprint:", "WSO2-Identity-User:",
             "No WSO2-Identity-User header")


def _transport_failure(exc: UpstreamError, steps: list[str]) -> MtlsCheckResult:
    if exc.detail:
        steps.append(f"Technical detail: {exc.detail}")
    return MtlsCheckResult(False, f"{exc.message} {exc.hint}", steps, cause=exc.cause.value,
                           trace_id=exc.correlation_id)


def _http_failure(exc: UpstreamError, steps: list[str], cert: x509.Certificate | None, header: str | None,
                  explain: Mappings | None) -> MtlsCheckResult:
    answer = f"IS answered {exc.status}" + (f" {exc.code}" if exc.code and exc.code != str(exc.status) else "")
    answer += f": {exc.message}" + (f" {exc.description}" if exc.description else "")
    steps.append(answer if answer.endswith(".") else answer + ".")
    result = MtlsCheckResult(False, "", steps, status=exc.status, code=exc.code,
                             trace_id=exc.trace_id or exc.correlation_id, cause=Cause.HTTP_ERROR.value)
    if exc.status == 401:
        result.cause = UNAUTHORIZED
        if cert is None:
            result.cause = Cause.NO_CLIENT_CERTIFICATE.value
            result.summary = ("IS 7 answered 401: the portal sent no client certificate, so IS's certificate "
                              "authentication did not run. Upload the portal's client certificate with its key.")
        elif explain is None:
            result.summary = ("IS 7 answered 401: it did not accept the certificate and user. No mappings were given "
                              "to explain why.")
        else:
            decision = result.decision = _evaluate(cert, header, explain)
            # The evaluation restates the issuer, thumbprint and header, already listed above.
            steps.extend(step for step in decision.steps if not step.startswith(_RESTATED))
            if not decision.ok:
                result.summary = f"IS 7 answered 401. {decision.reason}"
            else:
                user = decision.user or header
                result.summary = (
                    f"IS 7 answered 401, yet by the portal's mappings the call should pass: {decision.reason} Check "
                    "that IS's deployment.toml carries the same mappings (use the generated block), that "
                    "[client_certificate_based_authentication] enable = true, "
                    + (f"that the user {user!r} exists in IS, " if user else "")
                    + "and that IS was restarted after the change.")
    elif exc.status == 403:
        result.cause = FORBIDDEN
        result.summary = ("IS 7 accepted the certificate but answered 403: the user lacks the permission to list "
                          "tenants (internal_list_tenants), or is not a super-tenant user.")
    elif exc.status == 404:
        result.summary = (f"IS answered 404 for /{API_PATH}/tenants: check that the base URL is IS's own address "
                          "(e.g. https://is.example.com:9443), without a path.")
    else:
        result.summary = f"The call reached IS 7 but failed: {exc}"
    return result


# --- With the portal's stored certificates and mappings -----------------------------------------------------------


def check_with_stored(base_url: str, user: str | None, timeout: float) -> MtlsCheckResult:
    """The page's check: the stored client certificate and key, the stored IS/CA certificates as trust, the stored
    mappings to explain a 401. Raises ValidationError for bad input."""
    _validate(base_url, user, timeout)
    credentials = certificates.client_credentials()
    if credentials is None:
        return MtlsCheckResult(False, "Upload the portal's client certificate (with its private key) first.",
                               cause=NOT_CONFIGURED)
    ca_pem = certificates.trust_pem()
    if not ca_pem:
        return MtlsCheckResult(False, "Upload IS 7's certificate, or the CA that issued it, first: the portal "
                               "verifies IS's server certificate with it.", cause=NOT_CONFIGURED)
    cert_pem, key_pem = credentials
    explain = Mappings(user=mappings.rules("user"), system=mappings.rules("system"), line=mappings.handler_line())
    return check_is_mtls(base_url, cert_pem, key_pem, ca_pem, user, timeout, explain=explain)
