"""The shape of the code base: short functions, few parameters, modest modules (see ../shared/STYLE.md).

No function longer than 80 lines or with more than 12 parameters, unless a comment directly
above it (above its decorators) says why, starting with ``exempt from the size rule:``; the
median module at most 200 lines and none over 500.
"""

from __future__ import annotations

import ast
import statistics
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "innverse"
MAX_LINES, MAX_PARAMETERS = 80, 12
MARKER = "exempt from the size rule:"


def _parameters(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    a = node.args
    count = len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs) + (a.vararg is not None) + (a.kwarg is not None)
    first = (a.posonlyargs + a.args)[:1]
    return count - (1 if first and first[0].arg in ("self", "cls") else 0)


def _exempt(lines: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    first = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 2  # 0-based line above
    comment = []
    while first >= 0 and lines[first].strip().startswith("#"):
        comment.append(lines[first])
        first -= 1
    return any(MARKER in line for line in comment)


def _offenders() -> list[str]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text()
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            length = node.end_lineno - node.lineno + 1  # type: ignore[operator]
            params = _parameters(node)
            if (length > MAX_LINES or params > MAX_PARAMETERS) and not _exempt(lines, node):
                found.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name}: {length} lines, {params} parameters")
    return found


def test_functions_are_short_and_take_few_parameters():
    offenders = _offenders()
    assert not offenders, "functions over the size rule (shorten them, or say why above the def):\n" + "\n".join(
        offenders)


def test_modules_are_modest():
    sizes = {path.relative_to(SRC): len(path.read_text().splitlines()) for path in SRC.rglob("*.py")}
    assert statistics.median(sizes.values()) <= 200
    assert max(sizes.values()) <= 500, max(sizes, key=sizes.get)
