"""What the command line prints: progress and notes on stderr, results on stdout, or one JSON object.

* default: notes and progress bars on stderr, the result (e.g. where the report is) on stdout;
* ``--quiet``: no notes or progress bars; the result line still goes to stdout;
* ``--json``: stdout carries exactly one JSON object (the result, with the warnings under
  ``"warnings"``, or ``{"ok": false, "error": ..., "exit_code": ...}``), so scripts can parse it;
  nothing else is printed there.

An error is always one line (on stderr, and in the JSON object under ``--json``).
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

__all__ = ["Console", "one_line"]


def one_line(message: str) -> str:
    """``message`` on one line (line breaks of a multi-line library message become spaces)."""
    return re.sub(r"\s*\n\s*", " ", str(message)).strip()


class Console:
    """Output policy of one command invocation."""

    def __init__(self, quiet: bool = False, json_mode: bool = False,
                 out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.quiet = quiet
        self.json_mode = json_mode
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self._t0 = time.perf_counter()
        self.warnings: list[str] = []

    @property
    def show_progress(self) -> bool:
        return not (self.quiet or self.json_mode)

    def note(self, message: str) -> None:
        """A progress note (stderr), hidden by ``--quiet`` and ``--json``."""
        if self.show_progress:
            print(f"[{time.perf_counter() - self._t0:6.1f}s] {message}", file=self.err, flush=True)

    def warn(self, message: str) -> None:
        """A warning (stderr), shown unless ``--json``; in JSON mode it is part of the result."""
        self.warnings.append(one_line(message))
        if not self.json_mode:
            print(f"warning: {message}", file=self.err, flush=True)

    def result(self, data: dict[str, Any], human: str) -> None:
        """The command's result: ``human`` text, or ``data`` as JSON with ``--json``."""
        if self.json_mode:
            extra = {"warnings": self.warnings} if self.warnings else {}
            print(json.dumps({"ok": True, **data, **extra}, default=str), file=self.out, flush=True)
        elif human:
            print(human, file=self.out, flush=True)

    def error(self, command: str, message: str, code: int) -> None:
        """A failure: one line on stderr (``innverse COMMAND: error: ...``), and the JSON object under ``--json``."""
        message = one_line(message)
        if self.json_mode:
            print(json.dumps({"ok": False, "error": message, "exit_code": code}), file=self.out, flush=True)
        prog = f"innverse {command}" if command else "innverse"
        print(f"{prog}: error: {message}", file=self.err, flush=True)

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        """Time a pipeline step and note its start and end."""
        self.note(f"{title} ...")
        t = time.perf_counter()
        yield
        self.note(f"{title}: done in {time.perf_counter() - t:.1f}s")
