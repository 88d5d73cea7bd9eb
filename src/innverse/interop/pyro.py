"""What Pyro asks of a distribution beyond ``torch.distributions`` (imported only when Pyro calls it)."""

from __future__ import annotations

from typing import Any

from torch import Tensor
from torch.distributions import Distribution

__all__ = ["score_parts"]


def score_parts(dist: Distribution, value: Tensor, *args: Any, **kwargs: Any) -> Any:
    """The ELBO ingredients Pyro's inference reads from a site's distribution (its ``ScoreParts``).

    As Pyro's own distributions: a reparametrised distribution contributes its log-density as the
    entropy term and no score function; a non-reparametrised one contributes a score function.

    Raises:
        ImportError: Pyro is not installed (only Pyro calls this).
    """
    from pyro.distributions.score_parts import ScoreParts

    log_prob = dist.log_prob(value, *args, **kwargs)
    if dist.has_rsample:
        return ScoreParts(log_prob=log_prob, score_function=0, entropy_term=log_prob)
    return ScoreParts(log_prob=log_prob, score_function=log_prob, entropy_term=0)
