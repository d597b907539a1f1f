"""The flux VAE module (pure torch; trained through bioml.train by :class:`bioml.flux.FluxVAE`).

The module sees only the *free* reactions (the model class keeps fixed and blocked
reactions exactly at their values). Two decoder modes:

``"nullspace"``
    The decoder outputs coordinates ``u`` in an orthonormal basis ``N`` of the null space
    of ``S`` (restricted to the free reactions): ``v = v0 + N u``, with ``v0`` a particular
    solution that carries the fixed reactions. ``S v = 0`` holds by construction, whatever
    the weights; :meth:`FluxVAEModule.decode64` does the last product in float64, so
    generated fluxes are mass-balanced to float64 precision.
``"penalty"``
    The decoder outputs the (scaled) fluxes directly; mass balance is only encouraged
    through the penalty ``||S v||^2``.

Both add a bound-violation penalty. Inputs are standardised per reaction; penalties are
computed in the original flux units.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError
from ._blocks import MLP

__all__ = ["FluxVAEModule", "FluxVAELoss", "CONSTRAINTS"]

CONSTRAINTS = ("nullspace", "penalty")


@dataclass
class FluxVAELoss:
    """Loss terms of one forward pass (scalars are means over the minibatch).

    Attributes
    ----------
    loss
        ``nll + beta * kl + mass_balance_weight * mass_balance + bounds_weight * bounds``.
    nll
        Gaussian negative log-likelihood of the standardised fluxes (learned noise scale).
    recon
        Mean squared reconstruction error of the standardised fluxes.
    kl
        KL divergence of the posterior from N(0, I), summed over latent dimensions.
    mass_balance
        ``||S v||_2^2`` of the reconstruction, original units.
    bounds
        Sum of squared bound violations of the reconstruction, original units.
    z
        Posterior means ``(N, latent)``.
    """

    loss: torch.Tensor
    nll: torch.Tensor
    recon: torch.Tensor
    kl: torch.Tensor
    mass_balance: torch.Tensor
    bounds: torch.Tensor
    z: torch.Tensor


class FluxVAEModule(nn.Module):
    """VAE over flux vectors with a null-space (or free) decoder.

    Parameters
    ----------
    n_free
        Number of free reactions (the input width).
    n_metabolites
        Rows of ``S`` (for the mass-balance penalty).
    dim
        Null-space dimension ``d`` (output width in ``"nullspace"`` mode).
    latent
        Latent size.
    hidden
        Encoder widths (the decoder mirrors them).
    activation, dropout, batch_norm
        Of the hidden blocks (:class:`bioml.nn.MLP`).
    constraint
        ``"nullspace"`` or ``"penalty"`` (see the module docstring).

    Buffers (set by the model class): ``x_mean``/``x_scale`` (per-reaction
    standardisation), ``basis``/``basis64`` (``n_free x d``), ``v0``/``v064`` (particular
    solution on the free reactions), ``u_mean``/``u_scale`` (null coordinates'
    standardisation), ``S`` (metabolites x free reactions), ``s_fixed`` (``S`` times the
    fixed fluxes), ``lb``/``ub`` (free reactions' bounds).
    """

    def __init__(self, n_free: int, n_metabolites: int, dim: int, *, latent: int = 16,
                 hidden: Sequence[int] = (128, 128), activation: str = "relu", dropout: float = 0.0,
                 batch_norm: bool = False, constraint: str = "nullspace"):
        super().__init__()
        if constraint not in CONSTRAINTS:
            raise ConfigError(f"constraint must be one of {CONSTRAINTS}, got {constraint!r}")
        if n_free < 1 or latent < 1:
            raise ConfigError(f"n_free and latent must be >= 1, got {n_free}, {latent}")
        if constraint == "nullspace" and dim < 1:
            raise ConfigError("the null space of S (free reactions) is {0}: nothing to generate")
        hidden = [int(h) for h in hidden]
        self.constraint = constraint
        self.n_free, self.dim, self.latent = int(n_free), int(dim), int(latent)
        self.encoder = MLP(n_free, hidden, activation=activation, dropout=dropout, batch_norm=batch_norm)
        self.to_mu = nn.Linear(self.encoder.n_out, latent)
        self.to_logvar = nn.Linear(self.encoder.n_out, latent)
        self.decoder = MLP(latent, hidden[::-1], activation=activation, dropout=dropout,
                           batch_norm=batch_norm)
        n_out = dim if constraint == "nullspace" else n_free
        self.to_output = nn.Linear(self.decoder.n_out, n_out)
        # a linear path beside the MLP: a Gaussian in the null space is then one layer away,
        # and the MLP models the departures from it (the truncation at the bounds)
        self.skip = nn.Linear(latent, n_out, bias=False)
        self.log_sigma = nn.Parameter(torch.zeros(()))
        f32, f64 = torch.float32, torch.float64
        self.register_buffer("x_mean", torch.zeros(n_free, dtype=f32))
        self.register_buffer("x_scale", torch.ones(n_free, dtype=f32))
        self.register_buffer("basis", torch.zeros(n_free, max(dim, 0), dtype=f32))
        self.register_buffer("basis64", torch.zeros(n_free, max(dim, 0), dtype=f64))
        self.register_buffer("v0", torch.zeros(n_free, dtype=f32))
        self.register_buffer("v064", torch.zeros(n_free, dtype=f64))
        self.register_buffer("u_mean", torch.zeros(max(dim, 0), dtype=f32))
        self.register_buffer("u_scale", torch.ones(max(dim, 0), dtype=f32))
        self.register_buffer("S", torch.zeros(n_metabolites, n_free, dtype=f32))
        self.register_buffer("s_fixed", torch.zeros(n_metabolites, dtype=f32))
        self.register_buffer("lb", torch.full((n_free,), -math.inf, dtype=f32))
        self.register_buffer("ub", torch.full((n_free,), math.inf, dtype=f32))

    # -- parts ---------------------------------------------------------------------------
    def encode(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and log-variance of free-reaction flux rows (original units)."""
        h = self.encoder((v - self.x_mean) / self.x_scale)
        return self.to_mu(h), self.to_logvar(h).clamp(-12.0, 8.0)

    def _head(self, z: torch.Tensor) -> torch.Tensor:
        return self.to_output(self.decoder(z)) + self.skip(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Free-reaction fluxes (original units, float32) of latent points."""
        h = self._head(z).float()
        if self.constraint == "nullspace":
            return self.v0 + (self.u_mean + self.u_scale * h) @ self.basis.T
        return self.x_mean + self.x_scale * h

    def decode64(self, z: torch.Tensor) -> torch.Tensor:
        """As :meth:`decode`, with the last product ``v0 + N u`` in float64 (float64 output)."""
        h = self._head(z).float()
        if self.constraint == "nullspace":
            u = (self.u_mean + self.u_scale * h).double()
            return self.v064 + u @ self.basis64.T
        return (self.x_mean + self.x_scale * h).double()

    def penalties(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample ``||S v||^2`` and summed squared bound violations (original units)."""
        r = v @ self.S.T + self.s_fixed
        mb = (r * r).sum(dim=1)
        low = torch.relu(self.lb - v)
        high = torch.relu(v - self.ub)
        return mb, (low * low + high * high).sum(dim=1)

    def forward(self, v: torch.Tensor, *, beta: float = 1.0, mass_balance_weight: float = 0.0,
                bounds_weight: float = 0.0) -> FluxVAELoss:
        """Encode, sample the posterior, decode; return the loss terms (:class:`FluxVAELoss`)."""
        mu, logvar = self.encode(v)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if self.training else mu
        vhat = self.decode(z)
        err = ((vhat - v.float()) / self.x_scale).pow(2)
        recon = err.mean(dim=1)
        ls = self.log_sigma
        nll = 0.5 * (err.sum(dim=1) * torch.exp(-2 * ls)) + self.n_free * ls
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)
        mb, bd = self.penalties(vhat)
        loss = (nll + beta * kl + mass_balance_weight * mb + bounds_weight * bd).mean()
        return FluxVAELoss(loss=loss, nll=nll.mean(), recon=recon.mean(), kl=kl.mean(),
                           mass_balance=mb.mean(), bounds=bd.mean(), z=mu)
