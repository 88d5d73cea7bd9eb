"""Generate the API reference: one page per package of innverse, with every name it exports.

The packages are found by walking ``innverse`` (every folder with an ``__init__.py``), and a
package's public names are its ``__all__``: a new package gets its page, and a new export its
entry, without editing anything here. An object exported by several packages is documented once,
in the package whose module path holds its definition, and listed in the others as an alias that
links there. Missing docstrings of exported names are build warnings (errors under ``-W``).

The pages are written to ``docs/api/`` (generated, not committed) when the builder starts.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = "innverse"
#: Order of the packages on the reference's index page (inner layers first); packages not listed
#: here (new ones) follow in alphabetical order, so listing a package is optional.
ORDER = ("innverse", "innverse.core", "innverse.blocks", "innverse.nets", "innverse.flows",
         "innverse.reversible", "innverse.train", "innverse.amortized", "innverse.inverse",
         "innverse.classify", "innverse.represent", "innverse.imaging", "innverse.design",
         "innverse.diagnostics", "innverse.interop", "innverse.io", "innverse.report",
         "innverse.tasks", "innverse.cli")
SECTIONS = (("class", "Classes"), ("exception", "Exceptions and warnings"), ("function", "Functions"),
            ("data", "Constants and types"), ("module", "Subpackages"))


@dataclass(frozen=True)
class Entry:
    """One exported name: ``package.name``, its kind and, for an alias, the documented name."""

    package: str
    name: str
    kind: str
    canonical: str | None = None  # set for aliases: the full name under which it is documented

    @property
    def full_name(self) -> str:
        return f"{self.package}.{self.name}"


def packages() -> list[str]:
    """Every package of innverse, in reference order."""
    root = importlib.import_module(ROOT)
    found = {ROOT} | {m.name for m in pkgutil.walk_packages(root.__path__, ROOT + ".") if m.ispkg}
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(found, key=lambda p: (min((rank[q] for q in rank if p == q or p.startswith(q + ".")),
                                            default=len(ORDER)), p))


def exports(package: str) -> list[str]:
    """The package's ``__all__`` (its public API), or ``[]`` when it has none."""
    return list(getattr(importlib.import_module(package), "__all__", []))


def kind_of(obj: Any) -> str:
    if inspect.ismodule(obj):
        return "module"
    if inspect.isclass(obj):
        return "exception" if issubclass(obj, BaseException) else "class"
    if inspect.isfunction(obj) or inspect.isbuiltin(obj) or inspect.ismethod(obj):
        return "function"
    return "data"


def _owner(obj: Any, owners: list[str]) -> str:
    """The package that documents ``obj``: the deepest exporter holding its definition."""
    module = getattr(obj, "__module__", None) if kind_of(obj) in ("class", "exception", "function") else None
    if inspect.ismodule(obj):
        return obj.__name__
    holding = [p for p in owners if module and (module == p or module.startswith(p + "."))]
    return max(holding, key=len) if holding else owners[0]


def reference_entries() -> dict[str, list[Entry]]:
    """Package -> its entries, aliases resolved."""
    pkgs = packages()
    objects: dict[int, list[str]] = {}
    for package in pkgs:
        module = importlib.import_module(package)
        for name in exports(package):
            if kind_of(getattr(module, name)) != "data":  # constants are documented where exported
                objects.setdefault(id(getattr(module, name)), []).append(package)
    result: dict[str, list[Entry]] = {}
    for package in pkgs:
        module = importlib.import_module(package)
        entries = []
        for name in exports(package):
            obj = getattr(module, name)
            kind = kind_of(obj)
            owners = objects.get(id(obj), [package])
            owner = _owner(obj, owners)
            canonical = None
            if kind == "module":
                canonical = obj.__name__
            elif owner != package and owner in pkgs and name in exports(owner):
                canonical = f"{owner}.{name}"
            entries.append(Entry(package, name, kind, canonical))
        result[package] = entries
    return result


def data_docstring(package: str, name: str) -> str | None:
    """The ``#:`` comment or string literal documenting the constant ``package.name`` where it is assigned."""
    from sphinx.pycode import ModuleAnalyzer

    obj = getattr(importlib.import_module(package), name)
    candidates = [package, *sorted(m for m in sys.modules if m.startswith(package + "."))]
    for modname in candidates:
        module = sys.modules.get(modname)
        if module is None or getattr(module, name, _MISSING) is not obj:
            continue
        try:
            docs = ModuleAnalyzer.for_module(modname).find_attr_docs()
        except Exception:  # a module without source (compiled) documents nothing
            continue
        lines = docs.get(("", name))
        if lines and "".join(lines).strip():
            return "\n".join(lines).strip()
    return None


_MISSING = object()


def docstring_problem(entry: Entry) -> str | None:
    """Why ``entry`` lacks a docstring, or ``None`` when it has one."""
    if entry.canonical is not None:
        return None
    obj = getattr(importlib.import_module(entry.package), entry.name)
    if entry.kind == "data":
        return None if data_docstring(entry.package, entry.name) else "constant without a #: comment"
    if entry.kind in ("class", "exception"):
        doc = obj.__dict__.get("__doc__")
        if dataclasses.is_dataclass(obj) and doc and doc.startswith(obj.__name__ + "("):
            doc = None  # the signature dataclasses write in place of a missing docstring
        return None if doc and doc.strip() else "class without a docstring"
    doc = getattr(obj, "__doc__", None)
    return None if doc and doc.strip() else "function without a docstring"


