"""What sphinx-gallery runs before each tutorial and gallery script."""

from __future__ import annotations

import os
from typing import Any


def reset(gallery_conf: dict[str, Any], fname: str) -> None:
    """One torch thread per script (they may run side by side), fixed global seeds, torch's defaults."""
    import numpy as np
    import torch

    torch.set_num_threads(int(os.environ.get("INNVERSE_DOCS_THREADS", "1")))
    torch.manual_seed(0)
    # importing sbi (the interop tutorial) switches argument validation of every torch
    # distribution off for the whole process; the scripts that follow it there get torch's default
    torch.distributions.Distribution.set_default_validate_args(__debug__)
    np.random.seed(0)  # noqa: NPY002 (resets the legacy global state a script might touch)

    import matplotlib

    matplotlib.rcParams["figure.dpi"] = 100
    matplotlib.rcParams["savefig.bbox"] = "tight"

    # Scripts run in joblib's loky workers, which make "loky" multiprocessing's default start
    # method; a process pool or Dask cluster a script starts would then fail ("cannot find context
    # for 'loky'"). Restore Python's default.
    import multiprocessing

    if multiprocessing.get_start_method(allow_none=True) == "loky":
        multiprocessing.set_start_method(None, force=True)



def figure_scraper(block: Any, block_vars: dict[str, Any], gallery_conf: dict[str, Any], **kwargs: Any) -> str:
    """Save the figures a code block left in its variables (the library's plots are not pyplot figures).

    innverse's plotting functions return a ``matplotlib.figure.Figure`` without registering it with
    pyplot, so sphinx-gallery's matplotlib scraper does not see them; a script shows one by
    assigning it (``fig = pair_plot(...)``), as it would at the end of a notebook cell.
    """
    from matplotlib.figure import Figure
    from sphinx_gallery.scrapers import figure_rst

    paths = []
    for value in list(block_vars["example_globals"].values()):
        pyplot_figure = hasattr(value, "number")  # made by pyplot: the matplotlib scraper saved it
        if isinstance(value, Figure) and not pyplot_figure and not getattr(value, "_innverse_scraped", False):
            path = next(block_vars["image_path_iterator"])
            value.savefig(path, dpi=100)
            value._innverse_scraped = True
            paths.append(path)
    return figure_rst(paths, gallery_conf["src_dir"])


def _get_sg_image_scraper() -> Any:
    """What sphinx-gallery calls for ``image_scrapers = (..., "gallery_setup")``."""
    return figure_scraper
