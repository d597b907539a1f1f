"""Pure ``torch.nn`` modules (``bm.nn``): MLP blocks, per-domain BatchNorm, the autoencoder,
the flux VAE with its null-space decoder.

Modules compute and return their loss terms; they hold no data, no optimiser and no loop
(the model classes in :mod:`bioml.tl` hold data and scaling; :mod:`bioml.train` trains).
"""

from ._autoencoder import Autoencoder, AutoencoderLoss
from ._blocks import ACTIVATIONS, MLP, DomainBatchNorm1d, Dropout, make_activation
from ._flux import FluxVAELoss, FluxVAEModule
from ._gan import (
    ConstrainedOutput,
    Generator,
    OutputSpec,
    SpectralNormCritic,
    gradient_penalty,
    layer_spectral_norms,
)

__all__ = [
    "MLP",
    "DomainBatchNorm1d",
    "Dropout",
    "Autoencoder",
    "AutoencoderLoss",
    "FluxVAEModule",
    "FluxVAELoss",
    "make_activation",
    "ACTIVATIONS",
    "OutputSpec",
    "ConstrainedOutput",
    "Generator",
    "SpectralNormCritic",
    "gradient_penalty",
    "layer_spectral_norms",
]
