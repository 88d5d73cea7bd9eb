"""Strict cross-references: every reference to an innverse name must resolve.

``nitpicky`` makes Sphinx warn about every reference it cannot resolve. References into libraries
whose inventories are not available offline (torch, numpy, the standard library, ...) are rendered
as plain text instead of a warning. A reference to an innverse name that exists but is not part of
the public reference (a private helper, a module) is rendered as text too and listed in
``internal_references.txt`` of the output; a reference to a name that exists nowhere (a typo, a
renamed or removed object) stays a warning (an error under ``-W``).
"""

from __future__ import annotations

import builtins
import re
import sys
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx

#: Top-level modules whose names may be referenced without a link (no offline inventory).
EXTERNAL = frozenset({
    "torch", "numpy", "np", "scipy", "matplotlib", "h5py", "safetensors", "sklearn", "pyro", "sbi",
    "arviz", "dask", "tqdm", "typing", "typing_extensions", "collections", "os", "pathlib", "argparse",
    "dataclasses", "enum", "abc", "contextlib", "functools", "io", "json", "types", "numbers",
    "concurrent", "multiprocessing", "logging", "datetime", "warnings", "re",
})
#: Bare names that annotations produce for standard types.
STANDARD = frozenset(dir(builtins)) | {
    "Any", "Callable", "Sequence", "Mapping", "Iterable", "Iterator", "Literal", "Optional", "Union",
    "Self", "TypeVar", "Generator", "MutableMapping", "Path", "PathLike", "Tensor", "Module",
    "Distribution", "ndarray", "dtype", "device", "Parameter", "Namespace", "Figure",
    "Axes", "ArgumentParser", "NoneType", "ellipsis", "EllipsisType",
}


_IDENTIFIER = re.compile(r"^~?[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


_NOT_FOUND = object()


def _lookup(path: str) -> Any:
    """The object the dotted ``path`` names (a module or an attribute), else ``_NOT_FOUND``."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        module = sys.modules.get(".".join(parts[:cut]))
        if module is None:
            continue
        obj: Any = module
        for attr in parts[cut:]:
            obj = getattr(obj, attr, _NOT_FOUND)
            if obj is _NOT_FOUND:
                return _NOT_FOUND
        return obj
    return _NOT_FOUND


def find_in_innverse(target: str, module: str | None, cls: str | None) -> Any:
    """The innverse object ``target`` names, as written or relative to its context, else ``_NOT_FOUND``."""
    target = target.lstrip("~.")
    candidates = [target]
    if module:
        candidates += [f"{module}.{target}"] + ([f"{module}.{cls}.{target}"] if cls else [])
    if not target.startswith("innverse."):
        candidates += [f"{name}.{target}" for name in list(sys.modules) if name.startswith("innverse")]
    for candidate in candidates:
        if candidate.startswith("innverse"):
            obj = _lookup(candidate)
            if obj is not _NOT_FOUND:
                return obj
    return _NOT_FOUND


def _public_names() -> dict[int, str]:
    """id(object) -> the full name under which the reference documents it."""
    from apigen import reference_entries

    names = {}
    for entries in reference_entries().values():
        for e in entries:
            if e.canonical is None and e.kind in ("class", "exception", "function"):
                names[id(getattr(sys.modules[e.package], e.name))] = e.full_name
    return names


def _resolve(app: Sphinx, env: Any, node: nodes.Element, contnode: nodes.Node) -> nodes.Node | None:
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    if not _IDENTIFIER.match(target):
        return contnode  # prose that napoleon read as a type, or a fragment of a subscripted annotation
    if target.split(".", 1)[0] in EXTERNAL or target in STANDARD:
        return contnode
    obj = find_in_innverse(target, node.get("py:module"), node.get("py:class"))
    if obj is _NOT_FOUND:
        return None  # a name that exists nowhere: the warning stays (an error under -W)
    public = PUBLIC.setdefault("names", _public_names()).get(id(obj))
    if public is not None:  # written with its private module path: link to its public name
        domain = env.get_domain("py")
        found = domain.resolve_any_xref(env, node["refdoc"], app.builder, public, node, contnode)
        if found:
            return found[0][1]
    INTERNAL.add(target)  # an existing name that is not part of the public reference: text, no link
    return contnode


PUBLIC: dict[str, dict[int, str]] = {}


#: Names referenced in docstrings that exist but are not in the public reference (rendered as text).
INTERNAL: set[str] = set()


def _write_internal(app: Sphinx, exc: Exception | None) -> None:
    if exc is None:
        (Path(app.outdir) / "internal_references.txt").write_text("\n".join(sorted(INTERNAL)) + "\n")


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("missing-reference", _resolve, priority=900)
    app.connect("build-finished", _write_internal)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
