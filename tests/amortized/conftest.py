"""One torch thread for these tests: small models run faster, and timings do not depend on the load."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_collection_modifyitems(config, items):
    """Skip tests marked ``slow`` (covered by ``benchmarks/sbi_c2st.py``) unless selected with ``-m``."""
    if config.getoption("markexpr", ""):
        return
    here = __file__.rsplit("/", 1)[0]
    skip = pytest.mark.skip(reason="slow: run with -m slow (covered by benchmarks/sbi_c2st.py)")
    for item in items:
        if "slow" in item.keywords and str(item.fspath).startswith(here):
            item.add_marker(skip)
