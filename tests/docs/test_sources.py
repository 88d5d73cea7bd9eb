"""The documentation's sources, without building the site (a few seconds).

* every command of the ``innverse`` command line gets its page, and a page for a command that no
  longer exists is removed;
* every tutorial and gallery script is one sphinx-gallery executes, has a title, and honours the
  reduced budget of the CI build;
* every capability package of innverse has a tutorial, or is named below as infrastructure (shown
  through the others) or as pending (its tutorial is written when its capability lands).
"""

from __future__ import annotations

import ast
import pkgutil
import re
import sys
from pathlib import Path

import innverse
from innverse.cli.commands import COMMANDS

DOCS = Path(__file__).resolve().parents[2] / "docs"
sys.path.insert(0, str(DOCS / "_ext"))

import clipages  # noqa: E402

# building blocks every tutorial uses; their reference pages and the concept pages show them
INFRASTRUCTURE = {"core", "blocks", "nets", "io", "train", "report", "tasks", "cli"}
# capabilities whose tutorial is still to be written (their runnable examples are in examples/)
PENDING: dict[str, str] = {}


def scripts(folder: str) -> list[Path]:
    return sorted((DOCS / folder).glob("[0-9][0-9]_*.py"))


def gallery_conf() -> dict:
    """``sphinx_gallery_conf`` of ``docs/conf.py``, read without executing the configuration."""
    tree = ast.parse((DOCS / "conf.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "sphinx_gallery_conf":
            keys = [ast.literal_eval(k) for k in node.value.keys]
            return {k: ast.literal_eval(v) for k, v in zip(keys, node.value.values)
                    if isinstance(v, ast.Constant | ast.Tuple | ast.List)}
    raise AssertionError("docs/conf.py defines no sphinx_gallery_conf")


def imported_packages(path: Path) -> set[str]:
    """The innverse subpackages a script imports (``from innverse.x import ...``, ``from innverse import x``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("innverse."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.ImportFrom) and node.module == "innverse":
            found.update(alias.name for alias in node.names)
    return found


def test_every_command_has_a_page_and_stale_pages_go(tmp_path: Path) -> None:
    (tmp_path / "index.rst").write_text("hand-written")
    (tmp_path / "retired.rst").write_text("a command that no longer exists")
    names = clipages.generate(tmp_path)
    assert names == list(COMMANDS), "the pages must follow the commands of innverse.cli.commands.COMMANDS"
    assert {p.stem for p in tmp_path.glob("*.rst")} == set(COMMANDS) | {"index"}
    assert (tmp_path / "index.rst").read_text() == "hand-written"
    for name in COMMANDS:
        page = (tmp_path / f"{name}.rst").read_text()
        assert f"   :path: {name}\n" in page and f"``innverse {name}``" in page
    assert ":glob:" in (DOCS / "cli" / "index.rst").read_text(), "the command index must list every page"


def test_tutorials_and_gallery_scripts_are_executed_titled_and_budgeted() -> None:
    conf = gallery_conf()
    assert conf["examples_dirs"] == ["tutorials", "gallery"]
    tutorials, gallery = scripts("tutorials"), scripts("gallery")
    assert len(tutorials) >= 8 and len(gallery) >= 3, (tutorials, gallery)
    numbers = [p.name[:2] for p in tutorials]
    assert len(set(numbers)) == len(numbers), f"two tutorials share a number: {numbers}"
    for path in tutorials + gallery:
        relative = "/" + str(path.relative_to(DOCS))
        assert re.search(conf["filename_pattern"], relative), f"{relative} would not be executed"
        assert not re.search(conf["ignore_pattern"], relative), f"{relative} would be ignored"
        doc = ast.get_docstring(ast.parse(path.read_text()), clean=False)
        assert doc, f"{path.name} has no docstring (sphinx-gallery takes the page title from it)"
        title, underline = doc.strip().splitlines()[:2]
        assert underline == "=" * len(underline) and len(underline) >= len(title), f"{path.name}: no title"
    for path in tutorials:
        assert 'os.environ.get("INNVERSE_DOCS_FAST") == "1"' in path.read_text(), \
            f"{path.name} ignores the reduced budget of the CI build (INNVERSE_DOCS_FAST)"


def test_every_capability_has_a_tutorial() -> None:
    packages = {m.name for m in pkgutil.iter_modules(innverse.__path__) if m.ispkg}
    covered = set().union(*(imported_packages(p) for p in scripts("tutorials")))
    missing = packages - covered - INFRASTRUCTURE - set(PENDING)
    assert not missing, f"capabilities without a tutorial in docs/tutorials: {sorted(missing)}"
    written = sorted(set(PENDING) & covered)
    assert not written, f"{written} now have a tutorial: remove them from PENDING"
    assert {"amortized", "diagnostics", "inverse", "reversible", "classify", "interop"} <= covered


def test_the_capability_check_sees_imports() -> None:
    sample = DOCS / "tutorials" / "08_pyro_sbi_arviz.py"
    assert {"amortized", "flows", "interop", "diagnostics"} <= imported_packages(sample)
