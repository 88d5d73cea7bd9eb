"""One module per subcommand: ``HELP``, ``DESCRIPTION``, ``add_arguments(parser)``, ``run(args, console)``."""

from . import check, demo, fit, report, sample, simulate

COMMANDS = {"demo": demo, "simulate": simulate, "fit": fit, "sample": sample, "check": check,
            "report": report}

__all__ = ["COMMANDS"]
