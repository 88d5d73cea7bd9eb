"""The ``innverse`` command line (console script ``innverse = innverse.cli:main``)."""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
