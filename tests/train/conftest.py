"""One torch thread for these tests: small models run faster, and timings do not depend on the load."""

from __future__ import annotations

from ..helpers import one_thread  # noqa: F401  (an autouse fixture: one torch thread per test)
