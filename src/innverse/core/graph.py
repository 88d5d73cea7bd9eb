"""Directed acyclic graphs of invertible modules with split and merge nodes."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .module import AbstractInvertible, Context, Shape, add_log_det, as_shape, check_context

__all__ = ["Graph", "GraphBuilder", "Port", "ConditionPort"]


@dataclass(frozen=True)
class Port:
    """A tensor inside a graph under construction: the ``index``-th value, of ``shape``."""

    index: int
    shape: Shape


@dataclass(frozen=True)
class ConditionPort:
    """One of the graph's condition inputs: the ``index``-th context tensor, of ``shape``."""

    index: int
    shape: Shape


@dataclass(frozen=True)
class _Node:
    kind: str  # "block", "split" or "merge"
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    module: int = -1  # index into Graph.modules for "block"
    condition: int = -1  # index of the condition input, -1 for none
    dim: int = 0  # event dimension for split/merge
    sizes: tuple[int, ...] = ()


class GraphBuilder:
    """Builds a :class:`Graph` by wiring blocks, splits and merges between ports.

    Example (two scales, a latent split off after the first)::

        b = GraphBuilder((1, 8, 8))
        c = b.condition((10,))
        h = b.add(HaarDownsample((1, 8, 8)), b.input)            # (4, 4, 4)
        h = b.add(AffineCoupling(h.shape, context_shape=c.shape), h, c)
        z1, h = b.split(h, [2, 2])                                # channels
        h = b.add(HaarDownsample(h.shape), h)                     # (8, 2, 2)
        graph = b.build([z1, h])

    The graph's output is the flattened concatenation of the output ports, in order (or the
    single output port's tensor when there is only one). Conditions are passed to the graph as
    a list of tensors, in the order the condition ports were declared.
    """

    def __init__(self, input_shape: int | tuple[int, ...]) -> None:
        self._shapes: list[Shape] = [as_shape(input_shape, "input_shape")]
        self._conditions: list[Shape] = []
        self._nodes: list[_Node] = []
        self._modules: list[AbstractInvertible] = []
        self._consumed: set[int] = set()
        self.input = Port(0, self._shapes[0])

    def _new(self, shape: Shape) -> Port:
        self._shapes.append(shape)
        return Port(len(self._shapes) - 1, shape)

    def _use(self, port: Port, where: str) -> None:
        if not isinstance(port, Port) or port.index >= len(self._shapes):
            raise ValueError(f"GraphBuilder.{where}: {port!r} is not a port of this graph")
        if port.index in self._consumed:
            raise ValueError(
                f"GraphBuilder.{where}: port {port.index} was already used; an invertible graph "
                "uses every value exactly once"
            )
        self._consumed.add(port.index)

    def condition(self, shape: int | tuple[int, ...]) -> ConditionPort:
        """Declare a condition input of the given per-sample shape."""
        self._conditions.append(as_shape(shape, "condition shape"))
        return ConditionPort(len(self._conditions) - 1, self._conditions[-1])

    def add(self, module: AbstractInvertible, x: Port, condition: ConditionPort | None = None) -> Port:
        """Apply ``module`` to ``x`` (with ``condition`` if the module is conditional)."""
        if not isinstance(module, AbstractInvertible):
            raise TypeError(f"GraphBuilder.add: {type(module).__name__} is not an invertible module")
        name = type(module).__name__
        if module.event_shape != x.shape:
            raise ValueError(
                f"GraphBuilder.add: {name} expects event shape {module.event_shape}, "
                f"but the port has shape {x.shape}"
            )
        if (module.context_shape is None) != (condition is None):
            raise ValueError(
                f"GraphBuilder.add: {name} has context_shape {module.context_shape} "
                f"but condition={condition!r} was given"
            )
        if condition is not None and condition.shape != module.context_shape:
            raise ValueError(
                f"GraphBuilder.add: {name} expects a condition of shape {module.context_shape}, "
                f"the condition port has shape {condition.shape}"
            )
        self._use(x, "add")
        out = self._new(module.output_shape)
        self._modules.append(module)
        self._nodes.append(
            _Node("block", (x.index,), (out.index,), module=len(self._modules) - 1,
                  condition=-1 if condition is None else condition.index)
        )
        return out

    def split(self, x: Port, sizes: list[int] | tuple[int, ...], dim: int = 0) -> list[Port]:
        """Split ``x`` along event dimension ``dim`` (0 = features/channels) into ``sizes``."""
        sizes = tuple(int(s) for s in sizes)
        if dim < 0 or dim >= len(x.shape):
            raise ValueError(f"GraphBuilder.split: dim {dim} out of range for shape {x.shape}")
        if sum(sizes) != x.shape[dim] or any(s <= 0 for s in sizes):
            raise ValueError(
                f"GraphBuilder.split: sizes {sizes} must be positive and sum to {x.shape[dim]} "
                f"(dimension {dim} of shape {x.shape})"
            )
        self._use(x, "split")
        outs = []
        for s in sizes:
            shape = list(x.shape)
            shape[dim] = s
            outs.append(self._new(tuple(shape)))
        self._nodes.append(
            _Node("split", (x.index,), tuple(p.index for p in outs), dim=dim, sizes=sizes)
        )
        return outs

    def merge(self, xs: list[Port], dim: int = 0) -> Port:
        """Concatenate ports along event dimension ``dim``; other dimensions must agree."""
        if len(xs) < 2:
            raise ValueError("GraphBuilder.merge: needs at least two ports")
        ref = list(xs[0].shape)
        for p in xs[1:]:
            other = list(p.shape)
            if len(other) != len(ref) or other[:dim] + other[dim + 1:] != ref[:dim] + ref[dim + 1:]:
                raise ValueError(
                    f"GraphBuilder.merge: shapes {[q.shape for q in xs]} differ outside dim {dim}"
                )
        for p in xs:
            self._use(p, "merge")
        shape = list(ref)
        shape[dim] = sum(p.shape[dim] for p in xs)
        out = self._new(tuple(shape))
        self._nodes.append(
            _Node("merge", tuple(p.index for p in xs), (out.index,), dim=dim,
                  sizes=tuple(p.shape[dim] for p in xs))
        )
        return out

    def build(self, outputs: Port | list[Port]) -> Graph:
        """Finish the graph with the given output port(s)."""
        if isinstance(outputs, Port):
            outputs = [outputs]
        for p in outputs:
            if p.index in self._consumed:
                raise ValueError(f"GraphBuilder.build: output port {p.index} is consumed elsewhere")
        dangling = set(range(len(self._shapes))) - self._consumed - {p.index for p in outputs}
        if dangling:
            raise ValueError(
                f"GraphBuilder.build: ports {sorted(dangling)} are neither used nor outputs; "
                "an invertible graph must keep every value"
            )
        return Graph(self._shapes, self._conditions, self._nodes, self._modules,
                     [p.index for p in outputs])


