"""Classifier two-sample test (C2ST): cross-validated accuracy of a classifier telling two samples apart."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ._inputs import paired_samples

__all__ = ["c2st"]


def _standardise(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    # as sbibm/sbi: both samples are scaled with the mean and std of the first (the reference).
    mean = a.mean(0)
    std = a.std(0) if a.shape[0] > 1 else torch.ones_like(mean)
    std = torch.where(std < 1e-14, torch.ones_like(std), std)
    return (a - mean) / std, (b - mean) / std


def _stratified_folds(n0: int, n1: int, folds: int, gen: torch.Generator) -> list[Tensor]:
    """Test indices of each fold; each class is split into ``folds`` near-equal parts."""
    p0 = torch.randperm(n0, generator=gen)
    p1 = torch.randperm(n1, generator=gen) + n0
    return [torch.cat([c0, c1]) for c0, c1 in zip(p0.tensor_split(folds), p1.tensor_split(folds))]


def _pad(rows: list[Tensor], gen: torch.Generator) -> Tensor:
    """Stack index vectors of slightly different lengths by repeating random entries of the shorter."""
    n = max(len(r) for r in rows)
    out = []
    for r in rows:
        extra = r[torch.randint(len(r), (n - len(r),), generator=gen)]
        out.append(torch.cat([r, extra]))
    return torch.stack(out)


class _FoldMLPs:
    """``F`` independent ReLU MLPs trained together with batched matrix products (one per fold).

    Forward and backward passes are written out by hand and Adam runs on fused ``_foreach``
    operations: the networks are tiny, so the cost of a step is the number of tensor operations,
    not arithmetic, and this halves it compared with autograd and ``torch.optim.Adam``.
    """

    def __init__(self, folds: int, d: int, hidden: tuple[int, ...], gen: torch.Generator,
                 device: torch.device, lr: float, alpha: float) -> None:
        self.weights: list[Tensor] = []
        self.biases: list[Tensor] = []
        sizes = (d, *hidden, 1)
        for fan_in, fan_out in itertools.pairwise(sizes):
            # Glorot-uniform initialisation, as scikit-learn's MLPClassifier.
            bound = math.sqrt((2.0 if fan_out == 1 else 6.0) / (fan_in + fan_out))
            self.weights.append(((torch.rand(folds, fan_in, fan_out, generator=gen) * 2 - 1) * bound).to(device))
            self.biases.append(((torch.rand(folds, 1, fan_out, generator=gen) * 2 - 1) * bound).to(device))
        self.lr, self.alpha, self.t = lr, alpha, 0
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]

    @property
    def params(self) -> list[Tensor]:
        return self.weights + self.biases

    def logits(self, x: Tensor) -> Tensor:
        """``x (F, B, d) -> (F, B)``."""
        h = x
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)
            if i < len(self.weights) - 1:
                h = h.clamp_min_(0.0)
        return h.squeeze(-1)

    def gradients(self, x: Tensor, y: Tensor, weight: Tensor) -> list[Tensor]:
        """Gradients (weights, then biases) of ``sum w BCE(logits, y) / B + alpha/2 ||W||^2 / B``."""
        batch = x.shape[1]
        acts = [x]
        h = x
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)
            if i < len(self.weights) - 1:
                h = h.clamp_min_(0.0)
                acts.append(h)
        delta = (torch.sigmoid(h) - y[..., None]).mul_(weight[..., None] / batch)  # dL/dz
        gw: list[Tensor] = []
        gb: list[Tensor] = []
        for i in range(len(self.weights) - 1, -1, -1):
            gw.append(torch.baddbmm(self.weights[i], acts[i].transpose(1, 2), delta,
                                    beta=self.alpha / batch))  # + L2 gradient alpha W / B
            gb.append(delta.sum(1, keepdim=True))
            if i > 0:
                delta = torch.bmm(delta, self.weights[i].transpose(1, 2)).mul_(acts[i] > 0)
        return gw[::-1] + gb[::-1]

    def step(self, x: Tensor, y: Tensor, weight: Tensor) -> None:
        """One Adam step (PyTorch's Adam with default betas, eps 1e-8, bias correction)."""
        grads = self.gradients(x, y, weight)
        self.t += 1
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        torch._foreach_lerp_(self.m, grads, 1 - beta1)
        torch._foreach_mul_(self.v, beta2)
        torch._foreach_addcmul_(self.v, grads, grads, 1 - beta2)
        denom = torch._foreach_sqrt(self.v)
        torch._foreach_div_(denom, math.sqrt(1 - beta2**self.t))
        torch._foreach_add_(denom, eps)
        torch._foreach_addcdiv_(self.params, self.m, denom, -self.lr / (1 - beta1**self.t))

    def snapshot(self) -> list[Tensor]:
        return [p.clone() for p in self.params]

    def restore(self, best: list[Tensor], improved: Tensor) -> None:
        """Copy the current parameters of the folds in ``improved`` into ``best``."""
        for keep, p in zip(best, self.params):
            keep[improved] = p[improved]


def _balanced_accuracy(logits: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    """Mean of the per-class accuracies, per fold; ``logits, labels, mask: (F, n)``."""
    correct = ((logits > 0).to(labels.dtype) == labels) & mask
    accs = []
    for cls in (0.0, 1.0):
        members = mask & (labels == cls)
        accs.append((correct & members).sum(1) / members.sum(1).clamp_min(1))
    return (accs[0] + accs[1]) / 2


@torch.no_grad()
def _c2st_torch(a: Tensor, b: Tensor, folds: int, seed: int, hidden: tuple[int, ...], max_epochs: int,
                batch_size: int, lr: float, alpha: float, patience: int, tol: float,
                validation_fraction: float) -> float:
    device = a.device
    gen = torch.Generator().manual_seed(seed)
    x = torch.cat([a, b]).to(torch.float32)
    y = torch.cat([torch.zeros(len(a)), torch.ones(len(b))]).to(device)
    # Class weights so that unequal sample sizes still give chance level 0.5.
    w = torch.where(y > 0, len(x) / (2.0 * len(b)), len(x) / (2.0 * len(a)))
    tests = _stratified_folds(len(a), len(b), folds, gen)
    fit_rows, val_rows = [], []
    for f in range(folds):
        train = torch.cat([t for g, t in enumerate(tests) if g != f])
        fit, val = [], []
        for cls_rows in (train[train < len(a)], train[train >= len(a)]):
            shuffled = cls_rows[torch.randperm(len(cls_rows), generator=gen)]
            n_val = max(1, round(validation_fraction * len(cls_rows)))
            val.append(shuffled[:n_val])
            fit.append(shuffled[n_val:])
        fit_rows.append(torch.cat(fit))
        val_rows.append(torch.cat(val))
    fit_idx = _pad(fit_rows, gen).to(device)
    val_idx = _pad(val_rows, gen).to(device)
    n_fit = fit_idx.shape[1]

    net = _FoldMLPs(folds, x.shape[1], hidden, gen, device, lr, alpha)
    best = net.snapshot()
    best_score = torch.full((folds,), -math.inf, device=device)
    stale = torch.zeros(folds, dtype=torch.long, device=device)
    xv, yv, wv = x[val_idx], y[val_idx], w[val_idx]
    steps = math.ceil(n_fit / batch_size)
    for _ in range(max_epochs):
        order = torch.argsort(torch.rand(folds, n_fit, generator=gen), dim=1).to(device)
        idx = fit_idx.gather(1, order)
        xe, ye, we = x[idx], y[idx], w[idx]
        for s in range(steps):
            sl = slice(s * batch_size, (s + 1) * batch_size)
            net.step(xe[:, sl], ye[:, sl], we[:, sl])
        # Early stopping on the validation loss: smoother than validation accuracy, so a short
        # patience suffices (checked against scikit-learn's accuracy-based stopping).
        score = -F.binary_cross_entropy_with_logits(net.logits(xv), yv, wv, reduction="none").mean(1)
        stale = torch.where(score < best_score + tol, stale + 1, torch.zeros_like(stale))
        improved = score > best_score
        if improved.any():
            best_score = torch.where(improved, score, best_score)
            net.restore(best, improved)
        if bool((stale > patience).all()):
            break
    for p, keep in zip(net.params, best):
        p.copy_(keep)
    test_idx = _pad(tests, gen).to(device)
    lengths = torch.tensor([len(t) for t in tests], device=device)
    mask = torch.arange(test_idx.shape[1], device=device)[None] < lengths[:, None]
    acc = _balanced_accuracy(net.logits(x[test_idx]), y[test_idx], mask)
    return float(acc.mean())


def _c2st_sklearn(a: Tensor, b: Tensor, folds: int, seed: int, hidden: tuple[int, ...], max_epochs: int,
                  patience: int) -> float:
    try:
        from sklearn.model_selection import KFold, cross_val_score
        from sklearn.neural_network import MLPClassifier
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "c2st(backend='sklearn') needs scikit-learn, which is an optional dependency: "
            "pip install 'innverse[sklearn]' (or use the default backend='torch')"
        ) from err
    data = torch.cat([a, b]).cpu().numpy()
    target = np.concatenate([np.zeros(len(a)), np.ones(len(b))])
    clf = MLPClassifier(activation="relu", hidden_layer_sizes=hidden, max_iter=max_epochs, solver="adam",
                        early_stopping=True, n_iter_no_change=patience, random_state=seed)
    cv = KFold(n_splits=folds, shuffle=True, random_state=seed)
    return float(np.mean(cross_val_score(clf, data, target, cv=cv, scoring="balanced_accuracy")))


def c2st(a: Any, b: Any, *, folds: int = 5, seed: int = 0, hidden: tuple[int, ...] | None = None,
         z_score: bool = True, max_epochs: int = 1000, batch_size: int = 200, lr: float = 1e-3,
         alpha: float = 1e-4, patience: int | None = None, tol: float = 1e-4, validation_fraction: float = 0.1,
         backend: str = "torch") -> float:
    r"""Classifier two-sample test: cross-validated accuracy of an MLP telling ``a`` from ``b``.

    Both samples are standardised with the mean and standard deviation of ``a`` (pass the
    reference as ``a``), labelled 0 (``a``) and 1 (``b``), and split into ``folds`` stratified
    folds. For each fold an MLP (ReLU, two hidden layers of ``10 d`` units by default) is trained
    with Adam on the other folds, with early stopping on a held-out ``validation_fraction`` of
    them, and scored on the fold; the result is the mean balanced accuracy

    .. math::
        \mathrm{C2ST} = \frac{1}{K}\sum_{k=1}^K \tfrac12\big(\mathrm{acc}_k(a) + \mathrm{acc}_k(b)\big),

    0.5 when the two samples are indistinguishable and 1 when they are disjoint. Balanced
    accuracy equals plain accuracy for equal sample sizes (the usual case) and keeps 0.5 as
    chance level for unequal ones.

    The default ``backend="torch"`` trains the ``folds`` classifiers at once with batched matrix
    products (float32, on the device of ``a``) and follows scikit-learn's ``MLPClassifier`` as
    configured by sbibm (Glorot initialisation, Adam, lr 1e-3, batch 200, L2 ``alpha`` 1e-4,
    best weights restored), except that early stopping watches the validation *loss* (stop after
    ``patience`` epochs without a gain of ``tol``) rather than the noisier validation accuracy,
    which allows a patience of 10 instead of 50 epochs. ``backend="sklearn"`` runs the reference
    (scikit-learn MLP, accuracy-based stopping, patience 50 unless given) and needs scikit-learn;
    on pairs of distributions with known Bayes-optimal accuracy the two differ by about 0.01 on
    average (at most 0.04, where scikit-learn's accuracy-based stopping under-trains), and the
    torch version is the closer of the two to the Bayes accuracy, several times faster
    (``benchmarks/diagnostics_c2st.py``, ``tests/diagnostics/test_two_sample.py``).

    Args:
        a: samples ``(n, d)`` (tensor or array), the reference.
        b: samples ``(m, d)``.
        folds: number of cross-validation folds (>= 2).
        seed: seed of fold split, initialisation and minibatch order.
        hidden: hidden layer widths; default ``(10 d, 10 d)``.
        z_score: standardise with the statistics of ``a``.
        max_epochs, batch_size, lr, alpha, tol, validation_fraction: training options.
        patience: epochs without improvement before stopping; default 10 (torch), 50 (sklearn).
        backend: ``"torch"`` (default) or ``"sklearn"``.

    Returns:
        The mean cross-validated balanced accuracy, in ``[0, 1]``.

    Raises:
        ValueError: shape mismatch, NaN/Inf, fewer than ``2 * folds`` samples in ``a`` or ``b``.

    References:
        Lopez-Paz, Oquab. "Revisiting Classifier Two-Sample Tests". ICLR 2017.
        Lueckmann et al. "Benchmarking Simulation-Based Inference". AISTATS 2021.
    """
    if not isinstance(folds, int) or folds < 2:
        raise ValueError(f"c2st: folds must be an integer >= 2, got {folds!r}")
    ta, tb = paired_samples(a, b, "c2st", min_rows=2 * folds)
    width = 10 * ta.shape[1]
    hidden = (width, width) if hidden is None else tuple(int(h) for h in hidden)
    if not hidden or any(h <= 0 for h in hidden):
        raise ValueError(f"c2st: hidden must be a non-empty sequence of positive widths, got {hidden}")
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"c2st: validation_fraction must be in (0, 1), got {validation_fraction}")
    if batch_size < 1 or max_epochs < 1 or (patience is not None and patience < 0):
        raise ValueError(f"c2st: batch_size and max_epochs must be >= 1 and patience >= 0, got "
                         f"{batch_size}, {max_epochs}, {patience}")
    if z_score:
        ta, tb = _standardise(ta, tb)
    if backend == "torch":
        return _c2st_torch(ta, tb, folds, seed, hidden, max_epochs, batch_size, lr, alpha,
                           10 if patience is None else patience, tol, validation_fraction)
    if backend == "sklearn":
        return _c2st_sklearn(ta, tb, folds, seed, hidden, max_epochs, 50 if patience is None else patience)
    raise ValueError(f"c2st: backend must be 'torch' or 'sklearn', got {backend!r}")
