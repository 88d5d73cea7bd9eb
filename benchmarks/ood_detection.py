"""Out-of-distribution detection with INNs: every score of innverse.classify on digits and on a multispectral task.

Digits: IB-INNs (beta = 1, uniform dequantisation; ``--inn conv``: the multi-scale conv INN on
1x8x8 images, the setting of the likelihood-failure literature; ``--inn vector``: an all-in-one
coupling INN on the 64 pixels) trained on the digits 0-4 only (60% of them; 20% validation for
thresholds and test references, 20% in-distribution test). OOD sets: the held-out digits 5-9,
scikit-image's lfw faces (8x8), uniform noise, constant images, checkerboards, rotated, flipped
and low-contrast (grey levels halved) test digits. Scores (larger =
more unusual): negative log-likelihood (the one-tailed test), the IB-INN's per-class likelihood,
the two-tailed likelihood test, WAIC over 5 independently trained IB-INNs, the likelihood ratio
against a background flow trained on perturbed digits (20% of the pixels replaced by noise), the
input complexity (the NLL in bits minus the bits of a PNG / order-0 code of the image, Serra et al.
2020), the predictive entropy of p(y|x) (a discriminative baseline), and the typicality test on
batches of 5.
Likelihoods average 4 dequantisation draws.

Multispectral: an AnomalyDetector (coupling flow) on 16-band log camera signals simulated from
tissue parameters (SpectralTissueTask); OOD: an unseen tissue ("fat"), bile-stained tissue, an
unseen light source (LED). Scores: NLL, two-tailed test, WAIC over 5 flows.

Thresholds are chosen on in-distribution validation data at FPR 5%; the tables give AUROC (and
the share of OOD inputs flagged at that threshold in the JSON).

    PYTHONPATH=src OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/ood_detection.py
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from _common import machine_tag, write_results
from innverse import Flow
from innverse.classify import (
    AnomalyDetector,
    IBINNClassifier,
    LikelihoodTest,
    Perturbation,
    TypicalityTest,
    class_likelihood_score,
    fit_density,
    image_inn,
    input_complexity_score,
    likelihood_ratio_score,
    negative_log_likelihood,
    ood_metrics,
    split_indices,
    threshold_at_fpr,
    vector_inn,
    waic_score,
)
from innverse.flows import coupling_flow
from innverse.tasks.classify import LEVELS, SpectralTissueTask, load_digits_images, ood_image_sets

BATCH = 5  # inputs per batch of the typicality test


class Dequantized:
    """``log p`` of a model on discrete pixels, averaged over fixed uniform dequantisation draws."""

    def __init__(self, model: object, draws: int = 4, seed: int = 0) -> None:
        self.model, self.draws, self.seed = model, draws, seed

    def _mean(self, fn: Callable, x: torch.Tensor) -> torch.Tensor:
        gen = torch.Generator().manual_seed(self.seed + x.shape[0])  # the same draws for every model
        return torch.stack([fn(x + torch.rand(x.shape, generator=gen)) for _ in range(self.draws)]).mean(0)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return self._mean(self.model.log_prob, x)

    def class_log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        return self._mean(self.model.class_log_likelihood, x)


def digits_data(seed: int, event: tuple[int, ...]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    x, y = load_digits_images()
    inside, outside = x[y < 5].reshape(-1, 64), x[y >= 5].reshape(-1, 64)
    labels = y[y < 5]
    keep, test = split_indices(len(inside), 0.2, seed, labels)
    train, val = split_indices(len(keep), 0.25, seed + 1, labels[keep])
    data = {"train": inside[keep][train], "train_y": labels[keep][train], "val": inside[keep][val],
            "test": inside[test], "test_y": labels[test]}
    gen = torch.Generator().manual_seed(seed + 7)
    sets = ood_image_sets(inside[test].reshape(-1, 1, 8, 8), 500, gen)
    ood = {"digits 5-9": outside, "lfw faces": sets.pop("lfw_faces")} | sets
    shape = (-1, *event)
    return {k: v.reshape(shape) if k != "train_y" and k != "test_y" else v for k, v in data.items()}, {
        k: v.reshape(shape) for k, v in ood.items()}


def batches(x: torch.Tensor, count: int, gen: torch.Generator) -> torch.Tensor:
    """``count`` batches of ``BATCH`` distinct inputs each (drawn independently)."""
    idx = torch.stack([torch.randperm(x.shape[0], generator=gen)[:BATCH] for _ in range(count)])
    return x[idx]


def evaluate(scores: dict[str, Callable], val: torch.Tensor, test: torch.Tensor,
             ood: dict[str, torch.Tensor]) -> dict[str, dict[str, dict]]:
    """Metrics of every score on every OOD set, the threshold chosen on ``val`` at FPR 5%."""
    out: dict[str, dict[str, dict]] = {}
    for name, score in scores.items():
        s_val, s_in = score(val), score(test)
        t = threshold_at_fpr(s_val, 0.05)
        out[name] = {k: ood_metrics(s_in, score(v), t).as_dict() for k, v in ood.items()}
        print(f"  {name:<28}" + " ".join(f"{out[name][k]['auroc']:.3f}" for k in ood), flush=True)
    return out


def make_inn(kind: str, seed: int) -> Callable:
    if kind == "conv":
        return lambda shape: image_inn(shape, scales=2, blocks_per_scale=2, hidden_channels=32, seed=seed)
    return lambda shape: vector_inn(64, blocks=6, hidden=(128, 128), seed=seed)


def digits_part(seed: int, epochs: int, kind: str) -> tuple[dict, dict]:
    event = (1, 8, 8) if kind == "conv" else (64,)
    data, ood = digits_data(seed, event)
    cfg = {"epochs": epochs, "batch_size": 64, "lr": 1e-3}
    t0 = time.perf_counter()
    members = [IBINNClassifier(1.0, inn=make_inn(kind, m), dequantize=1.0, training=cfg, seed=seed + m).fit(
        data["train"], data["train_y"]) for m in range(5)]
    flow, _ = fit_density(Flow(make_inn(kind, 0)(event)), data["train"], dequantize=1.0,
                          augment=Perturbation(0.2, 0.0, 16.0), training=cfg, seed=seed)
    train_s = time.perf_counter() - t0
    main, background = Dequantized(members[0]), Dequantized(flow)
    two = LikelihoodTest(main, tails=2).fit(data["val"])
    scores: dict[str, Callable] = {
        "NLL (one-tailed)": lambda x: negative_log_likelihood(main, x),
        "per-class likelihood": lambda x: class_likelihood_score(main, x),
        "two-tailed test": two.score,
        "WAIC (5 IB-INNs)": lambda x: waic_score([Dequantized(m) for m in members], x),
        "likelihood ratio": lambda x: likelihood_ratio_score(main, background, x),
        "input complexity (PNG)": lambda x: input_complexity_score(main, x, "png", levels=LEVELS),
        "input complexity (order-0)": lambda x: input_complexity_score(main, x, "order0", levels=LEVELS),
        "entropy of p(y|x)": lambda x: -(members[0].predict_proba(x + 0.5).clamp(min=1e-30).log()
                                         * members[0].predict_proba(x + 0.5)).sum(1).double(),
    }
    result = evaluate(scores, data["val"], data["test"], ood)
    typ = TypicalityTest(main, BATCH).fit(data["val"], x_entropy=data["train"])
    gen = torch.Generator().manual_seed(seed + 11)
    b_in = typ.statistic(batches(data["test"], 200, gen))
    t = typ.threshold(0.05)
    result[f"typicality (batches of {BATCH})"] = {
        k: ood_metrics(b_in, typ.statistic(batches(v, 200, gen)), t).as_dict() for k, v in ood.items()}
    accuracy = float((members[0].predict(data["test"] + 0.5) == data["test_y"]).double().mean())
    return result, {"train_seconds": train_s, "id_test_accuracy_0_4": accuracy, "sizes": {
        "train": len(data["train"]), "val": len(data["val"]), "test": len(data["test"])} | {
        k: len(v) for k, v in ood.items()}}


def spectral_part(seed: int, epochs: int) -> tuple[dict, dict]:
    task = SpectralTissueTask()
    gen = torch.Generator().manual_seed(seed)
    _, x = task.sample_joint(6000, gen)
    x = x.float()
    train, val, test = x[:4000], x[4000:5000], x[5000:]
    ood = {kind: task.sample_ood(kind, 1000, gen).float() for kind in ("fat", "bile", "led")}
    cfg = {"epochs": epochs, "batch_size": 256, "lr": 2e-3}
    t0 = time.perf_counter()
    detectors = []
    for m in range(5):
        torch.manual_seed(seed + m)
        flow = coupling_flow(16, blocks=6, hidden=(128, 128), seed=seed + m)
        detectors.append(AnomalyDetector(flow).fit(train, training=cfg, seed=seed + m))
    train_s = time.perf_counter() - t0
    two = LikelihoodTest(detectors[0].flow, tails=2).fit(val)
    scores: dict[str, Callable] = {
        "NLL (one-tailed)": detectors[0].score,
        "two-tailed test": two.score,
        "WAIC (5 flows)": lambda v: waic_score([d.flow for d in detectors], v),
    }
    result = evaluate(scores, val, test, ood)
    flagged = {k: float(detectors[0].predict(v, fpr=0.05).double().mean()) for k, v in ood.items()}
    fpr = float(detectors[0].predict(test, fpr=0.05).double().mean())
    return result, {"train_seconds": train_s, "conformal_flags_at_5pct": flagged, "conformal_fpr_on_test": fpr}


def table(result: dict[str, dict[str, dict]]) -> str:
    sets = list(next(iter(result.values())))
    lines = ["| score | " + " | ".join(sets) + " |", "|---|" + "---|" * len(sets)]
    for name, per_set in result.items():
        lines.append(f"| {name} | " + " | ".join(f"{per_set[k]['auroc']:.3f}" for k in sets) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=80)
    ap.add_argument("--spectral-epochs", type=int, default=60)
    ap.add_argument("--inn", choices=("conv", "vector"), default="conv")
    ap.add_argument("--skip-spectral", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    print("digits 0-4 vs OOD sets (AUROC):", flush=True)
    digits, digits_meta = digits_part(args.seed, args.epochs, args.inn)
    if args.skip_spectral:
        print(table(digits))
        return
    print("multispectral tissue (AUROC):", flush=True)
    spectral, spectral_meta = spectral_part(args.seed, args.spectral_epochs)
    total = time.perf_counter() - start
    text = (f"## Digits: {args.inn} IB-INNs trained on 0-4 (AUROC, in-distribution test digits vs each set)\n\n"
            + table(digits)
            + f"\n\nIB-INN accuracy on the test digits 0-4: {digits_meta['id_test_accuracy_0_4']:.3f}; "
            f"sizes {digits_meta['sizes']}; training {digits_meta['train_seconds']:.0f} s (5 IB-INNs + background)."
            + "\n\n## Multispectral tissue task (AUROC, in-distribution test spectra vs each OOD kind)\n\n"
            + table(spectral) + "\n\nConformal flags at 5% (NLL detector): "
            + ", ".join(f"{k} {v:.3f}" for k, v in spectral_meta["conformal_flags_at_5pct"].items())
            + f"; false positives on in-distribution test spectra {spectral_meta['conformal_fpr_on_test']:.3f}; "
            f"training {spectral_meta['train_seconds']:.0f} s (5 flows).\n\nTotal {total:.0f} s on one thread.")
    print(text)
    if not args.no_save:
        meta = vars(args) | {"machine": machine_tag(), "torch": torch.__version__, "total_seconds": total}
        write_results("ood_detection", {"meta": meta, "digits": digits, "digits_meta": digits_meta,
                                        "spectral": spectral, "spectral_meta": spectral_meta}, text)


if __name__ == "__main__":
    main()
