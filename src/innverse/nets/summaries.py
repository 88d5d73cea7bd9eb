"""MLP summary for fixed-size data and the config registry of summary networks.

Every summary network here maps a batch of observations to ``(B, out_features)``, exposes
``out_features`` and ``config() -> dict`` (JSON), and is rebuilt by :func:`summary_from_config`
without pickle.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from .set_transformer import SetTransformer
from .sets import DeepSet, _activation
from .time_series import TimeSeriesNet

__all__ = ["MLPSummary", "SUMMARY_NETWORKS", "summary_from_config"]


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


SUMMARY_NETWORKS: dict[str, type[nn.Module]] = {
    "mlp": MLPSummary,
    "deepset": DeepSet,
    "set_transformer": SetTransformer,
    "time_series": TimeSeriesNet,
}


def summary_from_config(config: dict[str, Any]) -> nn.Module:
    """Rebuild a summary network from its ``config()``.

    Raises:
        ValueError: unknown ``type`` or arguments the network does not take.
    """
    if not isinstance(config, dict) or "type" not in config:
        raise ValueError(f"summary_from_config: expected a dict with a 'type' key, got {config!r}")
    kind = config["type"]
    if kind not in SUMMARY_NETWORKS:
        raise ValueError(f"summary_from_config: unknown summary type {kind!r}; expected one of "
                         f"{tuple(SUMMARY_NETWORKS)}")
    kwargs = {k: v for k, v in config.items() if k != "type"}
    try:
        return SUMMARY_NETWORKS[kind](**kwargs)
    except TypeError as err:
        raise ValueError(f"summary_from_config: invalid arguments for {kind!r}: {err}") from err
