"""Walk a composition of invertible modules and collect every leaf block with its inputs."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..core.graph import Graph
from ..core.module import AbstractInvertible, Context
from ..core.sequence import Sequence

__all__ = ["Leaf", "leaves", "block_tolerance", "residual_lipschitz"]


@dataclass
class Leaf:
    """A non-composite block, its dotted name inside the root module, and its inputs."""

    name: str
    block: AbstractInvertible
    x: Tensor
    c: Context


def leaves(module: AbstractInvertible, x: Tensor, c: Context, prefix: str = "") -> list[Leaf]:
    """All leaf blocks of ``module`` (recursing into :class:`Sequence` and :class:`Graph`), each with
    the input it receives when ``module`` is applied to ``x`` (no gradients)."""
    with torch.no_grad():
        if isinstance(module, Sequence):
            out: list[Leaf] = []
            for i, block in enumerate(module.blocks):
                cb = c if block.conditional else None
                out += leaves(block, x, cb, f"{prefix}blocks.{i}.")
                x = block.forward(x, cb, log_det=False)[0]
            return out
        if isinstance(module, Graph):
            return _graph_leaves(module, x, c, prefix)
        return [Leaf(prefix.rstrip(".") or module.name, module, x, c)]


def _graph_leaves(graph: Graph, x: Tensor, c: Context, prefix: str) -> list[Leaf]:
    # Mirrors Graph._forward: nodes are stored in topological order.
    conds = graph._conditions(c)
    env: dict[int, Tensor] = {0: x}
    out: list[Leaf] = []
    for node in graph._nodes:
        if node.kind == "block":
            block = graph.blocks[node.module]
            cond = conds[node.condition] if node.condition >= 0 else None
            inp = env.pop(node.inputs[0])
            out += leaves(block, inp, cond, f"{prefix}blocks.{node.module}.")
            env[node.outputs[0]] = block.forward(inp, cond, log_det=False)[0]
        elif node.kind == "split":
            env.update(zip(node.outputs, env.pop(node.inputs[0]).split(list(node.sizes), node.dim + 1)))
        else:
            env[node.outputs[0]] = torch.cat([env.pop(i) for i in node.inputs], node.dim + 1)
    return out


def block_tolerance(block: AbstractInvertible, dtype: torch.dtype) -> float | None:
    """The stated tolerance of an iterative inverse, or ``None`` if the block names none.

    Looked up as ``block.solver.tolerance_for(dtype)`` (innverse residual blocks), then a
    numeric ``block.tolerance`` or ``block.tol``.
    """
    solver = getattr(block, "solver", None)
    fn = getattr(solver, "tolerance_for", None)
    if callable(fn):
        return float(fn(dtype))
    for attr in ("tolerance", "tol"):
        value = getattr(block, attr, None)
        if isinstance(value, (int, float)) and value > 0:
            return float(value)
    return None


def residual_lipschitz(block: AbstractInvertible) -> float | None:
    """``block.lipschitz_bound()`` (a bound on Lip(g) of ``y = x + g(x)``), if the block has one."""
    fn = getattr(block, "lipschitz_bound", None)
    if not callable(fn):
        return None
    value = float(fn())
    return value if math.isfinite(value) and value >= 0 else None
