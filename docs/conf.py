"""Sphinx configuration of the innverse documentation (built by ``scripts/build_docs.sh``).

Toolchain: Sphinx with the Furo theme, because the docstrings are reStructuredText (``:math:``,
``:class:``, ``.. math::``) with Google sections, which Sphinx's autodoc and napoleon render and
cross-check natively; sphinx-gallery executes the tutorials (``docs/tutorials/*.py``) and the
gallery (``docs/gallery/*.py``) and embeds their output and figures; the user guide
(``docs/guide/*.md``) is Markdown, read by MyST; formulas become MathML at build
time (``_ext/mathml.py``), so the site needs no JavaScript from the network.

The build is strict: ``nitpicky`` turns every unresolved reference to an innverse name into a
warning, ``scripts/build_docs.sh`` passes ``-W`` (warnings are errors), and a tutorial that raises
fails the build. ``INNVERSE_DOCS_FAST=1`` runs the tutorials on their reduced budget (CI).

Adding a package: nothing to do here. Its reference page is generated from its ``__init__.py``
(docstring and ``__all__``; every exported name needs a docstring, a ``#:`` comment for
constants), and its command pages from the argument parser. Its tutorial is one new file,
``docs/tutorials/NN_name.py`` (a sphinx-gallery script: a docstring with a title, then ``# %%``
cells; reduced budget under ``INNVERSE_DOCS_FAST=1``; pictures for the gallery go to
``docs/gallery/NN_name.py``). Optionally add the package to ``ORDER`` in ``_ext/apigen.py`` to
place it among the layers on the reference's index.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

import innverse  # noqa: E402

project = "innverse"
author = "the innverse developers"
copyright = "the innverse developers, MIT License"
release = version = innverse.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx_gallery.gen_gallery",
    "sphinx_copybutton",
    "sphinxarg.ext",
    "myst_parser",
    "mathml",
    "apigen",
    "clipages",
    "strict_refs",
]
html_math_renderer = "mathml"

exclude_patterns = ["_build", "README_proposal.md", "**/GALLERY_HEADER.rst", "tutorials/*.py",
                    "gallery/*.py", "auto_*/*.ipynb", "auto_*/*.py", "auto_*/*.zip", "auto_*/*.codeobj.json",
                    "auto_*/*.md5"]
templates_path: list[str] = []
root_doc = "index"
nitpicky = True

# autodoc / napoleon: the docstrings are Google style with reStructuredText inside.
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_class_signature = "mixed"
autodoc_preserve_defaults = False
autodoc_inherit_docstrings = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True
napoleon_attr_annotations = True
python_use_unqualified_type_names = True
add_module_names = False

# sphinx-gallery: tutorials and the gallery are scripts executed at build time.


sphinx_gallery_conf = {
    "examples_dirs": ["tutorials", "gallery"],
    "gallery_dirs": ["auto_tutorials", "auto_gallery"],
    "filename_pattern": r"/\d\d_",  # execute every numbered script
    "ignore_pattern": r"/_",
    "within_subsection_order": "FileNameSortKey",
    "reset_modules": ("matplotlib", "gallery_setup.reset"),
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "show_signature": False,
    "line_numbers": False,
    "min_reported_time": 0,  # every page states its running time (the site test reads it)
    "write_computation_times": True,
    "capture_repr": ("_repr_html_", "__repr__"),
    "image_scrapers": ("matplotlib", "gallery_setup"),
    "image_srcset": [],
    "thumbnail_size": (360, 252),
    "matplotlib_animations": False,
    "parallel": int(os.environ.get("INNVERSE_DOCS_JOBS", "1")),
}

# HTML: Furo, no external resources (fonts are the system's, formulas are MathML).
html_theme = "furo"
html_title = f"innverse {release}"
html_static_path = ["_static"]
html_css_files = ["innverse.css"]
(HERE / "_extra").mkdir(exist_ok=True)  # files the gallery scripts publish (the demo's report)
os.environ["INNVERSE_DOCS_EXTRA"] = str(HERE / "_extra")
html_extra_path = ["_extra"]
html_show_sourcelink = False
html_copy_source = False
html_theme_options = {
    "sidebar_hide_name": False,
    "navigation_with_keys": True,
    "top_of_page_buttons": [],
}
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True

# Libraries whose plotting, progress bars or maths print warnings the build should not turn into errors.
warnings.filterwarnings("ignore", message="Matplotlib is currently using agg")