class Graph(AbstractInvertible):
    r"""An invertible directed acyclic graph of blocks, splits and merges.

    Built with :class:`GraphBuilder`. The log-determinant is the sum over block nodes (split and
    merge are permutations of coordinates, log-det 0). With several outputs the graph's output is
    ``cat([o.flatten(1) for o in outputs], 1)``; :meth:`split_output` recovers the parts.

    Conditions: ``c`` is a tensor when the graph declares one condition, a list of tensors (in
    declaration order) when it declares several.
    """

    def __init__(self, shapes, conditions, nodes, modules, outputs) -> None:
        self._port_shapes: list[Shape] = list(shapes)
        self.condition_shapes: list[Shape] = list(conditions)
        self._output_ports: list[int] = list(outputs)
        out_shapes = [self._port_shapes[i] for i in outputs]
        out_shape = out_shapes[0] if len(outputs) == 1 else (sum(math.prod(s) for s in out_shapes),)
        ctx = self.condition_shapes[0] if len(self.condition_shapes) == 1 else None
        super().__init__(shapes[0], ctx, out_shape)
        self.output_shapes: list[Shape] = out_shapes
        self._nodes: list[_Node] = list(nodes)
        self.blocks = nn.ModuleList(modules)
        self.exact_inverse = all(m.exact_inverse for m in modules)

    @property
    def conditional(self) -> bool:
        return bool(self.condition_shapes)

    @property
    def context_shapes(self) -> list[Shape]:
        return list(self.condition_shapes)

    def _check_context(self, c: Context) -> None:
        name = type(self).__name__
        n = len(self.condition_shapes)
        if n <= 1:
            check_context(name, c, self.context_shape)
            return
        if not isinstance(c, (list, tuple)) or len(c) != n:
            raise ValueError(f"{name}: expected a list of {n} condition tensors, got {type(c).__name__}"
                             + (f" of length {len(c)}" if isinstance(c, (list, tuple)) else ""))
        for i, (ci, s) in enumerate(zip(c, self.condition_shapes)):
            check_context(f"{name} (condition {i})", ci, s)

    def _conditions(self, c: Context) -> list[Tensor | None]:
        if not self.condition_shapes:
            return []
        if len(self.condition_shapes) == 1:
            return [c if isinstance(c, Tensor) else c[0]]  # type: ignore[index]
        return list(c)  # type: ignore[arg-type]

    def split_output(self, y: Tensor) -> list[Tensor]:
        """Split the graph's output into the per-port tensors (with their shapes)."""
        if len(self._output_ports) == 1:
            return [y]
        sizes = [math.prod(s) for s in self.output_shapes]
        return [p.reshape(y.shape[0], *s) for p, s in zip(y.split(sizes, 1), self.output_shapes)]

    def _join_output(self, values: list[Tensor]) -> Tensor:
        if len(values) == 1:
            return values[0]
        return torch.cat([v.flatten(1) for v in values], 1)

    def _forward(self, x: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        conds = self._conditions(c)
        env: dict[int, Tensor] = {0: x}
        total = None
        for node in self._nodes:
            if node.kind == "block":
                cond = conds[node.condition] if node.condition >= 0 else None
                out, ld = self.blocks[node.module]._forward(env.pop(node.inputs[0]), cond, log_det)
                env[node.outputs[0]] = out
                if log_det:
                    total = add_log_det(total, ld)
            elif node.kind == "split":
                parts = env.pop(node.inputs[0]).split(list(node.sizes), node.dim + 1)
                env.update(zip(node.outputs, parts))
            else:
                env[node.outputs[0]] = torch.cat([env.pop(i) for i in node.inputs], node.dim + 1)
        return self._join_output([env.pop(i) for i in self._output_ports]), total

    def _inverse(self, y: Tensor, c: Context, log_det: bool) -> tuple[Tensor, Tensor | None]:
        conds = self._conditions(c)
        env = dict(zip(self._output_ports, self.split_output(y)))
        total = None
        for node in reversed(self._nodes):
            if node.kind == "block":
                cond = conds[node.condition] if node.condition >= 0 else None
                out, ld = self.blocks[node.module]._inverse(env.pop(node.outputs[0]), cond, log_det)
                env[node.inputs[0]] = out
                if log_det:
                    total = add_log_det(total, ld)
            elif node.kind == "split":
                env[node.inputs[0]] = torch.cat([env.pop(i) for i in node.outputs], node.dim + 1)
            else:
                parts = env.pop(node.outputs[0]).split(list(node.sizes), node.dim + 1)
                env.update(zip(node.inputs, parts))
        return env.pop(0), total
