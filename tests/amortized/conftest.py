"""One torch thread for these tests: small models run faster, and timings do not depend on the load."""

from __future__ import annotations

import pytest

from ..helpers import one_thread  # noqa: F401  (an autouse fixture: one torch thread per test)


def pytest_collection_modifyitems(config, items):
    """Skip tests marked ``slow`` (covered by ``benchmarks/sbi_c2st.py``) unless selected with ``-m``."""
    if config.getoption("markexpr", ""):
        return
    here = __file__.rsplit("/", 1)[0]
    skip = pytest.mark.skip(reason="slow: run with -m slow (covered by benchmarks/sbi_c2st.py)")
    for item in items:
        if "slow" in item.keywords and str(item.fspath).startswith(here):
            item.add_marker(skip)
