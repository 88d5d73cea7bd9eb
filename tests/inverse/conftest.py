"""Run the inverse-problem tests single-threaded.

The models here are tiny: with several intra-op threads on a busy 2-core machine the threads
spin-wait on each other and training runs several times slower than on one thread.
"""


from ..helpers import one_thread  # noqa: F401  (an autouse fixture: one torch thread per test)
