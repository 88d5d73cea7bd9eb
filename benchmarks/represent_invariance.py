"""Metameric sampling with bijective classifiers on the 8x8 digits, and the nuisance probe with and without the iCE.

Two classifiers (``IResNetClassifier`` by default, or ``IRevNetClassifier`` with Lipschitz-bounded
residual functions; logit subspace = the first 10 of the 64 representation coordinates) are
trained on the digits, one with the plain cross-entropy, one with the independence
cross-entropy (``IndependenceCrossEntropy``). For each:

* metamers of pairs of test digits of different classes (first: logits, second: nuisance):
  the largest logit difference between a metamer and its first image, in float32 and float64;
  how far it lies from either source (RMS per pixel); and which class an independent judge,
  a plain ResNet trained on the same digits, sees in it (the first's or the second's);
* probes of the class in the nuisance ``z_n`` of the training digits, tested on the test digits:
  an MLP, a 5-nearest-neighbour vote and a random forest (an MLP stopped early near chance is not
  evidence that the information is gone; the other two need no such training), and the MLP on
  the logit part ``z_s`` (chance: the most frequent class, about 10%).

PNG grids: rows = the first images (whose logits are kept), the metamers, the second images.

    PYTHONPATH=src:benchmarks OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/represent_invariance.py
    # an adversary that learns as fast as the network (the network then fools it; a fresh probe is not fooled):
    PYTHONPATH=src:benchmarks OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/represent_invariance.py \
        --adversary-lr 1 --tag adv1
    # the iCE with the input's likelihood (class-conditional z_s, the same N(0, I) nuisance for every class),
    # on an i-RevNet with unconstrained residual functions:
    ... represent_invariance.py --model irevnet --lipschitz 0 --hidden 64 --epochs 200 --likelihood flow \
        --likelihood-weight 10 --weight 1 --tag flow
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from _common import machine_tag, write_results
from _represent import ResNet, accuracy, digits, figure_path, train_plain
from innverse.blocks import FixedPointSolver
from innverse.represent import (
    IndependenceCrossEntropy,
    IResNetClassifier,
    IRevNetClassifier,
    metamers,
    plot_metamers,
    probe_nuisance,
    train_classifier,
)
from innverse.train import TrainConfig


def pairs(labels: torch.Tensor, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` index pairs (i, j) of test images with different classes, the first of class ``k mod 10``."""
    gen = torch.Generator().manual_seed(seed)
    first, second = [], []
    for k in range(n):
        i_pool = (labels == k % 10).nonzero().flatten()
        j_pool = (labels != k % 10).nonzero().flatten()
        first.append(i_pool[torch.randint(len(i_pool), (1,), generator=gen)])
        second.append(j_pool[torch.randint(len(j_pool), (1,), generator=gen)])
    return torch.cat(first), torch.cat(second)


def forest(model, data: dict) -> float:
    """Test accuracy of scikit-learn's random forest (500 trees) on the nuisance: a third probe, of another kind."""
    from sklearn.ensemble import RandomForestClassifier

    with torch.no_grad():
        f_tr, f_te = (model.split(model.features(data[s][0]))[1].numpy() for s in ("train", "test"))
    clf = RandomForestClassifier(500, random_state=0).fit(f_tr, data["train"][1].numpy())
    return float(clf.score(f_te, data["test"][1].numpy()))


