"""The ``innverse`` command: argument parsing, dispatch, and exit codes.

Exit codes: 0 success; 1 the job failed (e.g. training diverged, a store busy with another
writer); 2 bad usage or input (unknown task, malformed config, wrong observation shape, simulator
that does not import); 130 interrupted (Ctrl-C), 143 terminated (SIGTERM). Every failure is one
line on stderr, and under ``--json`` also a JSON object on stdout; no traceback, unless
``INNVERSE_DEBUG=1`` asks for one.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

from .console import Console
from .errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, JobError, Terminated, UsageError

__all__ = ["build_parser", "main"]

DESCRIPTION = """\
innverse: from a simulator to a calibrated posterior, without writing a training loop.

  innverse demo                      the whole pipeline on a built-in task, with an HTML report
  innverse simulate --task two_moons -n 10000 --out sims.h5
  innverse fit config.toml           train a posterior estimator (innverse fit --example-config)
  innverse sample RUN --obs obs.npy  posterior samples for your observations
  innverse check RUN                 calibration / coverage / recovery diagnostics
  innverse report RUN                (re)build RUN/report.html

Exit codes: 0 ok, 1 the job failed, 2 bad usage or input.
"""


class _BadArguments(Exception):
    """argparse found bad arguments (raised instead of exiting, so ``--json`` can answer too)."""

    def __init__(self, prog: str, usage: str, message: str) -> None:
        super().__init__(message)
        self.prog, self.usage, self.message = prog, usage, message


class _Parser(argparse.ArgumentParser):
    """argparse whose errors become :class:`_BadArguments` (exit code 2, also as JSON under ``--json``)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise _BadArguments(self.prog, self.format_usage(), message)


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bars or notes")
    g.add_argument("--json", action="store_true", help="print one JSON object with the result on stdout")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: $INNVERSE_THREADS, else 1: the networks are "
                        "small, and one thread per process is fastest when cores are shared)")


def build_parser() -> argparse.ArgumentParser:
    """The parser of the ``innverse`` command: one sub-command per entry of ``innverse.cli.commands.COMMANDS``."""
    from .commands import COMMANDS

    parser = _Parser(prog="innverse", description=DESCRIPTION,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"innverse {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, module in COMMANDS.items():
        p = sub.add_parser(name, help=module.HELP, description=module.DESCRIPTION,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        _common(p)
        p.set_defaults(_run=module.run, _interrupted=getattr(module, "INTERRUPTED", "rerun the command"))
    return parser


def _set_threads(threads: int | None) -> None:
    """The command is the application, so it (not the library) decides torch's thread count."""
    if threads is None:
        env = os.environ.get("INNVERSE_THREADS", "1")
        try:
            threads = int(env)
        except ValueError as err:
            raise UsageError(f"INNVERSE_THREADS must be an integer, got {env!r}") from err
    if not 1 <= threads <= 1024:
        raise UsageError(f"--threads must be between 1 and 1024, got {threads}")
    import torch

    torch.set_num_threads(threads)


def _failure(err: Exception) -> tuple[int, str]:
    """Exit code and one-line message for an error the commands did not classify."""
    from ..amortized.store_lock import StoreBusyError

    if isinstance(err, StoreBusyError):
        return EXIT_FAILURE, str(err)
    if isinstance(err, MemoryError):
        return EXIT_FAILURE, "out of memory; use smaller counts (simulations, samples, batch size)"
    if isinstance(err, OSError | RuntimeError | ValueError | TypeError):  # the library's documented errors
        return EXIT_FAILURE, f"{type(err).__name__}: {err}"
    return EXIT_FAILURE, (f"internal error, {type(err).__name__}: {err} (please report it; "
                          "INNVERSE_DEBUG=1 shows the traceback)")


def _trap_sigterm() -> Any:
    """Turn SIGTERM into :class:`Terminated` while the command runs (so workers and files are cleaned
    up as on Ctrl-C); returns the previous handler (``None`` off the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
        raise Terminated(signum)

    return signal.signal(signal.SIGTERM, handler)


@contextlib.contextmanager
def _warnings_to(console: Console) -> Iterator[None]:
    """The library's warnings (e.g. a posterior that did not beat the prior) go to the console: one line
    on stderr, and the ``warnings`` list of the ``--json`` result."""
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = lambda message, *args, **kwargs: console.warn(str(message))
        yield


def _parse(argv: list[str]) -> argparse.Namespace | int:
    """The parsed arguments, or the exit code after reporting bad arguments."""
    try:
        return build_parser().parse_args(argv)
    except _BadArguments as err:
        sys.stderr.write(err.usage)
        Console(json_mode="--json" in argv).error(err.prog.removeprefix("innverse").strip(), err.message,
                                                  EXIT_USAGE)
        return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parse(argv)
    if isinstance(args, int):
        return args
    if args.command is None:
        build_parser().print_help()
        return EXIT_USAGE
    console = Console(quiet=args.quiet, json_mode=args.json)
    previous = _trap_sigterm()
    try:
        _set_threads(args.threads)
        with _warnings_to(console):
            args._run(args, console)
    except UsageError as err:
        return _report(console, args.command, str(err), EXIT_USAGE)
    except JobError as err:
        return _report(console, args.command, str(err), EXIT_FAILURE)
    except KeyboardInterrupt:
        return _report(console, args.command, f"interrupted (Ctrl-C); {args._interrupted}", 130)
    except Terminated as err:
        return _report(console, args.command, f"terminated (SIGTERM); {args._interrupted}", 128 + err.signum)
    except Exception as err:  # every failure becomes an exit code and one line
        code, message = _failure(err)
        return _report(console, args.command, message, code)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return EXIT_OK


def _report(console: Console, command: str, message: str, code: int) -> int:
    if os.environ.get("INNVERSE_DEBUG"):
        import traceback

        traceback.print_exc(file=sys.stderr)
    console.error(command, message, code)
    return code
