"""A stored secret is only ever sent to the target it was entered for (issue 13).

Every secret-bearing setting is write-only, and a blank field on update keeps the stored value. Without a rule,
whoever may edit a setting could point it at a listener they run and have the portal's check send the stored
password there. So: a stored secret is kept only when every part of where it goes is unchanged; otherwise it must
be entered again, and the secret's field says why. `refusal` is that rule, the one place it lives; the `*_target`
functions say what "where it goes" means for each kind of setting, normalised (host case, default ports, trailing
dots and slashes) so an unchanged place written differently still counts as unchanged.

Also here: a password pasted into a JDBC URL is recognised, so it can be refused at the field, and redacted from
what was stored before that rule existed.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus, urlsplit

from portal.idp import jdbc_url, ldap_settings

HTTP_DEFAULT_PORTS = {"https": 443, "http": 80}
URL_PASSWORD_MESSAGE = ("This URL contains a password. Remove it from the URL and enter it in the password field: "
                        "a URL is shown on pages and in the audit log, a password never is.")
REDACTED = "***"


@dataclass(frozen=True)
class Target:
    """Where a secret goes: named, normalised parts. Equal targets are the same destination and the same account."""

    parts: tuple[tuple[str, Any], ...]

    def changed(self, other: Target) -> list[str]:
        """The names of the parts that differ, in order (a part present on one side only differs)."""
        mine, theirs = dict(self.parts), dict(other.parts)
        names = list(mine) + [name for name in theirs if name not in mine]
        return [name for name in names if mine.get(name) != theirs.get(name)]


def refusal(*, stored: bool, entered: bool, before: Target, after: Target, secret: str = "password",
            sent: str = "sent") -> str | None:
    """The rule: why a stored secret cannot be kept, or None when it may be (or when none is kept).

    stored: a secret is stored for this setting; entered: a new one was typed (then nothing is kept)."""
    if not stored or entered:
        return None
    changed = before.changed(after)
    if not changed:
        return None
    return (f"You changed where this {secret} is {sent} ({_listing(changed)}). Enter the {secret} again: a stored "
            f"{secret} is only ever {sent} to the server it was entered for.")


def account_refusal(*, stored: bool, entered: bool, before: str | None, after: str | None,
                    secret: str = "password") -> str | None:
    """A password that belongs to a user name (the tenant owner's): a new name needs the password again."""
    if not stored or entered or (before or "") == (after or ""):
        return None
    return (f"You changed the user name this {secret} belongs to. Enter the {secret} again: a stored {secret} is "
            "only ever used for the user it was entered for.")


def _listing(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _str(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _host(host: str) -> str:
    host = host.strip().rstrip(".").lower()
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return host


# --- targets ------------------------------------------------------------------------------------------------------


def jdbc_target(url: str | None, username: str | None) -> Target:
    """A database password goes to the parsed JDBC URL's server, database and schema, as that user. Every URL
    parameter counts (sslmode, socket factories, ... can change where or how the password travels)."""
    url, user = _str(url), ("user name", _str(username))
    try:
        target = jdbc_url.parse_jdbc_url(url)
    except ValueError:
        return Target((("URL", url), user))
    params = tuple(sorted((k, v) for k, v in target.params.items() if k != "currentSchema"))
    return Target((("database type", target.kind), ("host", _host(target.host)), ("port", target.port),
                   ("database", target.database or target.service_name or target.sid),
                   ("database kind", "service" if target.service_name else "sid" if target.sid else "database"),
                   ("schema", target.schema), ("URL parameters", params), user))


def ldap_target(url: str | None, start_tls: bool, bind_dn: str | None) -> Target:
    """A bind password goes to the directory's scheme, host and port, with or without StartTLS, as the bind DN."""
    url, dn, tls = _str(url), ("bind DN", _str(bind_dn)), ("StartTLS", start_tls is True)
    try:
        target = ldap_settings.parse_ldap_url(url)
    except ValueError:
        return Target((("URL", url), tls, dn))
    return Target((("scheme", target.scheme), ("host", _host(target.host)), ("port", target.port), tls, dn))


def http_target(base_url: str | None, username: str | None) -> Target:
    """A product password goes to the base URL's scheme, host, port and path, as that user."""
    base_url, user = _str(base_url), ("user name", _str(username))
    try:
        parts = urlsplit(base_url)
        scheme = parts.scheme.lower()
        port = parts.port or HTTP_DEFAULT_PORTS.get(scheme)
    except ValueError:
        return Target((("URL", base_url), user))
    return Target((("scheme", scheme), ("host", _host(parts.hostname or "")), ("port", port),
                   ("path", parts.path.rstrip("/")), user))


# --- passwords inside JDBC URLs -----------------------------------------------------------------------------------

# user:password@ (PostgreSQL authority) or user/password@ (Oracle thin), and any query parameter named *password*.
_USERINFO = re.compile(r"^jdbc:(?:postgresql://[^/?#@]*:[^/?#@]*@|oracle:thin:[^@]*/[^@]*@)", re.IGNORECASE)
_PASSWORD_PARAM = re.compile(r"([?&;]\s*[^=&;?]*password[^=&;?]*=)([^&;#]*)", re.IGNORECASE)


def url_has_password(url: Any) -> bool:
    """Whether a JDBC URL carries a password (userinfo or a parameter whose name holds "password", any case, also
    percent-encoded)."""
    if not isinstance(url, str):
        return False
    text = url.strip()
    decoded = unquote_plus(text)
    return bool(_USERINFO.match(text) or _PASSWORD_PARAM.search(text) or _PASSWORD_PARAM.search(decoded))


def redact_url(url: Any) -> Any:
    """The URL with any password replaced by ***, for pages, the API and the audit (stored before the rule)."""
    if not url_has_password(url):
        return url
    text = _PASSWORD_PARAM.sub(lambda m: m.group(1) + REDACTED, unquote_plus(url.strip()))
    match = _USERINFO.match(text)
    if match:
        head = match.group(0)
        cut = head.rfind(":") if head.lower().startswith("jdbc:postgresql") else head.rfind("/")
        text = head[:cut + 1] + REDACTED + "@" + text[len(head):]
    return text
