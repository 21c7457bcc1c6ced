"""Field readers shared by the tenant spec and the identity-provider families: each records a problem under the
registration API's field path (e.g. "relationalSchema.dataSourceURL") instead of raising, so one request reports
every problem at once. Pure: no network, no database."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

PLACEHOLDER = "string"  # what the seed's sample requests put in every field


class Errors(dict):
    """Messages keyed by API field path; the first message for a path wins."""

    def add(self, path: str, message: str) -> None:
        self.setdefault(path, message)


_MISSING = {str: "This field is required.", dict: "This section is required."}
_WRONG_TYPE = {str: "Must be a string.", dict: "Must be an object."}


def _typed(obj: dict, name: str, path: str, kind: type, errors: Errors, *, required: bool) -> Any:
    """obj[name] when it is a `kind` (str or dict); None when it is absent (recorded if required) or another type."""
    value = obj.get(name)
    if value is None:
        if required:
            errors.add(path, _MISSING[kind])
        return None
    if not isinstance(value, kind):
        errors.add(path, _WRONG_TYPE[kind])
        return None
    return value


def text(obj: dict, name: str, errors: Errors, *, path: str | None = None, required: bool = False,
         limit: int = 255, strip: bool = True, secret: bool = False) -> str | None:
    """A string field: None when absent or blank; a type, length or placeholder problem is recorded."""
    path = path or name
    value = _typed(obj, name, path, str, errors, required=required)
    if value is None:
        return None
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: valid JSON ("\ud800"), but nothing downstream can store it
            errors.add(path, "Must be valid Unicode text.")
            return None
    if strip:
        value = value.strip()
    if value == "":
        if required:
            errors.add(path, "This field is required.")
        return None
    if value == PLACEHOLDER:
        errors.add(path, f'"{PLACEHOLDER}" is the sample request\'s placeholder; enter the real value.')
        return None
    if len(value) > limit:
        errors.add(path, f"At most {limit} characters.")
        return None
    if not secret and any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        errors.add(path, "Control characters are not allowed.")
        return None
    return value


def section(body: dict, name: str, allowed: frozenset[str], errors: Errors, *, required: bool) -> dict | None:
    """A nested object such as relationalSchema; unknown members are reported one by one."""
    value = _typed(body, name, name, dict, errors, required=required)
    if value is None:
        return None
    for extra in sorted(set(value) - allowed):
        errors.add(f"{name}.{extra}", f"Unknown field {extra!r}.")
    return value


def boolean(obj: dict, name: str, errors: Errors, *, path: str) -> bool:
    value = obj.get(name, False)
    if not isinstance(value, bool):
        errors.add(path, "Must be true or false.")
        return False
    return value


def url(obj: dict, name: str, path: str, allow_http: bool, errors: Errors) -> str | None:
    """A required https URL (http too where allowed for labs): host, no credentials, no fragment."""
    value = text(obj, name, errors, path=path, required=True, limit=2048)
    if value is None:
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        errors.add(path, "Not a valid URL.")
        return None
    allowed = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in allowed:
        errors.add(path, "Use an https:// URL." if not allow_http else "Use an http(s):// URL.")
    elif not parts.hostname:
        errors.add(path, "The URL needs a host name.")
    elif "@" in parts.netloc:
        errors.add(path, "Credentials are not allowed in the URL.")
    elif parts.fragment:
        errors.add(path, "The URL cannot have a #fragment.")
    return value


def host_port(host: str, port: int) -> str:
    """host:port for messages, with an IPv6 host bracketed so the port stays readable."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())
