"""Which measurement to take: multispectral cameras (3, 8, 27 bands), cardiovascular modalities, one free band.

    nice python benchmarks/design_compare.py                       # all parts (~10 min on 2 cores)
    python benchmarks/design_compare.py --parts camera --simulations 2000 --no-save   # smoke

Parts (tasks from ``innverse.tasks.design``; one NPE per setup, ``innverse.design.compare``):

* ``camera``: tissue parameters (oxygenation, blood volume fraction, scattering, water fraction)
  seen through 3 visible bands, 8 bands (adding near infrared) or 27 bands; the band sets are
  nested, so by construction (data-processing inequality) no parameter can lose information
  from 3 to 8 to 27 bands, and water, which absorbs only in the near infrared, cannot be
  identified through the 3 visible bands at all. Costs 1, 3, 10 (arbitrary units) give the Pareto
  front of cost vs expected information gain.
* ``windkessel``: resistance, compliance, heart rate and microvascular time constant from the
  arterial pressure, a PPG-like signal, or both. By construction pressure alone identifies R and
  C (the PPG is scale-free and sees only their product), the PPG alone carries the microvascular
  time constant, and both together can only be better than either.
* ``design``: the 3-band camera plus one free band whose centre (450-1000 nm) is the design;
  one design-conditional NPE is trained once over the design space, three band positions are
  compared with it, and the EIG lower bound is maximised over the centre (``optimize_design``).

Checks printed (and stored): the ranking of setups per parameter by contraction, the parameters
flagged unidentifiable (mean contraction below 0.1), the Pareto front, per-parameter winners.
Results: JSON + Markdown under ``benchmarks/results/``; times are wall clock on a shared machine.
"""

from __future__ import annotations

import argparse
import time

import torch

from _common import write_results
from innverse.amortized import box_uniform
from innverse.design import Budget, Setup, compare, design_setups, optimize_design, train_design_posterior
from innverse.tasks.design import BAND_SETS, MultispectralCamera, WindkesselWaveform, band_reflectances


def checks(c, expected_order: dict[str, list[str]]) -> dict:
    """For each parameter: the contraction ranking and whether it matches the expected (partial) order."""
    out = {}
    for p, order in expected_order.items():
        ranking = c.ranking("contraction", p)
        kept = [s for s in ranking if s in order]
        out[p] = {"ranking": ranking, "expected": order, "as_expected": kept == order}
    return out


def camera(args) -> tuple[dict, str]:
    setups = [Setup(f"{b} bands", MultispectralCamera(b), cost) for b, cost in ((3, 1.0), (8, 3.0), (27, 10.0))]
    t0 = time.perf_counter()
    c = compare(setups, MultispectralCamera().prior, Budget(args.simulations, args.test, args.samples), seed=args.seed)
    order = ["27 bands", "8 bands", "3 bands"]
    result = {"comparison": c.to_dict(), "seconds": time.perf_counter() - t0,
              "checks": checks(c, {p: order for p in c.parameter_names}), "unidentifiable": c.unidentifiable(),
              "pareto_front": c.pareto_front(), "caveats": c.caveats()}
    if args.plots:
        c.plot(args.plots + "/design_compare_camera.png")
    text = (f"### Camera: 3, 8, 27 nested bands\n\n{c.table()}\n\nUnidentifiable (contraction < {c.threshold}): "
            f"{c.unidentifiable()}\n\nPareto front (cost vs EIG): {result['pareto_front']}\n\n"
            + "\n".join(f"- {p}: ranking {v['ranking']} — more bands, more contraction: "
                        f"{'yes' if v['as_expected'] else 'NO'}" for p, v in result["checks"].items())
            + _caveats(c))
    return result, text


def _caveats(c) -> str:
    lines = c.caveats()
    return "\n\nCaveats:\n" + "\n".join(f"- {line}" for line in lines) if lines else "\n\nEvery posterior passes SBC."


