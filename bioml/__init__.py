"""bioml: batch-effect checks and correction, embeddings and generative biology.

Use it as ``import bioml as bm``:

- :mod:`bm.io` -- readers (``.h5ad``, CSV/TSV + sample sheet, 10x), validation, atomic writes
- :mod:`bm.pp` -- QC and normalisation (scanpy-based)
- :mod:`bm.pl` -- figures (functions that return a matplotlib figure)
- :mod:`bm.sim` -- seeded simulators whose ground truth is kept in ``adata.uns``
- :mod:`bm.errors` -- the one error hierarchy (:class:`~bioml.errors.BiomlError`)
"""

from __future__ import annotations

from . import errors, io, pl, pp, sim
from .errors import BiomlError

__version__ = "0.1.0"

__all__ = ["errors", "io", "pl", "pp", "sim", "BiomlError", "__version__"]
