"""Train an invertible digit classifier, invert its last hidden layer and make metamers.

    python examples/represent_metamers.py --epochs 40 --out metamers.png

An i-ResNet (spectrally normalised residual blocks, inverted by fixed-point iteration) on
scikit-learn's 8x8 digits is bijective up to a linear projection of its first 10 representation
coordinates (the logit subspace); the other 54 are the nuisance, which the logits never see. The
script reports the test accuracy, the error of reconstructing the test digits from their last
hidden representation (and the fixed-point iterations it took), and draws metamers: the logit
part of one digit's representation with the nuisance of a digit of another class, inverted.
Every metamer has the first digit's logits; how much it looks like the second shows how much of
what the classifier ignores (its excessive invariance) the nuisance carries. Takes about a
minute on two CPU cores.
"""

from __future__ import annotations

import argparse

import torch
from sklearn.datasets import load_digits

from innverse.blocks import FixedPointSolver
from innverse.represent import IResNetClassifier, metamers, plot_metamers, train_classifier


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--out", default="metamers.png")
    args = ap.parse_args()

    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0     # (1797, 1, 8, 8) in [0, 1]
    y = torch.tensor(digits.target)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    train, val, test = order[:1300], order[1300:1500], order[1500:]

    model = IResNetClassifier((1, 8, 8), classes=10, hidden=32, coeff=0.9, seed=0,
                              solver=FixedPointSolver(tolerance=1e-6))
    train_classifier(model, x[train], y[train], validation=(x[val], y[val]), noise=0.05,
                     training={"epochs": args.epochs, "batch_size": 64, "lr": 1e-3})
    model.eval()
    accuracy = (model.predict(x[test]) == y[test]).float().mean()

    with torch.no_grad():
        z = model.features(x[test])                  # (297, 64): the last hidden representation
        x_back = model.invert(z)                     # the input, from the representation alone
    error = (x_back - x[test]).norm() / x[test].norm()
    iterations = max(r.iterations for r in model.fixed_point_reports())
    print(f"test accuracy {100 * accuracy:.1f}%, relative reconstruction error {error:.1e} "
          f"(at most {iterations} fixed-point iterations per block)")

    # ten pairs of test digits of different classes: logits from a (digits 0..9), nuisance from b
    x_test, y_test = x[test], y[test]
    first = torch.stack([(y_test == k).nonzero()[0, 0] for k in range(10)])
    second = torch.stack([(y_test == (k + 3) % 10).nonzero()[1, 0] for k in range(10)])
    a, b = x_test[first], x_test[second]
    result = metamers(model, a, b)
    print(f"largest logit change of a metamer: {result.logit_gap:.1e}; RMS distance of the metamers to "
          f"a: {result.distance_to_a.mean():.3f}, to b: {result.distance_to_b.mean():.3f}")
    plot_metamers(result, a, b, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
