"""Which camera, and what if the simulator is wrong? innverse.design in two short steps.

1. Compare a 3-band and an 8-band multispectral camera for tissue oximetry by the posteriors an
   amortized estimator returns (``innverse.design.compare``): per parameter, contraction,
   credible-interval width, an expected-information-gain bound, SBC and identifiability. Through
   the 3 visible bands the water fraction cannot be identified; the 8-band camera sees it.
2. A pendulum whose simulator lacks friction: the NPE trained on simulations is over-confident on
   "real" swings; RoPE (``innverse.design.rope``) corrects it with 50 labelled real pairs.

Small budgets (a couple of minutes on 2 cores); ``benchmarks/design_compare.py`` and
``benchmarks/rope_calibration.py`` are the full runs.

    PYTHONPATH=src python examples/design_cameras_and_rope.py
"""

from __future__ import annotations

import torch

from innverse.amortized import fit_posterior
from innverse.design import Budget, RoPEOptions, Setup, compare, rope, score_posterior
from innverse.tasks.design import MultispectralCamera, PendulumFriction

torch.set_num_threads(1)

# -- 1. which camera? ----------------------------------------------------------------------------
cameras = [Setup("3 bands", MultispectralCamera(3), cost=1.0), Setup("8 bands", MultispectralCamera(8), cost=3.0)]
result = compare(cameras, MultispectralCamera().prior, Budget(simulations=3000, test_size=200), seed=0)
print(result.table())
print("unidentifiable:", result.unidentifiable())          # {'3 bands': ['water'], '8 bands': []}
print("best camera per parameter:", result.best("contraction"))

# -- 2. the simulator is wrong: calibrate with 50 real pairs ---------------------------------------
task = PendulumFriction()
theta, x = task.sample_joint(5000, torch.Generator().manual_seed(0))
npe = fit_posterior(theta, x, prior=task.prior, summary="mlp", summary_options={"out_features": 16},
                    training={"epochs": 40}, progress=False)
theta_cal, x_cal = task.sample_real(50, torch.Generator().manual_seed(1))      # labelled real pairs
theta_test, x_test = task.sample_real(200, torch.Generator().manual_seed(2))   # held out
calibrated = rope(npe, theta_cal, x_cal, task.simulate, RoPEOptions(simulations=3000))
for name, model in (("NPE", npe), ("RoPE", calibrated)):
    s = score_posterior(model, theta_test, x_test, region="central")
    print(f"{name:5s} LPP {s.lpp:6.2f} ± {s.lpp_se:.2f}   ACAUC {s.acauc:+.3f}")
samples = calibrated.sample(1000, x_test[:5])                    # (1000, 5, 2): posteriors of 5 real swings
