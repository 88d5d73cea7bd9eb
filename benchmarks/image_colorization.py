"""Colourisation of held-out photo patches: the GCPR 2020 table in miniature (cINN vs CNN vs cINN without conditioning network).

    PYTHONPATH=src .venv/bin/python benchmarks/image_colorization.py --epochs 12

Task: ``innverse.tasks.images.PatchColorization`` (32x32 patches of scikit-image's bundled
photographs; L -> ab; test patches come from tiles no training patch touches). Three models of
about the same parameter count, each trained for the same number of epochs through
``innverse.train.train`` (Adam, cosine schedule, EMA 0.995, the best validation epoch restored):

* cINN: ``image_flow`` (3 levels) fed by a ``ConditionCNN`` (feature maps at 16, 8, 4 px + a
  global vector), trained by maximum likelihood;
* CNN: a deterministic U-Net L -> ab trained on the mean squared error (its 8 "samples" coincide);
* cINN without conditioning network: the same flow fed the raw L squeezed to each level
  (``ConditionPyramid``), its subnets widened to the same parameter count;

All three see the same training targets: the normalised chroma plus Gaussian noise of std
0.005 (0.5 Lab units, about the quantisation of chroma computed from 8-bit RGB; it keeps the
flows from fitting the exact zeros of grey pixels with degenerate densities).

On the test patches, 8 samples per patch (temperature 1): RMS error (Lab units) of the best of
the 8 samples and of one sample, per patch then averaged, and the per-pixel sample variance
(Lab units squared, averaged over pixels, channels and patches). The flows are also evaluated at
the sampling temperature (``TEMPERATURES``) with the lowest best-of-8 error on the validation
patches, a sampler setting chosen without the test set. Also writes a PNG grid: truth, CNN, cINN
samples and the cINN's variance map. ``--models DIR`` keeps the trained weights (safetensors), so
a second run re-evaluates without training.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from _common import machine_tag, write_results
from image_common import batches, fit, parameters, png_path
from innverse.flows.image import image_flow
from innverse.flows.image_conditioning import ConditionCNN, ConditionPyramid
from innverse.imaging import best_of_k, sample_images, save_image_grid, variance_map
from innverse.nets import conv_constructor, mlp_constructor
from innverse.tasks.images import AB_SCALE, PatchColorization

SHAPE, COND = (2, 32, 32), (1, 32, 32)
TEMPERATURES = (1.0, 0.9, 0.8, 0.7, 0.6)
SHOWN = slice(3, 216, 27)  # eight test patches spread over the test tiles (shown in the PNG)


def block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1), nn.LeakyReLU(0.1), nn.Conv2d(c_out, c_out, 3, 1, 1),
                         nn.LeakyReLU(0.1))


class ColorUNet(nn.Module):
    """Deterministic baseline: a three-scale U-Net, L (1, 32, 32) -> ab (2, 32, 32)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        w = width
        self.e1, self.e2, self.e3 = block(1, w), block(w, 2 * w, 2), block(2 * w, 4 * w, 2)
        self.e4 = block(4 * w, 8 * w, 2)
        self.u3, self.d3 = nn.ConvTranspose2d(8 * w, 4 * w, 2, 2), block(8 * w, 4 * w)
        self.u2, self.d2 = nn.ConvTranspose2d(4 * w, 2 * w, 2, 2), block(4 * w, 2 * w)
        self.u1, self.d1 = nn.ConvTranspose2d(2 * w, w, 2, 2), block(2 * w, w)
        self.out = nn.Conv2d(w, 2, 1)

    def forward(self, lightness: torch.Tensor) -> torch.Tensor:
        h1 = self.e1(lightness - 0.5)
        h2 = self.e2(h1)
        h3 = self.e3(h2)
        h = self.e4(h3)
        h = self.d3(torch.cat([self.u3(h), h3], 1))
        h = self.d2(torch.cat([self.u2(h), h2], 1))
        return self.out(self.d1(torch.cat([self.u1(h), h1], 1)))


