"""A generative classifier that knows when it doesn't know: IB-INN on digits, calibration, OOD scores, anomalies.

    python examples/classify_ood.py            # about a minute on one core

1. Trains an IB-INN (``IBINNClassifier``) on the 8x8 digits 0-4 and reports accuracy and
   calibration (ECE, MCE, ICE) on held-out digits.
2. Scores held-out digits 5-9 and uniform noise images as out-of-distribution (negative
   log-likelihood, per-class likelihood, two-tailed test) and flags them at a 5% false-positive
   rate chosen on validation digits.
3. Fits an ``AnomalyDetector`` on simulated multispectral tissue spectra and flags spectra of a
   tissue type the simulator never produced, with conformal p-values.
"""

from __future__ import annotations

import torch

from innverse.classify import (
    AnomalyDetector,
    IBINNClassifier,
    LikelihoodTest,
    auroc,
    calibration_report,
    class_likelihood_score,
    negative_log_likelihood,
    split_indices,
    threshold_at_fpr,
    vector_inn,
)
from innverse.flows import coupling_flow
from innverse.tasks.classify import SpectralTissueTask, load_digits_images, noise_images


def main() -> None:
    torch.set_num_threads(1)
    x, y = load_digits_images()
    x = x.reshape(-1, 64) + 0.5          # pixel values 0..16 at the centres of their bins
    inside, labels, outside = x[y < 5], y[y < 5], x[y >= 5]
    rest, test = split_indices(len(inside), 0.25, seed=0, labels=labels)
    train, val = split_indices(len(rest), 0.25, seed=1, labels=labels[rest])
    x_train, y_train, x_val = inside[rest][train], labels[rest][train], inside[rest][val]

    # 1. the classifier: beta trades density modelling (small) against classification (large)
    clf = IBINNClassifier(beta=1.0, inn=lambda shape: vector_inn(64, blocks=4, hidden=(128, 128)),
                          noise=0.3, training={"epochs": 40, "batch_size": 64, "lr": 1e-3})
    clf.fit(x_train, y_train)
    report = calibration_report(clf.predict_proba(inside[test]).double(), labels[test])
    print(f"digits 0-4: accuracy {report.accuracy:.3f}, ECE {report.ece:.3f}, MCE {report.mce:.3f}, "
          f"ICE {report.ice:.3f}")
    three = clf.sample(1, 3, generator=torch.Generator().manual_seed(0), temperature=0.7).reshape(8, 8)
    print("a generated 3:\n" + "\n".join("".join(" .:*#"[int(v.clamp(0, 16) // 4)] for v in row) for row in three))

    # 2. out-of-distribution scores, thresholds chosen on validation digits at 5% false positives
    noise = noise_images(300, torch.Generator().manual_seed(0)).reshape(-1, 64) + 0.5
    two_tailed = LikelihoodTest(clf, tails=2).fit(x_val)
    scores = {"NLL": lambda v: negative_log_likelihood(clf, v),
              "per-class likelihood": lambda v: class_likelihood_score(clf, v),
              "two-tailed test": two_tailed.score}
    for name, score in scores.items():
        threshold = threshold_at_fpr(score(x_val), fpr=0.05)
        s_in = score(inside[test])
        parts = [f"{k}: AUROC {auroc(s_in, score(v)):.3f}, flagged {float((score(v) > threshold).double().mean()):.2f}"
                 for k, v in (("digits 5-9", outside), ("noise", noise))]
        print(f"{name:>21}  " + "; ".join(parts))

    # 3. anomaly detection on simulator outputs, with conformal p-values
    task = SpectralTissueTask()
    gen = torch.Generator().manual_seed(0)
    _, spectra = task.sample_joint(3000, gen)
    detector = AnomalyDetector(coupling_flow(16, blocks=4, hidden=(64, 64)))
    detector.fit(spectra.float(), training={"epochs": 30, "batch_size": 256, "lr": 2e-3})
    _, fresh = task.sample_joint(500, gen)
    fat = task.sample_ood("fat", 500, gen)
    print(f"spectra: flagged at 5%: simulated tissue {float(detector.predict(fresh.float()).double().mean()):.3f}, "
          f"unseen tissue {float(detector.predict(fat.float()).double().mean()):.3f}; "
          f"p-value of the first unseen spectrum {float(detector.p_value(fat[:1].float())[0]):.4f}")


if __name__ == "__main__":
    main()
