"""The peer row of the SBI table: a plain training loop around zuko's NSF, as a user writes it in an afternoon.

5 rational-quadratic spline transforms with 2 x 64 hidden units, z-scored parameters and data,
Adam (lr 1e-3), batches of 256, 10% validation, early stopping after 20 epochs without improvement,
best weights kept. Samples are not rejected at the prior's boundary (no proposal machinery).
"""

from __future__ import annotations

import copy

import torch


def fit_zuko_nsf(theta: torch.Tensor, x: torch.Tensor, seed: int, max_epochs: int = 2000):
    """Train the NSF on ``(theta, x)``; returns ``sample(n, x_obs) -> (n, D)``."""
    import zuko

    torch.manual_seed(seed)
    theta, x = theta.float(), x.float().reshape(len(x), -1)
    t_mu, t_sd = theta.mean(0), theta.std(0).clamp_min(1e-8)
    x_mu, x_sd = x.mean(0), x.std(0).clamp_min(1e-8)
    t, c = (theta - t_mu) / t_sd, (x - x_mu) / x_sd
    perm = torch.randperm(len(t))
    n_val = max(1, len(t) // 10)
    val, train = perm[:n_val], perm[n_val:]
    flow = zuko.flows.NSF(t.shape[1], c.shape[1], transforms=5, hidden_features=(64, 64))
    opt = torch.optim.Adam(flow.parameters(), lr=1e-3)
    best, best_state, waited = float("inf"), None, 0
    for _ in range(max_epochs):
        flow.train()
        for idx in train[torch.randperm(len(train))].split(256):
            loss = -flow(c[idx]).log_prob(t[idx]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        flow.eval()
        with torch.no_grad():
            v = -flow(c[val]).log_prob(t[val]).mean().item()
        if v < best:
            best, best_state, waited = v, copy.deepcopy(flow.state_dict()), 0
        else:
            waited += 1
            if waited >= 20:
                break
    flow.load_state_dict(best_state)

    def sample(n: int, x_obs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            ctx = (x_obs.float().reshape(1, -1) - x_mu) / x_sd
            return flow(ctx[0]).sample((n,)) * t_sd + t_mu

    return sample
