"""Self-contained HTML reports of runs (figures embedded, no external resources)."""

from .build import build_report, verdicts_from_diagnostics
from .figures import figure_to_data_uri, file_to_data_uri
from .page import Code, Figure, Section, Table, Text, Verdict, render_page
from .run import RunLayout

__all__ = ["Code", "Figure", "RunLayout", "Section", "Table", "Text", "Verdict", "build_report",
           "figure_to_data_uri", "file_to_data_uri", "render_page", "verdicts_from_diagnostics"]