def cinn(hidden: int, raw: bool, seed: int, width: int = 16):
    if raw:
        net = ConditionPyramid(COND, SHAPE, 3, global_vector=True)
    else:
        net = ConditionCNN(COND, SHAPE, 3, width=width, global_features=32)
    return image_flow(SHAPE, net, levels=3, blocks_per_level=4, subnet=conv_constructor((hidden, hidden)),
                      dense_blocks=1, dense_subnet=mlp_constructor((128,)), seed=seed)


def noisy(ab: torch.Tensor, step, std: float) -> torch.Tensor:
    """Training targets with Gaussian noise of ``std`` (dequantisation of chroma computed from 8-bit RGB)."""
    if not std or not step.training:
        return ab
    return ab + std * torch.randn(ab.shape, generator=step.generator, dtype=ab.dtype, device=ab.device)


def matched_width(target: int, make, widths) -> int:
    """The width whose model's parameter count is closest to ``target``."""
    return min(widths, key=lambda w: abs(parameters(make(w)) - target))


@torch.no_grad()
def evaluate(sampler, ab: torch.Tensor, lightness: torch.Tensor, k: int = 8) -> dict:
    samples = torch.cat([sampler(lightness[i:i + 54], k) for i in range(0, len(ab), 54)], 1)  # (k, N, 2, 32, 32)
    best = best_of_k(samples * AB_SCALE, ab * AB_SCALE)
    one = (samples[0] - ab).square().mean((1, 2, 3)).sqrt() * AB_SCALE
    var = samples.var(0).mean() * AB_SCALE**2 if k > 1 else torch.tensor(0.0)
    return {"rms_best_of_8": float(best.rms.mean()), "rms_1_sample": float(one.mean()),
            "rms_1_sample_median": float(one.median()), "sample_variance": float(var), "samples": samples}


def train_or_load(name: str, model: nn.Module, loss, data, val, args) -> dict:
    """Train through the one loop, or load the weights a previous run saved under ``--models``."""
    slug = "".join(ch if ch.isalnum() else "_" for ch in name)
    path = None if args.models is None else Path(args.models) / f"{slug}.safetensors"
    if path is not None and path.exists():
        model.load_state_dict(load_file(path))
        return {"loaded": str(path)}
    training = fit(model, loss, data, val, args.epochs, args.lr, args.seed)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
    return training


