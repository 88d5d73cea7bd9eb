"""IB-INN generative classifiers on scikit-learn's 8x8 digits: a beta sweep against a discriminative MLP and an unconditional flow.

One fixed split of the 1,797 digits (seed 0): two thirds for training (10% of them held out for
early stopping and for temperature scaling), one third for the test figures. In the same run:

* IB-INNs (``IBINNClassifier``, all-in-one coupling INN on the 64 pixels, ~175k parameters) for
  each beta;
* a discriminative MLP of the same parameter count (cross-entropy), alone and temperature-scaled
  on the validation split;
* an unconditional flow of the same INN (standard normal latent), maximum likelihood;
* with ``--images``, the same on the 1x8x8 images: conv IB-INNs (multi-scale INN from
  ``innverse.flows``, ~66k parameters) for each beta, the unconditional conv flow, and a CNN of
  about the same size.

Pixels are integers 0..16, uniformly dequantised (bin width 1), so bits/dim bound the discrete
likelihood. Calibration: top-label ECE / MCE / ICE with 15 bins, overconfidence ratio at
tau = 0.003. No label smoothing (on a development split of the training part, label smoothing 0.02
made the large-beta IB-INN underconfident). Every model trains through ``innverse.train.train``.

    PYTHONPATH=src OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/classify_digits.py --images
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch import nn

from _common import machine_tag, write_results
from innverse import Flow
from innverse.classify import (
    IBINNClassifier,
    TemperatureScaling,
    calibration_report,
    fit_density,
    image_inn,
    split_indices,
    vector_inn,
)
from innverse.tasks.classify import load_digits_images
from innverse.train import TensorBatches, TrainConfig, train


def split(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    x, y = load_digits_images()
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    x, y = x[perm], y[perm]
    n_test = len(x) // 3
    return x[n_test:], y[n_test:], x[:n_test], y[:n_test]


def mlp(width: int, images: bool) -> nn.Module:
    if images:
        return nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1),
                             nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(width * 16, 128), nn.ReLU(),
                             nn.Linear(128, 10))
    return nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                         nn.Linear(width, 10))


def params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters() if p.requires_grad)


def width_for(target: int, images: bool) -> int:
    return min(range(8, 1024), key=lambda w: abs(params(mlp(w, images)) - target))


def discriminative(xtr, ytr, xte, yte, target: int, cfg: TrainConfig, images: bool, seed: int) -> list[dict]:
    """A discriminative net of ``target`` parameters, raw and temperature-scaled on the validation split."""
    torch.manual_seed(seed)
    net = mlp(width_for(target, images), images)
    keep, held = split_indices(len(xtr), 0.1, seed, ytr)
    shift, scale = xtr[keep].mean(), xtr[keep].std()

    def loss(batch, step):
        return nn.functional.cross_entropy(net((batch[0] - shift) / scale), batch[1])

    t0 = time.perf_counter()
    train(net, loss, TensorBatches(xtr[keep], ytr[keep], batch_size=cfg.batch_size),
          TensorBatches(xtr[held], ytr[held], batch_size=512, shuffle=False), cfg, progress=False)
    seconds = time.perf_counter() - t0
    net.eval()
    with torch.no_grad():
        logits_val, logits = net((xtr[held] - shift) / scale), net((xte - shift) / scale)
    name = "CNN" if images else "MLP"
    temp = TemperatureScaling().fit(logits_val, ytr[held])
    rows = [{"model": name, "beta": None, "params": params(net), "seconds": seconds,
             **calibration_report(torch.softmax(logits.double(), 1), yte).as_dict()},
            {"model": f"{name} + temperature scaling (T={temp.temperature:.2f})", "beta": None, "params": params(net),
             "seconds": seconds, **calibration_report(temp(logits), yte).as_dict()}]
    return rows


def ibinn(beta: float, xtr, ytr, xte, yte, inn, cfg: TrainConfig, seed: int, label: str) -> dict:
    clf = IBINNClassifier(beta, inn=inn, dequantize=1.0, training=cfg, seed=seed)
    t0 = time.perf_counter()
    clf.fit(xtr, ytr)
    seconds = time.perf_counter() - t0
    report = calibration_report(clf.predict_proba(xte).double(), yte)
    return {"model": label, "beta": beta, "params": params(clf.model_), "seconds": seconds,
            "bits_per_dim": clf.bits_per_dim(xte, draws=8), "epochs": len(clf.history_.records),
            **report.as_dict()}


def unconditional(xtr, xte, inn, cfg: TrainConfig, seed: int, label: str) -> dict:
    flow = Flow(inn)
    t0 = time.perf_counter()
    trained, history = fit_density(flow, xtr, dequantize=1.0, training=cfg, seed=seed)
    seconds = time.perf_counter() - t0
    gen = torch.Generator().manual_seed(1)
    d = xte[0].numel()
    with torch.no_grad():
        ll = sum(float(trained.log_prob(xte + torch.rand(xte.shape, generator=gen)).mean()) for _ in range(8)) / 8
    return {"model": label, "beta": None, "params": params(flow), "seconds": seconds,
            "bits_per_dim": -ll / (d * math.log(2)), "epochs": len(history.records)}


def fmt(v, digits=3) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else (
        f"{v:.{digits}f}" if isinstance(v, float) else str(v))


def table(rows: list[dict]) -> str:
    head = "| model | β | params | test acc. | bits/dim | ECE | MCE | ICE | overconf. | NLL | train s |"
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        lines.append(f"| {r['model']} | {fmt(r['beta'], 1)} | {r['params'] / 1e3:.0f}k | {fmt(r.get('accuracy'), 4)} | "
                     f"{fmt(r.get('bits_per_dim'))} | {fmt(r.get('ece'))} | {fmt(r.get('mce'))} | {fmt(r.get('ice'))} | "
                     f"{fmt(r.get('overconfidence'), 2)} | {fmt(r.get('nll'))} | {r['seconds']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--betas", type=float, nargs="+", default=[0.1, 1.0, 10.0, 100.0])
    ap.add_argument("--epochs", type=int, default=80)
    ap.add_argument("--images", action="store_true", help="also the conv IB-INN and a CNN on 1x8x8 images")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    xtr, ytr, xte, yte = split(args.seed)
    cfg = TrainConfig(epochs=args.epochs, batch_size=64, lr=1e-3, seed=args.seed)
    vec_tr, vec_te = xtr.reshape(-1, 64), xte.reshape(-1, 64)
    vector = lambda s: vector_inn(64, blocks=6, hidden=(128, 128))  # noqa: E731
    conv = lambda s: image_inn(s, scales=2, blocks_per_scale=2, hidden_channels=32)  # noqa: E731
    runs = [("vector", vec_tr, vec_te, vector)] + ([("conv", xtr, xte, conv)] if args.images else [])
    rows = []
    for kind, train_x, test_x, inn in runs:
        first = len(rows)
        for beta in args.betas:
            rows.append(ibinn(beta, train_x, ytr, test_x, yte, inn, cfg, args.seed, f"IB-INN ({kind})"))
            print(table(rows[-1:]).splitlines()[-1], flush=True)
        torch.manual_seed(args.seed)  # the same initialisation as the IB-INNs' INN
        rows.append(unconditional(train_x, test_x, inn(tuple(train_x.shape[1:])), cfg, args.seed,
                                  f"unconditional flow (same {kind} INN)"))
        rows += discriminative(train_x, ytr, test_x, yte, rows[first]["params"], cfg, kind == "conv", args.seed)
    total = time.perf_counter() - start
    text = table(rows) + (f"\n\nSplit: {len(xtr)} training images (10% of them for early stopping / temperature), "
                          f"{len(xte)} test images; {args.epochs} epochs max, batch 64; one thread; "
                          f"total {total:.0f} s. Accuracy on {len(xte)} test images has a binomial standard error "
                          f"of about 0.7 points.")
    print(text)
    if not args.no_save:
        meta = vars(args) | {"machine": machine_tag(), "torch": torch.__version__, "total_seconds": total}
        write_results("classify_digits", {"meta": meta, "rows": rows}, text)


if __name__ == "__main__":
    main()
