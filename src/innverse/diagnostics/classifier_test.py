"""Classifier two-sample test (C2ST): cross-validated accuracy of a classifier telling two samples apart."""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ._inputs import paired_samples

__all__ = ["ClassifierOptions", "c2st"]


@dataclass(frozen=True)
class ClassifierOptions:
    r"""How :func:`c2st` trains its classifiers (an MLP, like scikit-learn's ``MLPClassifier`` as sbibm sets it).

    Attributes:
        hidden: hidden layer widths; default ``(10 d, 10 d)`` for ``d`` features.
        max_epochs: most passes over the training folds.
        batch_size: minibatch size (the torch backend; scikit-learn uses its own ``min(200, rows)``).
        lr: Adam's learning rate.
        alpha: L2 penalty on the weights, :math:`\tfrac{\alpha}{2B}\lVert W\rVert^2` per minibatch of ``B``.
        patience: epochs without improvement before stopping; default 10 (torch), 50 (sklearn).
        tol: the least improvement that counts.
        validation_fraction: share of the training folds held out for early stopping.
    """

    hidden: tuple[int, ...] | None = None
    max_epochs: int = 1000
    batch_size: int = 200
    lr: float = 1e-3
    alpha: float = 1e-4
    patience: int | None = None
    tol: float = 1e-4
    validation_fraction: float = 0.1

    def __post_init__(self) -> None:
        owner = "ClassifierOptions"
        if self.hidden is not None:
            hidden = tuple(int(h) for h in self.hidden)
            if not hidden or any(h <= 0 for h in hidden):
                raise ValueError(f"{owner}: hidden must be a non-empty sequence of positive widths, got {hidden}")
            object.__setattr__(self, "hidden", hidden)
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(f"{owner}: validation_fraction must be in (0, 1), got {self.validation_fraction}")
        if self.batch_size < 1 or self.max_epochs < 1 or (self.patience is not None and self.patience < 0):
            raise ValueError(f"{owner}: batch_size and max_epochs must be >= 1 and patience >= 0, got "
                             f"{self.batch_size}, {self.max_epochs}, {self.patience}")
        if not self.lr > 0 or not self.alpha >= 0:
            raise ValueError(f"{owner}: lr must be > 0 and alpha >= 0, got {self.lr}, {self.alpha}")

    def resolved(self, features: int, patience: int) -> ClassifierOptions:
        """These options with the defaults of ``hidden`` and ``patience`` filled in."""
        width = 10 * features
        return dataclasses.replace(self, hidden=self.hidden or (width, width),
                                   patience=patience if self.patience is None else self.patience)


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