def evaluate(name: str, model, judge, data: dict, args: argparse.Namespace) -> dict:
    x_test, y_test = data["test"]
    i, j = pairs(y_test, args.pairs, args.seed)
    a, b = x_test[i], x_test[j]
    model64 = copy.deepcopy(model).double()
    for block in model64.body.modules():
        if hasattr(block, "solver"):
            block.solver = FixedPointSolver()  # the float64 default tolerance, 1e-11
    result = metamers(model, a, b)
    result64 = metamers(model64, a.double(), b.double())
    with torch.no_grad():
        seen = judge(result.metamers).argmax(1)
        first_pred = model(a).argmax(1)
    shown = slice(0, 10)
    path = figure_path("represent_invariance", f"metamers_{args.model}{args.tag and '_' + args.tag}_{name}")
    if not args.no_write:
        plot_metamers(metamers(model, a[shown], b[shown]), a[shown], b[shown], path)
    probe_cfg = {"epochs": 200, "batch_size": 128, "lr": 1e-3, "patience": 20, "seed": args.seed}
    nuisance = probe_nuisance(model, data["train"], data["test"], "nuisance", training=probe_cfg, seed=args.seed)
    logit = probe_nuisance(model, data["train"], data["test"], "logit", training=probe_cfg, seed=args.seed)
    row = {"model": name, "accuracy": accuracy(model, data["test"]),
           "logit_gap_float32": result.logit_gap, "logit_gap_float64": result64.logit_gap,
           "metamer_predicted_as_first": float((result.logits_metamer.argmax(1) == first_pred).double().mean()),
           "judge_sees_first": float((seen == y_test[i]).double().mean()),
           "judge_sees_second": float((seen == y_test[j]).double().mean()),
           "rms_to_first": float(result.distance_to_a.mean()), "rms_to_second": float(result.distance_to_b.mean()),
           "probe_nuisance": nuisance.accuracy, "probe_nuisance_train": nuisance.train_accuracy,
           "probe_nuisance_knn": nuisance.knn_accuracy, "probe_nuisance_forest": forest(model, data),
           "probe_logit": logit.accuracy, "chance": nuisance.chance, "figure": str(path)}
    print(row, flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--model", choices=["iresnet", "irevnet"], default="iresnet")
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--coeff", type=float, default=0.9, help="i-ResNet: spectral bound per layer")
    ap.add_argument("--lipschitz", type=float, default=0.9,
                    help="i-RevNet: Lipschitz bound of the residual functions (0: unconstrained)")
    ap.add_argument("--noise", type=float, default=0.05, help="training noise on the pixels (values in [0, 1])")
    ap.add_argument("--adversary-lr", type=float, default=5.0)
    ap.add_argument("--weight", type=float, default=1.0, help="weight of the adversarial term of the iCE")
    ap.add_argument("--likelihood-weight", type=float, default=0.1)
    ap.add_argument("--likelihood", choices=["nuisance", "flow"], default="nuisance",
                    help="the iCE's likelihood term: 0.5 |z_n|^2, or the input's negative log-likelihood under the "
                         "bijection with class-conditional z_s and class-independent z_n")
    ap.add_argument("--pairs", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tag", default="", help="suffix of the result and figure names")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    data = digits()
    cfg = TrainConfig(epochs=args.epochs, batch_size=64, lr=1e-3, patience=None, seed=args.seed)
    torch.manual_seed(args.seed + 100)
    judge = ResNet(1, 10, 16)
    train_plain(judge, data, cfg)
    judge.eval()
    rows = []
    for name in ("cross_entropy", "independence"):
        if args.model == "iresnet":
            model = IResNetClassifier((1, 8, 8), 10, hidden=args.hidden, coeff=args.coeff, seed=args.seed,
                                      solver=FixedPointSolver(tolerance=1e-6))
        else:
            model = IRevNetClassifier((1, 8, 8), 10, hidden=args.hidden, lipschitz=args.lipschitz or None,
                                      seed=args.seed)
        ice = None
        if name == "independence":
            ice = IndependenceCrossEntropy(10, 54, weight=args.weight, likelihood_weight=args.likelihood_weight,
                                           adversary_lr=args.adversary_lr, likelihood=args.likelihood,
                                           logit_features=10)
        history = train_classifier(model, *data["train"], validation=data["val"], training=cfg, independence=ice,
                                   noise=args.noise)
        online = history.records[-1].get("nuisance")
        model.eval()
        rows.append(evaluate(name, model, judge, data, args) | {"adversary_cross_entropy_last_epoch": online})
    lines = ["| training | test acc % | max logit gap f32 / f64 | metamer gets the first's prediction % | judge sees first / "
             "second % | RMS to first / second | probe on z_n: MLP test acc % (train) | kNN (k=5) % | random forest % | "
             "probe on z_s % | chance % | "
             "training adversary's CE (last epoch; chance 2.30) |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {100 * r['accuracy']:.1f} | {r['logit_gap_float32']:.1e} / "
                     f"{r['logit_gap_float64']:.1e} | {100 * r['metamer_predicted_as_first']:.1f} | "
                     f"{100 * r['judge_sees_first']:.1f} / {100 * r['judge_sees_second']:.1f} | {r['rms_to_first']:.3f} / "
                     f"{r['rms_to_second']:.3f} | {100 * r['probe_nuisance']:.1f} ({100 * r['probe_nuisance_train']:.1f}) | "
                     f"{100 * r['probe_nuisance_knn']:.1f} | {100 * r['probe_nuisance_forest']:.1f} | "
                     f"{100 * r['probe_logit']:.1f} | {100 * r['chance']:.1f} | "
                     f"{'' if r['adversary_cross_entropy_last_epoch'] is None else round(r['adversary_cross_entropy_last_epoch'], 2)} |")
    text = "\n".join(lines) + "\n\nFigures: " + ", ".join(r["figure"].rsplit("/", 1)[-1] for r in rows) + "."
    print(text)
    if not args.no_write:
        arch = (f"i-ResNet (hidden {args.hidden}, coeff {args.coeff}, fixed-point tolerance 1e-6 in float32, 1e-11 in "
                f"float64)" if args.model == "iresnet" else
                f"i-RevNet (hidden {args.hidden}, " + (f"Lipschitz bound of the residual functions {args.lipschitz})"
                                                       if args.lipschitz else "unconstrained residual functions)"))
        note = (f"{args.pairs} pairs of test digits of different classes; {arch}, {args.epochs} "
                f"epochs, batch 64, Adam lr 1e-3, EMA 0.995, weights of the best validation epoch, training noise {args.noise}; iCE weight {args.weight}, likelihood term {args.likelihood!r} with weight {args.likelihood_weight}, adversary lr "
                f"x{args.adversary_lr}, capped at log 10. Judge: a plain ResNet (width 16, test accuracy {100 * accuracy(judge, data['test']):.1f}%). "
                f"Total wall time {time.perf_counter() - t0:.0f} s on {machine_tag()} (torch threads: {args.threads}).")
        write_results(f"represent_invariance_{args.model}" + (f"_{args.tag}" if args.tag else ""), {"config": vars(args) | {"torch": torch.__version__}, "rows": rows},
                      note + "\n\n" + text)


if __name__ == "__main__":
    main()
