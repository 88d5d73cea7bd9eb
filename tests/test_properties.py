"""Generic property suite: every registered module and its inverse, in float64.

Checks against independent ground truth: round trips, the log-determinant against the
brute-force autograd Jacobian, inverse log-det = -forward log-det, dependence on the condition,
state-dict round trips and gradient flow to every parameter.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
import torch

import innverse
from innverse import blocks as B
from innverse.core import AbstractInvertible, Graph, Inverse, Sequence

from .registry import CASES

BATCH = 3
#: round-trip tolerance of iteratively inverted modules (``exact_inverse = False``: residual
#: blocks with c = 0.9, fixed-point tolerance 1e-11 in float64); exact inverses must reach 1e-10.
INEXACT_ROUND_TRIP_TOL = 1e-6


def _round_trip_tol(module: AbstractInvertible) -> float:
    return 1e-10 if module.exact_inverse else INEXACT_ROUND_TRIP_TOL


def _contexts(module: AbstractInvertible, batch: int, gen: torch.Generator):
    shapes = module.context_shapes
    ctx = [torch.randn(batch, *s, generator=gen, dtype=torch.float64) for s in shapes]
    return ctx if len(ctx) > 1 else (ctx[0] if ctx else None)


def _build(name: str, seed: int = 0, inverted: bool = False) -> AbstractInvertible:
    torch.manual_seed(seed)
    module = CASES[name](seed).double()
    gen = torch.Generator().manual_seed(seed + 100)
    # Warm-up forward in training mode: data-dependent initialisations (ActNorm) happen here.
    module.train()
    module(torch.randn(16, *module.event_shape, generator=gen, dtype=torch.float64) * 1.5,
           _contexts(module, 16, gen))
    # Perturb all parameters so zero-initialised subnets are not the identity.
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    module.eval()
    return module.inverted() if inverted else module


def _inputs(module: AbstractInvertible, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    x = 1.5 * torch.randn(BATCH, *module.event_shape, generator=gen, dtype=torch.float64)
    return x, _contexts(module, BATCH, gen)


def _jacobian(m: AbstractInvertible, x: torch.Tensor, c) -> torch.Tensor:
    """Brute-force Jacobian of one sample: D copies in one batch, row k from output k of copy k.

    Samples in a batch are independent in eval mode, so one forward/backward gives all rows.
    """
    d = x.numel()
    xs = x.reshape(1, -1).repeat(d, 1).requires_grad_(True)
    cs = None if c is None else ([t.expand(d, *t.shape[1:]) for t in c] if isinstance(c, list)
                                 else c.expand(d, *c.shape[1:]))
    y = m(xs.reshape(d, *m.event_shape), cs)[0].reshape(d, -1)
    (grad,) = torch.autograd.grad(y.diagonal().sum(), xs)
    return grad


PARAMS = [pytest.param(n, inv, id=f"{n}{'-inv' if inv else ''}") for n in CASES for inv in (False, True)]


@pytest.mark.parametrize("name,inverted", PARAMS)
def test_round_trip(name, inverted):
    m = _build(name, inverted=inverted)
    x, c = _inputs(m)
    y, ld = m(x, c)
    assert y.shape == (BATCH, *m.output_shape) and y.dtype == torch.float64
    assert ld.shape == (BATCH,) and ld.dtype == torch.float64
    x2, ld_inv = m.inverse(y, c)
    scale = x.abs().max().clamp_min(1.0)
    assert ((x2 - x).abs().max() / scale) < _round_trip_tol(m)
    torch.testing.assert_close(ld_inv, -ld, rtol=1e-9, atol=1e-9)
    # and the other way round, starting from the output space
    y0 = torch.randn(BATCH, *m.output_shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    x0, _ = m.inverse(y0, c)
    y1, _ = m(x0, c)
    assert ((y1 - y0).abs().max() / y0.abs().max().clamp_min(1.0)) < _round_trip_tol(m)


@pytest.mark.parametrize("name,inverted", PARAMS)
def test_log_det_matches_jacobian(name, inverted):
    m = _build(name, inverted=inverted)
    x, c = _inputs(m)
    _, ld = m(x, c)
    # In eval mode the log-det is deterministic: stochastic estimators (residual blocks) switch
    # to their exact mode there (for the small events of the registry).
    torch.testing.assert_close(m(x, c)[1], ld, rtol=0, atol=0)
    for i in range(BATCH):
        ci = None if c is None else ([t[i:i + 1] for t in c] if isinstance(c, list) else c[i:i + 1])
        jac = _jacobian(m, x[i], ci)
        sign, logabs = torch.linalg.slogdet(jac)
        assert sign != 0
        assert abs(logabs.item() - ld[i].item()) < 1e-8, (logabs.item(), ld[i].item())


@pytest.mark.parametrize("name,inverted", PARAMS)
def test_skip_log_det(name, inverted):
    m = _build(name, inverted=inverted)
    x, c = _inputs(m)
    y, ld = m(x, c, log_det=False)
    assert ld is None
    torch.testing.assert_close(y, m(x, c)[0], rtol=0, atol=0)
    x2, ld2 = m.inverse(y, c, log_det=False)
    assert ld2 is None
    torch.testing.assert_close(x2, m.inverse(y, c)[0], rtol=0, atol=0)


@pytest.mark.parametrize("name", list(CASES))
def test_condition_matters(name):
    m = _build(name)
    if not m.conditional:
        pytest.skip("unconditional")
    x, c = _inputs(m)
    y, _ = m(x, c)
    conds = c if isinstance(c, list) else [c]
    for k in range(len(conds)):
        changed = [t.clone() for t in conds]
        changed[k] = changed[k] + 1.0
        y2, _ = m(x, changed if isinstance(c, list) else changed[0])
        assert (y2 - y).abs().max() > 1e-6, f"output does not depend on condition {k}"


@pytest.mark.parametrize("name", list(CASES))
def test_state_dict_round_trip(name):
    m = _build(name, seed=0)
    other = _build(name, seed=7)
    x, c = _inputs(m)
    other.load_state_dict(m.state_dict())
    torch.testing.assert_close(other(x, c)[0], m(x, c)[0], rtol=0, atol=0)
    torch.testing.assert_close(other.inverse(x.new_ones(BATCH, *m.output_shape), c)[0],
                               m.inverse(x.new_ones(BATCH, *m.output_shape), c)[0], rtol=0, atol=0)


@pytest.mark.parametrize("name,inverted", PARAMS)
def test_every_parameter_gets_gradient(name, inverted):
    m = _build(name, inverted=inverted)
    x, c = _inputs(m)
    x.requires_grad_(True)
    y, ld = m(x, c)
    (y.square().sum() + ld.sum()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0, "no gradient reaches the input"
    for pname, p in m.named_parameters():
        assert p.grad is not None, f"{pname} received no gradient"
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, f"{pname} has an all-zero gradient"


@pytest.mark.parametrize("name", list(CASES))
def test_float32_follows_input(name):
    torch.manual_seed(0)
    m = CASES[name](0)
    x = torch.randn(2, *m.event_shape)
    c = _contexts(m, 2, torch.Generator().manual_seed(0))
    c = [t.float() for t in c] if isinstance(c, list) else (None if c is None else c.float())
    y, ld = m(x, c)
    assert y.dtype == torch.float32 and ld.dtype == torch.float32


def _all_invertible_classes() -> set[type]:
    """Every concrete invertible module class defined anywhere in the package (all subpackages scanned)."""
    found = set()
    for info in pkgutil.walk_packages(innverse.__path__, "innverse."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if (inspect.isclass(obj) and issubclass(obj, AbstractInvertible) and obj.__module__ == module.__name__
                    and not obj.__name__.startswith("Abstract")):
                found.add(obj)
    return found


def test_registry_is_complete():
    covered: set[type] = set()

    def visit(m):
        covered.add(type(m))
        for child in m.modules():
            if isinstance(child, AbstractInvertible):
                covered.add(type(child))

    for name in CASES:
        m = _build(name)
        visit(m)
        visit(m.inverted())
    every = _all_invertible_classes()
    names = {cls.__name__ for cls in every}
    assert {"Coupling", "ContextElementwise", "MaskedAutoregressive", "ResidualBlock", "Reversible", "Graph"} <= names
    missing = {f"{cls.__module__}.{cls.__name__}" for cls in every - covered}
    assert not missing, f"invertible modules missing from tests/registry.py: {sorted(missing)}"
    assert Inverse in covered and Sequence in covered and Graph in covered
    assert B.Coupling in covered
