"""Bits/dim on scikit-learn's 8x8 digits: innverse's multi-scale flow vs normflows' Glow, same size and budget, same run.

    PYTHONPATH=src /work/main/.venv-peers/bin/python benchmarks/image_digits.py --epochs 60

Data: ``innverse.tasks.images.DigitClasses`` (17 grey levels; 1297 train / 200 val / 300 test
images). Both flows see the same input: uniform dequantisation ``y = (v + u) / 17`` followed by
the logit preprocessing ``s = logit(0.05 + 0.9 y)`` (``UniformDequantization(alpha=0.05)``,
whose log-det enters the bound), and both are trained through ``innverse.train.train`` with the
same ``BitsPerDimLoss``, epochs, batch size, learning rate, cosine schedule, EMA (0.995) and
restoration of the best validation epoch. Reported: held-out (test) bits/dim, the upper bound of
``innverse.imaging.bits_per_dim`` with uniform dequantisation, 16 draws per image, its paired
difference to normflows over the same test images and noise draws (mean ± standard error), and
the validation bits/dim (model choices are read off that column, not the test one).

* innverse: ``image_flow`` with 2 levels (Haar downsampling, ActNorm, 1x1 convolutions, affine
  couplings with conv subnets, half the channels split off after level 0) and 2 dense couplings;
* normflows: ``MultiscaleFlow`` of ``GlowBlock``s (the normflows Glow example: squeeze, 2
  levels, a learnable ``GlowBase`` per level), its hidden channels chosen to match the
  parameter count;
* innverse with squeeze downsampling (``downsampling=Squeeze``, as normflows) instead of Haar:
  same flow otherwise; which of the two is better is read off the validation column;
* innverse with a learnable diagonal Gaussian base (``DiagonalGaussian``, the analogue of
  ``GlowBase``; 128 more parameters): same flow, same budget;
* innverse with variational dequantisation (``VariationalDequantization``; its noise flow adds
  parameters, stated in the table): same flow, same budget;
* baselines: uniform pixels (log2 17) and independent per-pixel histograms (add-one smoothing).

Then a class-conditional flow (labels through ``ConditionMLP``) gives the conditional bits/dim
and the PNG grids: samples per class at temperatures 1.0 and 0.7, style transfer (test digits
encoded under their class, decoded under every class) and latent interpolations.
"""

from __future__ import annotations

import argparse
import math

import torch
from torch import nn

from _common import machine_tag, write_results
from image_common import batches, fit, parameters, png_path
from innverse.blocks import HaarDownsample, Squeeze
from innverse.core import DiagonalGaussian, Flow
from innverse.flows.image import image_flow
from innverse.imaging import (
    BitsPerDimLoss,
    UniformDequantization,
    VariationalDequantization,
    bits_per_dim,
    interpolate,
    sample_images,
    save_image_grid,
    transfer_style,
)
from innverse.nets import conv_constructor, mlp_constructor
from innverse.tasks.images import DigitClasses

SHAPE, LEVELS, ALPHA = (1, 8, 8), 17, 0.05
PEER = "normflows Glow (MultiscaleFlow)"


