"""The IS 7 simulator's own client-certificate authentication: a port of identity-carbon-auth-rest's
`ClientCertificateBasedAuthenticationHandler` and of the part of `AuthConfigurationUtil` that reads its
configuration, written from WSO2's source (master after PR #333, v1.9.38+) and from the findings on the
1.8.x (v1.8.49) / 1.11.x (v1.11.0) backports. It shares no code with the portal: tests run one table of vectors
(tests/vectors/cert_auth_vectors.json) through this oracle and through portal.services.cert_auth, so a mistake
in either shows up as a disagreement.

The two handler lines differ in four places:

| | master | backport |
|---|---|---|
| `<ClientCertBasedAuthentication>` absent | off | ON (the field defaults to true; no mappings load) |
| user-mapping thumbprint | `equalsIgnoreCase` | `equals` (case-sensitive) |
| system-mapping thumbprint | `equalsIgnoreCase` | `equalsIgnoreCase` |
| user must exist in its tenant | yes | no check |
| `LogClientCertInfoEnabled` | ignored | read: logs each certificate |
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BACKPORT", "HANDLER_LINES", "MASTER", "WILDCARD", "AuthConfiguration", "AuthenticationResult",
    "ClientCertAuthConfig", "ClientCertificateBasedAuthenticationHandler", "SystemMapping", "UserMapping",
    "authenticate", "is_dn_equal", "normalize_dn", "split_username", "system_mapping", "tenant_domain_of",
    "user_mapping",
]

MASTER = "master"
BACKPORT = "backport"
HANDLER_LINES = (MASTER, BACKPORT)
WILDCARD = "*"  # Constants.WILDCARD
SUPER_TENANT_DOMAIN = "carbon.super"  # MultitenantConstants.SUPER_TENANT_DOMAIN_NAME
PRIMARY_DOMAIN = "PRIMARY"  # UserCoreConstants.PRIMARY_DEFAULT_DOMAIN_NAME


# --- Configuration (identity.xml <ClientCertBasedAuthentication>) ------------------------------------------------


@dataclass(frozen=True)
class UserMapping:
    """One `[[client_certificate_based_authentication.user_thumbprint_mapping]]` as written in deployment.toml."""

    trusted_issuer: str
    cert_thumbprint: str = ""
    allowed_usernames: tuple[str, ...] = ()


@dataclass(frozen=True)
class SystemMapping:
    """One `[[client_certificate_based_authentication.system_thumbprint_mapping]]`."""

    trusted_issuer: str
    cert_thumbprint: str = ""
    allowed_system_user: str = ""


def user_mapping(value: Any) -> UserMapping:
    """Anything with the three attributes (or a TOML table) as the simulator's own UserMapping."""
    if isinstance(value, UserMapping):
        return value
    if isinstance(value, dict):
        return UserMapping(value.get("trusted_issuer", ""), value.get("cert_thumbprint", ""),
                           tuple(value.get("allowed_username", value.get("allowed_usernames", [])) or ()))
    return UserMapping(value.trusted_issuer, value.cert_thumbprint, tuple(value.allowed_usernames))


def system_mapping(value: Any) -> SystemMapping:
    if isinstance(value, SystemMapping):
        return value
    if isinstance(value, dict):
        return SystemMapping(value.get("trusted_issuer", ""), value.get("cert_thumbprint", ""),
                             value.get("allowed_system_user", ""))
    return SystemMapping(value.trusted_issuer, value.cert_thumbprint, value.allowed_system_user)


@dataclass(frozen=True)
class ClientCertAuthConfig:
    """What deployment.toml puts into identity.xml. `present=False`: no `[client_certificate_based_authentication]`
    table at all (no `<ClientCertBasedAuthentication>` element)."""

    present: bool = True
    enable: bool = True
    log_client_cert_info: bool = False
    user_mappings: tuple[UserMapping, ...] = ()
    system_mappings: tuple[SystemMapping, ...] = ()


