"""LDAP directory settings of an LDAP identity provider, judged without the network: the URL, the DNs, the domain
name and the credential pairing, each problem reported under its registration API field. Pure."""
from __future__ import annotations

import ipaddress
import re
import warnings
from dataclasses import dataclass
from urllib.parse import urlsplit

from portal.idp.parsing import host_port

with warnings.catch_warnings():
    # ldap3 2.9.1, the latest release, imports names that pyasn1 0.6 deprecates; harmless, and out of our hands.
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"ldap3\.")
    from ldap3.core.exceptions import LDAPInvalidDnError
    from ldap3.utils.dn import parse_dn

# Field paths of the registration API, so the form can pin each problem on the right input.
URL_FIELD = "ldapSchema.ldapURLForDirectoryService"
DOMAIN_FIELD = "ldapSchema.directoryServiceDomainName"
ROOT_DN_FIELD = "ldapSchema.directoryServiceRootDistinguishedName"
BIND_DN_FIELD = "ldapSchema.bindDN"
PASSWORD_FIELD = "ldapSchema.bindPassword"

URL_FORM = "ldap://host[:port] or ldaps://host[:port]"
DEFAULT_PORTS = {"ldap": 389, "ldaps": 636}
PLACEHOLDER = "string"  # what the registration API's sample request puts in every field
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")

@dataclass(frozen=True)
class LdapTarget:
    """Where an LDAP URL points: the scheme decides plain LDAP (maybe StartTLS) or LDAP over TLS."""

    scheme: str  # "ldap" | "ldaps"
    host: str  # without IPv6 brackets
    port: int

    @property
    def use_ssl(self) -> bool:
        return self.scheme == "ldaps"

    @property
    def address(self) -> str:
        return host_port(self.host, self.port)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.address}"


# --- Validation (no network) ----------------------------------------------------------------------------


def parse_ldap_url(url: str) -> LdapTarget:
    """Parse ldap://host[:port] or ldaps://host[:port]; ValueError says what is wrong.

    Messages never repeat the whole URL: an administrator may have pasted credentials into it.
    """
    text = url.strip() if isinstance(url, str) else ""
    if not text:
        raise ValueError(f"The LDAP URL is empty; expected {URL_FORM}.")
    if text.lower() == PLACEHOLDER:
        raise ValueError(f'The LDAP URL is still the placeholder "{PLACEHOLDER}"; enter the real URL, e.g. {URL_FORM}.')
    if "://" not in text:
        raise ValueError(f"This is not an LDAP URL; expected {URL_FORM}.")
    try:
        parts = urlsplit(text)
    except ValueError:  # urlsplit's only complaint is about brackets
        raise ValueError(f"The host in brackets is not a valid IPv6 address; expected {URL_FORM}.") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        shown = scheme if re.fullmatch(r"[a-z][a-z0-9+.\-]*", scheme) else "These"
        raise ValueError(f"{shown}:// URLs are not supported here; expected {URL_FORM}.")
    if "@" in parts.netloc:
        raise ValueError(
            f"Put the bind DN and password in bindDN and bindPassword, not in the URL; expected {URL_FORM}."
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(
            "The URL names only the server: put the base of the directory in "
            f"directoryServiceRootDistinguishedName, not in the URL; expected {URL_FORM}."
        )
    if parts.netloc.count(":") > 1 and not parts.netloc.startswith("["):
        raise ValueError(f"Write an IPv6 address in brackets, e.g. ldap://[::1]:389; expected {URL_FORM}.")
    host = parts.hostname or ""
    if not host:
        raise ValueError(f"The LDAP URL names no host; expected {URL_FORM}.")
    if parts.netloc.startswith("["):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"[{host}] is not a valid IPv6 address.") from None
    elif len(host) > 253 or not _HOSTNAME.fullmatch(host):
        raise ValueError(f"{host!r} is not a valid host name; expected {URL_FORM}.")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError(f"The port is not valid (1-65535); expected {URL_FORM}.")
    return LdapTarget(scheme, host, port or DEFAULT_PORTS[scheme])


def _dn_problem(value: str, what: str, example: str) -> str | None:
    """None for a well-formed DN, else a sentence explaining the problem."""
    if value.lower() == PLACEHOLDER:
        return f'The {what} is still the placeholder "{PLACEHOLDER}"; enter a distinguished name, e.g. {example}.'
    try:
        parse_dn(value)
    except LDAPInvalidDnError as exc:
        return f"The {what} is not a valid distinguished name ({exc}); expected e.g. {example}."
    return None