def windkessel(args) -> tuple[dict, str]:
    setups = {m: WindkesselWaveform(m) for m in ("pressure", "ppg", "both")}
    t0 = time.perf_counter()
    c = compare(setups, WindkesselWaveform().prior, Budget(args.simulations, args.test, args.samples), seed=args.seed)
    expected = {"resistance": ["both", "ppg"], "compliance": ["both", "ppg"], "microvascular_time": ["both", "pressure"]}
    expected_better = {"resistance": "pressure", "compliance": "pressure", "microvascular_time": "ppg"}
    better = {p: max(("pressure", "ppg"), key=lambda s: float(c[s].contraction[c.parameter_names.index(p)]))
              for p in c.parameter_names}
    result = {"comparison": c.to_dict(), "seconds": time.perf_counter() - t0, "better_single_modality": better,
              "expected_better": expected_better, "checks": checks(c, expected),
              "both_at_least_as_good": {p: c.ranking("contraction", p)[0] == "both" for p in c.parameter_names},
              "best_calibrated": c.best("contraction"), "caveats": c.caveats()}
    if args.plots:
        c.plot(args.plots + "/design_compare_windkessel.png")
    text = (f"### Windkessel: pressure, PPG, both\n\n{c.table()}\n\n"
            + "\n".join(f"- {p}: better single modality {better[p]}"
                        + (f" (by construction: {expected_better[p]})" if p in expected_better else "")
                        + f"; best overall {c.ranking('contraction', p)[0]}; best with a calibrated posterior "
                        f"{c.best('contraction')[p]}" for p in c.parameter_names)
            + _caveats(c))
    return result, text


def free_band(theta, design, generator=None):
    """The 3 visible bands plus one band centred at ``design`` (nm): one design for all rows, or one per row."""
    n = theta.shape[0]
    fixed = torch.tensor(BAND_SETS[3], dtype=torch.float64).expand(n, 3)
    free = torch.as_tensor(design, dtype=torch.float64).reshape(-1, 1).expand(n, 1)
    return band_reflectances(theta, torch.cat([fixed, free], 1), generator=generator)


def design(args) -> tuple[dict, str]:
    prior = MultispectralCamera().prior
    t0 = time.perf_counter()
    post = train_design_posterior(free_band, prior, box_uniform(torch.tensor([450.0]), torch.tensor([1000.0])),
                                  2 * args.simulations, seed=args.seed)
    trained = time.perf_counter() - t0
    setups = design_setups(free_band, {f"4th band at {w} nm": torch.tensor([float(w)]) for w in (500, 750, 970)})
    c = compare(setups, prior, Budget(args.simulations, args.test, args.samples), posterior=post, seed=args.seed,
                parameter_names=MultispectralCamera.parameter_names)
    best = optimize_design(post, free_band, prior, [450.0], [1000.0], candidates=12, test_size=args.test,
                           seed=args.seed)
    result = {"comparison": c.to_dict(), "train_seconds": trained, "optimum_nm": float(best.design[0]),
              "optimum_eig": best.information_gain, "optimum_eig_se": best.information_gain_se, "tried": best.tried,
              "seconds": time.perf_counter() - t0, "caveats": c.caveats()}
    text = (f"### One free band (design-conditional NPE, trained once on {2 * args.simulations} simulations)\n\n"
            f"{c.table()}\n\nEIG-optimal 4th band: {float(best.design[0]):.0f} nm (EIG {best.information_gain:.2f} ± "
            f"{best.information_gain_se:.2f} nats; {len(best.tried)} designs evaluated)" + _caveats(c))
    return result, text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", default="camera,windkessel,design")
    p.add_argument("--simulations", type=int, default=10_000, help="training simulations per setup")
    p.add_argument("--test", type=int, default=300)
    p.add_argument("--samples", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plots", default=None, help="folder for the comparison plots")
    p.add_argument("--no-save", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    parts = {"camera": camera, "windkessel": windkessel, "design": design}
    results, texts = {}, []
    for name in args.parts.split(","):
        results[name], text = parts[name](args)
        print(text, flush=True)
        texts.append(text)
    if not args.no_save:
        write_results("design_compare", {"args": vars(args), "seconds": time.perf_counter() - t0, "results": results,
                                         "torch_threads": 1}, "\n\n".join(texts))


if __name__ == "__main__":
    main()
