"""Typed errors raised by services; views turn them into field errors, flashes or problem+json bodies."""
from __future__ import annotations


class ServiceError(Exception):
    status = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ValidationError(ServiceError):
    """Bad input. `errors` maps a field name (or "" for the whole form) to a message."""

    status = 400

    def __init__(self, errors: dict[str, str] | str):
        if isinstance(errors, str):
            errors = {"": errors}
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" if k else v for k, v in errors.items()))


class CheckFailed(ValidationError):
    """The identity provider's connection check failed; `result` holds the steps taken."""

    def __init__(self, result):
        self.result = result
        errors = dict(result.field_errors)
        errors[""] = f"Connection check failed: {result.summary}"
        super().__init__(errors)


class NotFound(ServiceError):
    status = 404


class Conflict(ServiceError):
    """Already exists. `errors` names the clashing field(s) so a form can show it in place."""

    status = 409

    def __init__(self, message: str, errors: dict[str, str] | None = None):
        super().__init__(message)
        self.errors = errors or {"": message}


class Forbidden(ServiceError):
    status = 403
