"""
The report of a run
===================

``innverse demo`` runs the whole workflow on a built-in task (simulate, train, sample, check)
and writes a run folder with one self-contained HTML page. This gallery entry runs it with the
reduced budget (``--fast``) and shows the figures the page embeds.

`Open the report of this run <../demo_report.html>`_ (one offline file: every figure is
embedded, nothing is fetched from the network).
"""

# %%
import os
import shutil
import tempfile
from pathlib import Path

import matplotlib.image as mpimg
import matplotlib.pyplot as plt

from innverse.cli import main

run = Path(tempfile.mkdtemp(prefix="innverse-demo-")) / "demo"
exit_code = main(["demo", "--fast", "--out", str(run), "--quiet"])
print("exit code", exit_code)

# %%
# The report, copied next to this page so that the link above opens it.
site_extra = Path(os.environ.get("INNVERSE_DOCS_EXTRA", "."))  # set by the documentation build
site_extra.mkdir(exist_ok=True)
shutil.copyfile(run / "report.html", site_extra / "demo_report.html")
print(sorted(p.name for p in run.iterdir()))

# %%
# The figures of the diagnostics, as the report shows them: SBC rank ECDFs, coverage of credible
# regions, recovery of the true parameters, posterior z-scores against contraction.
for png in sorted((run / "diagnostics").glob("*.png")):
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.imshow(mpimg.imread(png))
    ax.set_axis_off()
    ax.set_title(png.stem.replace("_", " "))
    plt.show()
