"""bioml: batch-effect checks and correction, embeddings and generative biology.

Use it as ``import bioml as bm``:

- :mod:`bm.io` -- readers (``.h5ad``, CSV/TSV + sample sheet, 10x), validation, atomic writes
- :mod:`bm.pp` -- QC and normalisation (scanpy-based), confounding checks, batch correction
- :mod:`bm.tl` -- embeddings and annotations (the batch-normalised autoencoder)
- :mod:`bm.train` -- the one mini-batch SGD engine every model trains through
- :mod:`bm.nn` -- pure torch modules (MLP blocks, per-batch BatchNorm, autoencoder)
- :mod:`bm.metrics` -- integration and two-sample metrics
- :mod:`bm.flux` -- metabolic models (cobra), flux sampling, the flux VAE with a null-space decoder
- :mod:`bm.pl` -- figures (functions that return a matplotlib figure)
- :mod:`bm.sim` -- seeded simulators whose ground truth is kept in ``adata.uns``
- :mod:`bm.interface` -- protein-interface features (freesasa, PRODIGY-style contacts) and the
  interface GAN
- :mod:`bm.errors` -- the one error hierarchy (:class:`~bioml.errors.BiomlError`)
"""

from __future__ import annotations

from . import errors, flux, interface, io, metrics, nn, pl, pp, sim, tl, train
from .errors import BiomlError

__version__ = "0.1.0"

__all__ = [
    "errors",
    "flux",
    "interface",
    "io",
    "metrics",
    "nn",
    "pl",
    "pp",
    "sim",
    "tl",
    "train",
    "BiomlError",
    "__version__",
]
