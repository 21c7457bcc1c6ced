"""What the PostgreSQL check (clients/jdbc.py) and the Oracle check (clients/oracle.py) share: the tenant user
store's tables and required columns, the plan of which to create, and the check's failure results."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from portal.clients.checks import CheckResult
from portal.idp.jdbc_url import URL_FIELD, JdbcTarget

# The tenant user store, in creation order (um_user_role references the other two).
USER_STORE_TABLES = ("um_user", "um_role", "um_user_role")
REQUIRED_COLUMNS = {
    "um_user": ("id", "user_name", "credential"),
    "um_role": ("id", "role_name"),
    "um_user_role": ("user_id", "role_id"),
}


class Stop(Exception):
    """A step of a check found its answer (a failure): the check returns `result` and commits nothing."""

    def __init__(self, result: CheckResult):
        super().__init__(result.summary)
        self.result = result


@dataclass
class Run:
    """One provisioning run: where and as whom, whether it may create, the details so far and the step it is at
    (named in the message when the database refuses)."""

    target: JdbcTarget
    username: str
    provision: bool
    details: list[str]
    step: str = ""

    def stop(self, message: str, field: str | None = None) -> Stop:
        """The failure `message`, pinned on `field` when given, as a Stop to raise."""
        return Stop(failed(message, self.details + [message], {field: message} if field else None))


def failed(summary: str, details: list[str], field_errors: dict[str, str] | None = None) -> CheckResult:
    return CheckResult(ok=False, summary=summary, details=list(details), field_errors=dict(field_errors or {}))


def unreachable(target: JdbcTarget, reason: str, details: list[str]) -> CheckResult:
    message = f"Cannot reach {target.address}: {reason}."
    return failed(message, details + [message], {URL_FIELD: message})


def network_reason(text: str, timeout: float) -> str | None:
    """A plain reason when a driver message describes a network failure; None when it is something else."""
    lower = text.lower()
    if "refused" in lower:
        return "connection refused (is the database listening on that port?)"
    if "timeout expired" in lower or "timed out" in lower:
        return f"no answer within {timeout:g} s (firewall, wrong host or port?)"
    if any(
        marker in lower
        for marker in (
            "failed to resolve host",
            "could not translate host name",
            "name or service not known",
            "nodename nor servname",
            "temporary failure in name resolution",
            "no address associated",
            "getaddrinfo",
        )
    ):
        return "the host name does not resolve"
    if "no route to host" in lower or "network is unreachable" in lower:
        return "no network route to the host"
    return None


def last_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"


def _missing_columns(present: dict[str, set[str]], tables: Iterable[str]) -> list[str]:
    problems = []
    for table in tables:
        lacking = [column for column in REQUIRED_COLUMNS[table] if column not in present.get(table, set())]
        if lacking:
            problems.append(f"{table} lacks {', '.join(lacking)}")
    return problems


def plan_tables(
    run: Run, schema: str, columns: dict[str, set[str]], product: str, shown: Callable[[str], str] = str
) -> tuple[list[str], list[str]]:
    """(present, missing) user store tables, from the columns found per table (lower-case names). Stop when a
    present table lacks required columns (provisioning must not paper over it) or when tables are missing and
    provisioning is off. `shown` prints a table name as the database does (Oracle: upper case)."""
    present = [table for table in USER_STORE_TABLES if table in columns]
    problems = _missing_columns(columns, present)
    if problems:
        message = (
            f"The user store in schema {schema} has tables of another shape: {'; '.join(problems)}. "
            "Fix or drop them."
        )
        raise run.stop(message)
    missing = [table for table in USER_STORE_TABLES if table not in columns]
    for table in present:
        run.details.append(f"Table {schema}.{shown(table)}: already present")
    if missing and not run.provision:
        message = (
            f"Connected to {product}, but schema {schema} lacks {', '.join(shown(t) for t in missing)} "
            "and provisioning is off."
        )
        raise run.stop(message)
    return present, missing


def store_summary(product: str, schema: str, created: list[str], present: list[str]) -> str:
    if not created:
        return f"Connected to {product}; user store already present in schema {schema}"
    text = f"Connected to {product}; user store ready in schema {schema} (created: {', '.join(created)}"
    if present:
        text += f"; already present: {', '.join(present)}"
    return text + ")"
