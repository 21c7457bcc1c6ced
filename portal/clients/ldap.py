"""LDAP identity providers: bind for real and read the root DN.

The settings are first judged without the network (portal/idp/ldap_settings.py: URL, DNs, domain name, credential
pairing) and reported per field, so the sample request's placeholders never cause a connection attempt.
TLS is always verified (chain and host name, TLS 1.2 or later); there is no switch to turn that off.
The bind password never appears in the result, whatever a server or library puts in its messages.
"""
from __future__ import annotations

import math
import os
import socket
import ssl
import warnings
from typing import Any

with warnings.catch_warnings():
    # ldap3 2.9.1, the latest release, imports names that pyasn1 0.6 deprecates; harmless, and out of our hands.
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"ldap3\.")
    from ldap3 import ANONYMOUS, BASE, LEVEL, NONE, SIMPLE, Connection, Server, Tls
    from ldap3.core.exceptions import (
        LDAPException,
        LDAPSessionTerminatedByServerError,
        LDAPStartTLSError,
    )

from portal.clients.address_policy import AddressPolicy, AddressRefused, PolicyError, configured
from portal.clients.checks import CheckResult
from portal.clients.scrub import scrub
from portal.idp.ldap_settings import (
    BIND_DN_FIELD,
    PASSWORD_FIELD,
    ROOT_DN_FIELD,
    URL_FIELD,
    LdapTarget,
    validate_settings,
)

CHILD_LIMIT = 100  # enough to show the directory is populated without walking a large one

# LDAP result codes (RFC 4511) the check explains in plain words.
_SUCCESS = 0
_SIZE_LIMIT_EXCEEDED = 4
_REFERRAL = 10
_CONFIDENTIALITY_REQUIRED = 13
_NO_SUCH_OBJECT = 32
_INVALID_DN_SYNTAX = 34
_INAPPROPRIATE_AUTHENTICATION = 48
_INVALID_CREDENTIALS = 49
_INSUFFICIENT_ACCESS_RIGHTS = 50
_UNWILLING_TO_PERFORM = 53
# OpenSSL verify codes for a certificate that does not name the host.
_NAME_MISMATCH_CODES = {62, 64}


# --- The check ------------------------------------------------------------------------------------------


def check_ldap(
    url: str,
    domain_name: str,
    root_dn: str,
    *,
    bind_dn: str | None = None,
    bind_password: str | None = None,
    start_tls: bool = False,
    ca_file: str | None = None,
    timeout: float = 5.0,
    policy: AddressPolicy | None = None,
) -> CheckResult:
    """Bind to the tenant's directory (anonymously without bind_dn) and read the root DN entry.

    The host's addresses go through the outbound address policy (`policy`, else the app's OUTBOUND_* settings);
    ldap3 connects to the address that was checked, and TLS is verified against the name in the URL.

    ca_file is the PEM file of the CA to trust for ldaps:// and StartTLS instead of the system's CAs,
    for directories with a private CA. Nothing is written to the directory.
    """
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    target, errors, notes = validate_settings(url, domain_name, root_dn, bind_dn, bind_password, start_tls)
    if errors:
        messages = list(errors.values())
        summary = messages[0] if len(messages) == 1 else (
            f"{len(messages)} LDAP settings need correcting before the portal can connect to the directory."
        )
        # Only the portal's own sentences so far, none of which repeats the password.
        return CheckResult(False, summary, messages + notes, errors)
    assert target is not None
    if ca_file is not None and (target.use_ssl or start_tls):
        if not os.path.isfile(ca_file):
            return CheckResult.failed(f"The CA certificate file {ca_file} does not exist.", notes)
        try:
            _tls_context(ca_file)
        except ssl.SSLError:
            return CheckResult.failed(f"The CA certificate file {ca_file} holds no PEM certificate.", notes)
    who = bind_dn.strip() if bind_dn and bind_dn.strip() else None
    details = [f"Settings are valid: {target.url}, root DN {root_dn.strip()}, "
               + (f"bind DN {who}." if who else "anonymous bind.")]
    details += notes
    result = _connect_and_read(target, root_dn.strip(), who, bind_password or "", start_tls, ca_file, timeout, details,
                               policy or configured())
    return scrub(result, bind_password or "")


