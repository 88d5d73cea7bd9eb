"""The ``innverse`` command: argument parsing, dispatch, and exit codes.

Exit codes: 0 success; 1 the job failed (e.g. training diverged); 2 bad usage or input (unknown
task, malformed config, wrong observation shape, simulator that does not import) — with a message
that says what to fix.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .console import Console
from .errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, JobError, UsageError

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


class _Parser(argparse.ArgumentParser):
    """argparse with exit code 2 and our error prefix (argparse's own default is also 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bars or notes")
    g.add_argument("--json", action="store_true", help="print one JSON object with the result on stdout")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: $INNVERSE_THREADS, else 1: the networks are "
                        "small, and one thread per process is fastest when cores are shared)")


def build_parser() -> argparse.ArgumentParser:
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
        p.set_defaults(_run=module.run)
    return parser


def _set_threads(threads: int | None) -> None:
    """The command is the application, so it (not the library) decides torch's thread count."""
    import os

    if threads is None:
        env = os.environ.get("INNVERSE_THREADS", "1")
        try:
            threads = int(env)
        except ValueError as err:
            raise UsageError(f"INNVERSE_THREADS must be an integer, got {env!r}") from err
    if threads < 1:
        raise UsageError(f"--threads must be at least 1, got {threads}")
    import torch

    torch.set_num_threads(threads)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    console = Console(quiet=args.quiet, json_mode=args.json)
    try:
        _set_threads(args.threads)
        args._run(args, console)
    except UsageError as err:
        console.error(args.command, str(err), EXIT_USAGE)
        return EXIT_USAGE
    except JobError as err:
        console.error(args.command, str(err), EXIT_FAILURE)
        return EXIT_FAILURE
    except (OSError, RuntimeError, ValueError, TypeError) as err:
        # An error inside the library while the job ran: show where, then fail the job.
        import traceback

        if not args.json:
            traceback.print_exc(file=sys.stderr)
        console.error(args.command, f"{type(err).__name__}: {err}", EXIT_FAILURE)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        console.error(args.command, "interrupted; rerun with --resume to continue where it stopped", 130)
        return 130
    return EXIT_OK
