"""
Measurement design and misspecified simulators
==============================================

Two questions come before and after every amortized inference: *which measurement should I
take?* and *what if my simulator is wrong?*

**Comparing setups.** For every candidate setup (a camera, a sensor, a protocol) with its own
simulator :math:`p(x \\mid \\theta, \\text{setup})` and a shared prior, :func:`innverse.design.compare`
trains a neural posterior estimate :math:`q(\\theta \\mid x)` and scores it on held-out simulations
whose parameters all setups share. Per parameter :math:`d` it reports the posterior contraction
and the expected information gain, bounded from below by the posterior itself (Barber-Agakov):

.. math::

    \\text{contraction}_d = 1 - \\frac{\\mathbb E_x \\operatorname{Var}[\\theta_d \\mid x]}{\\operatorname{Var}[\\theta_d]},
    \\qquad
    I(\\theta; x) \\ \\ge\\ \\mathbb E_{p(\\theta, x)}\\big[\\log q(\\theta \\mid x) - \\log p(\\theta)\\big],

with SBC calibration, identifiability and multimodality next to them
(:class:`innverse.design.Comparison`); costs (:class:`innverse.design.Setup`) give the
cost-information Pareto front.

**Misspecification.** A posterior trained on simulations is only as good as the simulator: on
real data that the simulator cannot produce it extrapolates, usually over-confidently. With a
small calibration set of real observations whose parameters were measured independently, RoPE
(:func:`innverse.design.rope`) fine-tunes the summary network :math:`h_o` so real data map onto
the summaries of their simulated counterparts, matches a batch of real observations to a bank
of simulations :math:`h_k` by entropic optimal transport (plan :math:`P^\\star`), and returns the
transport-weighted mixture of the trained posteriors,

.. math::

    \\tilde q(\\theta \\mid x_j) = \\sum_{k=1}^m w_{jk}\\, q(\\theta \\mid h_k), \\qquad
    w_{jk} = P^\\star_{jk} \\big/ \\textstyle\\sum_l P^\\star_{jl}.

:func:`innverse.design.score_posterior` scores both on held-out real pairs: LPP, the mean log
posterior density of the true parameters (higher is better), and ACAUC, the signed area between
the coverage curve and the diagonal (0: calibrated; negative: over-confident).
"""

# %%
# Setup. ``FAST`` is the reduced budget the documentation build uses in CI.
import os

import matplotlib.pyplot as plt
import torch

from innverse.amortized import fit_posterior
from innverse.design import Budget, RoPEOptions, Setup, check_misspecification, compare, rope, score_posterior
from innverse.tasks.design import MultispectralCamera, PendulumFriction

FAST = os.environ.get("INNVERSE_DOCS_FAST") == "1"
if FAST:
    BANDS, BUDGET = (3, 8), Budget(simulations=2_000, test_size=150)
    NPE_SIMULATIONS, NPE_EPOCHS, BANK = 5_000, 40, 2_000
else:
    BANDS, BUDGET = (3, 8, 27), Budget(simulations=10_000, test_size=300)
    NPE_SIMULATIONS, NPE_EPOCHS, BANK = 20_000, 60, 5_000
torch.manual_seed(0)

# %%
# Which camera?
# -------------
# :class:`~innverse.tasks.design.MultispectralCamera` simulates tissue (oxygenation, blood volume,
# scattering, water fraction) seen through a multispectral camera. The band sets are nested: 3
# visible bands, then 8 adding near-infrared bands (and 27 in the full budget), with made-up costs.
# In this tissue model water absorbs only above about 880 nm, so through the visible bands its
# fraction cannot be identified, by construction: a comparison should find exactly that.
cameras = [Setup(f"{k} bands", MultispectralCamera(k), cost={3: 1.0, 8: 3.0, 27: 10.0}[k]) for k in BANDS]
result = compare(cameras, MultispectralCamera().prior, BUDGET, seed=0)
print(result.table())

# %%
# The questions a comparison answers, as methods of the :class:`~innverse.design.Comparison`:
print("unidentifiable (contraction < 0.1):", result.unidentifiable())
print("best camera per parameter by contraction:", result.best("contraction"))
print("cost / information Pareto front, cheapest first:", result.pareto_front())

# %%
# The same numbers as bars; the dashed line is the identifiability threshold, the last panel the
# joint information gain against the cost.
fig = result.plot()
plt.show()

# %%
# The information cannot decrease with nested bands (the data-processing inequality); estimates on
# a finite budget can still cross by noise for parameters where the extra bands add little.
# ``benchmarks/design_compare.py`` runs the full comparison (also pressure against a
# photoplethysmogram for a windkessel model, and the best free band chosen by a design-conditional
# posterior, :func:`~innverse.design.optimize_design`); results in
# ``benchmarks/results/design_compare_*``.