class VerifiedTls(Tls):
    """TLS that verifies the chain and the host name with the ssl module itself and refuses TLS < 1.2.

    ldap3's own host-name check calls ssl.match_hostname, deprecated and removed in Python 3.12; the
    connection may also go to a resolved address, so the name to verify is kept separately.
    """

    def __init__(self, server_hostname: str, ca_file: str | None) -> None:
        super().__init__(validate=ssl.CERT_REQUIRED, ca_certs_file=ca_file, version=ssl.PROTOCOL_TLS_CLIENT)
        self.server_hostname = server_hostname
        self.error: Exception | None = None  # the original TLS failure, before ldap3 rewraps it as text

    def wrap_socket(self, connection: Any, do_handshake: bool = False) -> None:
        try:
            connection.socket = _tls_context(self.ca_certs_file).wrap_socket(
                connection.socket, server_hostname=self.server_hostname, do_handshake_on_connect=do_handshake
            )
        except OSError as exc:  # ssl.SSLError and certificate errors included
            self.error = exc
            raise


def _tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Only the given CA when there is one, the system store otherwise; host-name checking stays on."""
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _connect_and_read(
    target: LdapTarget,
    root_dn: str,
    bind_dn: str | None,
    password: str,
    start_tls: bool,
    ca_file: str | None,
    timeout: float,
    details: list[str],
    policy: AddressPolicy,
) -> CheckResult:
    try:
        address = _reachable_address(target, timeout, policy)
    except AddressRefused as exc:
        message = f"The portal may not connect there: {exc.reason} Nothing was connected."
        return _failed(message, details + [message], {URL_FIELD: message})
    except PolicyError:  # the name does not resolve
        return _unreachable(target, "the host name does not resolve", details)
    except OSError as exc:
        return _unreachable(target, _network_reason(exc, timeout), details)
    details.append(f"Connected to {target.address}" + (f" ({address})." if address != target.host else "."))

    tls = VerifiedTls(target.host, ca_file) if target.use_ssl or start_tls else None
    server = Server(address, port=target.port, use_ssl=target.use_ssl, tls=tls, get_info=NONE,
                    connect_timeout=timeout)
    connection = Connection(
        server,
        user=bind_dn,
        password=password if bind_dn else None,
        authentication=SIMPLE if bind_dn else ANONYMOUS,
        auto_bind=False,
        raise_exceptions=False,
        read_only=True,
        auto_referrals=False,  # never follow a referral to another host with these credentials
        # ldap3 packs this into SO_RCVTIMEO as whole seconds: a float would make it fail.
        receive_timeout=max(1, math.ceil(timeout)),
    )
    try:
        return _session(connection, target, root_dn, bind_dn, start_tls, ca_file, timeout, details)
    except Exception as exc:  # anything can come out of ldap3 here; see _session_failed
        return _session_failed(exc, tls, target, ca_file, timeout, details)
    finally:
        close_quietly(connection)


def _session(
    connection: Connection,
    target: LdapTarget,
    root_dn: str,
    bind_dn: str | None,
    start_tls: bool,
    ca_file: str | None,
    timeout: float,
    details: list[str],
) -> CheckResult:
    """Open, secure, bind, read; LDAP-level refusals come back as results, transport failures as exceptions."""
    connection.open(read_server_info=False)
    if start_tls:
        connection.start_tls(read_server_info=False)
        if not isinstance(connection.socket, ssl.SSLSocket):  # never fall back to sending the password in clear
            raise LDAPStartTLSError(connection.last_error or "the connection is still unencrypted")
    if isinstance(connection.socket, ssl.SSLSocket):
        how = "StartTLS" if start_tls else "TLS"
        details.append(
            f"{how} established ({connection.socket.version()}); the certificate is valid for {target.host} "
            + ("and signed by the given CA." if ca_file else "and trusted by the system.")
        )
    elif bind_dn:
        details.append("Warning: the bind password travels unencrypted over ldap://; use ldaps:// or StartTLS.")

    who = bind_dn or "anonymous"
    if not connection.bind(read_server_info=False):
        return _bind_failed(connection.result or {}, target, bind_dn, details)
    details.append(f"Bound as {bind_dn}." if bind_dn else "Bound anonymously.")

    connection.search(root_dn, "(objectClass=*)", search_scope=BASE, attributes=["objectClass"],
                      time_limit=max(1, math.ceil(timeout)))
    result = connection.result or {}
    entries = [item for item in connection.response or [] if item.get("type") == "searchResEntry"]
    if result.get("result") != _SUCCESS or not entries:
        return _read_failed(result, root_dn, bind_dn, details)
    classes = entry_values(entries[0], "objectClass")
    details.append(f"Read {root_dn}" + (f" (objectClass: {', '.join(classes)})." if classes else "."))

    connection.search(root_dn, "(objectClass=*)", search_scope=LEVEL, attributes=["1.1"],
                      size_limit=CHILD_LIMIT, time_limit=max(1, math.ceil(timeout)))
    result = connection.result or {}
    count = sum(1 for item in connection.response or [] if item.get("type") == "searchResEntry")
    if result.get("result") in (_SUCCESS, _SIZE_LIMIT_EXCEEDED):
        limited = result.get("result") == _SIZE_LIMIT_EXCEEDED or count >= CHILD_LIMIT
        amount = f"at least {count}" if limited else str(count)
        below = f"{root_dn} has {amount} {'entry' if count == 1 and not limited else 'entries'} below it"
        details.append(f"{below}.")
        if count == 0:
            details.append(f"Warning: nothing below {root_dn} is visible to {who}; users will not be found there.")
    else:
        below = f"the entries below {root_dn} could not be listed"
        details.append(f"Warning: {below} ({_describe(result)}).")
    return CheckResult(True, f"Bound to {target.url} as {who}; {below}", details, {})


# --- Failures -------------------------------------------------------------------------------------------


def _failed(summary: str, details: list[str], field_errors: dict[str, str] | None = None) -> CheckResult:
    return CheckResult(ok=False, summary=summary, details=list(details), field_errors=dict(field_errors or {}))


def _unreachable(target: LdapTarget, reason: str, details: list[str]) -> CheckResult:
    message = f"Cannot reach {target.url}: {reason}."
    return _failed(message, details + [message], {URL_FIELD: message})


def _session_failed(
    exc: Exception, tls: VerifiedTls | None, target: LdapTarget, ca_file: str | None, timeout: float,
    details: list[str],
) -> CheckResult:
    """Explain a failure after the server accepted the TCP connection.

    The exception can be of any type: ldap3's BER decoder raises KeyError or IndexError when the peer is not
    an LDAP server at all (a web server, a proxy, the wrong port), so nothing narrower can be caught.
    """
    if tls is not None and tls.error is not None:
        return _tls_failed(target, tls.error, ca_file, timeout, details)
    if isinstance(exc, LDAPStartTLSError):
        message = f"{target.url} does not offer StartTLS ({_ldap3_reason(exc)}); use ldaps:// or turn StartTLS off."
        return _failed(message, details + [message], {URL_FIELD: message})
    if isinstance(exc, LDAPSessionTerminatedByServerError) or "terminated by server" in str(exc):
        hint = "" if target.use_ssl else " (is this an ldaps:// port?)"
        message = f"{target.url} closed the connection instead of answering as an LDAP server{hint}."
        return _failed(message, details + [message], {URL_FIELD: message})
    if isinstance(exc, (LDAPException, OSError)):
        if isinstance(exc, TimeoutError) or "timed out" in str(exc).lower():
            message = (
                f"{target.url} accepted the connection but sent no LDAP answer within {timeout:g} s; "
                "check the port, and ldap:// versus ldaps://."
            )
            return _failed(message, details + [message], {URL_FIELD: message})
        if reason := _network_reason(exc, timeout):
            return _unreachable(target, reason, details)
        message = f"The directory at {target.url} failed: {_ldap3_reason(exc)}."
        return _failed(message, details + [message])
    message = (
        f"{target.url} did not answer as an LDAP server ({type(exc).__name__} decoding its reply); "
        "check the host and port, and ldap:// versus ldaps://."
    )
    return _failed(message, details + [message], {URL_FIELD: message})


def _tls_failed(
    target: LdapTarget, error: Exception, ca_file: str | None, timeout: float, details: list[str]
) -> CheckResult:
    if isinstance(error, TimeoutError):
        message = (
            f"{target.url} accepted the connection but did not complete a TLS handshake within {timeout:g} s"
            + (" (is this a plain ldap:// port?)." if target.use_ssl else ".")
        )
    elif isinstance(error, ssl.SSLCertVerificationError):
        if error.verify_code in _NAME_MISMATCH_CODES:
            message = (
                f"The TLS certificate of {target.url} is not valid for {target.host}; "
                "use the host name the certificate was issued for."
            )
        else:
            trust = "the given CA certificate" if ca_file else "the system's trusted CAs"
            message = (
                f"The TLS certificate of {target.url} is not trusted ({error.verify_message}): it is not signed by "
                f"{trust}. Provide the CA certificate that issued it."
            )
    elif isinstance(error, ssl.SSLError):
        hint = " (is this a plain ldap:// port? LDAP over TLS usually listens on 636)" if target.use_ssl else ""
        message = f"The TLS handshake with {target.url} failed: {error.reason or error}{hint}."
    else:
        message = f"The TLS handshake with {target.url} failed: {error}."
    return _failed(message, details + [message], {URL_FIELD: message})


def _bind_failed(result: dict[str, Any], target: LdapTarget, bind_dn: str | None, details: list[str]) -> CheckResult:
    code = result.get("result")
    if code == _INVALID_CREDENTIALS:
        # Directories deliberately do not say which half is wrong: a missing DN looks like a bad password.
        message = f"The directory rejected the bind DN and password ({_describe(result)})."
        return _failed(message, details + [message], {
            BIND_DN_FIELD: "The directory rejected this bind DN with the given password; check that the DN exists.",
            PASSWORD_FIELD: "The directory rejected this password for the bind DN.",
        })
    if code == _CONFIDENTIALITY_REQUIRED:
        message = f"{target.url} requires an encrypted connection; use ldaps:// or StartTLS."
        return _failed(message, details + [message], {URL_FIELD: message})
    if bind_dn is None and code in (_INAPPROPRIATE_AUTHENTICATION, _UNWILLING_TO_PERFORM, _INSUFFICIENT_ACCESS_RIGHTS):
        message = f"The directory does not allow anonymous binds ({_describe(result)}); enter a bind DN and password."
        return _failed(message, details + [message], {BIND_DN_FIELD: message})
    message = f"The directory refused the bind as {bind_dn or 'anonymous'}: {_describe(result)}."
    return _failed(message, details + [message], {BIND_DN_FIELD: message} if bind_dn else {})


def _read_failed(result: dict[str, Any], root_dn: str, bind_dn: str | None, details: list[str]) -> CheckResult:
    code = result.get("result")
    who = bind_dn or "anonymous clients"
    if code in (_SUCCESS, _NO_SUCH_OBJECT):
        closest = result.get("dn") if code == _NO_SUCH_OBJECT else None
        message = f"{root_dn} does not exist in the directory, or {who} may not see it" + (
            f"; the closest existing entry is {closest}." if closest else "."
        )
        return _failed(message, details + [message], {ROOT_DN_FIELD: message})
    if code == _INVALID_DN_SYNTAX:
        message = f"The directory does not accept {root_dn} as a DN ({_describe(result)})."
        return _failed(message, details + [message], {ROOT_DN_FIELD: message})
    if code == _INSUFFICIENT_ACCESS_RIGHTS:
        message = f"{bind_dn or 'Anonymous clients'} may not read {root_dn}; grant read access or use another bind DN."
        return _failed(message, details + [message], {BIND_DN_FIELD: message})
    if code == _REFERRAL:
        message = (
            f"This server does not hold {root_dn} and refers elsewhere ({', '.join(result.get('referrals') or [])}); "
            "use the URL of the server that holds it."
        )
        return _failed(message, details + [message], {URL_FIELD: message})
    message = f"Reading {root_dn} failed: {_describe(result)}."
    return _failed(message, details + [message])


# --- Helpers --------------------------------------------------------------------------------------------


def _reachable_address(target: LdapTarget, timeout: float, policy: AddressPolicy) -> str:
    """The first vetted address of the host that accepts TCP connections, as the ldap3 connection will use it.

    Connecting here rather than letting ldap3 try each address gives plain errors, and avoids ldap3
    dropping (not closing) the sockets of addresses that failed before one succeeded. ldap3 is then given the
    address itself, so it resolves nothing and cannot be sent elsewhere by a second DNS answer.
    """
    with policy.connect(target.host, target.port, timeout) as probe:
        return str(probe.getpeername()[0])


def vetted_address(target: LdapTarget, policy: AddressPolicy | None = None) -> str:
    """The first address of the host the outbound policy allows (PolicyError otherwise), for ldap3's Server."""
    return (policy or configured()).vet(target.host, target.port)[0]


