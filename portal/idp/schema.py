"""JSON Schema building blocks for the OpenAPI document, shared by portal/api/openapi.py and the families'
schema fragments."""
from __future__ import annotations

from copy import deepcopy
from typing import Any

Schema = dict[str, Any]

REF = "#/components/schemas/"
HTTPS_PATTERN = r"^https?://[^\s/?#@]+(/[^\s#]*)?$"


def ref(name: str) -> Schema:
    return {"$ref": REF + name}


def nullable(schema: Schema) -> Schema:
    """The same schema, also accepting null (the server reads null as "not given")."""
    schema = deepcopy(schema)
    schema["type"] = [schema["type"], "null"]
    return schema


def text(description: str, max_length: int | None = None, **extra: Any) -> Schema:
    schema: Schema = {"type": "string", "description": description, **extra}
    if max_length:
        schema["maxLength"] = max_length
    return schema
