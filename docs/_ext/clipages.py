"""One page per command of the ``innverse`` command line, generated from its argument parser.

The commands are read from the parser itself (``innverse.cli.build_parser``), so a new command
gets its page, and a new option its line, without editing the docs. Pages go to ``docs/cli/``
next to the hand-written ``index.rst`` and are not committed.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def commands() -> dict[str, tuple[str, argparse.ArgumentParser]]:
    """Command name -> (one-line help, sub-parser), in the order ``innverse --help`` lists them."""
    from innverse.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {action.dest: action.help or "" for action in sub._choices_actions}
    return {name: (helps.get(name, ""), p) for name, p in sub.choices.items()}


def command_page(name: str, help_line: str, parser: argparse.ArgumentParser) -> str:
    title = f"``innverse {name}``"
    help_line = help_line[:1].upper() + help_line[1:] + ("." if help_line and not help_line.endswith(".") else "")
    return "\n".join([
        f".. _cli-{name}:", "", title, "=" * len(title), "", help_line, "",
        ".. argparse::", "   :module: innverse.cli", "   :func: build_parser", "   :prog: innverse",
        f"   :path: {name}", "   :nodescription:", "", "Description", "-----------", "",
        "::", "", *("   " + line for line in (parser.description or "").rstrip().splitlines()), "",
    ])


def generate(outdir: Path) -> list[str]:
    """Write ``outdir/<command>.rst`` for every command; return the command names."""
    from apigen import write_if_changed

    found = commands()
    for name, (help_line, parser) in found.items():
        write_if_changed(outdir / f"{name}.rst", command_page(name, help_line, parser))
    for stale in outdir.glob("*.rst"):
        if stale.stem not in found and stale.stem != "index":
            stale.unlink()
    return list(found)


def _on_builder_inited(app: Any) -> None:
    generate(Path(app.srcdir) / "cli")


def setup(app: Any) -> dict[str, Any]:
    app.connect("builder-inited", _on_builder_inited)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
