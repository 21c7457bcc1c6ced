"""The outcome of a connection check, shared by every identity-provider type."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class CheckResult:
    ok: bool
    summary: str  # one line for the administrator, e.g. "Connected to PostgreSQL 15.20; user store ready"
    details: list[str] = field(default_factory=list)  # the steps taken, in order, for the "Test connection" panel
    # Problems pinned to a field, keyed by the registration API's field path, e.g. "relationalSchema.dataSourceURL".
    field_errors: dict[str, str] = field(default_factory=dict)
    # A product's refusal, told once: `cause` in its words, `reference` its status, error code and trace id.
    cause: str = ""
    reference: str = ""

    @classmethod
    def failed(cls, summary: str, details: list[str] | None = None, **field_errors: str) -> CheckResult:
        return cls(ok=False, summary=summary, details=details or [], field_errors=dict(field_errors))