class NormflowsGlow(nn.Module):
    """normflows' multi-scale Glow (its documented example, two levels) with ``log_prob(s)``."""

    def __init__(self, hidden: int, blocks: int, levels: int = 2) -> None:
        super().__init__()
        import normflows as nf

        c, h, w = SHAPE
        q0, flows, merges = [], [], []
        for i in range(levels):
            flows.append([nf.flows.GlowBlock(c * 2 ** (levels + 1 - i), hidden, split_mode="channel", scale=True)
                          for _ in range(blocks)] + [nf.flows.Squeeze()])
            if i > 0:
                merges.append(nf.flows.Merge())
                shape = (c * 2 ** (levels - i), h // 2 ** (levels - i), w // 2 ** (levels - i))
            else:
                shape = (c * 2 ** (levels + 1), h // 2**levels, w // 2**levels)
            q0.append(nf.distributions.GlowBase(shape))
        self.model = nf.MultiscaleFlow(q0, flows, merges, class_cond=False)

    def log_prob(self, s: torch.Tensor) -> torch.Tensor:
        return self.model.log_prob(s, None)


def ours(hidden: int, blocks: int, seed: int, condition: bool = False, learnable_base: bool = False,
         downsampling=HaarDownsample):
    flow = image_flow(SHAPE, levels=2, blocks_per_level=blocks, condition_shape=(10,) if condition else None,
                      subnet=conv_constructor((hidden, hidden)), dense_blocks=2, dense_subnet=mlp_constructor((128,)),
                      downsampling=downsampling, seed=seed)
    if not learnable_base:
        return flow
    return Flow(flow.transform, base=DiagonalGaussian(flow.transform.output_shape))  # like normflows' GlowBase


def histogram_bpd(train: torch.Tensor, test: torch.Tensor) -> float:
    counts = torch.stack([(train == k).float().sum(0) for k in range(LEVELS)]) + 1.0
    probs = (counts / counts.sum(0))[:, 0]
    rows, cols = torch.arange(8)[:, None], torch.arange(8)[None]
    lp = torch.log(probs[test.long().squeeze(1), rows, cols])
    return float(-lp.sum((1, 2)).mean() / (64 * math.log(2)))


def unconditional(args, task, deq) -> tuple[list[str], dict]:
    x, _ = task.pairs("train")
    xv, _ = task.pairs("val")
    xt, _ = task.pairs("test")
    torch.manual_seed(args.seed)
    flow = ours(args.hidden, args.blocks, args.seed)
    hidden_nf = min(range(8, 257, 4), key=lambda h: abs(parameters(NormflowsGlow(h, args.blocks)) - parameters(flow)))
    torch.manual_seed(args.seed)
    variational = VariationalDequantization(SHAPE, LEVELS, ALPHA)
    models = {"innverse image_flow": (flow, deq),
              "innverse image_flow, squeeze downsampling": (ours(args.hidden, args.blocks, args.seed,
                                                                 downsampling=Squeeze), deq),
              "innverse image_flow, learnable diagonal base": (ours(args.hidden, args.blocks, args.seed, False, True),
                                                                deq),
              PEER: (NormflowsGlow(hidden_nf, args.blocks), deq),
              "innverse image_flow, variational dequantisation": (ours(args.hidden, args.blocks, args.seed), variational)}
    rows, out, tests = [], {}, {}
    for name, (model, dq) in models.items():
        loss = BitsPerDimLoss(model, dq)
        n_model, n_deq = parameters(model), (parameters(dq) if dq is variational else 0)
        print(f"{name}: {n_model / 1e3:.1f}k parameters (+{n_deq / 1e3:.1f}k dequantiser)", flush=True)
        training = fit(loss, loss, batches(x, batch_size=args.batch), batches(xv, batch_size=200, shuffle=False),
                       args.epochs, args.lr, args.seed)
        loss.eval()
        gen = torch.Generator().manual_seed(args.seed + 7)
        tests[name] = test = bits_per_dim(model, xt, dq, draws=16, generator=gen)
        val = bits_per_dim(model, xv, dq, draws=16, generator=torch.Generator().manual_seed(args.seed + 8))
        train_bpd = bits_per_dim(model, x, dq, draws=2, generator=gen)
        out[name] = {"parameters": n_model, "dequantiser_parameters": n_deq, "test_bpd": test.value,
                     "test_bpd_stderr": test.stderr, "val_bpd": val.value, "train_bpd": train_bpd.value,
                     "dequantization": test.dequantization, "training": training}
        print(f"    test {test}, val {val.value:.3f}", flush=True)
    peer = tests[PEER]
    for name, r in out.items():
        d = tests[name].per_image - peer.per_image  # paired over the same test images (and noise draws)
        r["difference_to_normflows"], r["difference_stderr"] = float(d.mean()), float(d.std() / math.sqrt(d.numel()))
        diff = "" if name == PEER else f"{r['difference_to_normflows']:+.3f} ± {r['difference_stderr']:.3f}"
        deq_k = r["dequantiser_parameters"]
        rows.append(f"| {name} | {r['parameters'] / 1e3:.1f}k{f' + {deq_k / 1e3:.1f}k' if deq_k else ''} | "
                    f"{r['test_bpd']:.3f} ± {r['test_bpd_stderr']:.3f} | {diff} | {r['val_bpd']:.3f} | "
                    f"{r['train_bpd']:.3f} | {r['dequantization']} | {r['training']['seconds']:.0f} |")
    rows.append(f"| uniform pixels | 0 | {math.log2(LEVELS):.3f} | | | | | |")
    rows.append(f"| independent pixel histograms | {LEVELS * 64} | {histogram_bpd(x, xt):.3f} | | | | | |")
    return rows, out


def conditional(args, task, deq) -> tuple[str, dict]:
    x, c = task.pairs("train")
    xv, cv = task.pairs("val")
    xt, ct = task.pairs("test")
    torch.manual_seed(args.seed)
    flow = ours(args.hidden, args.blocks, args.seed, condition=True)
    loss = BitsPerDimLoss(flow, deq)
    print(f"class-conditional: {parameters(flow) / 1e3:.1f}k parameters", flush=True)
    training = fit(loss, loss, batches(x, c, batch_size=args.batch), batches(xv, cv, batch_size=200, shuffle=False),
                   args.epochs, args.lr, args.seed)
    loss.eval()
    test = bits_per_dim(flow, xt, deq, ct, draws=16, generator=torch.Generator().manual_seed(args.seed + 7))
    if not args.no_save:
        grids(flow, deq, xt, ct, args.seed)
    row = (f"| innverse image_flow, class-conditional (ConditionMLP) | {parameters(flow) / 1e3:.1f}k | "
           f"{test.value:.3f} ± {test.stderr:.3f} | | | | {test.dequantization} | {training['seconds']:.0f} |")
    return row, {"parameters": parameters(flow), "test_bpd": test.value, "test_bpd_stderr": test.stderr,
                 "training": training}


@torch.no_grad()
def grids(flow, deq, xt: torch.Tensor, ct: torch.Tensor, seed: int) -> None:
    """Samples per class (rows) at T = 1 and 0.7; style transfer; interpolations (pixels in [0, 1])."""
    labels = torch.eye(10)
    for t in (1.0, 0.7):
        s = sample_images(flow, 10, labels, temperature=t, generator=torch.Generator().manual_seed(seed))
        save_image_grid(deq.to_unit(s.reshape(-1, *SHAPE)).reshape(10, 10, *SHAPE).transpose(0, 1),
                        png_path("image_digits", f"samples_T{t:g}"), scale=3)
    y = deq.to_unit(deq(xt[:8], torch.Generator().manual_seed(seed))[0])
    s_in = deq(xt[:8], torch.Generator().manual_seed(seed))[0]
    moved = [deq.to_unit(transfer_style(flow, s_in, ct[:8], labels[k].expand(8, 10))) for k in range(10)]
    save_image_grid(torch.stack([y, *moved], 1), png_path("image_digits", "style_transfer"), scale=3)
    paths = [deq.to_unit(interpolate(flow, s_in[i], s_in[i + 1], 8, ct[i])) for i in range(0, 8, 2)]
    save_image_grid(torch.stack(paths), png_path("image_digits", "interpolation"), scale=3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--hidden", type=int, default=48)
    ap.add_argument("--blocks", type=int, default=4, help="GLOW steps per level (both libraries)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    task = DigitClasses()
    deq = UniformDequantization(SHAPE, LEVELS, ALPHA)
    rows, results = unconditional(args, task, deq)
    row, results["class-conditional"] = conditional(args, task, deq)
    header = [f"Held-out bits/dim (test split, 300 images; 16 dequantisation draws each, of the kind in the last "
              f"column; ± standard error over images). "
              f"{args.epochs} epochs, batch {args.batch}, lr {args.lr}, cosine schedule, EMA 0.995, best validation "
              f"epoch restored; the same loop and loss for every model.", "",
              "| model | parameters | test bits/dim | test, paired difference to normflows | val bits/dim | "
              "train bits/dim | dequantisation | training s |",
              "|---|---|---|---|---|---|---|---|"]
    table = "\n".join([*header, *rows, row])
    print(table)
    if not args.no_save:
        meta = vars(args) | {"machine": machine_tag(), "torch": torch.__version__}
        try:
            import normflows

            meta["normflows"] = normflows.__version__
        except ImportError:
            pass
        write_results("image_digits", {"meta": meta, "results": results}, table)


if __name__ == "__main__":
    main()
