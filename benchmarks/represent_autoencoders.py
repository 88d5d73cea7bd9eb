"""INN autoencoders vs same-size conventional autoencoders on the 8x8 digits at bottlenecks 2, 4 and 8.

Pixels / 16 as 64-D vectors, the fixed train / val / test split. For every bottleneck ``k``:

* ``INNAutoencoder`` (8 all-in-one coupling blocks, MLP subnets; latent split into the kept
  ``k`` and ``64 - k`` coordinates pulled to zero), deterministic and variational;
* ``ConventionalAutoencoder`` with two hidden layers in encoder and decoder, its width chosen so
  its parameter count matches the INN's (``same_size``);

all trained with the library's loop (same options, early stopping on the validation loss), then
the test reconstruction error (mean squared error per pixel, pixels in [0, 1]) is tabulated and
a PNG shows reconstructions of ten test digits.

    PYTHONPATH=src:benchmarks OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/represent_autoencoders.py
"""

from __future__ import annotations

import argparse
import time

import torch

from _common import machine_tag, write_results
from _represent import digits, figure_path
from innverse.represent import (
    ConventionalAutoencoder,
    INNAutoencoder,
    parameter_count,
    plot_image_rows,
    reconstruction_error,
    train_autoencoder,
)
from innverse.train import TrainConfig


def fit(model, data: dict, cfg: TrainConfig) -> dict:
    t0 = time.perf_counter()
    history = train_autoencoder(model, data["train"], data["val"], cfg)
    model.eval()
    return {"parameters": parameter_count(model), "test_mse": reconstruction_error(model, data["test"]),
            "train_mse": reconstruction_error(model, data["train"]), "seconds": time.perf_counter() - t0,
            "epochs": history.epochs, "best_epoch": history.best_epoch}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bottlenecks", type=int, nargs="+", default=[2, 4, 8])
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--blocks", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    split = digits()
    data = {k: v[0].reshape(len(v[0]), -1) for k, v in split.items()}
    cfg = TrainConfig(epochs=args.epochs, batch_size=64, lr=args.lr, patience=30, seed=args.seed)
    rows, shown = [], {}
    examples = torch.stack([data["test"][(split["test"][1] == c).nonzero()[0, 0]] for c in range(10)])
    t0 = time.perf_counter()
    for k in args.bottlenecks:
        models = {
            "INN": INNAutoencoder(64, k, blocks=args.blocks, hidden=(args.hidden,) * 2, seed=args.seed),
            "INN (variational)": INNAutoencoder(64, k, blocks=args.blocks, hidden=(args.hidden,) * 2, variational=True,
                                                seed=args.seed),
        }
        torch.manual_seed(args.seed)
        models["conventional"] = ConventionalAutoencoder.same_size(64, k, parameter_count(models["INN"]))
        for name, model in models.items():
            row = {"bottleneck": k, "model": name} | fit(model, data, cfg)
            rows.append(row)
            print(row, flush=True)
            if name != "INN (variational)":
                with torch.no_grad():
                    shown[f"{name} k={k}"] = model.reconstruct(examples).reshape(10, 8, 8)
    lines = ["| bottleneck k | INN test MSE | INN (variational) test MSE | conventional test MSE | INN / conventional | "
             "params (INN / conv) | train s (INN / var / conv) |", "|---|---|---|---|---|---|---|"]
    for k in args.bottlenecks:
        sel = {r["model"]: r for r in rows if r["bottleneck"] == k}
        inn, var, conv = sel["INN"], sel["INN (variational)"], sel["conventional"]
        lines.append(f"| {k} | {inn['test_mse']:.4f} | {var['test_mse']:.4f} | {conv['test_mse']:.4f} | "
                     f"{inn['test_mse'] / conv['test_mse']:.2f} | {inn['parameters']} / {conv['parameters']} | "
                     f"{inn['seconds']:.0f} / {var['seconds']:.0f} / {conv['seconds']:.0f} |")
    figure = figure_path("represent_autoencoders", "reconstructions")
    labels = ["test digits", *shown]
    plot_image_rows([examples.reshape(10, 8, 8), *shown.values()], labels, path=figure)
    text = "\n".join(lines) + f"\n\nFigure: {figure.name} (rows: test digits, then the reconstructions of each model)."
    print(text)
    if not args.no_write:
        note = (f"Mean squared reconstruction error per pixel on the 300 test digits (pixels / 16, in [0, 1]); the "
                f"variational INN decodes its mean code. Training: up to {args.epochs} epochs, batch 64, Adam lr "
                f"{args.lr}, cosine schedule, EMA 0.995, early stopping on the validation loss (patience 30), weights "
                f"of the best validation epoch. INN: {args.blocks} all-in-one blocks, MLP subnets "
                f"{args.hidden}x2. Total wall time {time.perf_counter() - t0:.0f} s on {machine_tag()} (torch threads: "
                f"{args.threads}; shared machine).")
        write_results("represent_autoencoders", {"config": vars(args) | {"torch": torch.__version__}, "rows": rows,
                                                 "figure": str(figure)}, note + "\n\n" + text)


if __name__ == "__main__":
    main()
