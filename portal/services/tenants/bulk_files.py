"""Reading a bulk onboarding file: CSV (dotted column names, "true"/"false" cells for flag fields) or JSON Lines
(one registration body a line) into numbered rows of request bodies. Only the file's shape is checked here (format,
encoding, header, cells per row, the row limit); the field rules are tenant_spec's, applied row by row by bulk."""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from portal.services.errors import ValidationError
from portal.services.tenants import fields as tenant_fields

FORMATS = {"csv": "csv", "jsonl": "jsonl", "ndjson": "jsonl"}  # file extension -> format
MAX_FILE_PROBLEMS = 20  # structural problems listed before "... and N more"


class FileProblem(ValidationError):
    """The file cannot be read as rows at all (format, encoding, shape); `problems` lists each, with its row."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        summary = problems[0] if len(problems) == 1 else f"The file has {len(problems)} problems; nothing was stored."
        super().__init__({"file": summary})


@dataclass(frozen=True)
class Row:
    number: int  # CSV: the spreadsheet row (the header is row 1); JSON Lines: the line number
    body: dict[str, Any]


@dataclass(frozen=True)
class ParsedFile:
    file_format: str
    rows: list[Row]



def parse_file(filename: str, data: bytes, max_rows: int) -> ParsedFile:
    """The rows of an uploaded file, or FileProblem. Only shape is checked here; field rules are tenant_spec's."""
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    file_format = FORMATS.get(extension)
    if data.startswith(b"PK\x03\x04"):
        raise FileProblem(["This is a spreadsheet or zip file. Save it as \"CSV UTF-8\" or JSON Lines and upload "
                           "that."])
    if file_format is None:
        raise FileProblem([f"Upload a .csv or a .jsonl (JSON Lines) file; {filename or 'this file'!r} is neither."])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise FileProblem([f"Line {line} is not UTF-8 text. Save the file as UTF-8 (a byte-order mark is fine)."]) \
            from None
    if not text.strip():
        raise FileProblem(["The file is empty."])
    rows = _csv_rows(text, max_rows) if file_format == "csv" else _jsonl_rows(text, max_rows)
    if not rows:
        raise FileProblem(["The file holds no tenants: only a header or blank lines."])
    return ParsedFile(file_format, rows)


class _Problems(list):
    def add(self, message: str) -> None:
        self.append(message)

    def raise_if_any(self) -> None:
        if self:
            shown = self[:MAX_FILE_PROBLEMS]
            if len(self) > MAX_FILE_PROBLEMS:
                shown.append(f"... and {len(self) - MAX_FILE_PROBLEMS} more.")
            raise FileProblem(shown)


def _too_many(max_rows: int) -> FileProblem:
    return FileProblem([f"The file has more than {max_rows:,} rows; split it into files of at most {max_rows:,}."])


def _csv_rows(text: str, max_rows: int) -> list[Row]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    problems = _Problems()
    try:
        header = [name.strip() for name in next(reader)]
    except csv.Error as exc:
        raise FileProblem([f"Row 1 (the header) cannot be read as CSV: {exc}."]) from None
    _check_header(header, problems)
    problems.raise_if_any()
    rows: list[Row] = []
    booleans = boolean_columns()
    number = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.add(f"Row {number + 1} cannot be read as CSV: {exc} (near line {reader.line_num}).")
            break  # the reader cannot resynchronise after a broken quote
        number += 1
        if not cells or all(cell == "" for cell in cells):
            continue  # blank lines and spreadsheet rows with nothing in them
        if len(cells) != len(header):
            problems.add(f"Row {number} has {len(cells)} cells; the header has {len(header)}.")
            continue
        if len(rows) >= max_rows:
            raise _too_many(max_rows)
        body: dict[str, Any] = {}
        for name, cell in zip(header, cells, strict=False):  # a short row leaves the last columns absent
            if cell == "":
                continue  # empty cell: the field is absent
            value: Any = cell
            if name in booleans and cell.strip().lower() in ("true", "false"):
                value = cell.strip().lower() == "true"
            _put(body, name.split("."), value)
        rows.append(Row(number, body))
    problems.raise_if_any()
    return rows


def boolean_columns() -> frozenset[str]:
    """Columns whose CSV cells "true"/"false" are booleans: the flag fields of every identity-provider type."""
    return tenant_fields.boolean_paths() | {tenant_fields.SKIP_CHECK}


def _check_header(header: list[str], problems: _Problems) -> None:
    seen: set[str] = set()
    for index, name in enumerate(header, 1):
        if not name or any(part == "" for part in name.split(".")):
            problems.add(f"Row 1 (the header): column {index} has no usable field name ({name!r}).")
        elif name in seen:
            problems.add(f"Row 1 (the header): column {name!r} appears twice.")
        seen.add(name)
    for name in seen:
        parts = name.split(".")
        for cut in range(1, len(parts)):
            prefix = ".".join(parts[:cut])
            if prefix in seen:
                problems.add(f"Row 1 (the header): {prefix!r} is a section; give its fields as {name!r} only.")


def _put(body: dict[str, Any], path: list[str], value: Any) -> None:
    target = body
    for name in path[:-1]:
        target = target.setdefault(name, {})
    target[path[-1]] = value


def _jsonl_rows(text: str, max_rows: int) -> list[Row]:
    problems = _Problems()
    rows: list[Row] = []
    for number, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.add(f"Line {number} is not valid JSON: {exc.msg} (column {exc.colno}).")
            continue
        except (ValueError, RecursionError):
            problems.add(f"Line {number} is not usable JSON (too deeply nested or a number too long).")
            continue
        if not isinstance(value, dict):
            kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value),
                                                                                               "a number")
            problems.add(f"Line {number} is {kind}, not an object: put one tenant object on each line.")
            continue
        if len(rows) >= max_rows:
            raise _too_many(max_rows)
        rows.append(Row(number, value))
    problems.raise_if_any()
    return rows
