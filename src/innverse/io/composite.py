"""Model files of composite posteriors: an ensemble, and the MCMC posterior of a learned likelihood.

A composite's file nests the configuration each part's own file would hold and keeps the parts'
tensors under a prefix: ``members.<i>.`` for member ``i`` of an
:class:`~innverse.amortized.EnsemblePosterior`, ``likelihood.`` for the flow of a
:class:`~innverse.amortized.LikelihoodPosterior` (itself a ``Posterior``, an ensemble or a
:class:`~innverse.amortized.GaussianLikelihood`, whose file holds its three tensors). Loading
rebuilds every part as :func:`innverse.load` would from its own file, so the same checks apply to
each, and refuses a file with tensors no part uses.

A likelihood posterior's file also holds its prior (a posterior of a learned likelihood is prior
x likelihood, so it cannot be sampled without one), the MCMC settings and the masks of the
dequantised and log-scaled data features. MCMC symmetries are functions, which a file cannot hold:
such settings are refused at save time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from .format import ModelFileError

__all__ = ["COMPOSITES"]

#: the kinds a likelihood posterior's likelihood can have
_LIKELIHOOD_KINDS = ("Posterior", "EnsemblePosterior", "GaussianLikelihood")
#: the tensors of a Gaussian likelihood (it has no configuration of its own)
_GAUSSIAN_TENSORS = ("coef", "intercept", "scale_tril")


def _take(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Remove and return the tensors under ``prefix``, with the prefix stripped."""
    return {k[len(prefix):]: tensors.pop(k) for k in [k for k in tensors if k.startswith(prefix)]}


def _all_used(tensors: dict[str, torch.Tensor], kind: str, path: Path) -> None:
    if tensors:
        raise ModelFileError(f"innverse.load: {path} holds tensors no part of its {kind} uses: {sorted(tensors)[:5]}")


def _ensemble_contents(obj: Any, omit_prior: bool) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    from .saving import contents

    configs, tensors = [], {}
    for i, member in enumerate(obj.members):
        config, part = contents(member, "Posterior", None, omit_prior)
        configs.append(config)
        tensors.update({f"members.{i}.{k}": v for k, v in part.items()})
    return {"members": configs}, tensors


def _ensemble_from(config: dict[str, Any], tensors: dict[str, torch.Tensor], path: Path, how: Any) -> Any:
    from ..amortized import EnsemblePosterior, Posterior
    from .saving import rebuild

    members = config.get("members")
    if not isinstance(members, list) or not members:
        raise ModelFileError(f"innverse.load: {path} holds an EnsemblePosterior without members")
    built = [rebuild("Posterior", Posterior, member, _take(tensors, f"members.{i}."), path, how)
             for i, member in enumerate(members)]
    _all_used(tensors, "EnsemblePosterior", path)
    try:
        return EnsemblePosterior(built)
    except (TypeError, ValueError) as err:
        raise ModelFileError(f"innverse.load: the members in {path} do not form an ensemble: {err}") from err


def _prior_contents(prior: Any, omit_prior: bool) -> dict[str, Any]:
    from ..amortized.prior_config import prior_to_config

    cls = type(prior)
    try:
        return {"prior": prior_to_config(prior), "prior_type": f"{cls.__module__}.{cls.__qualname__}"}
    except TypeError as err:
        if omit_prior:
            return {"prior": None, "prior_type": f"{cls.__module__}.{cls.__qualname__}"}
        raise TypeError(f"innverse.save: cannot save the prior of the LikelihoodPosterior, a {cls.__module__}."
                        f"{cls.__qualname__} ({err}). Use a prior innverse can describe, or save without it: "
                        "innverse.save(obj, path, omit_prior=True), then innverse.load(path, prior=your_prior)") from err


def _likelihood_contents(obj: Any, omit_prior: bool) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    from ..amortized import EnsemblePosterior
    from .saving import contents

    mcmc = obj.mcmc
    if tuple(mcmc.symmetries):
        raise TypeError("innverse.save: the LikelihoodPosterior's MCMC settings hold symmetries (functions), which a "
                        "file cannot hold; set posterior.mcmc = dataclasses.replace(posterior.mcmc, symmetries=()) "
                        "before saving, and set them again after loading")
    from ..amortized import GaussianLikelihood

    if isinstance(obj.likelihood, GaussianLikelihood):
        kind, config = "GaussianLikelihood", {}
        part = {name: getattr(obj.likelihood, name).detach().cpu() for name in _GAUSSIAN_TENSORS}
    else:
        kind = "EnsemblePosterior" if isinstance(obj.likelihood, EnsemblePosterior) else "Posterior"
        config, part = contents(obj.likelihood, kind, None, omit_prior=False)
    settings = {f.name: getattr(mcmc, f.name) for f in dataclasses.fields(mcmc) if f.name != "symmetries"}
    return ({"likelihood_kind": kind, "likelihood": config, **_prior_contents(obj.prior, omit_prior),
             "mcmc": settings, "dequantized": [bool(v) for v in obj.dequantized],
             "logged": [bool(v) for v in obj.logged]},
            {f"likelihood.{k}": v for k, v in part.items()})


