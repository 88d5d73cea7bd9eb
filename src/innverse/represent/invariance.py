r"""Excessive invariance of bijective classifiers: metameric sampling and the independence cross-entropy.

A classifier that is bijective up to a projection of its logit subspace
(:class:`~innverse.represent.InvertibleClassifier`, :math:`z = \Phi(x) = [z_s, z_n]`) is blind to
its nuisance :math:`z_n`. *Metameric sampling* makes that visible: the metamer

.. math::
    x_{\text{met}} = \Phi^{-1}\big([z_s(x_a),\ z_n(x_b)]\big)

has exactly the logits of :math:`x_a` (:math:`\Phi(x_{\text{met}}) = [z_s(x_a), z_n(x_b)]`), yet
looks like :math:`x_b` whenever the class information of :math:`x_b` sits in its nuisance. The
*independence cross-entropy* (iCE) trains the classifier to move class information out of the
nuisance; a probe classifier trained afterwards on :math:`z_n` measures how much is left
(:func:`~innverse.represent.probe_nuisance`).

References:
    Jacobsen, Behrmann, Zemel, Bethge. "Excessive Invariance Causes Adversarial Vulnerability".
    ICLR 2019.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from ..nets.subnets import MLP
from .classifier import InvertibleClassifier

__all__ = ["IndependenceCrossEntropy", "MetamerResult", "metamers"]


@dataclass(frozen=True)
class MetamerResult:
    """Metamers of pairs ``(x_a, x_b)`` and how exactly they keep the logits of ``x_a``.

    Attributes:
        metamers: :math:`\\Phi^{-1}([z_s(x_a), z_n(x_b)])`, shaped like the inputs.
        logits_a: the logits of ``x_a``, ``(B, C)``.
        logits_metamer: the logits of the metamers, computed from scratch (re-encoded), ``(B, C)``.
        logit_gap: :math:`\\max |\\text{logits}(x_{met}) - \\text{logits}(x_a)|` over the batch.
        distance_to_b: per pair, RMS difference between the metamer and ``x_b``, ``(B,)``.
        distance_to_a: per pair, RMS difference between the metamer and ``x_a``, ``(B,)``.
    """

    metamers: Tensor
    logits_a: Tensor
    logits_metamer: Tensor
    logit_gap: float
    distance_to_b: Tensor
    distance_to_a: Tensor


@torch.no_grad()
def metamers(model: InvertibleClassifier, logit_source: Tensor, nuisance_source: Tensor) -> MetamerResult:
    r"""Metameric samples: the logit part of ``logit_source``'s representation with the nuisance of ``nuisance_source``.

    .. math::
        x_{\text{met}} = \Phi^{-1}\big([z_s(x_a),\ z_n(x_b)]\big),\qquad
        \text{logits}(x_{\text{met}}) = W z_s(x_a) + b = \text{logits}(x_a).

    Args:
        model: a trained :class:`~innverse.represent.InvertibleClassifier`.
        logit_source: ``x_a (B, *input_shape)``, whose logits the metamers keep.
        nuisance_source: ``x_b (B, *input_shape)``, whose nuisance they take.

    Returns:
        A :class:`MetamerResult` (the logits are recomputed from the metamers, so ``logit_gap``
        measures the invertibility of :math:`\Phi`, not an assumption).
    """
    if not isinstance(model, InvertibleClassifier):
        raise TypeError(f"metamers: expected an InvertibleClassifier, got {type(model).__name__}")
    if not model.bijective:
        raise ValueError(f"metamers: {model.name} pads its inputs with {model.padding} zero channels (injective, not "
                         f"bijective), so a mixed representation inverts to a tensor whose padding is not zero and "
                         f"the metamer would not keep the logits; use a model built with injective_padding=0")
    if logit_source.shape != nuisance_source.shape:
        raise ValueError(f"metamers: logit_source and nuisance_source must have the same shape, got "
                         f"{tuple(logit_source.shape)} and {tuple(nuisance_source.shape)}")
    z_a = model.features(logit_source)
    z_b = model.features(nuisance_source)
    x_met = model.invert(model.merge(model.split(z_a)[0], model.split(z_b)[1]))
    logits_a, logits_met = model.head(z_a), model(x_met)

    def rms(u: Tensor, v: Tensor) -> Tensor:
        return (u - v).flatten(1).square().mean(1).sqrt()

    return MetamerResult(x_met, logits_a, logits_met, float((logits_met - logits_a).abs().max()),
                         rms(x_met, nuisance_source), rms(x_met, logit_source))


class IndependenceCrossEntropy(nn.Module):
    r"""The independence cross-entropy (iCE): classify from :math:`z_s`, keep class information out of :math:`z_n`.

    A nuisance classifier :math:`D_\phi` (an MLP on :math:`z_n`) plays against the network:

    .. math::
        \min_\theta \max_\phi\ \mathcal L_{\mathrm{sCE}}(\theta) - \lambda\,\mathcal L_{\mathrm{nCE}}(\theta, \phi)
            + \mu\, \mathcal L_{\mathrm{MLE}_n}(\theta),

    with :math:`\mathcal L_{\mathrm{sCE}} = \mathrm{CE}(W z_s + b, y)` the usual cross-entropy of
    the logits, :math:`\mathcal L_{\mathrm{nCE}} = \mathrm{CE}(D_\phi(z_n), y)` the nuisance
    classifier's cross-entropy (minimised by :math:`\phi`, maximised by :math:`\theta`) and
    :math:`\mathcal L_{\mathrm{MLE}_n} = \tfrac{1}{2(D-k)}\lVert z_n\rVert^2` a maximum-likelihood
    term under a standard normal that keeps the nuisance bounded and factorised. Both players
    update in the same optimiser step: :math:`\phi` receives gradients only from
    :math:`\mathcal L_{\mathrm{nCE}}` on detached :math:`z_n`, :math:`\theta` only from the
    adversarial term evaluated with detached :math:`\phi`.

    ``likelihood="flow"`` replaces :math:`\mathcal L_{\mathrm{MLE}_n}` by the negative
    log-likelihood of the input under the bijection, per dimension,

    .. math::
        \mathcal L_{\mathrm{MLE}}(\theta) = -\tfrac1D\Big[\log\mathcal N(z_s;\ \mu_y, I)
            + \log\mathcal N(z_n;\ 0, I) + \log\big|\det \partial\Phi/\partial x\big|\Big],

    with learned class means :math:`\mu_y` (a generative classifier whose nuisance has the same
    distribution for every class). Unlike the adversary, whose information a probe trained
    afterwards recovers, this term is minimised only when :math:`p(z_n \mid y)` is the same for
    every class, and the log-determinant keeps :math:`\Phi` from shrinking :math:`z_n` to
    satisfy it. It needs a bijective model (no injective padding) and costs the log-determinant
    of every block (exact for couplings; estimated for residual blocks).

    With ``cap=True`` (the default) the network's adversarial term is
    :math:`\min(\mathcal L_{\mathrm{nCE}}, \log C)`: it pushes the nuisance classifier down to
    chance level (cross-entropy :math:`\log C` of the uniform prediction) and no further. Without
    the cap (``cap=False``, the objective as written in the paper) the network can raise the
    cross-entropy without bound by making :math:`D_\phi` confidently *wrong*, which is class
    information rather than its absence.

    Args:
        classes: number of classes ``C``.
        nuisance_features: ``D - k``, the size of :math:`z_n`.
        hidden: hidden widths of :math:`D_\phi`.
        weight: :math:`\lambda`.
        likelihood_weight: :math:`\mu`.
        cap: cap the adversarial term at :math:`\log C`.
        adversary_lr: learning rate of :math:`D_\phi` (and of :math:`\mu_y`) relative to the
            network's (a faster adversary tracks the network's representation more closely).
        likelihood: ``"nuisance"`` (:math:`\tfrac{1}{2(D-k)}\lVert z_n\rVert^2`) or ``"flow"``
            (the input's negative log-likelihood, above).
        logit_features: ``k``, needed for ``likelihood="flow"`` (the size of :math:`\mu_y`).

    References:
        Jacobsen, Behrmann, Zemel, Bethge. "Excessive Invariance Causes Adversarial
        Vulnerability". ICLR 2019.
    """

    def __init__(self, classes: int, nuisance_features: int, hidden: Sequence[int] = (256, 256),
                 weight: float = 1.0, likelihood_weight: float = 0.1, cap: bool = True,
                 adversary_lr: float = 1.0, likelihood: str = "nuisance", logit_features: int | None = None) -> None:
        super().__init__()
        if likelihood not in ("nuisance", "flow"):
            raise ValueError(f"IndependenceCrossEntropy: likelihood must be 'nuisance' or 'flow', got {likelihood!r}")
        if likelihood == "flow" and (isinstance(logit_features, bool) or not isinstance(logit_features, int)
                                     or logit_features < 1):
            raise ValueError(f"IndependenceCrossEntropy: likelihood='flow' needs logit_features (the size k of z_s) "
                             f"as an int >= 1, got {logit_features!r}")
        if classes < 2 or nuisance_features < 1:
            raise ValueError(f"IndependenceCrossEntropy: needs classes >= 2 and nuisance_features >= 1, got "
                             f"{classes} and {nuisance_features}")
        if not weight >= 0 or not likelihood_weight >= 0 or not adversary_lr > 0:
            raise ValueError(f"IndependenceCrossEntropy: weight and likelihood_weight must be >= 0 and adversary_lr "
                             f"> 0, got {weight}, {likelihood_weight} and {adversary_lr}")
        self.adversary_lr = float(adversary_lr)
        self.classes, self.nuisance_features = int(classes), int(nuisance_features)
        self.weight, self.likelihood_weight, self.cap = float(weight), float(likelihood_weight), bool(cap)
        self.nuisance_classifier = MLP(nuisance_features, classes, tuple(hidden), zero_init=False)
        self.likelihood = likelihood
        self.class_means = nn.Parameter(torch.zeros(classes, logit_features)) if likelihood == "flow" else None

    def forward(self, model: InvertibleClassifier, x: Tensor, y: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """``(total loss, terms)`` of a batch ``x (B, *input_shape)``, labels ``y (B,)``."""
        if model.representation_size - model.logit_features != self.nuisance_features:
            raise ValueError(f"IndependenceCrossEntropy: built for a nuisance of {self.nuisance_features} features, "
                             f"the model has {model.representation_size - model.logit_features}")
        if self.likelihood == "flow":
            if model.logit_features != self.class_means.shape[1]:  # type: ignore[union-attr]
                raise ValueError(f"IndependenceCrossEntropy: built for a logit subspace of "
                                 f"{self.class_means.shape[1]} features, the model has {model.logit_features}")  # type: ignore[union-attr]
            z, log_det = model.features_and_log_det(x)
        else:
            z = model.features(x)
        semantic = F.cross_entropy(model.head(z), y)
        z_n = z[:, model.logit_features:]
        nuisance = F.cross_entropy(self.nuisance_classifier(z_n.detach()), y)
        frozen = {k: v.detach() for k, v in self.nuisance_classifier.named_parameters()}
        adversarial = F.cross_entropy(functional_call(self.nuisance_classifier, frozen, (z_n,)), y)
        if self.cap:
            adversarial = adversarial.clamp(max=math.log(self.classes))
        if self.likelihood == "flow":
            z_s = z[:, :model.logit_features]
            energy = 0.5 * ((z_s - self.class_means[y]).square().sum(1) + z_n.square().sum(1))  # type: ignore[index]
            likelihood = (energy - log_det).mean() / z.shape[1] + 0.5 * math.log(2 * math.pi)
        else:
            likelihood = 0.5 * z_n.square().mean()
        total = semantic + nuisance - self.weight * adversarial + self.likelihood_weight * likelihood
        return total, {"semantic": semantic, "nuisance": nuisance, "likelihood": likelihood}
