"""
Calibration of a classifier
===========================

:mod:`innverse.classify` measures how well predicted class probabilities match observed
frequencies. The reliability diagram bins forecasts by confidence; a calibrated classifier lies on
the diagonal, an over-confident one below it.
"""

# %%
import matplotlib.pyplot as plt
import torch

from innverse.classify import calibration_report, plot_reliability, reliability_diagram

gen = torch.Generator().manual_seed(0)
logits = 2.0 * torch.randn(5000, 10, generator=gen)
labels = torch.distributions.Categorical(logits=logits).sample()  # labels drawn from the forecast itself
calibrated = logits.softmax(1)
overconfident = (3.0 * logits).softmax(1)

fig, ax = plt.subplots(figsize=(4.5, 4.5))
plot_reliability(reliability_diagram(calibrated, labels), ax=ax, label="calibrated")
plot_reliability(reliability_diagram(overconfident, labels), ax=ax, label="over-confident")
ax.legend()
plt.show()
for name, probs in [("calibrated", calibrated), ("over-confident", overconfident)]:
    report = calibration_report(probs, labels)
    print(name, {key: round(value, 4) for key, value in report.as_dict().items() if isinstance(value, float)})
