"""Limits on the counts a command accepts: an absurd count is refused with the limit, not run until
the disk or the memory is full."""

from __future__ import annotations

from .errors import UsageError

__all__ = ["MAX_BATCH", "MAX_DRAWS", "MAX_EPOCHS", "MAX_SAMPLES", "MAX_SEED", "MAX_SIMULATIONS", "MAX_WORKERS",
           "check_range"]

#: simulations in one store (a store of 10^9 rows of 20 float32 values is 80 GB)
MAX_SIMULATIONS = 10**9
#: rows per simulator call or training step
MAX_BATCH = 10**6
#: simulation processes
MAX_WORKERS = 256
#: seeds are 63-bit non-negative integers
MAX_SEED = 2**63 - 1
#: posterior samples per observation (innverse sample), per data set (innverse check)
MAX_SAMPLES = 10**7
#: posterior draws in one command: samples x observations, or check's data sets x samples
MAX_DRAWS = 10**8
#: training epochs, patience
MAX_EPOCHS = 10**6


def check_range(name: str, value: int, low: int, high: int) -> int:
    """``value`` if ``low <= value <= high``; else a :class:`UsageError` naming ``name`` and the range."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise UsageError(f"{name} must be an integer between {low:,} and {high:,}, got {value!r}")
    return value