# %%
# The simulator is wrong
# ----------------------
# :class:`~innverse.tasks.design.PendulumFriction`: the length and release angle of a pendulum
# from 25 noisy angle readings. The simulator has no friction; "real" swings (``sample_real``)
# have a damping rate drawn anew for each recording. Same parameters, both worlds:
task = PendulumFriction()
theta_demo = torch.tensor([[1.0, 0.3]])
times = torch.arange(1, 26) / 5.0
fig, ax = plt.subplots(figsize=(6, 2.8))
ax.plot(times, task.simulate(theta_demo, torch.Generator().manual_seed(0))[0], "o-", ms=3, label="simulator")
ax.plot(times, task.simulate_real(theta_demo, torch.Generator().manual_seed(0))[0], "o-", ms=3, label="real")
ax.set(xlabel="time (s)", ylabel="angle (rad)", title="length 1 m, amplitude 0.3 rad")
ax.legend()
plt.show()

# %%
# An NPE with a summary network (RoPE fine-tunes the summaries), trained on simulations only, and
# scored on held-out simulated and real pairs:
theta, x = task.sample_joint(NPE_SIMULATIONS, torch.Generator().manual_seed(0))
npe = fit_posterior(theta, x, prior=task.prior, summary="mlp", summary_options={"out_features": 16},
                    training={"epochs": NPE_EPOCHS}, seed=0, progress=False)
theta_sim, x_sim = task.sample_joint(200, torch.Generator().manual_seed(3))
theta_test, x_test = task.sample_real(200, torch.Generator().manual_seed(2))      # held out
scores = {"NPE on simulations": score_posterior(npe, theta_sim, x_sim, region="central"),
          "NPE on real data": score_posterior(npe, theta_test, x_test, region="central")}

# %%
# Before calibrating, check: :func:`~innverse.design.check_misspecification` tests the real
# observations against the simulations in the summary space (an MMD two-sample test) and says
# what to do next, given how many labelled real pairs there are.
print(check_misspecification(npe, x_test, calibration_pairs=50))

# %%
# RoPE with 50 labelled real pairs
# --------------------------------
theta_cal, x_cal = task.sample_real(50, torch.Generator().manual_seed(1))
calibrated = rope(npe, theta_cal, x_cal, task.simulate, RoPEOptions(simulations=BANK), seed=0)
print("fine-tuning epochs chosen by the folds:", calibrated.report["fold_best_epochs"],
      "final:", calibrated.report["final_epochs"])
# The transport posterior is stacked with copies of the NPE fine-tuned on the real pairs; the weight
# of the transport part comes from the pairs' cross-fitted log densities.
print(f"weight of the transport part: {calibrated.report['stack_weight']:.2f}; out-of-fold LPP",
      {k: round(v, 2) for k, v in calibrated.report["out_of_fold_lpp"].items()})
scores["RoPE on real data"] = score_posterior(calibrated, theta_test, x_test, region="central")
for name, s in scores.items():
    print(f"{name:>20}: LPP {s.lpp:6.2f} ± {s.lpp_se:.2f}, ACAUC {s.acauc:+.3f}")

# %%
# The coverage curves: the share of true parameters inside the central credible intervals of each
# level. Below the diagonal, the intervals are too narrow.
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
for name, s in scores.items():
    axes[0].plot(s.levels, s.coverage, label=name)
axes[0].plot([0, 1], [0, 1], "k--", lw=0.8)
axes[0].set(xlabel="credibility level", ylabel="coverage", title="expected coverage")
axes[0].legend(fontsize=8)

# Posteriors of the real swing of the figure above (length 1 m, amplitude 0.3 rad).
x_demo = task.simulate_real(theta_demo, torch.Generator().manual_seed(0))
with torch.no_grad():
    for name, model in (("NPE", npe), ("RoPE", calibrated)):
        draws = model.sample(1000, x_demo[0], generator=torch.Generator().manual_seed(4))
        print(f"{name:>4} posterior mean: length {draws[:, 0].mean():.2f} m, amplitude {draws[:, 1].mean():.3f} rad")
        axes[1].scatter(draws[:, 0], draws[:, 1], s=3, alpha=0.3, label=name)
axes[1].plot(*theta_demo[0].tolist(), "k*", ms=12, label="truth")
axes[1].set(xlabel="length (m)", ylabel="amplitude (rad)", title="posterior of one real swing")
for handle in axes[1].legend(fontsize=8).legend_handles:
    handle.set_alpha(1.0)
plt.show()

# %%
# Where its simulator holds, the NPE is calibrated (its coverage curve follows the diagonal). A
# frictionless model can explain a decaying swing only by a smaller amplitude, and on real swings
# the NPE says so with narrow posteriors that miss the truth: its coverage curve lies far below the
# diagonal. RoPE, which has seen 50 real pairs, moves the posterior back and widens it to what the
# data support. The scores above are for one seed and the budget of this page. ``benchmarks/rope_calibration.py`` varies the number of calibration pairs (10 to 200) on
# three tasks (this pendulum, an SIR epidemic with reporting delays, a windkessel with a drifting
# sensor) and compares RoPE with fine-tuning the NPE on the calibration set; results in
# ``benchmarks/results/rope_calibration_*``.