def _adam(params: list[Tensor], lr: float) -> torch.optim.Adam:
    """PyTorch's Adam: the fused kernel where the device and dtype have one, else the multi-tensor one."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except RuntimeError:
        return torch.optim.Adam(params, lr=lr, foreach=True)


class _FoldMLPs:
    """``F`` independent ReLU MLPs trained together with batched matrix products (one per fold).

    The networks are tiny, so a step costs as many tensor operations as it runs, whatever their
    size: the forward and backward passes are written out by hand (autograd would add
    operations), and the parameters and their gradients are views of two flat tensors, which
    PyTorch's Adam updates in one operation.
    """

    def __init__(self, folds: int, d: int, hidden: tuple[int, ...], gen: torch.Generator,
                 device: torch.device, lr: float, alpha: float) -> None:
        weights, biases = [], []
        sizes = (d, *hidden, 1)
        for fan_in, fan_out in itertools.pairwise(sizes):
            # Glorot-uniform initialisation, as scikit-learn's MLPClassifier.
            bound = math.sqrt((2.0 if fan_out == 1 else 6.0) / (fan_in + fan_out))
            weights.append((torch.rand(folds, fan_in, fan_out, generator=gen) * 2 - 1) * bound)
            biases.append((torch.rand(folds, 1, fan_out, generator=gen) * 2 - 1) * bound)
        shapes = [t.shape for t in weights + biases]
        self.flat = torch.cat([t.reshape(-1) for t in weights + biases]).to(device)
        self.flat.grad = torch.zeros_like(self.flat)
        params, self.grads = _views(self.flat, shapes), _views(self.flat.grad, shapes)
        self.weights, self.biases = params[:len(weights)], params[len(weights):]
        self.alpha = alpha
        self.optimizer = _adam([self.flat], lr)

    @property
    def params(self) -> list[Tensor]:
        return self.weights + self.biases

    def _layers(self, x: Tensor) -> list[Tensor]:
        """The input of every layer, then the output ``(F, B, 1)``, for ``x (F, B, d)``."""
        out = [x]
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, out[-1], w)
            out.append(h.clamp_min_(0.0) if i < len(self.weights) - 1 else h)
        return out

    def logits(self, x: Tensor) -> Tensor:
        """``x (F, B, d) -> (F, B)``."""
        return self._layers(x)[-1].squeeze(-1)

    def gradients(self, x: Tensor, y: Tensor, weight: Tensor, out: list[Tensor] | None = None) -> list[Tensor]:
        """Gradients (weights, then biases) of ``sum w BCE(logits, y) / B + alpha/2 ||W||^2 / B``.

        Written into ``out`` (tensors of the parameters' shapes) when given.
        """
        batch, layers = x.shape[1], len(self.weights)
        acts = self._layers(x)
        delta = (torch.sigmoid(acts.pop()) - y[..., None]).mul_(weight[..., None] / batch)  # dL/dz
        grads: list[Tensor] = [torch.empty(0)] * (2 * layers) if out is None else out
        for i in range(layers - 1, -1, -1):
            # + the L2 gradient alpha W / B
            grads[i] = torch.baddbmm(self.weights[i], acts[i].transpose(1, 2), delta, beta=self.alpha / batch,
                                     out=None if out is None else out[i])
            grads[layers + i] = torch.sum(delta, 1, keepdim=True, out=None if out is None else out[layers + i])
            if i > 0:
                # ReLU: zero where the unit was off (one operation instead of a mask and a product)
                delta = torch.ops.aten.threshold_backward(torch.bmm(delta, self.weights[i].transpose(1, 2)),
                                                          acts[i], 0.0)
        return grads

    def step(self, x: Tensor, y: Tensor, weight: Tensor) -> None:
        """One Adam step on the minibatch ``x (F, B, d)``, labels and weights ``(F, B)``."""
        self.gradients(x, y, weight, out=self.grads)
        self.optimizer.step()

    def snapshot(self) -> list[Tensor]:
        return [p.clone() for p in self.params]

    def restore(self, best: list[Tensor], improved: Tensor) -> None:
        """Copy the current parameters of the folds in ``improved`` into ``best``."""
        for keep, p in zip(best, self.params):
            keep[improved] = p[improved]


def _views(flat: Tensor, shapes: list[torch.Size]) -> list[Tensor]:
    """Consecutive views of ``flat`` with the given shapes."""
    return [v.view(shape) for v, shape in zip(flat.split([math.prod(s) for s in shapes]), shapes)]


def _balanced_accuracy(logits: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    """Mean of the per-class accuracies, per fold; ``logits, labels, mask: (F, n)``."""
    correct = ((logits > 0).to(labels.dtype) == labels) & mask
    accs = []
    for cls in (0.0, 1.0):
        members = mask & (labels == cls)
        accs.append((correct & members).sum(1) / members.sum(1).clamp_min(1))
    return (accs[0] + accs[1]) / 2


def _fit_and_validation_rows(tests: list[Tensor], n_a: int, validation_fraction: float, gen: torch.Generator,
                             device: torch.device) -> tuple[Tensor, Tensor]:
    """Per fold ``(F, n)``: its training rows (the other folds), split per class into fitting and validation rows."""
    fit_rows, val_rows = [], []
    for f in range(len(tests)):
        train = torch.cat([t for g, t in enumerate(tests) if g != f])
        fit, val = [], []
        for cls_rows in (train[train < n_a], train[train >= n_a]):
            shuffled = cls_rows[torch.randperm(len(cls_rows), generator=gen)]
            n_val = max(1, round(validation_fraction * len(cls_rows)))
            val.append(shuffled[:n_val])
            fit.append(shuffled[n_val:])
        fit_rows.append(torch.cat(fit))
        val_rows.append(torch.cat(val))
    return _pad(fit_rows, gen).to(device), _pad(val_rows, gen).to(device)


def _train(net: _FoldMLPs, data: tuple[Tensor, Tensor, Tensor], fit_idx: Tensor, val_idx: Tensor,
           opts: ClassifierOptions, gen: torch.Generator) -> None:
    """Minibatch Adam on ``data = (x, labels, class weights)`` with early stopping per fold.

    The ``F`` fold classifiers are one batched model in which each fold stops on its own and keeps
    its own best weights; the library's training loop (:func:`innverse.train.train`) trains one
    model with one stopping rule, hence this loop.
    """
    x, y, w = data
    folds, n_fit = fit_idx.shape
    best = net.snapshot()
    best_score = torch.full((folds,), -math.inf, device=x.device)
    stale = torch.zeros(folds, dtype=torch.long, device=x.device)
    xv, yv, wv = x[val_idx], y[val_idx], w[val_idx]
    for _ in range(opts.max_epochs):
        order = torch.argsort(torch.rand(folds, n_fit, generator=gen), dim=1).to(x.device)
        idx = fit_idx.gather(1, order)
        for xb, yb, wb in zip(*(t[idx].split(opts.batch_size, 1) for t in data)):
            net.step(xb, yb, wb)
        # Early stopping on the validation loss: smoother than validation accuracy, so a short
        # patience suffices (checked against scikit-learn's accuracy-based stopping).
        score = -F.binary_cross_entropy_with_logits(net.logits(xv), yv, wv, reduction="none").mean(1)
        stale = torch.where(score < best_score + opts.tol, stale + 1, torch.zeros_like(stale))
        improved = score > best_score
        if improved.any():
            best_score = torch.where(improved, score, best_score)
            net.restore(best, improved)
        if bool((stale > opts.patience).all()):
            break
    for p, keep in zip(net.params, best):
        p.copy_(keep)


@torch.no_grad()
def _c2st_torch(a: Tensor, b: Tensor, folds: int, seed: int, opts: ClassifierOptions) -> float:
    device = a.device
    gen = torch.Generator().manual_seed(seed)
    x = torch.cat([a, b]).to(torch.float32)
    y = torch.cat([torch.zeros(len(a)), torch.ones(len(b))]).to(device)
    # Class weights so that unequal sample sizes still give chance level 0.5.
    w = torch.where(y > 0, len(x) / (2.0 * len(b)), len(x) / (2.0 * len(a)))
    tests = _stratified_folds(len(a), len(b), folds, gen)
    fit_idx, val_idx = _fit_and_validation_rows(tests, len(a), opts.validation_fraction, gen, device)
    net = _FoldMLPs(folds, x.shape[1], opts.hidden, gen, device, opts.lr, opts.alpha)  # type: ignore[arg-type]
    _train(net, (x, y, w), fit_idx, val_idx, opts, gen)
    test_idx = _pad(tests, gen).to(device)
    lengths = torch.tensor([len(t) for t in tests], device=device)
    mask = torch.arange(test_idx.shape[1], device=device)[None] < lengths[:, None]
    acc = _balanced_accuracy(net.logits(x[test_idx]), y[test_idx], mask)
    return float(acc.mean())


def _c2st_sklearn(a: Tensor, b: Tensor, folds: int, seed: int, opts: ClassifierOptions | None) -> float:
    """scikit-learn's MLP: with ``opts``, early stopping on validation accuracy; without, sbibm's published metric."""
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
    if opts is None:   # sbibm's c2st: scikit-learn's defaults, trained until the *training* loss stalls
        width = 10 * data.shape[1]
        clf = MLPClassifier(activation="relu", hidden_layer_sizes=(width, width), max_iter=10_000, solver="adam",
                            random_state=seed)
        scoring = "accuracy"
    else:
        clf = MLPClassifier(activation="relu", hidden_layer_sizes=opts.hidden, max_iter=opts.max_epochs,
                            solver="adam", learning_rate_init=opts.lr, alpha=opts.alpha, tol=opts.tol,
                            validation_fraction=opts.validation_fraction, early_stopping=True,
                            n_iter_no_change=opts.patience, random_state=seed)
        scoring = "balanced_accuracy"
    cv = KFold(n_splits=folds, shuffle=True, random_state=seed)
    return float(np.mean(cross_val_score(clf, data, target, cv=cv, scoring=scoring)))


def c2st(a: Any, b: Any, *, folds: int = 5, seed: int = 0, z_score: bool = True,
         classifier: ClassifierOptions | None = None, backend: str = "torch") -> float:
    r"""Classifier two-sample test: cross-validated accuracy of an MLP telling ``a`` from ``b``.

    Both samples are standardised with the mean and standard deviation of ``a`` (pass the
    reference as ``a``), labelled 0 (``a``) and 1 (``b``), and split into ``folds`` stratified
    folds. For each fold an MLP (ReLU, two hidden layers of ``10 d`` units by default) is trained
    with Adam on the other folds, with early stopping on a held-out share of them
    (:class:`ClassifierOptions`), and scored on the fold; the result is the mean balanced accuracy

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
    (scikit-learn MLP, accuracy-based stopping, patience 50 unless given) and needs scikit-learn.

    ``backend="sbibm"`` is the metric of the published sbibm results table (Lueckmann et al. 2021),
    for comparisons with it: scikit-learn's ``MLPClassifier`` with its defaults as sbibm sets it up
    (no early stopping on held-out data: it trains until the *training* loss stalls, for at most
    10,000 epochs; plain accuracy; pass ``seed=1``, sbibm's default, to reproduce its numbers).
    That classifier overfits, so in ten or more dimensions it reports lower values than the
    default: on Bernoulli GLM posteriors (10 parameters, 10,000 samples each), .761, .729 and .806
    where the default gives .815, .788 and .854. It is slow (minutes per pair at that size) and
    takes no ``classifier`` options.
    How closely the two agree, how close each comes to the Bayes-optimal accuracy and how long
    each takes: ``benchmarks/diagnostics_c2st.py`` (agreement is also tested in
    ``tests/diagnostics/test_two_sample.py``).

    Args:
        a: samples ``(n, d)`` (tensor or array), the reference.
        b: samples ``(m, d)``.
        folds: number of cross-validation folds (>= 2).
        seed: seed of fold split, initialisation and minibatch order.
        z_score: standardise with the statistics of ``a``.
        classifier: how the classifiers are trained (default ``ClassifierOptions()``).
        backend: ``"torch"`` (default), ``"sklearn"`` or ``"sbibm"``.

    Returns:
        The mean cross-validated balanced accuracy, in ``[0, 1]`` (plain accuracy for ``"sbibm"``,
        as sbibm computes it; the same for equal sample sizes).

    Raises:
        ValueError: shape mismatch, NaN/Inf, fewer than ``2 * folds`` samples in ``a`` or ``b``.
        TypeError: ``classifier`` is not a :class:`ClassifierOptions`.

    References:
        Lopez-Paz, Oquab. "Revisiting Classifier Two-Sample Tests". ICLR 2017.
        Lueckmann et al. "Benchmarking Simulation-Based Inference". AISTATS 2021.
    """
    if not isinstance(folds, int) or folds < 2:
        raise ValueError(f"c2st: folds must be an integer >= 2, got {folds!r}")
    if classifier is not None and not isinstance(classifier, ClassifierOptions):
        raise TypeError(f"c2st: classifier must be a ClassifierOptions, got {type(classifier).__name__}")
    if backend not in ("torch", "sklearn", "sbibm"):
        raise ValueError(f"c2st: backend must be 'torch', 'sklearn' or 'sbibm', got {backend!r}")
    if backend == "sbibm" and classifier is not None:
        raise ValueError("c2st: backend='sbibm' is sbibm's metric with its fixed classifier settings; it takes no "
                         "classifier options (use backend='sklearn' to set them)")
    ta, tb = paired_samples(a, b, "c2st", min_rows=2 * folds)
    if backend == "sbibm":
        return _c2st_sklearn(*(_standardise(ta, tb) if z_score else (ta, tb)), folds, seed, None)
    opts = (classifier or ClassifierOptions()).resolved(ta.shape[1], patience=10 if backend == "torch" else 50)
    if z_score:
        ta, tb = _standardise(ta, tb)
    if backend == "torch":
        return _c2st_torch(ta, tb, folds, seed, opts)
    return _c2st_sklearn(ta, tb, folds, seed, opts)