def _likelihood_prior(config: dict[str, Any], path: Path, prior: Any) -> Any:
    from ..amortized.prior_config import prior_from_config

    if prior is not None:
        return prior
    if config.get("prior") is None:
        raise ValueError(f"innverse.load: {path} holds a LikelihoodPosterior saved without its prior (a "
                         f"{config.get('prior_type')}); its posterior is prior x likelihood, so pass prior=... to "
                         "innverse.load")
    try:
        return prior_from_config(config["prior"], str(path))
    except (KeyError, TypeError, ValueError) as err:
        raise ModelFileError(f"innverse.load: the prior in {path} is invalid: {err}") from err


def _mcmc_settings(settings: Any, path: Path) -> Any:
    """The MCMC settings a file holds, each of its default's type (an int where a float is expected)."""
    from ..amortized.mcmc import MCMCConfig

    defaults = MCMCConfig()
    stored = {f.name for f in dataclasses.fields(defaults)} - {"symmetries"}
    if not isinstance(settings, dict) or set(settings) - stored:
        raise ModelFileError(f"innverse.load: the MCMC settings in {path} are invalid: expected keys among "
                             f"{sorted(stored)}, got {settings!r}")
    for key, value in settings.items():
        kind = type(getattr(defaults, key))
        if type(value) is not kind and not (kind is float and type(value) is int):
            raise ModelFileError(f"innverse.load: the MCMC settings in {path} are invalid: {key} must be of type "
                                 f"{kind.__name__}, got {value!r}")
    return MCMCConfig(**settings)


def _gaussian_from(tensors: dict[str, torch.Tensor], path: Path) -> Any:
    from ..amortized import GaussianLikelihood

    missing = [name for name in _GAUSSIAN_TENSORS if name not in tensors]
    if missing:
        raise ModelFileError(f"innverse.load: the GaussianLikelihood in {path} lacks the tensors {missing}")
    try:
        model = GaussianLikelihood(*(tensors.pop(name) for name in _GAUSSIAN_TENSORS))
    except ValueError as err:
        raise ModelFileError(f"innverse.load: the GaussianLikelihood in {path} is invalid: {err}") from err
    _all_used({f"likelihood.{k}": v for k, v in tensors.items()}, "LikelihoodPosterior", path)
    return model


def _likelihood_from(config: dict[str, Any], tensors: dict[str, torch.Tensor], path: Path, how: Any) -> Any:
    from ..amortized import EnsemblePosterior, LikelihoodPosterior, Posterior
    from .saving import rebuild

    kind = config.get("likelihood_kind")
    if kind not in _LIKELIHOOD_KINDS:
        raise ModelFileError(f"innverse.load: {path} names the likelihood kind {kind!r}; expected one of "
                             f"{list(_LIKELIHOOD_KINDS)}")
    if kind == "GaussianLikelihood":
        flow = _gaussian_from(_take(tensors, "likelihood."), path)
    else:
        cls = Posterior if kind == "Posterior" else EnsemblePosterior
        # the flow models x given theta: it has no prior of its own
        flow = rebuild(kind, cls, config.get("likelihood"), _take(tensors, "likelihood."), path,
                       dataclasses.replace(how, prior=None, kinds=None))
    _all_used(tensors, "LikelihoodPosterior", path)
    prior = _likelihood_prior(config, path, how.prior)
    mcmc = _mcmc_settings(config.get("mcmc"), path)
    masks = {}
    for name in ("dequantized", "logged"):
        mask = config.get(name)
        if not isinstance(mask, list) or len(mask) != flow.theta_dim or not all(isinstance(v, bool) for v in mask):
            raise ModelFileError(f"innverse.load: {path} has no valid {name!r} mask (expected {flow.theta_dim} "
                                 f"booleans, one per data feature; got {mask!r})")
        masks[name] = torch.tensor(mask, dtype=torch.bool)
    return LikelihoodPosterior(flow, prior, mcmc, **masks)


#: composite kind -> (its file's config and tensors, the object rebuilt from them)
COMPOSITES: Mapping[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
    "EnsemblePosterior": (_ensemble_contents, _ensemble_from),
    "LikelihoodPosterior": (_likelihood_contents, _likelihood_from),
}
