"""Writes the version-1 model files of this folder (run once with innverse 0.1.0, commit 2dab575).

    PYTHONPATH=<innverse 0.1.0>/src python make_v1_files.py

They test that files written before the posterior became a composed flow still load and give the
same densities and samples (tests/io/test_estimator_files.py).
"""

import json

import torch

import innverse
from innverse.amortized import box_uniform, fit_posterior

torch.manual_seed(0)
out = {}
prior = box_uniform([-1.0, 0.0], [1.0, 2.0])
g = torch.Generator().manual_seed(0)
theta = prior.sample((400,))
x = torch.cat([theta, theta.sum(1, keepdim=True)], 1) + 0.1 * torch.randn(400, 3, generator=g)
post = fit_posterior(theta, x, prior=prior, flow={"blocks": 2, "hidden": [8, 8]}, training={"epochs": 3}, progress=False)
innverse.save(post, "posterior_v1_vector.safetensors")
theta_q = prior.sample((5,))
xo = x[:2]
lp = post.log_prob(theta_q[:, None].expand(5, 2, 2), xo)
s = post.sample(4, xo, seed=3)
out["vector"] = {"theta": theta_q.tolist(), "x": xo.tolist(), "log_prob": lp.tolist(), "samples_seed3": s.tolist()}
print(sorted(post.estimator.state_dict().keys()))
# a set summary
xs = theta[:, None, :] + 0.2 * torch.randn(400, 6, 2, generator=g)
post2 = fit_posterior(theta, xs, prior=prior, summary="deepset", summary_options={"out_features": 8, "hidden": 8},
                      flow={"blocks": 2, "hidden": [8, 8], "coupling": "affine"}, training={"epochs": 2}, progress=False)
innverse.save(post2, "posterior_v1_sets.safetensors")
lp2 = post2.log_prob(theta_q[:, None].expand(5, 2, 2), xs[:2])
s2 = post2.sample(4, xs[:2], seed=3)
out["sets"] = {"theta": theta_q.tolist(), "x": xs[:2].tolist(), "log_prob": lp2.tolist(), "samples_seed3": s2.tolist()}
print(sorted(post2.estimator.state_dict().keys()))
json.dump(out, open("expected_v1.json", "w"))
