#!/usr/bin/env bash
# Build the documentation site into docs/_build/html from nothing: the API reference generated
# from the docstrings, one page per command, and every tutorial and gallery script executed.
# Warnings are errors (broken cross-references, missing docstrings of public names, a formula
# that does not render), and so is a script that raises.
#
#   bash scripts/build_docs.sh           full budget of the tutorials
#   bash scripts/build_docs.sh --fast    reduced budget (CI)
#
# Needs the docs extra: .venv/bin/pip install -e ".[docs]". INNVERSE_DOCS_JOBS scripts run side
# by side (default 2, one torch thread each).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
FAST=0
for arg in "$@"; do
    case "$arg" in
        --fast) FAST=1 ;;
        *) echo "usage: bash scripts/build_docs.sh [--fast]" >&2; exit 2 ;;
    esac
done
export INNVERSE_DOCS_FAST=$FAST INNVERSE_DOCS_JOBS=${INNVERSE_DOCS_JOBS:-2} MPLBACKEND=Agg
rm -rf docs/_build docs/_extra docs/api docs/auto_tutorials docs/auto_gallery docs/sg_execution_times.rst
find docs/cli -name '*.rst' ! -name index.rst -delete
start=$(date +%s)
"$PY" -m sphinx -b html -E -W --keep-going -q docs docs/_build/html
echo "documentation built in $(( $(date +%s) - start )) s (fast=$FAST): docs/_build/html/index.html"
