r"""Out-of-distribution scores for any density model: a flow, an IB-INN, or anything with ``log_prob(x)``.

Every score is larger for more unusual inputs. Per input: the negative log-likelihood, the
IB-INN's per-class likelihoods, WAIC over an ensemble and the likelihood ratio against a
background model, and the likelihood corrected by the input's complexity; the one- and two-tailed likelihood tests and the typicality test for
batches live in :mod:`innverse.classify.likelihood_tests`.
"""

from __future__ import annotations

import io
import math
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ._inputs import as_inputs, batched_log_prob, model_dtype

__all__ = ["CODECS", "class_likelihood_score", "input_complexity", "input_complexity_score", "likelihood_ratio_score",
           "negative_log_likelihood", "waic", "waic_score"]

#: The lossless codecs :func:`input_complexity` measures with.
CODECS = ("png", "zlib", "order0")


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


def _png_bytes(img: np.ndarray) -> int:
    from PIL import Image  # Pillow: installed with matplotlib

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", optimize=True)
    return len(buf.getvalue())


def input_complexity(x: Any, codec: str = "png", levels: int = 256) -> Tensor:
    r"""The length in bits of each input under a generic lossless compressor, ``(N,)`` float64.

    ``x``: quantised inputs, whole numbers in ``0 .. levels - 1`` (``levels <= 256``), one per row.
    Codecs: ``"png"`` (images ``(N, H, W)``, ``(N, 1, H, W)`` or ``(N, 3, H, W)``, Pillow's PNG
    encoder at its best compression), ``"zlib"`` (the row's bytes, level 9; any shape) and
    ``"order0"`` (the empirical entropy of the row's values, :math:`-\sum_v c_v \log_2(c_v / n)`,
    plus :math:`\log_2 \mathrm{levels}` bits per distinct value to describe the histogram; any
    shape). The container overhead of PNG and zlib is a constant, so it cancels in rankings.

    Raises:
        ValueError: an unknown codec, values that are not whole numbers in ``0 .. levels - 1``, a
            shape the PNG codec cannot encode.
    """
    owner = "input_complexity"
    if codec not in CODECS:
        raise ValueError(f"{owner}: codec must be one of {CODECS}, got {codec!r}")
    if isinstance(levels, bool) or not isinstance(levels, int) or not 2 <= levels <= 256:
        raise ValueError(f"{owner}: levels must be an int in 2..256, got {levels!r}")
    t = as_inputs(owner, x, dtype=torch.float64)
    if bool((t != t.round()).any()) or float(t.min()) < 0 or float(t.max()) > levels - 1:
        raise ValueError(f"{owner}: expects quantised inputs, whole numbers in 0..{levels - 1}, got values in "
                         f"[{float(t.min()):.4g}, {float(t.max()):.4g}]" + (
                             "" if bool((t == t.round()).all()) else " that are not whole numbers"))
    arr = t.numpy().astype(np.uint8)
    if codec == "png":
        if arr.ndim == 4 and arr.shape[1] in (1, 3):
            arr = arr[:, 0] if arr.shape[1] == 1 else arr.transpose(0, 2, 3, 1)
        elif arr.ndim != 3:
            raise ValueError(f"{owner}: the png codec needs images (N, H, W), (N, 1, H, W) or (N, 3, H, W), got shape "
                             f"{tuple(t.shape)}")
        bits = [8 * _png_bytes(np.ascontiguousarray(img)) for img in arr]
    elif codec == "zlib":
        bits = [8 * len(zlib.compress(row.tobytes(), 9)) for row in arr.reshape(arr.shape[0], -1)]
    else:
        rows = arr.reshape(arr.shape[0], -1)
        bits = []
        for row in rows:
            counts = np.bincount(row, minlength=levels)
            c = counts[counts > 0]
            bits.append(float(-(c * np.log2(c / row.size)).sum()) + c.size * math.log2(levels))
    return torch.tensor(bits, dtype=torch.float64)


def input_complexity_score(model: Any, x: Any, codec: str = "png", levels: int = 256,
                           dequantized: Any = None) -> Tensor:
    r"""The likelihood corrected by the input's complexity, ``(N,)``: bits under the model minus bits under a compressor.

    .. math::
        s(x) = -\log_2 p(x) - L(x)

    with :math:`L(x)` the code length of :func:`input_complexity`. Simple inputs (constant,
    low-contrast, smooth) compress well *and* get a high likelihood from any density model; the
    difference removes that shared part, so an input scores high when the model explains it
    worse than a generic compressor does, relative to the training data. Fixes the likelihood's
    known failure on low-complexity inputs without training a second model.

    Args:
        model: anything with ``log_prob`` (natural log), evaluated on ``x``, or on ``dequantized``
            when given (e.g. ``x + u`` with uniform noise for a model trained on dequantised data,
            or a wrapper averaging several draws).
        x: the quantised inputs (whole numbers in ``0 .. levels - 1``) the compressor measures.
        dequantized: ``None`` (``log_prob(x)``) or what to hand to ``log_prob`` instead.

    References:
        Serrà et al. "Input Complexity and Out-of-distribution Detection with Likelihood-based
        Generative Models". ICLR 2020.
    """
    bits = input_complexity(x, codec, levels)
    own = batched_log_prob("input_complexity_score", model, x if dequantized is None else dequantized).double()
    if own.shape != bits.shape:
        raise ValueError(f"input_complexity_score: the model returned {tuple(own.shape)} log-likelihoods for "
                         f"{bits.shape[0]} inputs")
    return -own / math.log(2) - bits