@dataclass(frozen=True)
class _CertUserMapping:
    """AuthConfigurationUtil.CertUserMapping, plus where it stood in the configuration (for the request log)."""

    allowed_issuer: str
    allowed_thumbprint: str
    allowed_usernames: tuple[str, ...]
    position: int


@dataclass(frozen=True)
class _SystemThumbprintMapping:
    allowed_issuer: str
    allowed_thumbprint: str
    allowed_system_user: str
    position: int


def _java_trim(text: str | None) -> str | None:
    """String.trim(): strips every character <= U+0020 at both ends."""
    if text is None:
        return None
    start, end = 0, len(text)
    while start < end and text[start] <= " ":
        start += 1
    while end > start and text[end - 1] <= " ":
        end -= 1
    return text[start:end]


def _children_text_list(values: Iterable[str]) -> list[str]:
    """getChildrenTextList(m, "AllowedUsername", dedupe=true): trimToNull, drop empties, keep first of duplicates."""
    out: list[str] = []
    for value in values:
        text = _java_trim(value)
        if text and text not in out:
            out.append(text)
    return out


@dataclass
class AuthConfiguration:
    """AuthConfigurationUtil's view after buildClientCertBasedAuthnEnabled() on one handler line."""

    client_cert_based_authn_enabled: bool
    log_enabled: bool
    cert_user_mappings: list[_CertUserMapping] = field(default_factory=list)
    system_thumbprint_mappings: list[_SystemThumbprintMapping] = field(default_factory=list)

    @classmethod
    def build(cls, config: ClientCertAuthConfig, line: str = MASTER) -> AuthConfiguration:
        if line not in HANDLER_LINES:
            raise ValueError(f"handler line must be one of {HANDLER_LINES}")
        # The field's initial value: false on master; true on the backports ("on by default").
        enabled = line == BACKPORT
        if config.present:
            enabled = bool(config.enable)  # Boolean.parseBoolean(root.getAttributeValue("enable"))
        built = cls(enabled, False)
        if not enabled or not config.present:
            # Backport with the element absent: enabled, but reading the children fails; no mapping loads.
            return built
        if line == BACKPORT:
            built.log_enabled = bool(config.log_client_cert_info)  # master never reads LogClientCertInfoEnabled
        for position, raw in enumerate(config.user_mappings):
            issuer = _java_trim(raw.trusted_issuer)
            if not issuer:
                continue  # "Skipping user mapping: missing <TrustedIssuer>."
            if issuer == WILDCARD:
                continue  # "Skipping user mapping: <TrustedIssuer> cannot be '*'."
            thumbprint = _java_trim(raw.cert_thumbprint) or WILDCARD
            allowed = _children_text_list(raw.allowed_usernames) or [WILDCARD]
            built.cert_user_mappings.append(_CertUserMapping(issuer, thumbprint, tuple(allowed), position))
        for position, raw in enumerate(config.system_mappings):
            issuer = _java_trim(raw.trusted_issuer)
            if not issuer:
                continue  # "Skipping system mapping: missing <TrustedIssuer>."
            thumbprint = _java_trim(raw.cert_thumbprint) or WILDCARD
            system_user = _java_trim(raw.allowed_system_user) or WILDCARD
            built.system_thumbprint_mappings.append(
                _SystemThumbprintMapping(issuer, thumbprint, system_user, position))
        return built


# --- DN comparison -------------------------------------------------------------------------------------------------


def _java_split(text: str, separator: str) -> list[str]:
    """String.split(regex) for a one-character literal: trailing empty strings are removed."""
    parts = text.split(separator)
    while len(parts) > 1 and parts[-1] == "":
        parts.pop()
    if parts == [""] and text == "":
        return [""]
    return parts


def normalize_dn(dn: str | None) -> str | None:
    """normalizeDN: split on every ',' (escaped or quoted commas included), trim, upper-case the key of each
    "key=value" component, sort (String order: UTF-16 code units) and join with ", "."""
    if dn is None or not _java_trim(dn):
        return dn
    components = []
    for raw in _java_split(dn, ","):
        component = _java_trim(raw)
        if "=" in component:
            key, value = component.split("=", 1)
            components.append(_java_trim(key).upper() + "=" + _java_trim(value))
        else:
            components.append(component)
    components.sort(key=lambda text: text.encode("utf-16-be"))
    return ", ".join(components)