def _network_reason(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, socket.gaierror):
        return "the host name does not resolve"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the directory listening on that port?)"
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s (firewall, wrong host or port?)"
    lower = str(exc).lower()
    if "refused" in lower:
        return "connection refused (is the directory listening on that port?)"
    if "timed out" in lower or "timeout" in lower:
        return f"no answer within {timeout:g} s (firewall, wrong host or port?)"
    if "no route to host" in lower or "network is unreachable" in lower:
        return "no network route to the host"
    if isinstance(exc, LDAPException):
        return ""
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _ldap3_reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.removeprefix("startTLS failed - ") or type(exc).__name__


def _describe(result: dict[str, Any]) -> str:
    """'invalidCredentials (49)', with the server's diagnostic message when it gave one."""
    text = f"{result.get('description') or 'error'} ({result.get('result')})"
    message = (result.get("message") or "").strip()
    return f"{text}: {message}" if message else text


def entry_values(entry: dict[str, Any], attribute: str) -> list[str]:
    for name, values in (entry.get("attributes") or {}).items():
        if name.lower() == attribute.lower():
            return [str(value) for value in (values if isinstance(values, list) else [values])]
    return []


def close_quietly(connection: Connection) -> None:
    """Unbind and close, and close a socket ldap3 left behind after a failed open or TLS handshake."""
    try:
        if not connection.closed:
            connection.unbind()
    except (LDAPException, OSError):
        pass
    finally:
        sock = getattr(connection, "socket", None)
        if sock is not None:
            sock.close()
            connection.socket = None
