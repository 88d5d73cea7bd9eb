"""i-RevNet and i-ResNet classifiers vs same-size non-invertible ResNets; reconstruction from the last hidden layer.

For every data set (scikit-learn's 8x8 digits, generated 16x16 shapes) and seed, trains with the
same loop and options (Adam, cosine schedule, EMA, early stopping on the validation split):

* ``IRevNetClassifier`` (bijective, additive couplings + invertible downsampling),
* ``IResNetClassifier`` (spectrally normalised residual blocks, fixed-point inverse),
* a plain ResNet of (about) the parameter count of each (``resnet~irevnet``, ``resnet~iresnet``),

and reports test accuracy (mean and sd over seeds), the relative reconstruction error
``||invert(features(x)) - x|| / ||x||`` of the test images in float32 and float64, and the
fixed-point iterations of the i-ResNet's inverse (per residual block, at the solver's default
tolerance: 1e-5 relative in float32, 1e-11 in float64).

    PYTHONPATH=src:benchmarks OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/represent_classifiers.py \
        --dataset digits --seeds 0 1 2 --epochs 40 --tag digits
    # the i-ResNet with a linear head on its whole last hidden layer (as in Behrmann et al.):
    ... represent_classifiers.py --dataset digits --models iresnet --iresnet-logit-features 64 --tag digits_iresnet_fullhead
    ... represent_classifiers.py --dataset shapes --epochs 30 --iresnet-logit-features 256 --tag shapes
    # the i-ResNet as the paper's classifiers: injective padding, no initial squeeze, a pooled head:
    ... represent_classifiers.py --dataset shapes --epochs 30 --models iresnet --injective-padding 15 --no-squeeze \
        --pool --tag shapes_iresnet_padded
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from _common import machine_tag, write_results
from _represent import DATASETS, accuracy, mean_sd, parameters, same_size_resnet, train_plain
from innverse.represent import IResNetClassifier, IRevNetClassifier, train_classifier
from innverse.train import TrainConfig

STAGES = (2, 2, 2)


@torch.no_grad()
def reconstruction(model, x: torch.Tensor) -> dict:
    """Relative reconstruction error and fixed-point iterations, float32 and float64."""
    out = {}
    for name, dtype in (("float32", torch.float32), ("float64", torch.float64)):
        m = copy.deepcopy(model).to(dtype).eval()
        xd = x.to(dtype)
        x_rec = m.invert(m.features(xd))
        out[name] = {"relative_error": float((x_rec - xd).norm() / xd.norm()),
                     "max_abs_error": float((x_rec - xd).abs().max()),
                     "iterations": [r.iterations for r in m.fixed_point_reports()],
                     "residual": max((r.residual for r in m.fixed_point_reports()), default=None)}
    return out


def run_seed(dataset: str, data: dict, seed: int, args: argparse.Namespace) -> list[dict]:
    shape = tuple(data["train"][0].shape[1:])
    classes = int(data["train"][1].max()) + 1
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch, lr=args.lr, patience=args.patience, seed=seed)
    rows = []
    invertible = {
        "irevnet": lambda: IRevNetClassifier(shape, classes, stages=STAGES, hidden=args.revnet_hidden, seed=seed),
        "iresnet": lambda: IResNetClassifier(shape, classes, args.iresnet_logit_features,
                                             stages=tuple(args.iresnet_stages or STAGES), pool=args.pool,
                                             hidden=args.resnet_hidden, coeff=args.coeff,
                                             injective_padding=args.injective_padding,
                                             squeeze=not args.no_squeeze, seed=seed),
    }
    for name in args.models:
        model = invertible[name]()
        t0 = time.perf_counter()
        history = train_classifier(model, *data["train"], validation=data["val"], training=cfg)
        seconds = time.perf_counter() - t0
        rec = reconstruction(model, data["test"][0])
        lip = max((b.lipschitz_bound() for b in model.body.modules() if hasattr(b, "lipschitz_bound")), default=None)
        rows.append({"dataset": dataset, "seed": seed, "model": name, "parameters": parameters(model),
                     "logit_features": model.logit_features,
                     "representation": model.representation_size, "accuracy": accuracy(model, data["test"]),
                     "seconds": seconds, "epochs": history.epochs,
                     "best_epoch": history.best_epoch, "reconstruction": rec, "max_lipschitz": lip})
        torch.manual_seed(seed)
        baseline = same_size_resnet(shape[0], classes, parameters(model), STAGES)
        t0 = time.perf_counter()
        history = train_plain(baseline, data, cfg)
        rows.append({"dataset": dataset, "seed": seed, "model": f"resnet~{name}", "parameters": parameters(baseline),
                     "accuracy": accuracy(baseline, data["test"]), "seconds": time.perf_counter() - t0,
                     "epochs": history.epochs, "best_epoch": history.best_epoch})
        print({k: v for k, v in rows[-2].items() if k != "reconstruction"}, flush=True)
        print(rows[-1], flush=True)
    return rows


def classes_note(rows: list[dict], name: str) -> str:
    sizes = sorted({(r["logit_features"], r["representation"]) for r in rows if r["model"] == name})
    return ", ".join(f"{k} of {d}" for k, d in sizes) or "not run"


def table(rows: list[dict]) -> str:
    lines = ["| data | model | params | test accuracy % (mean ± sd) | seeds | gap to its ResNet (points) | "
             "rel. reconstruction error f32 / f64 | fixed-point iterations f32 / f64 (max over blocks) | train s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        for name in ("irevnet", "resnet~irevnet", "iresnet", "resnet~iresnet"):
            sel = [r for r in rows if r["dataset"] == dataset and r["model"] == name]
            if not sel:
                continue
            acc, sd = mean_sd([100 * r["accuracy"] for r in sel])
            gap, rec, its = "", "", ""
            if not name.startswith("resnet"):
                base = [r for r in rows if r["dataset"] == dataset and r["model"] == f"resnet~{name}"]
                gap = f"{acc - mean_sd([100 * r['accuracy'] for r in base])[0]:+.2f}"
                rec = " / ".join(f"{max(r['reconstruction'][p]['relative_error'] for r in sel):.1e}"
                                 for p in ("float32", "float64"))
                its = " / ".join(str(max(max(r["reconstruction"][p]["iterations"], default=0) for r in sel))
                                 for p in ("float32", "float64")) if name == "iresnet" else "exact"
            secs = mean_sd([r["seconds"] for r in sel])[0]
            lines.append(f"| {dataset} | {name} | {sel[0]['parameters']} | {acc:.2f} ± {sd:.2f} | {len(sel)} | {gap} | "
                         f"{rec} | {its} | {secs:.0f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", choices=sorted(DATASETS), nargs="+", default=["digits"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--patience", type=int, default=None)
    ap.add_argument("--revnet-hidden", type=int, default=48)
    ap.add_argument("--resnet-hidden", type=int, default=32)
    ap.add_argument("--coeff", type=float, default=0.9)
    ap.add_argument("--pool", action="store_true",
                    help="i-ResNet: Haar transforms after the last stage; the head reads the pooled channel means")
    ap.add_argument("--iresnet-stages", type=int, nargs="+", default=None,
                    help="residual blocks per stage of the i-ResNet (default 2 2 2, as the others)")
    ap.add_argument("--injective-padding", type=int, default=0,
                    help="i-ResNet: zero channels appended to the input (the paper's classifiers: 13 on CIFAR-10)")
    ap.add_argument("--no-squeeze", action="store_true",
                    help="i-ResNet: no initial squeeze, the first stage works at full resolution (as the paper's "
                         "classifiers, with --injective-padding)")
    ap.add_argument("--models", choices=["irevnet", "iresnet"], nargs="+", default=["irevnet", "iresnet"])
    ap.add_argument("--iresnet-logit-features", type=int, default=None,
                    help="size of the i-ResNet's logit subspace (default: the number of classes; the representation "
                         "size gives a linear head on the whole last hidden layer, as in Behrmann et al.)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tag", default="")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    t0 = time.perf_counter()
    for dataset in args.dataset:
        data = DATASETS[dataset]()
        for seed in args.seeds:
            rows += run_seed(dataset, data, seed, args)
    text = table(rows)
    print(text)
    if not args.no_write:
        note = (f"Test accuracy on the fixed test split (digits: 300 images, shapes: 1000); every model trained with the "
                f"same options ({args.epochs} epochs, batch {args.batch}, Adam lr {args.lr}, cosine schedule, EMA 0.995, "
                f"weights of the best validation epoch). Same-size ResNets: the width whose parameter count is closest "
                f"to the invertible model's. Logit subspace (the representation coordinates the final linear layer sees): "
                f"i-RevNet {classes_note(rows, 'irevnet')}, i-ResNet {classes_note(rows, 'iresnet')}. i-ResNet setup: "
                f"stages {tuple(args.iresnet_stages or STAGES)}, Lipschitz coefficient {args.coeff}, "
                f"{args.injective_padding} injective padding channels, "
                f"{'no initial squeeze' if args.no_squeeze else 'an initial squeeze'}, "
                f"{'pooled head' if args.pool else 'linear head on the logit subspace'}. Reconstruction: ||invert(features(x)) - x|| / ||x|| over the test images "
                f"(worst seed). Total wall time {time.perf_counter() - t0:.0f} s on {machine_tag()} "
                f"(torch threads: {args.threads}; shared machine, times are noisy).")
        name = "represent_classifiers" + (f"_{args.tag}" if args.tag else "")
        write_results(name, {"config": vars(args) | {"stages": STAGES, "torch": torch.__version__}, "rows": rows},
                      note + "\n\n" + text)


if __name__ == "__main__":
    main()
