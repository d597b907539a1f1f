"""Sphinx configuration for the bioml documentation (``make docs``).

The tutorials in ``docs/tutorials/`` are committed without outputs and are never executed
by Sphinx: ``docs/execute_tutorials.py`` (run by CI and by ``make docs``'s caller before
the build) executes each one once and writes the executed copy to
``docs/_build/executed/<name>.ipynb``. The same executed copies serve the tests
(``tests/test_tutorials.py``) and this site: when an executed copy exists, the
``source-read`` hook below hands its text to the notebook parser instead of the
output-free source, so the rendered page shows the outputs; without one, the page shows
the code only.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MPLBACKEND", "Agg")

import bioml  # noqa: E402

EXECUTED = Path(os.environ.get("BIOML_EXECUTED_DIR", DOCS / "_build" / "executed"))

project = "bioml"
author = "the bioml authors"
copyright = "the bioml authors"
version = release = bioml.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_nb",
]

# --- sources -----------------------------------------------------------------------------
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"
exclude_patterns = ["_build", "**.ipynb_checkpoints", "README.md", "execute_tutorials.py"]
templates_path: list[str] = []

# --- API reference -----------------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "none"  # the numpydoc Parameters sections carry the types
autodoc_member_order = "bysource"
autodoc_mock_imports: list[str] = []
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()
# nothing is fetched from the network: no intersphinx
intersphinx_mapping: dict = {}

# --- notebooks -------------------------------------------------------------------------
nb_execution_mode = "off"  # executed once by docs/execute_tutorials.py, never here
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

# --- HTML ------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = "bioml"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
html_static_path: list[str] = []


def _use_executed_copy(app, docname: str, source: list[str]) -> None:
    """Render the executed copy of a tutorial when ``execute_tutorials.py`` made one."""
    if not docname.startswith("tutorials/"):
        return
    path = Path(app.env.doc2path(docname))
    if path.suffix != ".ipynb":
        return
    executed = EXECUTED / path.name
    if executed.is_file() and executed.stat().st_mtime >= path.stat().st_mtime:
        source[0] = executed.read_text(encoding="utf-8")
    elif executed.is_file():
        from sphinx.util import logging

        logging.getLogger(__name__).info(
            f"{executed} is older than {path}: rendering without outputs (re-run execute_tutorials.py)"
        )


# Top-level pages that index.md lists itself; any other docs/*.md (the scaling/HPC page,
# docs/scaling.md, written with the SLURM work) is appended to the index in a "Running at
# scale" toctree, so that a new page needs no edit here and no empty glob warns.
_INDEXED = {"index", "installation", "api"}


def _extra_pages() -> list[str]:
    return sorted(p.stem for p in DOCS.glob("*.md") if p.stem not in _INDEXED and p.stem != "README")


def _add_extra_pages(app, docname: str, source: list[str]) -> None:
    pages = _extra_pages()
    if docname == "index" and pages:
        block = ["```{toctree}", ":maxdepth: 1", ":caption: Running at scale", "", *pages, "```"]
        source[0] += "\n" + "\n".join(block) + "\n"


def setup(app):
    app.connect("source-read", _use_executed_copy)
    app.connect("source-read", _add_extra_pages)
