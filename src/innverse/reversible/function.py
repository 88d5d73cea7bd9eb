r"""The autograd function behind :class:`~innverse.reversible.Reversible`.

Forward: run the blocks without recording a graph and keep only the output (and the condition).
Backward, block by block from the last: reconstruct the block's input from its output with the
exact inverse, re-run the block's forward with a graph on that input, and backpropagate the
incoming gradients of the output and of the log-det through it:

.. math::
    x_k = f_k^{-1}(x_{k+1}),\qquad
    (\bar x_k, \bar\theta_k, \bar c\,{+}{=}) = \mathrm{vjp}\big((x, \theta_k, c) \mapsto
    (f_k(x), \log|\det J_{f_k}(x)|);\ (\bar x_{k+1}, \overline{\log\det})\big).

At any time only one block's graph exists, so activation memory does not grow with depth.
Data-dependent initialisation (ActNorm) happens in the forward pass if at all, never in the
recomputation. For
blocks that draw random numbers (dropout) the generator state before each block's forward is
stored and restored for the reconstruction and the recomputation, which therefore see the same
random draws as the forward pass.

References:
    Gomez, Ren, Urtasun, Grosse. "The Reversible Residual Network: Backpropagation Without
    Storing Activations". NeurIPS 2017.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from ..core.module import AbstractInvertible, add_log_det

__all__ = ["Step", "Plan", "ReversibleFunction"]


@dataclass
class Step:
    """One block of a reversible run: the block, whether it takes the condition, its parameters."""

    block: AbstractInvertible
    conditioned: bool
    params: list[int]  # indices into the run's parameter list
    stochastic: bool
    rng: tuple | None = None  # generator states before the block's forward (stochastic blocks)


@dataclass
class Plan:
    """Everything the backward pass needs besides the saved output and condition."""

    steps: list[Step]
    params: list[Tensor]  # the parameters that receive gradients, in ``apply`` order
    forward: bool  # True: blocks run forward; False: the composition's inverse
    log_det: bool
    needs_input_grad: bool = False
    needs_context_grad: bool = False
    devices: list[int] = field(default_factory=list)
    checkpoint_every: int | None = None  # also keep the input of every k-th step (k = this)
    checkpointed: list[int] = field(default_factory=list)  # filled by forward: steps whose input is kept

    def run(self, block: AbstractInvertible) -> Callable:
        return block._forward if self.forward else block._inverse

    def reconstruct(self, block: AbstractInvertible) -> Callable:
        return block._inverse if self.forward else block._forward


def _rng_state(devices: list[int]) -> tuple:
    cuda = [torch.cuda.get_rng_state(d) for d in devices]
    return torch.get_rng_state(), cuda


@contextmanager
def _replay(state: tuple | None, devices: list[int]):
    if state is None:
        yield
        return
    with torch.random.fork_rng(devices=devices):
        torch.set_rng_state(state[0])
        for d, s in zip(devices, state[1]):
            torch.cuda.set_rng_state(s, d)
        yield


@contextmanager
def _no_data_init(block: AbstractInvertible):
    """Treat not-yet-initialised data-dependent layers (ActNorm's ``initialized`` buffer) as
    initialised: a recomputation must use the parameters of the original pass, not re-initialise
    them from reconstructed data (which happens when the original pass was an inverse)."""
    pending = [m for m in block.modules()
               if isinstance(getattr(m, "initialized", None), Tensor) and m.initialized.dtype == torch.bool
               and m.initialized.numel() == 1 and not bool(m.initialized)]
    for m in pending:
        m.initialized.fill_(True)
    try:
        yield
    finally:
        for m in pending:
            m.initialized.fill_(False)


class ReversibleFunction(torch.autograd.Function):
    """``apply(plan, x, c, *plan.params) -> y`` or ``(y, log_det)``; see the module docstring."""

    @staticmethod
    def forward(ctx, plan: Plan, x: Tensor, c: Tensor | None, *params: Tensor):  # type: ignore[override]
        x_in, total = x, None
        kept: list[Tensor] = []
        plan.checkpointed = []
        for i, step in enumerate(plan.steps):
            if plan.checkpoint_every and i % plan.checkpoint_every == 0:
                plan.checkpointed.append(i)
                kept.append(x)
            if step.stochastic:
                step.rng = _rng_state(plan.devices)
            x, ld = plan.run(step.block)(x, c if step.conditioned else None, plan.log_det)
            if plan.log_det:
                total = add_log_det(total, ld)
        if x is x_in or x._base is not None:
            x = x.clone()  # an output must not alias the input (or be a view) of a custom function
        ctx.plan = plan
        ctx.save_for_backward(x, c, *kept)
        if not plan.log_det:
            return x
        return x, (total if total is not None else x.new_zeros(x.shape[0]))

    @staticmethod
    @once_differentiable
    def backward(ctx, *grads: Tensor):  # type: ignore[override]
        plan: Plan = ctx.plan
        y, c, *kept = ctx.saved_tensors
        checkpoints = dict(zip(plan.checkpointed, kept))
        grad_y = grads[0]
        grad_ld = grads[1] if plan.log_det else None
        params = plan.params
        param_grads: list[Tensor | None] = [None] * len(params)
        grad_c = None
        for i in reversed(range(len(plan.steps))):
            step = plan.steps[i]
            cond = c if step.conditioned else None
            if i in checkpoints:
                x = checkpoints[i]
            else:
                with torch.no_grad(), _replay(step.rng, plan.devices), _no_data_init(step.block):
                    x, _ = plan.reconstruct(step.block)(y, cond, False)
            with torch.enable_grad(), _replay(step.rng, plan.devices), _no_data_init(step.block):
                xr = x.detach().requires_grad_(True)
                cr = None
                if cond is not None:
                    cr = cond.detach().requires_grad_(plan.needs_context_grad)
                out, ld = plan.run(step.block)(xr, cr, plan.log_det)
                outputs, out_grads = [out], [grad_y]
                if plan.log_det and ld is not None and ld.requires_grad:
                    outputs.append(ld)
                    out_grads.append(grad_ld)
                inputs = [xr] + ([cr] if cr is not None and cr.requires_grad else [])
                inputs += [params[j] for j in step.params]
                got = torch.autograd.grad(outputs, inputs, out_grads, allow_unused=True)
            grad_y = torch.zeros_like(x) if got[0] is None else got[0]
            k = 1
            if cr is not None and cr.requires_grad:
                if got[1] is not None:
                    grad_c = got[1] if grad_c is None else grad_c + got[1]
                k = 2
            for j, g in zip(step.params, got[k:]):
                if g is not None:
                    param_grads[j] = g if param_grads[j] is None else param_grads[j] + g
            y = x
        return (None, grad_y if plan.needs_input_grad else None,
                grad_c if plan.needs_context_grad else None, *param_grads)
