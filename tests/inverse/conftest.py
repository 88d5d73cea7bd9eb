"""Run the inverse-problem tests single-threaded.

The models here are tiny: with several intra-op threads on a busy 2-core machine the threads
spin-wait on each other and training runs several times slower than on one thread.
"""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
