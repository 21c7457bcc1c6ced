"""Keeps a secret out of check results shown to the administrator, whatever a server, driver or library put in them."""

from __future__ import annotations

from portal.clients.checks import CheckResult


def scrub(result: CheckResult, secret: str) -> CheckResult:
    """Belt and braces: the password does not reach the administrator's screen."""
    if not secret:
        return result

    def clean(text: str) -> str:
        return text.replace(secret, "***")

    return CheckResult(
        ok=result.ok,
        summary=clean(result.summary),
        details=[clean(line) for line in result.details],
        field_errors={key: clean(value) for key, value in result.field_errors.items()},
    )
