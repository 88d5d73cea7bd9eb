"""SplitLatentINN: layout, exact invertibility, sampling shapes, loss terms, training, bad input."""

import pytest
import torch

from innverse.inverse import (
    ConditionalINN,
    PointRegressor,
    SplitLatentINN,
    SplitLatentLoss,
    hidden_width_for,
    train_conditional_inn,
    train_regressor,
    train_split_latent,
)
from innverse.tasks import InverseKinematics
from innverse.train import TrainConfig


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _perturbed(model: SplitLatentINN, seed: int = 0) -> SplitLatentINN:
    """Randomise all parameters so the (zero-initialised) network is not the identity."""
    g = _gen(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


def test_layout_and_padding():
    m = SplitLatentINN(4, 2)
    assert (m.z_dim, m.width, m.x_pad, m.out_pad) == (2, 6, 2, 2)       # two spare dimensions
    m = SplitLatentINN(4, 2, width=4)
    assert (m.x_pad, m.out_pad) == (0, 0)
    m = SplitLatentINN(2, 4, z_dim=2, width=8)
    assert (m.x_pad, m.out_pad) == (6, 2)
    x = torch.randn(5, 2)
    padded = m.pad(x, noise=0.0)
    assert padded.shape == (5, 8) and (padded[:, 2:] == 0).all()
    assert m.pad(x).std() > 0 and m.pad(x)[:, 2:].abs().max() < 0.1      # small padding noise
    y, z, p = m.split(torch.arange(8.0)[None])
    assert y.tolist() == [[0, 1, 2, 3]] and z.tolist() == [[4, 5]] and p.tolist() == [[6, 7]]


@pytest.mark.parametrize("coupling", ["allinone", "affine"])
def test_network_is_exactly_invertible_in_float64(coupling):
    m = _perturbed(SplitLatentINN(3, 1, z_dim=2, width=5, blocks=3, hidden=(16,), coupling=coupling)).double()
    xp = torch.randn(64, 5, generator=_gen(1), dtype=torch.float64)
    out = m.forward_std(xp)
    torch.testing.assert_close(m.inverse_std(out), xp, atol=1e-10, rtol=0)
    # generate() inverts forward() when the padding is exactly zero on both sides.
    m0 = _perturbed(SplitLatentINN(4, 2, width=4, blocks=3, hidden=(16,), coupling=coupling)).double()
    x = torch.randn(32, 4, generator=_gen(2), dtype=torch.float64)
    y_hat, z = m0(x)
    torch.testing.assert_close(m0.generate(y_hat, z), x, atol=1e-10, rtol=0)


def test_sample_follows_the_posterior_convention():
    m = _perturbed(SplitLatentINN(4, 2, blocks=2, hidden=(16,)))
    one = m.sample(7, torch.tensor([1.0, 0.5]), _gen(0))
    many = m.sample(7, torch.randn(3, 2), _gen(0))
    assert one.shape == (7, 4) and many.shape == (7, 3, 4)
    torch.testing.assert_close(m.sample(7, torch.tensor([1.0, 0.5]), _gen(0)), one)   # seeded


def test_state_dict_round_trip_keeps_normalisation():
    m = _perturbed(SplitLatentINN(4, 2, blocks=2, hidden=(16,)))
    m.fit_normalization(3 + 2 * torch.randn(100, 4), torch.randn(100, 2) - 5)
    clone = SplitLatentINN(4, 2, blocks=2, hidden=(16,))
    clone.load_state_dict(m.state_dict())
    y = torch.tensor([[-5.0, 0.2]])
    torch.testing.assert_close(clone.sample(5, y, _gen(3)), m.sample(5, y, _gen(3)))


def test_loss_terms_and_ramp():
    loss = SplitLatentLoss(inverse_ramp=0.5)
    assert [loss.ramp(t) for t in (0.0, 0.25, 0.5, 0.9)] == [0.0, 0.5, 1.0, 1.0]
    assert SplitLatentLoss(inverse_ramp=0.0).ramp(0.0) == 1.0
    m = _perturbed(SplitLatentINN(2, 4, z_dim=2, width=8, blocks=2, hidden=(16,)))
    x, y = torch.randn(32, 2), torch.randn(32, 4)
    total, terms = loss(m, x, y, progress=1.0, generator=_gen(0))
    assert set(terms) == {"fit", "latent", "inverse", "reconstruction", "total"}
    expected = (loss.fit_weight * terms["fit"] + loss.latent_weight * terms["latent"]
                + loss.inverse_weight * terms["inverse"] + loss.reconstruction_weight * terms["reconstruction"])
    assert abs(total.item() - expected) < 1e-4 * max(1.0, abs(expected))
    _, early = loss(m, x, y, progress=0.0, generator=_gen(0))
    assert "inverse" not in early                                      # ramped out at the start


def test_latent_term_does_not_move_the_y_prediction():
    # L_z sees y_hat through a stop-gradient: a loss with only L_z gives y_hat no gradient.
    m = _perturbed(SplitLatentINN(4, 2, blocks=2, hidden=(16,))).double()
    loss = SplitLatentLoss(fit_weight=0, inverse_weight=0, reconstruction_weight=0)
    x = torch.randn(16, 4, dtype=torch.float64, requires_grad=True)
    out = {}

    def keep(module, args, output):
        out.setdefault("o", output[0])

    handle = m.inn.register_forward_hook(keep)
    total, _ = loss(m, x, torch.randn(16, 2, dtype=torch.float64))
    handle.remove()
    y_hat = out["o"][:, :2]
    (grad,) = torch.autograd.grad(total, y_hat, retain_graph=True, allow_unused=True)
    assert grad is None or grad.abs().max() == 0


def test_training_improves_every_model_on_inverse_kinematics():
    task = InverseKinematics()
    x, y = task.sample_joint(4000, _gen(0))
    budget = TrainConfig(epochs=5, batch_size=128, lr=2e-3, ema=None, restore_best=False)  # 160 steps
    sl = SplitLatentINN(4, 2, width=6, blocks=3, hidden=(32, 32))
    r = train_split_latent(sl, x, y, budget)
    fit = r.column("fit")
    assert len(fit) == 5 and fit[-1] < 0.6 * fit[0] and r.seconds > 0
    assert set(r.records[0]) >= {"fit", "latent", "inverse", "reconstruction"}
    c = ConditionalINN(4, 2, blocks=3, hidden=(32, 32))
    rc = train_conditional_inn(c, x, y, budget)
    assert rc.final() < rc.column("train_loss")[0] - 0.5
    reg = PointRegressor(4, 2, hidden=(32, 32))
    rr = train_regressor(reg, x, y, budget)
    assert rr.final() < 0.85 * 4.0            # the constant predictor's MSE is 4 (standardised x)
    assert reg.sample(5, y[0]).std(0).max() == 0                      # a Dirac "posterior"
    # the one conditional-density contract: one observation -> (n, D), k -> (n, k, D); log_prob broadcasts
    assert c.sample(6, y[0]).shape == (6, 4) and c.sample(6, y[:3]).shape == (6, 3, 4)
    assert c.log_prob(x[:3], y[:3]).shape == (3,) and c.log_prob(c.sample(6, y[:3]), y[:3]).shape == (6, 3)
    torch.testing.assert_close(c.log_prob(x[:3], y[:3])[1], c.log_prob(x[1], y[1]))


def test_matched_parameter_count():
    target = SplitLatentINN(4, 2, width=6).num_parameters()
    width = hidden_width_for(target, lambda h: ConditionalINN(4, 2, hidden=(h, h)).num_parameters())
    assert abs(ConditionalINN(4, 2, hidden=(width, width)).num_parameters() - target) / target < 0.02


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="z_dim must be given"):
        SplitLatentINN(2, 4)
    with pytest.raises(ValueError, match=r"width must be an int >= max\(x_dim, y_dim \+ z_dim, 2\)"):
        SplitLatentINN(4, 2, z_dim=3, width=4)
    with pytest.raises(ValueError, match="coupling"):
        SplitLatentINN(4, 2, coupling="spline")
    m = SplitLatentINN(4, 2, blocks=1, hidden=(8,))
    with pytest.raises(ValueError, match=r"observation y as \(2,\) \(one\) or \(k, 2\) \(k of them\), got shape \(3,\)"):
        m.sample(10, torch.zeros(3))
    with pytest.raises(ValueError, match=r"observation y as \(2,\) \(one\) or \(k, 2\) \(k of them\), got shape \(5, 3\)"):
        m.sample(10, torch.zeros(5, 3))
    with pytest.raises(TypeError, match="floating-point"):
        m.sample(10, torch.zeros(2, dtype=torch.long))
    with pytest.raises(TypeError, match=r"the order is sample\(n, condition\)"):
        m.sample(torch.zeros(2), 10)
    with pytest.raises(ValueError, match=r"expected x of shape \(N, 4\)"):
        train_split_latent(m, torch.zeros(10, 3), torch.zeros(10, 2))
    with pytest.raises(ValueError, match=r"expected y of shape \(N, 2\)"):
        train_split_latent(m, torch.zeros(10, 4), torch.zeros(10, 1))
    with pytest.raises(ValueError, match="same number"):
        train_split_latent(m, torch.zeros(10, 4), torch.zeros(9, 2))
    with pytest.raises(ValueError, match="NaN"):
        train_split_latent(m, torch.full((10, 4), float("nan")), torch.zeros(10, 2))
    with pytest.raises(ValueError, match=r"expected x of shape \(batch, 4\)"):
        m(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="batch_size"):
        train_split_latent(m, torch.zeros(10, 4), torch.zeros(10, 2), {"batch_size": 0})
    with pytest.raises(ValueError, match=r"observation y as \(2,\) \(one\)"):
        ConditionalINN(4, 2, blocks=1, hidden=(8,)).sample(3, torch.zeros(4))