def is_dn_equal(cert_dn: str, trusted_dn: str) -> bool:
    """isDNEqual: exact equality, else equality of the normalised forms; blank on either side never matches."""
    if not trusted_dn or not cert_dn:
        return False
    if cert_dn == trusted_dn:
        return True
    return normalize_dn(cert_dn) == normalize_dn(trusted_dn)


# --- Users ---------------------------------------------------------------------------------------------------------


def tenant_domain_of(username: str) -> str:
    """MultitenantUtils.getTenantDomain: the text after the last '@', else the super tenant."""
    if "@" in username:
        return username[username.rindex("@") + 1:]
    return SUPER_TENANT_DOMAIN


def split_username(username: str) -> tuple[str, str, str]:
    """(tenant domain, user store domain, bare name) of `[USERSTORE/]name[@tenant]`, as doAuthenticate strips
    them before isExistingUser."""
    tenant = tenant_domain_of(username)
    if tenant == SUPER_TENANT_DOMAIN:
        username = username.removesuffix("@" + SUPER_TENANT_DOMAIN)
    elif "@" in username:
        username = username[:username.rindex("@")]
    store, slash, bare = username.partition("/")  # UserCoreUtil.extractDomainFromName / removeDomainFromName
    if not slash:
        return tenant, PRIMARY_DOMAIN, username
    return tenant, store.upper(), bare


class TenantNotFound(Exception):
    """IdentityTenantUtil.getTenantIdOfUser for a domain IS does not know: the handler turns it into a failure."""


# user_exists(tenant_domain, user_store_domain, name) -> bool, or raises TenantNotFound
UserStore = Callable[[str, str, str], bool]


# --- The handler ---------------------------------------------------------------------------------------------------


@dataclass
class AuthenticationResult:
    """AuthenticationResult plus what the simulator's request log shows: which list and mapping decided."""

    status: str = "FAILED"  # AuthenticationStatus
    user: str | None = None  # the authenticated user as the header / mapping named it; None: none set
    kind: str | None = None  # "user" or "system"
    mapping_position: int | None = None  # 0-based place in the configured list
    reason: str = ""
    log: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "SUCCESS"

    # The portal-era name, kept so request-log readers need not care which evaluator they look at.
    @property
    def mapping_index(self) -> int | None:
        return self.mapping_position


def _equals_ignore_case(a: str, b: str) -> bool:
    """String.equalsIgnoreCase: same length, and each char pair equal after upper-casing or lower-casing."""
    return len(a) == len(b) and all(x == y or x.upper() == y.upper() or x.lower() == y.lower()
                                    for x, y in zip(a, b, strict=True))


