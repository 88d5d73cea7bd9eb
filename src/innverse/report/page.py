"""A self-contained static HTML page: inline CSS, figures as data URIs, no scripts, no web fonts.

The page is a list of :class:`Section` objects, each a list of blocks (:class:`Figure`,
:class:`Table`, :class:`Text`, :class:`Code`), under a header with a verdict summary table.
Everything the page needs is inside the one file, so it opens offline, from disk, years later.

References:
    HTML Living Standard, ``data:`` URLs (RFC 2397).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Code", "Figure", "Pass", "Section", "Table", "Text", "Verdict", "render_page"]


@dataclass(frozen=True)
class Verdict:
    """One row of the summary table: a check, whether it passed, and the number behind it."""

    check: str
    passed: bool | None  # None = not run / not applicable
    detail: str = ""
    anchor: str = ""


@dataclass(frozen=True)
class Figure:
    """An embedded image: ``src`` is a ``data:image/...;base64,`` URI."""

    src: str
    caption: str
    alt: str = ""
    wide: bool = False  # span the full width of a figure grid (e.g. a row of several panels)


@dataclass(frozen=True)
class Pass:
    """A table cell shown as a PASS / FAIL / N/A badge (plain booleans show as yes / no)."""

    passed: bool | None


@dataclass(frozen=True)
class Table:
    """A table: header cells, rows of cells (booleans as yes / no, ``Pass`` as a badge) and a caption."""

    headers: list[str]
    rows: list[list[Any]]
    caption: str = ""


@dataclass(frozen=True)
class Text:
    """A paragraph; ``kind`` is ``"plain"``, ``"warn"`` or ``"ok"`` (styled as a call-out)."""

    text: str
    kind: str = "plain"


@dataclass(frozen=True)
class Code:
    """A preformatted block (a config file, a log excerpt) with an optional caption."""

    text: str
    caption: str = ""


@dataclass
class Section:
    """One section of a report page: its title, the anchor it is linked by, and its blocks."""

    title: str
    anchor: str
    blocks: list[Figure | Table | Text | Code] = field(default_factory=list)
    intro: str = ""


CSS = """
:root{--fg:#1d2330;--muted:#5b6475;--line:#e3e6ec;--bg:#f6f7f9;--card:#fff;--accent:#2f5fb3;
--ok:#1a7f4b;--okbg:#e5f5ec;--bad:#b42318;--badbg:#fdecea;--na:#6b7280;--nabg:#eef0f3}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.5 system-ui,-apple-system,"Segoe UI",
Roboto,"Helvetica Neue",Arial,sans-serif}
header{background:#1f2a44;color:#fff;padding:28px 0 22px}
.wrap{max-width:1120px;margin:0 auto;padding:0 28px}
header h1{margin:0 0 4px;font-size:26px;font-weight:650;letter-spacing:-.01em}
header p{margin:0;color:#c9d2e6}
nav{background:#fff;border-bottom:1px solid var(--line);position:sticky;top:0;z-index:2}
nav a{display:inline-block;padding:10px 12px;color:var(--muted);text-decoration:none;font-size:14px}
nav a:hover{color:var(--accent)}
main{padding:24px 0 48px}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:20px 24px;
margin:0 0 22px}
h2{margin:0 0 12px;font-size:20px;font-weight:650}
h3{margin:18px 0 8px;font-size:16px}
.intro{color:var(--muted);margin:-4px 0 14px}
table{border-collapse:collapse;width:100%;margin:6px 0 14px;font-size:14px}
th,td{text-align:left;padding:7px 10px;border-bottom:1px solid var(--line);vertical-align:top}
th{background:#f0f2f6;font-weight:600;color:#39404f}
td.num,th.num{font-variant-numeric:tabular-nums;text-align:right}
caption{caption-side:bottom;text-align:left;color:var(--muted);font-size:13px;padding-top:6px}
.badge{display:inline-block;min-width:52px;text-align:center;padding:2px 9px;border-radius:999px;
font-weight:650;font-size:12px;letter-spacing:.04em}
.pass{color:var(--ok);background:var(--okbg)}.fail{color:var(--bad);background:var(--badbg)}
.na{color:var(--na);background:var(--nabg)}
.summary{display:flex;gap:14px;flex-wrap:wrap;margin:0 0 16px}
.stat{flex:1 1 150px;border:1px solid var(--line);border-radius:8px;padding:10px 14px;background:#fafbfc}
.stat b{display:block;font-size:22px}.stat span{color:var(--muted);font-size:13px}
figure{margin:10px 0 18px;text-align:center}
figure img{max-width:100%;height:auto;border:1px solid var(--line);border-radius:6px;background:#fff}
figcaption{color:var(--muted);font-size:13px;margin-top:6px}
.grid figure.wide{grid-column:1/-1}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:8px 18px}
.callout{border-left:4px solid var(--accent);background:#eef3fb;padding:9px 14px;border-radius:4px;margin:8px 0}
.callout.warn{border-color:var(--bad);background:var(--badbg)}.callout.ok{border-color:var(--ok);background:var(--okbg)}
pre{background:#f3f4f7;border:1px solid var(--line);border-radius:6px;padding:12px;overflow:auto;font-size:13px;
font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace}
td a{color:var(--fg);text-decoration:none;border-bottom:1px dotted var(--muted)}
footer{color:var(--muted);font-size:13px;text-align:center;padding:0 0 30px}
@media print{nav{display:none}section{break-inside:avoid}}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def badge(passed: bool | None) -> str:
    """A PASS / FAIL / n/a badge."""
    if passed is None:
        return '<span class="badge na">N/A</span>'
    return '<span class="badge pass">PASS</span>' if passed else '<span class="badge fail">FAIL</span>'


def _is_num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _cell(value: Any, numeric: bool) -> str:
    cls = ' class="num"' if numeric else ""
    if isinstance(value, Pass):
        return f"<td>{badge(value.passed)}</td>"
    if isinstance(value, bool):
        return f"<td>{'yes' if value else 'no'}</td>"
    if value is None:
        return f"<td{cls}>-</td>"
    if isinstance(value, float):
        text = f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"
        return f"<td{cls}>{text}</td>"
    return f"<td{cls}>{_e(value)}</td>"


def _table(t: Table) -> str:
    # a column is right-aligned (header included) only when every entry in it is a number
    numeric = [bool(t.rows) and all(i < len(r) and (_is_num(r[i]) or r[i] is None) for r in t.rows)
               and any(i < len(r) and _is_num(r[i]) for r in t.rows) for i in range(len(t.headers))]
    num = ' class="num"'
    head = "".join(f"<th{num if n else ''}>{_e(h)}</th>" for h, n in zip(t.headers, numeric))
    body = "".join("<tr>" + "".join(_cell(v, i < len(numeric) and numeric[i]) for i, v in enumerate(row))
                   + "</tr>" for row in t.rows)
    cap = f"<caption>{_e(t.caption)}</caption>" if t.caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _block(b: Figure | Table | Text | Code) -> str:
    if isinstance(b, Figure):
        if not b.src.startswith("data:image/"):
            raise ValueError(f"report: figure {b.caption!r} must be embedded as a data URI, got "
                             f"{b.src[:40]!r}")
        wide = ' class="wide"' if b.wide else ""
        return (f'<figure{wide}><img src="{b.src}" alt="{_e(b.alt or b.caption)}">'
                f"<figcaption>{_e(b.caption)}</figcaption></figure>")
    if isinstance(b, Table):
        return _table(b)
    if isinstance(b, Code):
        cap = f"<h3>{_e(b.caption)}</h3>" if b.caption else ""
        return f"{cap}<pre>{_e(b.text)}</pre>"
    if isinstance(b, Text):
        if b.kind == "plain":
            return f"<p>{_e(b.text)}</p>"
        return f'<div class="callout {_e(b.kind)}">{_e(b.text)}</div>'
    raise TypeError(f"report: unknown block type {type(b).__name__}")


def _section(s: Section) -> str:
    figures = [b for b in s.blocks if isinstance(b, Figure)]
    parts, grid = [], []
    for b in s.blocks:
        if isinstance(b, Figure) and len(figures) > 1:
            grid.append(_block(b))
            continue
        if grid:
            parts.append('<div class="grid">' + "".join(grid) + "</div>")
            grid = []
        parts.append(_block(b))
    if grid:
        parts.append('<div class="grid">' + "".join(grid) + "</div>")
    intro = f'<p class="intro">{_e(s.intro)}</p>' if s.intro else ""
    return f'<section id="{_e(s.anchor)}"><h2>{_e(s.title)}</h2>{intro}{"".join(parts)}</section>'


def render_page(title: str, subtitle: str, verdicts: list[Verdict], stats: list[tuple[str, str]],
                sections: list[Section], footer: str = "") -> str:
    """The whole report as one HTML string.

    Args:
        title: page heading.
        subtitle: one line under the heading (task, date).
        verdicts: rows of the pass/fail summary table at the top.
        stats: headline numbers shown as tiles, ``(value, label)``.
        sections: the body, in order; each gets an entry in the navigation bar.
        footer: small print at the bottom.
    """
    nav = "".join(f'<a href="#{_e(s.anchor)}">{_e(s.title)}</a>' for s in sections)
    def check(v: Verdict) -> str:
        return f'<a href="#{_e(v.anchor)}">{_e(v.check)}</a>' if v.anchor else _e(v.check)

    rows = "".join(f"<tr><td>{check(v)}</td><td>{badge(v.passed)}</td><td>{_e(v.detail)}</td></tr>"
                   for v in verdicts)
    n_fail = sum(v.passed is False for v in verdicts)
    n_pass = sum(v.passed is True for v in verdicts)
    overall = (Text(f"All {n_pass} checks passed.", "ok") if verdicts and not n_fail else
               Text(f"{n_fail} of {n_pass + n_fail} checks failed: read the sections below before "
                    "trusting this posterior.", "warn") if n_fail else
               Text("No diagnostics have been run yet (innverse check RUN)."))
    tiles = "".join(f'<div class="stat"><b>{_e(v)}</b><span>{_e(k)}</span></div>' for v, k in stats)
    summary = (f'<section id="summary"><h2>Summary</h2><div class="summary">{tiles}</div>{_block(overall)}'
               f"<table><thead><tr><th>Check</th><th>Verdict</th><th>Detail</th></tr></thead>"
               f"<tbody>{rows}</tbody></table></section>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
        f'<header><div class="wrap"><h1>{_e(title)}</h1><p>{_e(subtitle)}</p></div></header>'
        f'<nav><div class="wrap"><a href="#summary">Summary</a>{nav}</div></nav>'
        f'<main><div class="wrap">{summary}{"".join(_section(s) for s in sections)}</div></main>'
        f'<footer>{_e(footer)}</footer></body></html>\n'
    )
