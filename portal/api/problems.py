"""Problem bodies (RFC 9457) for the /v1 API: service errors and request-shape errors, each with a clear title."""
from __future__ import annotations

from flask import Response

from portal.api.blueprint import bp
from portal.errors import problem
from portal.services.errors import CheckFailed, Conflict, NotFound, ServiceError, ValidationError

TITLES = {
    400: "Invalid request",
    401: "Missing or invalid API credentials",
    403: "Forbidden",
    404: "Not found",
    409: "Already exists",
    413: "Request body too large",
    415: "Unsupported media type",
}


class ApiProblem(Exception):
    """Raised by the API's request parsing; rendered as a problem body by the handler below."""

    def __init__(self, status: int, detail: str, errors: dict[str, str] | None = None, title: str | None = None):
        super().__init__(detail)
        self.status, self.detail, self.errors = status, detail, errors
        self.title = title or TITLES.get(status, "Error")


def validation_problem(exc: ValidationError, title: str = TITLES[400], **extra) -> Response:
    """Field errors go under `errors` keyed by API field path; a whole-body message ("" key) becomes `detail`."""
    errors = {path: message for path, message in exc.errors.items() if path}
    detail = exc.errors.get("")
    if not detail:
        fields = ", ".join(sorted(errors))
        detail = f"{len(errors)} field{'s' if len(errors) != 1 else ''} refused: {fields}." if errors else exc.message
    return problem(400, title, detail, errors or None, **extra)


@bp.errorhandler(ApiProblem)
def _api_problem(exc: ApiProblem) -> Response:
    return problem(exc.status, exc.title, exc.detail, exc.errors)


@bp.errorhandler(CheckFailed)
def _check_failed(exc: CheckFailed) -> Response:
    return validation_problem(exc, "Connection check failed",
                              check={"summary": exc.result.summary, "details": list(exc.result.details)})


@bp.errorhandler(ValidationError)
def _invalid(exc: ValidationError) -> Response:
    return validation_problem(exc)


@bp.errorhandler(Conflict)
def _conflict(exc: Conflict) -> Response:
    errors = {path: message for path, message in exc.errors.items() if path}
    return problem(409, TITLES[409], exc.message, errors or None)


@bp.errorhandler(NotFound)
def _not_found(exc: NotFound) -> Response:
    return problem(404, TITLES[404], exc.message)


@bp.errorhandler(ServiceError)
def _service_error(exc: ServiceError) -> Response:
    return problem(exc.status, TITLES.get(exc.status, "Error"), exc.message)
