"""MLP summary for fixed-size data and the config registry of summary networks.

Every summary network here maps a batch of observations to ``(B, out_features)``, exposes
``out_features`` and ``config() -> dict`` (JSON), and is rebuilt by :func:`summary_from_config`
without pickle.

Your own summary network needs nothing to *train* (any module ``(B, *x_shape) -> (B, C)``; its
output size is found by running it once). To *save and load* a posterior that uses it, give the
class ``config() -> dict`` (JSON: whatever rebuilds it, typically its constructor arguments) and
register it once per process, before saving and before loading::

    @innverse.nets.register_summary("my_cnn")
    class MyCNN(nn.Module):
        def __init__(self, channels: int = 16): ...
        def config(self): return {"channels": self.channels}
        # optional: @classmethod from_config(cls, config) -> MyCNN  (default: MyCNN(**config))

``innverse.save`` refuses a posterior whose summary network is not registered, naming it, rather
than writing a file that cannot be loaded; loading looks the ``type`` up among the built-in and
the registered networks, never imports code named by a file.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn

from .set_transformer import SetTransformer
from .sets import DeepSet, _activation
from .time_series import TimeSeriesNet

__all__ = ["MLPSummary", "SUMMARY_NETWORKS", "register_summary", "registered_summaries", "summary_from_config",
           "summary_type"]


class MLPSummary(nn.Module):
    r"""Summary of fixed-size data: flatten, then an MLP, :math:`s = \mathrm{MLP}(\mathrm{vec}(x))`.

    Args:
        in_shape: shape of one observation (flattened to ``prod(in_shape)`` inputs).
        out_features: summary size.
        hidden: hidden widths.
        activation: hidden activation name.
    """

    def __init__(self, in_shape: int | Sequence[int], out_features: int = 32,
                 hidden: Sequence[int] = (128, 128), activation: str = "gelu") -> None:
        super().__init__()
        shape = (in_shape,) if isinstance(in_shape, int) else tuple(int(s) for s in in_shape)
        if min(shape) < 1 or out_features < 1 or any(h < 1 for h in hidden):
            raise ValueError(f"MLPSummary: sizes must be positive, got in_shape={shape}, hidden={tuple(hidden)}")
        self._config = {"in_shape": list(shape), "out_features": out_features, "hidden": list(hidden),
                        "activation": activation}
        self.in_shape = shape
        self.out_features = out_features
        act = _activation(activation, "MLPSummary")
        layers: list[nn.Module] = []
        width = math.prod(shape)
        for h in hidden:
            layers += [nn.Linear(width, h), act()]
            width = h
        layers.append(nn.Linear(width, out_features))
        self.net = nn.Sequential(*layers)

    def config(self) -> dict[str, Any]:
        return {"type": "mlp", **self._config}

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[1:]) != self.in_shape:
            raise ValueError(f"MLPSummary: expected (batch, *{self.in_shape}), got {tuple(x.shape)}")
        return self.net(x.flatten(1))


#: Summary-network name (``fit_posterior(summary=...)``, config files) -> its class.
SUMMARY_NETWORKS: dict[str, type[nn.Module]] = {
    "mlp": MLPSummary,
    "deepset": DeepSet,
    "set_transformer": SetTransformer,
    "time_series": TimeSeriesNet,
}


#: summary networks registered with :func:`register_summary` (name -> class); like
#: ``torch.distributions.kl.register_kl``, the registry is per process and filled explicitly
_REGISTERED: dict[str, type[nn.Module]] = {}


def register_summary(name: str, cls: type[nn.Module] | None = None) -> Any:
    """Register a summary-network class under ``name`` so posteriors that use it save and load.

    The class needs ``config() -> dict`` (JSON) describing an instance; it is rebuilt with
    ``cls.from_config(config)`` when the class has it, else ``cls(**config)`` (the ``"type"`` key,
    which innverse adds, is removed first). Registering the same class again is a no-op. Use it
    as ``register_summary("name", MyNet)`` or as a decorator ``@register_summary("name")``.

    Returns:
        ``cls`` (or the decorator).

    Raises:
        ValueError: ``name`` is a built-in summary network or registered to another class.
        TypeError: ``cls`` is not an ``nn.Module`` class with a ``config`` method.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"register_summary: name must be a non-empty string, got {name!r}")
    if cls is None:
        def decorator(c: type[nn.Module]) -> type[nn.Module]:
            return register_summary(name, c)
        return decorator
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise TypeError(f"register_summary: expected an nn.Module class, got {cls!r}")
    if not callable(getattr(cls, "config", None)):
        raise TypeError(f"register_summary: {cls.__name__} needs a config() method returning a JSON dict that "
                        "rebuilds it (its constructor arguments)")
    if name in SUMMARY_NETWORKS:
        raise ValueError(f"register_summary: {name!r} is a built-in summary network; choose another name")
    if _REGISTERED.get(name, cls) is not cls:
        raise ValueError(f"register_summary: {name!r} is already registered to {_REGISTERED[name].__qualname__}")
    _REGISTERED[name] = cls
    return cls


def registered_summaries() -> dict[str, type[nn.Module]]:
    """The summary networks registered in this process (a copy)."""
    return dict(_REGISTERED)


def summary_type(summary: nn.Module) -> str | None:
    """The ``type`` name under which ``summary``'s class is built in or registered, else None."""
    for table in (SUMMARY_NETWORKS, _REGISTERED):
        for name, cls in table.items():
            if type(summary) is cls:
                return name
    return None


def summary_from_config(config: dict[str, Any]) -> nn.Module:
    """Rebuild a summary network from its ``config()`` (built-in or registered with :func:`register_summary`).

    Raises:
        ValueError: unknown ``type`` or arguments the network does not take.
    """
    if not isinstance(config, dict) or "type" not in config:
        raise ValueError(f"summary_from_config: expected a dict with a 'type' key, got {config!r}")
    kind = config["type"]
    kwargs = {k: v for k, v in config.items() if k != "type"}
    build: Callable[..., nn.Module]
    if kind in SUMMARY_NETWORKS:
        build = SUMMARY_NETWORKS[kind]
    elif kind in _REGISTERED:
        cls = _REGISTERED[kind]
        from_config = getattr(cls, "from_config", None)
        if callable(from_config):
            return from_config(kwargs)
        build = cls
    else:
        raise ValueError(f"summary_from_config: unknown summary type {kind!r}; expected one of "
                         f"{tuple(SUMMARY_NETWORKS) + tuple(_REGISTERED)} (register your own with "
                         "innverse.nets.register_summary)")
    try:
        return build(**kwargs)
    except TypeError as err:
        raise ValueError(f"summary_from_config: invalid arguments for {kind!r}: {err}") from err
