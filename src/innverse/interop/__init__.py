"""Adapters to the libraries this field already uses (Pyro, sbi, ArviZ): the only place that uses them.

None of them is imported by ``import innverse`` or ``import innverse.interop``; each function
imports its library when called (and says what to install when it is missing).

* Pyro: :func:`pyro_flow` (``flow(c)`` as a Pyro distribution that broadcasts under plates),
  :func:`pyro_conditional_transform` (a ``ConditionalTransformModule`` with ``.condition(c)``),
  :func:`score_parts`; for ``AutoNormalizingFlow`` use :class:`innverse.core.TorchTransform`.
* sbi: :func:`from_sbi` (an sbi posterior for :func:`innverse.diagnostics.check`), :func:`to_sbi`
  (an innverse posterior for sbi's ``run_sbc`` / ``run_tarp``).
* ArviZ: :func:`to_inference_data` (also ``Posterior.to_inference_data``).
"""

from .arviz import to_inference_data
from .pyro import pyro_conditional_transform, pyro_flow, score_parts
from .sbi import SBICompatiblePosterior, SBIPosterior, from_sbi, to_sbi

__all__ = ["SBICompatiblePosterior", "SBIPosterior", "from_sbi", "pyro_conditional_transform", "pyro_flow",
           "score_parts", "to_inference_data", "to_sbi"]
