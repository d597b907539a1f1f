"""The batch-normalised autoencoder module (pure torch; trained through bioml.train)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError
from ._blocks import MLP

__all__ = ["Autoencoder", "AutoencoderLoss"]


@dataclass
class AutoencoderLoss:
    """Loss terms of one forward pass.

    Attributes
    ----------
    loss
        The scalar training objective: the mean squared error over samples and genes in
        the standardised space (one fused ``mse_loss`` kernel, forward and backward).
    z
        Latent coordinates ``(N, latent)``.
    xhat, target
        Reconstruction and standardised input ``(N, genes)``.
    recon
        Per-sample reconstruction error, ``mean_g (x_g - xhat_g)^2`` in the standardised
        space (shape ``(N,)``); the anomaly score of :func:`bioml.tl.autoencoder`. Computed
        when first read, so that training steps do not pay for it.

    Examples
    --------
    >>> import torch
    >>> from bioml.nn import Autoencoder
    >>> out = Autoencoder(20, hidden=(16,), latent=3)(torch.randn(6, 20))
    >>> bool(torch.isclose(out.loss, out.recon.mean()))
    True
    """

    loss: torch.Tensor
    z: torch.Tensor
    xhat: torch.Tensor
    target: torch.Tensor

    @property
    def recon(self) -> torch.Tensor:  # noqa: D102
        return (self.xhat.float() - self.target.float()).pow(2).mean(dim=1)


class Autoencoder(nn.Module):
    """MLP autoencoder with BatchNorm (or per-domain BatchNorm) hidden layers.

    ``x -> (x - mean) / scale -> encoder MLP -> Linear -> z -> decoder MLP -> Linear -> xhat``.
    The decoder's widths are the encoder's reversed. ``mean``/``scale`` are buffers (the
    per-gene standardisation fitted by the model class), so raw log-expression rows go in.

    Parameters
    ----------
    n_input
        Number of genes.
    hidden
        Encoder hidden widths, e.g. ``(512, 128)``.
    latent
        Latent size.
    dropout, activation
        Of each hidden block.
    domain_bn
        Use :class:`~bioml.nn.DomainBatchNorm1d` (separate statistics per domain) instead
        of BatchNorm1d; ``forward`` then needs ``domain``.
    n_domains
        Number of domains (batches) when ``domain_bn``.
    domain_affine
        Per-domain affine parameters of the domain BN (else shared).

    Raises
    ------
    ConfigError
        ``n_input`` or ``latent`` below 1, or ``domain_bn`` without ``n_domains``; in
        ``forward``/``encode``, domain BN without the ``domain`` labels.

    Examples
    --------
    >>> import torch
    >>> from bioml.nn import Autoencoder
    >>> ae = Autoencoder(20, hidden=(16,), latent=3, domain_bn=True, n_domains=2)
    >>> out = ae(torch.randn(6, 20), torch.tensor([0, 0, 0, 1, 1, 1]))
    >>> out.z.shape, out.recon.shape
    (torch.Size([6, 3]), torch.Size([6]))
    """

    def __init__(self, n_input: int, *, hidden: Sequence[int] = (512, 128), latent: int = 32,
                 dropout: float = 0.1, activation: str = "relu", domain_bn: bool = False,
                 n_domains: int = 0, domain_affine: bool = True):
        super().__init__()
        if n_input < 1 or latent < 1:
            raise ConfigError(f"n_input and latent must be >= 1, got {n_input}, {latent}")
        if domain_bn and n_domains < 1:
            raise ConfigError("domain_bn=True needs n_domains >= 1 (a batch_key)")
        hidden = [int(h) for h in hidden]
        nd = n_domains if domain_bn else 0
        self.domain_bn = bool(domain_bn)
        self.encoder = MLP(n_input, hidden, activation=activation, dropout=dropout, n_domains=nd,
                           domain_affine=domain_affine)
        self.to_latent = nn.Linear(self.encoder.n_out, latent)
        self.decoder = MLP(latent, hidden[::-1], activation=activation, dropout=dropout, n_domains=nd,
                           domain_affine=domain_affine)
        self.to_output = nn.Linear(self.decoder.n_out, n_input)
        self.register_buffer("mean", torch.zeros(n_input))
        self.register_buffer("scale", torch.ones(n_input))

    def _domain(self, domain):
        if self.domain_bn and domain is None:
            raise ConfigError("this autoencoder uses domain BN: pass the domain (batch) labels")
        return domain

    def standardise(self, x: torch.Tensor) -> torch.Tensor:
        """``(x - mean) / scale`` in one fused pass over ``x`` (``addcmul``)."""
        inv = 1.0 / self.scale
        return torch.addcmul(-self.mean * inv, x, inv)

    def encode(self, x: torch.Tensor, domain: torch.Tensor | None = None) -> torch.Tensor:
        """Latent coordinates of raw rows ``x``."""
        return self.to_latent(self.encoder(self.standardise(x), self._domain(domain)))

    def forward(self, x: torch.Tensor, domain: torch.Tensor | None = None) -> AutoencoderLoss:
        """Encode, decode and return the loss terms (:class:`AutoencoderLoss`).

        The elementwise work on the ``N x genes`` tensors is kept to two fused passes
        forward (standardisation, ``mse_loss``) and one backward: at SCVI's size this model
        is bound by those passes as much as by its matmuls (``benchmarks/bench_autoencoder.py``).
        """
        domain = self._domain(domain)
        xs = self.standardise(x)
        z = self.to_latent(self.encoder(xs, domain))
        xhat = self.to_output(self.decoder(z, domain))
        loss = nn.functional.mse_loss(xhat.float(), xs.float())
        return AutoencoderLoss(loss=loss, z=z, xhat=xhat, target=xs)

    def flops_per_sample(self) -> int:
        """Multiply-add FLOPs (2 per MAC) of one forward pass through the Linear layers."""
        total = 0
        for m in self.modules():
            if isinstance(m, nn.Linear):
                total += 2 * m.in_features * m.out_features
        return total
