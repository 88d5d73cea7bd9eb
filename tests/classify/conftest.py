"""Run the classifier tests single-threaded (tiny models train faster on one thread of a busy machine)."""

from ..helpers import one_thread  # noqa: F401  (an autouse fixture: one torch thread per test)
