"""Render ``:math:`` and ``.. math::`` as MathML at build time (no JavaScript, no network).

Every browser of the last years renders MathML Core natively, so the pages need no MathJax
download and work offline and from ``file://``. A formula latex2mathml cannot convert is a build
warning (an error under ``-W``) that names the document and line, instead of raw TeX on the page.
"""

from __future__ import annotations

import re
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)

_BLANK_LINES = re.compile(r"\n\s*\n")


def _convert(latex: str, display: str, node: nodes.Element) -> str:
    from latex2mathml.converter import convert

    try:
        return convert(latex.strip(), display=display)
    except Exception as err:  # latex2mathml raises many exception types for bad TeX
        logger.warning("cannot render the formula %r as MathML: %s: %s", latex, type(err).__name__, err,
                       location=node, type="mathml")
        return f"<code>{latex}</code>"


def visit_math(self: Any, node: nodes.Element) -> None:
    self.body.append(_convert(node.astext(), "inline", node))
    raise nodes.SkipNode


def visit_displaymath(self: Any, node: nodes.Element) -> None:
    latex = node.astext()
    parts = [latex] if node.get("nowrap") else [p for p in _BLANK_LINES.split(latex) if p.strip()]
    html = "".join(_convert(part, "block", node) for part in parts)
    number = ""
    if node.get("number"):
        number = f'<span class="eqno">({node["number"]})</span>'
    ident = f' id="{node["ids"][0]}"' if node.get("ids") else ""
    self.body.append(f'<div class="math mathml"{ident}>{number}{html}</div>\n')
    raise nodes.SkipNode


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_html_math_renderer("mathml", (visit_math, None), (visit_displaymath, None))
    return {"parallel_read_safe": True, "parallel_write_safe": True}
