"""Errors the command line turns into exit codes: 2 for bad usage or input, 1 for a failed job."""

from __future__ import annotations

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "JobError", "Terminated", "UsageError"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """The user asked for something that cannot work as given (exit code 2); the message says the fix."""


class JobError(Exception):
    """The inputs were fine but the job failed (exit code 1): training diverged, every simulation failed."""


class Terminated(BaseException):
    """The process received SIGTERM (a ``BaseException``, like ``KeyboardInterrupt``, so that no
    ``except Exception`` in a simulator or the library swallows it); exit code ``128 + signal``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