def _summary(entry: Entry) -> str:
    """The first paragraph of the entry's docstring, on one line (empty for aliases: see the target)."""
    obj = getattr(importlib.import_module(entry.package), entry.name)
    if entry.kind == "data":
        doc = data_docstring(entry.package, entry.name) or ""
    elif entry.kind in ("class", "exception"):
        doc = obj.__dict__.get("__doc__") or ""
    else:
        doc = obj.__doc__ or ""
    paragraph = inspect.cleandoc(doc).split("\n\n", 1)[0] if doc else ""
    if entry.kind == "module":
        return f"Subpackage, see :mod:`{entry.canonical}`."
    if entry.canonical is not None:
        paragraph = f"Alias of :py:obj:`{entry.canonical}`."
    return " ".join(paragraph.split())


def _short_value(obj: Any) -> str | None:
    text = repr(obj)
    return text if len(text) <= 100 and "<" not in text and "\n" not in text else None


def _indent(text: str, spaces: int = 3) -> str:
    pad = " " * spaces
    return "\n".join(pad + line if line.strip() else "" for line in text.splitlines())


_DIRECTIVE = {"class": "py:class", "exception": "py:exception", "function": "py:function", "data": "py:data"}


def _entry_rst(entry: Entry) -> str:
    if entry.kind == "module":
        return ""
    if entry.canonical is not None:
        role = {"class": "class", "exception": "exc", "function": "func", "data": "data"}[entry.kind]
        return (f".. {_DIRECTIVE[entry.kind]}:: {entry.name}\n   :no-index-entry:\n\n"
                f"   The same object as :{role}:`{entry.canonical}`, documented there.\n")
    if entry.kind == "data":
        obj = getattr(importlib.import_module(entry.package), entry.name)
        value = _short_value(obj)
        head = f".. py:data:: {entry.name}\n"
        if value:
            head += f"   :value: {value}\n"
        elif type(obj).__module__ == "builtins":
            head += f"   :type: {type(obj).__name__}\n"
        return head + "\n" + _indent(data_docstring(entry.package, entry.name) or "") + "\n"
    if entry.kind == "function":
        return f".. autofunction:: {entry.name}\n"
    auto = "autoexception" if entry.kind == "exception" else "autoclass"
    return (f".. {auto}:: {entry.name}\n   :members:\n   :undoc-members:\n   :show-inheritance:\n"
            "   :exclude-members: extra_repr\n")


def package_page(package: str, entries: list[Entry]) -> str:
    """The reStructuredText of one package's page."""
    title = f"``{package}``"
    lines = [f".. _api-{package}:", "", title, "=" * len(title), "", f".. automodule:: {package}", "",
             f".. currentmodule:: {package}", ""]
    if entries:
        lines += [".. list-table::", "   :widths: 30 70", "   :class: innverse-summary", ""]
        for e in sorted(entries, key=lambda e: e.name.lower()):
            lines += [f"   * - :py:obj:`{e.name}`", f"     - {_summary(e)}"]
        lines.append("")
    for kind, heading in SECTIONS:
        chosen = sorted((e for e in entries if e.kind == kind and kind != "module"), key=lambda e: e.name.lower())
        if chosen:
            lines += [heading, "-" * len(heading), ""]
            lines += [_entry_rst(e) for e in chosen]
    return "\n".join(lines).rstrip() + "\n"


def index_page(pages: list[str]) -> str:
    """The reference's index: every package with the first line of its docstring."""
    lines = ["API reference", "=============", "",
             "Every name a package of innverse exports (its ``__all__``), generated from the docstrings.",
             "An object exported by several packages is documented once and linked from the others.", "",
             ".. list-table::", "   :widths: 30 70", ""]
    for package in pages:
        doc = (importlib.import_module(package).__doc__ or "").strip().splitlines()
        first = doc[0] if doc else ""
        lines += [f"   * - :ref:`{package} <api-{package}>`", f"     - {first}"]
    lines += ["", ".. toctree::", "   :hidden:", ""] + [f"   {p}" for p in pages]
    return "\n".join(lines) + "\n"


def write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def generate(outdir: Path) -> list[str]:
    """Write ``outdir/index.rst`` and one page per package; return the docstring problems."""
    entries = reference_entries()
    problems = []
    for package, items in entries.items():
        module: ModuleType = importlib.import_module(package)
        if not (module.__doc__ or "").strip():
            problems.append(f"{package}: package without a docstring")
        if not hasattr(module, "__all__"):
            problems.append(f"{package}: package without __all__ (its public API is what __init__.py exports)")
        problems += [f"{e.full_name}: {p}" for e in items if (p := docstring_problem(e))]
        write_if_changed(outdir / f"{package}.rst", package_page(package, items))
    write_if_changed(outdir / "index.rst", index_page(list(entries)))
    for stale in outdir.glob("*.rst"):
        if stale.stem not in entries and stale.stem != "index":
            stale.unlink()
    return problems


def _on_builder_inited(app: Any) -> None:
    from sphinx.util import logging

    logger = logging.getLogger(__name__)
    for problem in generate(Path(app.srcdir) / "api"):
        logger.warning("missing docstring: %s", problem, type="apigen")


def _drop_foreign_docstrings(app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    """Drop a method's docstring inherited from a class outside innverse (torch's ``forward`` text)."""
    if what not in ("method", "property", "attribute") or not lines:
        return
    function = getattr(obj, "fget", obj)
    function = getattr(function, "__func__", function)
    if getattr(function, "__doc__", None) and getattr(function, "__module__", "").startswith(ROOT):
        return  # its own docstring
    module = sys.modules.get(getattr(function, "__module__", "") or "")
    if module is None or not getattr(function, "__module__", "").startswith(ROOT):
        lines.clear()


def setup(app: Any) -> dict[str, Any]:
    app.connect("builder-inited", _on_builder_inited)
    app.connect("autodoc-process-docstring", _drop_foreign_docstrings)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
