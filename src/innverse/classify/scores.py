r"""Out-of-distribution scores for any density model: a flow, an IB-INN, or anything with ``log_prob(x)``.

Every score is larger for more unusual inputs. Per input: the negative log-likelihood, the
IB-INN's per-class likelihoods, WAIC over an ensemble and the likelihood ratio against a
background model; the one- and two-tailed likelihood tests and the typicality test for
batches live in :mod:`innverse.classify.likelihood_tests`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ._inputs import as_inputs, batched_log_prob, model_dtype

__all__ = ["class_likelihood_score", "likelihood_ratio_score", "negative_log_likelihood", "waic", "waic_score"]


def negative_log_likelihood(model: Any, x: Any, batch_size: int = 4096) -> Tensor:
    r""":math:`-\log p(x)` per input, ``(N,)``: the plain likelihood score (larger = less likely).

    Known failure: deep density models can give some out-of-distribution inputs — simple,
    low-complexity ones such as constant images — a *higher* likelihood than their training
    data (Nalisnick et al. 2019; Choi et al. 2018).
    """
    return -batched_log_prob("negative_log_likelihood", model, x, batch_size)


def class_likelihood_score(model: Any, x: Any) -> Tensor:
    r"""The IB-INN's per-class likelihood score :math:`-\max_k \log p(x \mid k)`, ``(N,)``.

    Small when the input is likely under at least one class, large when it is unlike every
    class. ``model``: an :class:`~innverse.classify.IBINNClassifier` or a
    :class:`~innverse.classify.LatentMixtureINN` (anything with ``class_log_likelihood(x) -> (N, K)``).
    """
    if not hasattr(model, "class_log_likelihood"):
        raise TypeError(f"class_likelihood_score: expected a latent-mixture model with class_log_likelihood(x), got "
                        f"{type(model).__name__}")
    fn = model.class_log_likelihood
    with torch.no_grad():
        if isinstance(model, torch.nn.Module):
            t = as_inputs("class_likelihood_score", x, dtype=model_dtype(model))
            ll = torch.cat([fn(t[i:i + 4096]) for i in range(0, t.shape[0], 4096)])
        else:
            ll = fn(x)
    return -ll.max(1).values


def waic(models: Sequence[Any], x: Any) -> Tensor:
    r"""The widely applicable information criterion per input over an ensemble, ``(N,)``.

    .. math::
        \mathrm{WAIC}(x) = \mathbb E_m[\log p_m(x)] - \mathrm{Var}_m[\log p_m(x)]

    over the ensemble members :math:`m = 1..M` (independently trained models; the variance is
    the population variance over members, as in Choi et al.). High WAIC: likely under all members
    and they agree.

    References:
        Choi, Jang, Alemi. "WAIC, but Why? Generative Ensembles for Robust Anomaly Detection". 2018;
        Adler et al. "Out of Distribution Detection for Intra-operative Functional Imaging". UNSURE 2019.
    """
    if isinstance(models, (str, bytes)) or not isinstance(models, Sequence) or len(models) < 2:
        raise ValueError(f"waic: needs a sequence of at least 2 ensemble members, got {type(models).__name__}"
                         f"{f' of length {len(models)}' if isinstance(models, Sequence) else ''}")
    ll = torch.stack([batched_log_prob("waic", m, x).double() for m in models])  # (M, N)
    return ll.mean(0) - ll.var(0, unbiased=False)


def waic_score(models: Sequence[Any], x: Any) -> Tensor:
    r"""The WAIC OOD score :math:`-\mathrm{WAIC}(x)`, ``(N,)`` (see :func:`waic`)."""
    return -waic(models, x)


def likelihood_ratio_score(model: Any, background: Any, x: Any) -> Tensor:
    r"""Negative log-likelihood ratio against a background model, ``(N,)``.

    .. math::
        s(x) = -\big(\log p_\theta(x) - \log p_{\theta_0}(x)\big)

    where :math:`p_{\theta_0}` was trained on perturbed inputs (:class:`~innverse.classify.Perturbation`,
    with :func:`~innverse.classify.fit_density`), so it captures the background statistics
    that inflate the likelihood of simple inputs, and the ratio keeps the semantic part.

    References:
        Ren et al. "Likelihood Ratios for Out-of-Distribution Detection". NeurIPS 2019.
    """
    own = batched_log_prob("likelihood_ratio_score", model, x).double()
    return -(own - batched_log_prob("likelihood_ratio_score", background, x).double())