class ClientCertificateBasedAuthenticationHandler:
    """priority 10: when `can_handle` says yes, this handler alone decides the request."""

    name = "ClientCertificate"
    priority = 10

    def __init__(self, configuration: AuthConfiguration, line: str = MASTER,
                 user_store: UserStore | None = None) -> None:
        if line not in HANDLER_LINES:
            raise ValueError(f"handler line must be one of {HANDLER_LINES}")
        self.configuration = configuration
        self.line = line
        self.user_store = user_store

    def can_handle(self, certificate_presented: bool) -> bool:
        """The request carries javax.servlet.request.X509Certificate and certificate authentication is on."""
        return certificate_presented and self.configuration.client_cert_based_authn_enabled

    def _thumbprint_equal(self, thumbprint: str, configured: str, kind: str) -> bool:
        if self.line == BACKPORT and kind == "user":
            return thumbprint == configured  # the backports' user mappings: String.equals
        return _equals_ignore_case(thumbprint, configured)

    def _select(self, mappings: Sequence[Any], cert_issuer: str, thumbprint: str, kind: str) -> Any | None:
        """1) the first mapping with the issuer and this exact thumbprint; 2) else the first with the issuer and
        thumbprint "*"."""
        for mapping in mappings:
            if is_dn_equal(cert_issuer, mapping.allowed_issuer) and \
                    self._thumbprint_equal(thumbprint, mapping.allowed_thumbprint, kind):
                return mapping
        for mapping in mappings:
            if is_dn_equal(cert_issuer, mapping.allowed_issuer) and mapping.allowed_thumbprint == WILDCARD:
                return mapping
        return None

    def do_authenticate(self, cert_issuer: str, thumbprint: str, identity_user: str | None,
                        subject: str = "") -> AuthenticationResult:
        """`identity_user`: the WSO2-Identity-User header as the container hands it over (None: absent)."""
        result = AuthenticationResult()
        config = self.configuration
        if config.log_enabled:
            result.log.append(f"Client certificate: subject={subject!r}, issuer={cert_issuer!r}, "
                              f"thumbprint={thumbprint}")  # simulator: the log line's wording was not read
        if not cert_issuer:
            result.reason = "Authentication failed. Issuer of the certificate is empty."
            return result
        username = identity_user
        if username:  # StringUtils.isNotEmpty: user-based authentication
            result.kind = "user"
            mappings = config.cert_user_mappings
            if not mappings:
                result.reason = "User based authentication failed. User and cert mapping is not configured."
                return result
            if not any(is_dn_equal(cert_issuer, m.allowed_issuer) for m in mappings):
                result.reason = ("User based authentication failed. Issuer of the certificate does not exist in "
                                 "the trusted issuer list.")
                return result
            chosen = self._select(mappings, cert_issuer, thumbprint, "user")
            if chosen is None:
                result.reason = "Authentication failed. No thumbprint mapping found for the issuer."
                return result
            result.mapping_position = chosen.position
            if WILDCARD not in chosen.allowed_usernames and \
                    not any(_equals_ignore_case(allowed, username) for allowed in chosen.allowed_usernames):
                result.reason = "Authentication failed. Username from the header is not in the allowed user list."
                return result
        else:  # M2M / system authentication
            result.kind = "system"
            mappings = config.system_thumbprint_mappings
            if not mappings:
                result.reason = "Authentication failed. System user and thumbprint mapping is not configured."
                return result
            if not any(is_dn_equal(cert_issuer, m.allowed_issuer) for m in mappings):
                result.reason = ("Authentication failed. Issuer of the certificate does not exist in the trusted "
                                 "issuer list.")
                return result
            chosen = self._select(mappings, cert_issuer, thumbprint, "system")
            if chosen is None:
                result.reason = "Authentication failed. No thumbprint mapping found for the issuer."
                return result
            result.mapping_position = chosen.position
            if chosen.allowed_system_user == WILDCARD:
                result.status = "SUCCESS"  # no user is set in the context
                result.reason = "System mapping with allowed_system_user \"*\": server-to-server, no user."
                return result
            username = chosen.allowed_system_user
        if self.line == MASTER and self.user_store is not None:
            tenant, store, bare = split_username(username)
            try:
                exists = self.user_store(tenant, store, bare)
            except TenantNotFound:
                result.reason = "Error occurred while validating the user (unknown tenant domain)."
                return result
            if not exists:
                result.reason = f"Authentication failed. User: {bare} does not exist."
                return result
        result.status = "SUCCESS"
        result.user = username
        result.reason = f"Client certificate based authentication was successful. Set '{username}' as the user"
        return result


def authenticate(cert_issuer: str, thumbprint: str, identity_user: str | None, config: ClientCertAuthConfig, *,
                 line: str = MASTER, user_store: UserStore | None = None, subject: str = "") -> AuthenticationResult:
    """One call through the handler (assuming a certificate was presented and the handler is enabled)."""
    handler = ClientCertificateBasedAuthenticationHandler(AuthConfiguration.build(config, line), line, user_store)
    return handler.do_authenticate(cert_issuer, thumbprint, identity_user, subject)