def _domain_problem(value: str) -> str | None:
    if value.lower() == PLACEHOLDER:
        return (
            f'The domain name is still the placeholder "{PLACEHOLDER}"; '
            "enter the directory's DNS domain, e.g. example.com."
        )
    name = value.removesuffix(".")
    if len(name) > 253 or not _DOMAIN.fullmatch(name) or not name.rsplit(".", 1)[-1][0].isalpha():
        return "The domain name must be a DNS domain such as example.com (letters, digits and hyphens, with dots)."
    return None


def _domain_of(root_dn: str) -> str | None:
    """example.com for dc=example,dc=com; None when the DN has no dc= components to compare."""
    try:
        components = parse_dn(root_dn)
    except LDAPInvalidDnError:
        return None
    labels = [value for attribute, value, _ in components if attribute.strip().lower() == "dc"]
    return ".".join(labels).lower() if labels else None


def validate_settings(
    url: str,
    domain_name: str,
    root_dn: str,
    bind_dn: str | None,
    bind_password: str | None,
    start_tls: bool,
) -> tuple[LdapTarget | None, dict[str, str], list[str]]:
    """Every problem found without the network, keyed by field, plus warnings that do not stop the check."""
    errors: dict[str, str] = {}
    warnings_: list[str] = []
    target = None
    try:
        target = parse_ldap_url(url)
    except ValueError as exc:
        errors[URL_FIELD] = str(exc)
    if target is not None and target.use_ssl and start_tls:
        errors[URL_FIELD] = "ldaps:// is already encrypted; StartTLS is only for ldap:// URLs. Use one or the other."
    root = _directory(domain_name, root_dn, errors, warnings_)
    _credentials(bind_dn, bind_password, root, errors)
    return target, errors, warnings_


def _directory(domain_name: str, root_dn: str, errors: dict[str, str], warnings_: list[str]) -> str:
    """The domain name and the root DN, each valid and both describing one directory; returns the root DN."""
    domain = domain_name.strip() if isinstance(domain_name, str) else ""
    if not domain:
        errors[DOMAIN_FIELD] = "Enter the directory's DNS domain name, e.g. example.com."
    elif problem := _domain_problem(domain):
        errors[DOMAIN_FIELD] = problem

    root = root_dn.strip() if isinstance(root_dn, str) else ""
    if not root:
        errors[ROOT_DN_FIELD] = "Enter the root DN the users live under, e.g. dc=example,dc=com."
    elif problem := _dn_problem(root, "root DN", "dc=example,dc=com"):
        errors[ROOT_DN_FIELD] = problem

    if DOMAIN_FIELD not in errors and ROOT_DN_FIELD not in errors:
        expected = _domain_of(root)
        if expected is not None and expected != domain.removesuffix(".").lower():
            warnings_.append(
                f"Warning: the domain name {domain} does not match the root DN's dc= components ({expected}); "
                "check that both describe the same directory."
            )
    return root


def _credentials(bind_dn: str | None, bind_password: str | None, root: str, errors: dict[str, str]) -> None:
    """The bind DN and password go together: both, or neither (an anonymous bind)."""
    dn = bind_dn.strip() if isinstance(bind_dn, str) else ""
    password = bind_password if isinstance(bind_password, str) else ""
    example_dn = f"cn=admin,{root}" if root and ROOT_DN_FIELD not in errors else "cn=admin,dc=example,dc=com"
    if dn:
        if problem := _dn_problem(dn, "bind DN", example_dn):
            errors[BIND_DN_FIELD] = problem
        if not password:
            # RFC 4513 5.1.2: a name with an empty password is an "unauthenticated" bind that many servers
            # answer with success without checking anything, which would make this check meaningless.
            errors[PASSWORD_FIELD] = (
                "Enter the bind password; a bind DN without a password is not checked by most directories."
            )
        elif password == PLACEHOLDER:
            errors[PASSWORD_FIELD] = (
                "The bind password is still the sample request's placeholder; enter the real password."
            )
    elif password:
        errors[BIND_DN_FIELD] = (
            f"Enter the bind DN that goes with the password, e.g. {example_dn}; "
            "leave both empty to bind anonymously."
        )
