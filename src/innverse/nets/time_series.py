"""Time-series summary network: 1-D convolutions, then a recurrent layer over the valid steps."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from .sets import _activation, padding_mask

__all__ = ["TimeSeriesNet"]


class TimeSeriesNet(nn.Module):
    r"""Summary of a (multivariate) time series of variable length.

    .. math::
        h_{1:n} = \mathrm{Conv1D}_L \circ \dots \circ \mathrm{Conv1D}_1(x_{1:n}),\quad
        s = W\,[\mathrm{RNN}(h_{1:n})_n,\ \log n] + b.

    Input ``(B, T, C)``: ``T`` steps of ``C`` channels; a series of length ``n < T`` fills the first
    ``n`` rows and the rest are NaN padding. A 2-D input is a batch of univariate series ``(B, T)``
    when ``in_channels == 1``, else one series ``(T, C)``. Padded steps are zeroed before every convolution
    (as zero padding at the boundary) and excluded from the recurrence by packing, so the final
    state is the one after the last valid step.

    Args:
        in_channels: channels ``C`` per step.
        out_features: summary size.
        channels: width of the convolutions; conv_layers: how many; kernel_size: their kernel (odd).
        hidden: recurrent state size; cell: ``"gru"`` or ``"lstm"``.
        activation: activation after each convolution.

    References:
        Radev et al. "BayesFlow: Learning complex stochastic models with invertible neural
        networks". IEEE TNNLS 2020 (convolutional-recurrent summary networks for series).
    """

    #: accepts NaN-padded inputs of any number of rows
    variable_size = True

    def __init__(self, in_channels: int, out_features: int = 32, channels: int = 32, conv_layers: int = 2,
                 kernel_size: int = 5, hidden: int = 64, cell: str = "gru", activation: str = "gelu") -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"TimeSeriesNet: kernel_size must be odd, got {kernel_size}")
        if cell not in ("gru", "lstm"):
            raise ValueError(f"TimeSeriesNet: cell must be 'gru' or 'lstm', got {cell!r}")
        if min(in_channels, out_features, channels, hidden) < 1 or conv_layers < 0:
            raise ValueError("TimeSeriesNet: sizes must be positive")
        self._config = {"in_channels": in_channels, "out_features": out_features, "channels": channels,
                        "conv_layers": conv_layers, "kernel_size": kernel_size, "hidden": hidden, "cell": cell,
                        "activation": activation}
        self.in_channels = in_channels
        self.out_features = out_features
        act = _activation(activation, "TimeSeriesNet")
        convs, width = [], in_channels
        for _ in range(conv_layers):
            convs.append(nn.Conv1d(width, channels, kernel_size, padding=kernel_size // 2))
            width = channels
        self.convs = nn.ModuleList(convs)
        self.act = act()
        rnn = nn.GRU if cell == "gru" else nn.LSTM
        self.rnn = rnn(width, hidden, batch_first=True)
        self.head = nn.Linear(hidden + 1, out_features)

    def config(self) -> dict[str, Any]:
        """JSON description from which :func:`~innverse.nets.summary_from_config` rebuilds the net."""
        return {"type": "time_series", **self._config}

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:  # (B, T) univariate batch, or one multivariate series (T, C)
            x = x.unsqueeze(-1) if self.in_channels == 1 else x.unsqueeze(0)
        if x.dim() != 3 or x.shape[-1] != self.in_channels:
            raise ValueError(f"TimeSeriesNet: expected (batch, steps, {self.in_channels}), got {tuple(x.shape)}")
        values, valid = padding_mask(x, "TimeSeriesNet")
        lengths = valid.sum(1)
        steps = torch.arange(x.shape[1], device=x.device)
        if not torch.equal(valid, steps < lengths[:, None]):
            raise ValueError("TimeSeriesNet: NaN padding must come after the valid steps of each series")
        keep = valid.unsqueeze(1).to(values.dtype)            # (B, 1, T)
        h = values.transpose(1, 2)                            # (B, C, T)
        for conv in self.convs:
            h = self.act(conv(h * keep))
        packed = pack_padded_sequence(h.transpose(1, 2), lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, state = self.rnn(packed)
        last = (state[0] if isinstance(state, tuple) else state)[-1]  # (B, hidden), after step n
        return self.head(torch.cat([last, torch.log(lengths.to(last.dtype)).unsqueeze(-1)], -1))
