"""The batch-normalised autoencoder module (pure torch; trained through bioml.train)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError
from ._blocks import MLP

__all__ = ["Autoencoder", "AutoencoderLoss"]


class _OutputMSE(torch.autograd.Function):
    """The output layer and the loss in one: ``r = h W^T + b - (x - mean) / scale`` and
    ``loss = mean(r ** 2)``; returns ``(loss, r)``.

    Written out because the generic chain (``Linear`` then ``mse_loss``) costs, on the
    ``N x genes`` tensors, a bias copy, a subtraction, the loss's own temporaries forward
    and a zero-filled gradient plus a scaling pass backward. Here ``b - x_std`` is made in
    one pass and the product is accumulated into it in place (``addmm_``); the loss is one
    BLAS ``dot``; backward scales only the small products (``r W``, ``r^T h``) and the
    column sums of ``r``. Exact up to floating-point rounding order.
    """

    @staticmethod
    def forward(ctx, h, weight, bias, x, shift, inv):  # noqa: D102
        r = torch.addcmul(bias - shift, x, -inv)  # b - (x * inv + shift)
        r.addmm_(h, weight.t())
        flat = r.view(-1)
        loss = torch.dot(flat, flat) / flat.numel()
        ctx.save_for_backward(h, weight, r, inv)
        ctx.set_materialize_grads(False)  # r usually has no gradient: no zero tensor for it
        return loss, r

    @staticmethod
    def backward(ctx, g_loss, g_r):  # noqa: D102
        h, weight, r, inv = ctx.saved_tensors
        c = (0.0 if g_loss is None else g_loss) * (2.0 / r.numel())
        g = r  # the gradient reaching r is g * c
        if g_r is not None:  # r was also used elsewhere (recon): one full gradient tensor
            g, c = g_r + r * c, 1.0
        need = ctx.needs_input_grad
        gh = torch.mm(g, weight).mul_(c) if need[0] else None
        gw = torch.mm(g.t(), h).mul_(c) if need[1] else None
        gb = g.sum(0).mul_(c) if need[2] else None
        gx = g * (-c * inv) if need[3] else None
        return gh, gw, gb, gx, None, None


@dataclass
class AutoencoderLoss:
    """Loss terms of one forward pass.

    Attributes
    ----------
    loss
        The scalar training objective: the mean squared error over samples and genes in
        the standardised space.
    z
        Latent coordinates ``(N, latent)``.
    residual, target
        Reconstruction minus standardised input, and the standardised input ``(N, genes)``
        (float32 or wider).
    xhat
        The reconstruction, ``residual + target`` (computed when read).
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
    residual: torch.Tensor
    target: torch.Tensor

    @property
    def xhat(self) -> torch.Tensor:  # noqa: D102
        return self.residual + self.target

    @property
    def recon(self) -> torch.Tensor:  # noqa: D102
        return self.residual.pow(2).mean(dim=1)


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

    def _inv_shift(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``1 / scale`` and ``-mean / scale``: standardising is ``x * inv + shift``."""
        inv = 1.0 / self.scale
        return inv, -self.mean * inv

    def standardise(self, x: torch.Tensor) -> torch.Tensor:
        """``(x - mean) / scale`` in one fused pass over ``x`` (``addcmul``)."""
        inv, shift = self._inv_shift()
        return torch.addcmul(shift, x, inv)

    def encode(self, x: torch.Tensor, domain: torch.Tensor | None = None) -> torch.Tensor:
        """Latent coordinates of raw rows ``x``."""
        return self.to_latent(self.encoder(self.standardise(x), self._domain(domain)))

    def forward(self, x: torch.Tensor, domain: torch.Tensor | None = None) -> AutoencoderLoss:
        """Encode, decode and return the loss terms (:class:`AutoencoderLoss`).

        The output layer and the loss run as one autograd function that keeps the
        elementwise work on the ``N x genes`` tensors to two passes forward (standardising
        ``x`` for the encoder; ``bias - x_std`` into which the output product is
        accumulated) and a ``dot``, and to one column sum backward: at SCVI's size this
        model is bound by those passes as much as by its matmuls
        (``benchmarks/bench_autoencoder.py``).
        """
        domain = self._domain(domain)
        inv, shift = self._inv_shift()
        xs = torch.addcmul(shift, x, inv)
        z = self.to_latent(self.encoder(xs, domain))
        h = self.decoder(z, domain)
        out = self.to_output
        if (x.dtype == h.dtype == out.weight.dtype and x.dim() == 2
                and not torch.is_autocast_enabled(x.device.type)):
            loss, residual = _OutputMSE.apply(h, out.weight, out.bias, x, shift, inv)
        else:  # autocast (bf16 on CUDA) or mixed dtypes: the generic chain, loss in float32
            xs = xs.float()
            residual = out(h).float() - xs
            loss = residual.pow(2).mean()
        return AutoencoderLoss(loss=loss, z=z, residual=residual, target=xs)

    def flops_per_sample(self) -> int:
        """Multiply-add FLOPs (2 per MAC) of one forward pass through the Linear layers."""
        total = 0
        for m in self.modules():
            if isinstance(m, nn.Linear):
                total += 2 * m.in_features * m.out_features
        return total