def run_model(name: str, model: nn.Module, data, val, val_pairs, test_pairs, args) -> tuple[dict, list[str]]:
    """Train, then evaluate on validation and test patches; flows also at the temperature chosen on validation."""
    print(f"{name}: {parameters(model) / 1e3:.0f}k parameters", flush=True)
    d = math.prod(SHAPE)
    if isinstance(model, ColorUNet):
        loss = lambda b, s: (model(b[1]) - noisy(b[0], s, args.target_noise)).square().mean()  # noqa: E731
        temperatures = [None]
    else:
        loss = lambda b, s: -model.log_prob(noisy(b[0], s, args.target_noise), b[1]).mean() / d  # noqa: E731
        temperatures = list(TEMPERATURES)
    training = train_or_load(name, model, loss, data, val, args)
    model.eval()

    def sampler(t):
        if t is None:
            return lambda c, k: model(c).expand(k, *model(c).shape)
        gen = torch.Generator().manual_seed(args.seed + 1)
        return lambda c, k: sample_images(model, k, c, temperature=t, generator=gen)

    val_by_t = {t: evaluate(sampler(t), *val_pairs) for t in temperatures}
    chosen = min(temperatures, key=lambda t: val_by_t[t]["rms_best_of_8"]) if temperatures != [None] else None
    out, rows = {"parameters": parameters(model), "training": training}, []
    for t in dict.fromkeys([temperatures[0], chosen]):
        metrics = evaluate(sampler(t), *test_pairs)
        samples = metrics.pop("samples")
        val_t = {k: v for k, v in val_by_t[t].items() if k != "samples"}
        label = name if t in (None, 1.0) else f"{name}, temperature {t} (chosen on val)"
        out["test" if t in (None, 1.0) else "test_chosen_temperature"] = {"temperature": t, **metrics, "val": val_t}
        rows.append(f"| {label} | {parameters(model) / 1e3:.0f}k | {metrics['rms_best_of_8']:.2f} | "
                    f"{metrics['rms_1_sample']:.2f} | {metrics['sample_variance']:.1f} | {val_t['rms_best_of_8']:.2f} | "
                    f"{training.get('seconds', float('nan')):.0f} |")
        print(rows[-1], flush=True)
        if t in (None, 1.0):
            out["_samples"] = samples[:, SHOWN]
    out["val_by_temperature"] = {str(t): v["rms_best_of_8"] for t, v in val_by_t.items()}
    return out, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--target-noise", type=float, default=0.005,
                    help="std of the Gaussian noise added to the normalised ab training targets (0.5 Lab units)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--hidden", type=int, default=32, help="channels of the cINN's coupling subnets")
    ap.add_argument("--width", type=int, default=16, help="channels of the first ConditionCNN stage")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", default=None, help="folder to save trained weights to (and load them from next time)")
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    task = PatchColorization()
    ab, light = task.pairs("train")
    val_ab, val_l = task.pairs("val")
    val = batches(val_ab, val_l, batch_size=128, shuffle=False)
    test_ab, test_l = task.pairs("test")
    data = batches(ab, light, batch_size=args.batch)

    torch.manual_seed(args.seed)
    flow = cinn(args.hidden, False, args.seed, args.width)
    n_params = parameters(flow)
    w_cnn = matched_width(n_params, ColorUNet, range(8, 65, 2))
    w_raw = matched_width(n_params, lambda w: cinn(w, True, args.seed), range(8, 129, 4))
    torch.manual_seed(args.seed)
    models = {"cINN": flow, "CNN (U-Net, MSE)": ColorUNet(w_cnn),
              "cINN without conditioning network": cinn(w_raw, True, args.seed)}
    rows, results = [], {}
    for name, model in models.items():
        results[name], model_rows = run_model(name, model, data, val, (val_ab, val_l), (test_ab, test_l), args)
        rows += model_rows
    table = "\n".join([
        f"Held-out patches: {len(test_ab)} (32x32, {len(ab)} training patches with mirror images); "
        f"{args.epochs} epochs each, batch {args.batch}, lr {args.lr}, target noise {args.target_noise}; RMS in Lab units "
        "(ab), 8 samples per patch at temperature 1 (and at the temperature with the lowest validation best-of-8 "
        f"error among {TEMPERATURES}).",
        "", "| model | parameters | RMS best of 8 | RMS 1 sample | sample variance | val: RMS best of 8 | training s |",
        "|---|---|---|---|---|---|---|", *rows])
    print(table)
    if not args.no_save:
        grids(task, test_ab[SHOWN], test_l[SHOWN], results)
        for r in results.values():
            r.pop("_samples")
        meta = vars(args) | {"machine": machine_tag(), "torch": torch.__version__, "task": task.config()}
        write_results("image_colorization", {"meta": meta, "results": results}, table)


def grids(task: PatchColorization, ab: torch.Tensor, lightness: torch.Tensor, results: dict) -> None:
    """Rows: 8 test patches; columns: gray input, truth, CNN, 4 cINN samples, cINN variance map (gray, max = white)."""
    cinn_s, cnn_s = results["cINN"]["_samples"], results["CNN (U-Net, MSE)"]["_samples"]
    gray = lightness.expand(-1, 3, -1, -1)
    cols = [gray, task.to_rgb(ab, lightness), task.to_rgb(cnn_s[0], lightness)]
    cols += [task.to_rgb(cinn_s[j], lightness) for j in range(4)]
    var = variance_map(cinn_s)[:, None]
    cols.append((var / var.max()).expand(-1, 3, -1, -1))
    path = save_image_grid(torch.stack(cols, 1), png_path("image_colorization", "samples"), scale=2)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
