"""The JSON body reader of every /v1 endpoint: size, media type, encoding and JSON checked once, each refusal a
413 / 415 / 400 problem that says what is wrong."""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from flask import current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from portal.api.problems import ApiProblem

_ESCAPED_NUL_OR_SURROGATE = re.compile(r"\\u(0000|[dD][89a-fA-F])")


def _is_json(mimetype: str) -> bool:
    return mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _check_string(path: str, value: str) -> None:
    if "\x00" in value:
        raise ApiProblem(400, "A string in the body contains a NUL character (\\u0000).",
                         {path: "NUL characters (\\u0000) are not allowed."} if path else None)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiProblem(400, "A string in the body contains an unpaired UTF-16 surrogate escape.",
                         {path: "Unpaired surrogate escapes (\\ud800-\\udfff) are not valid text."} if path else None) \
            from None


def _children(path: str, value: dict | list) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield path, key  # a member name is text too
            yield (f"{path}.{key}" if path else key), item
    else:
        for index, item in enumerate(value):
            yield f"{path}[{index}]", item


def _check_text(body: Any) -> None:
    """Strings the database and the drivers can hold: no NUL character and no lone UTF-16 surrogate.
    Depth-first with a stack of iterators: memory grows with the nesting, not the size, and a body nested as deep
    as the JSON parser allows cannot exhaust recursion."""
    stack: list[Iterator[tuple[str, Any]]] = [iter([("", body)])]
    while stack:
        for path, value in stack[-1]:
            if isinstance(value, (dict, list)):
                stack.append(_children(path, value))
                break
            if isinstance(value, str):
                _check_string(path, value)
        else:
            stack.pop()


def read_json_body() -> Any:
    """The request body as parsed JSON, or a 413 / 415 / 400 problem that says what is wrong with it."""
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if limit and request.content_length is not None and request.content_length > limit:
        raise ApiProblem(413, f"The body is {request.content_length} bytes; this API accepts at most {limit}.")
    if not _is_json(request.mimetype):
        got = request.mimetype or "no Content-Type"
        raise ApiProblem(415, f"Send the body as application/json (got {got}).")
    try:
        raw = request.get_data(cache=True)
    except RequestEntityTooLarge:
        raw = None
    # A chunked body (no Content-Length) is cut at the limit by werkzeug without complaint: reaching it means more.
    if raw is None or (limit and request.content_length is None and len(raw) >= limit):
        raise ApiProblem(413, f"The body is larger than the {limit} bytes this API accepts.")
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise ApiProblem(400, f"The body is not UTF-8 text (bad byte at offset {exc.start}).") from None
    if not text.strip():
        raise ApiProblem(400, "The body is empty; send the tenant as a JSON object.")
    try:
        body = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise ApiProblem(400, f"The body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.") \
            from None
    except RecursionError:
        raise ApiProblem(400, "The body is not acceptable JSON: it is nested too deeply.") from None
    except ValueError as exc:  # NaN / Infinity, or an integer with thousands of digits
        raise ApiProblem(400, f"The body is not acceptable JSON: {exc}.") from None
    if _ESCAPED_NUL_OR_SURROGATE.search(text):  # the only ways such strings get past a strict JSON parser
        _check_text(body)
    return body
