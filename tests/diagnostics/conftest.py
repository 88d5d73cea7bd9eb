"""Diagnostics tests use tiny tensors: one intra-op thread is as fast, and immune to oversubscription
when other jobs share the machine (two spinning threads on a loaded 2-core box run ~5x slower)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
