"""Issue 14's size rules for portal/: no module over 500 lines, no function (or method) over 60 lines.

A failure lists every file and function over the limit, with its length, so the fix can start from the list."""
from __future__ import annotations

import ast
from pathlib import Path

PORTAL = Path(__file__).resolve().parent.parent / "portal"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60


def _over_limits() -> list[str]:
    found = []
    for path in sorted(PORTAL.rglob("*.py")):
        name = path.relative_to(PORTAL).as_posix()
        source = path.read_text(encoding="utf-8")
        lines = len(source.splitlines())
        if lines > MAX_MODULE_LINES:
            found.append(f"portal/{name}: {lines} lines (at most {MAX_MODULE_LINES})")
        for node in ast.walk(ast.parse(source, filename=str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found.append(f"portal/{name}:{node.lineno} {node.name}(): {length} lines "
                                 f"(at most {MAX_FUNCTION_LINES})")
    return found


def test_no_module_or_function_over_the_limits() -> None:
    found = _over_limits()
    if found:
        print("Over issue 14's limits:", *found, sep="\n  ")
    assert not found, "\n".join(found)

