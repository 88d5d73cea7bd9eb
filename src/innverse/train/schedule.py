"""Learning-rate schedules as pure functions of the step (nothing to checkpoint but the step)."""

from __future__ import annotations

import math

__all__ = ["learning_rate"]


def learning_rate(step: int, total: int, lr: float, schedule: str, warmup: float = 0.02,
                  final_fraction: float = 0.0) -> float:
    r"""Learning rate at ``step`` of ``total``.

    * ``constant``: :math:`\eta`.
    * ``cosine``: linear warm-up over ``warmup * total`` steps, then
      :math:`\eta_{\min} + \tfrac12(\eta - \eta_{\min})(1 + \cos(\pi t))` with :math:`t` the
      fraction of the remaining steps done and :math:`\eta_{\min} = \eta\,` ``final_fraction``.
    * ``onecycle``: the same with a 30% warm-up from :math:`\eta / 25`.

    References:
        Loshchilov, Hutter. "SGDR: Stochastic Gradient Descent with Warm Restarts". ICLR 2017.
        Smith, Topin. "Super-Convergence". 2019.
    """
    if schedule == "constant" or total <= 1:
        return lr
    low = lr * final_fraction
    if schedule == "onecycle":
        warm, start = max(1, int(0.3 * total)), lr / 25
    else:
        warm, start = int(warmup * total), 0.0
    if step < warm:
        return start + (lr - start) * (step + 1) / warm
    t = min(1.0, (step - warm) / max(1, total - warm))
    return low + 0.5 * (lr - low) * (1 + math.cos(math.pi * t))
