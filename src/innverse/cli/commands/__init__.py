"""One module per subcommand: ``HELP``, ``DESCRIPTION``, ``add_arguments(parser)``, ``run(args, console)``."""

from . import check, demo, fit, report, sample, simulate

#: Command name -> its module (``HELP``, ``DESCRIPTION``, ``add_arguments``, ``run``), in ``innverse --help`` order.
COMMANDS = {"demo": demo, "simulate": simulate, "fit": fit, "sample": sample, "check": check,
            "report": report}

__all__ = ["COMMANDS"]
