"""Wasserstein-GAN modules: a generator with constrained outputs and an MLP critic.

- :class:`ConstrainedOutput` maps the generator's raw outputs to feature vectors that are
  valid by construction: non-negative features through ``softplus`` (scaled per
  feature), composition blocks through a ``softmax`` (times the block's total), derived
  features as exact sums of their parts, unconstrained features as an affine map.
- :class:`Generator`: ``z -> MLP -> ConstrainedOutput`` in the original units, then the
  fixed standardisation ``(x - mean) / scale`` that the critic sees.
- :class:`SpectralNormCritic`: ``Linear -> LeakyReLU(0.2) -> ... -> Linear(., 1)`` with
  every ``Linear`` under :func:`torch.nn.utils.parametrizations.spectral_norm`
  (``spectral=True``), so that each layer's weight has spectral norm 1 and, LeakyReLU
  being 1-Lipschitz, the critic is 1-Lipschitz; with ``spectral=False`` the same plain
  MLP for the gradient-penalty variant (WGAN-GP).
- :func:`gradient_penalty` (Gulrajani et al. 2017) and :func:`layer_spectral_norms`
  (power iteration on the weight each layer actually uses).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..errors import ConfigError
from ._blocks import MLP

__all__ = [
    "OutputSpec",
    "ConstrainedOutput",
    "Generator",
    "SpectralNormCritic",
    "gradient_penalty",
    "layer_spectral_norms",
]


@dataclass
class OutputSpec:
    """Which output column is produced how (column indices into the feature vector).

    Attributes
    ----------
    n_features
        Width of the feature vector.
    positive
        Columns made non-negative with ``scale * softplus(raw)``.
    free
        Unconstrained columns (``raw`` in standardised units).
    groups
        ``(columns, total)``: a block produced by ``total * softmax(raw block)``.
    derived
        ``(column, parts)``: the column is the sum of the ``parts`` columns.
    """

    n_features: int
    positive: list[int] = field(default_factory=list)
    free: list[int] = field(default_factory=list)
    groups: list[tuple[list[int], float]] = field(default_factory=list)
    derived: list[tuple[int, list[int]]] = field(default_factory=list)

    @property
    def n_raw(self) -> int:
        return len(self.positive) + len(self.free) + sum(len(c) for c, _ in self.groups)

    def check(self) -> None:
        cols = list(self.positive) + list(self.free) + [i for c, _ in self.groups for i in c] + \
            [d for d, _ in self.derived]
        if sorted(cols) != list(range(self.n_features)):
            raise ConfigError("output spec must assign every feature column exactly once")
        derived = {d for d, _ in self.derived}
        for d, parts in self.derived:
            if any(p in derived for p in parts):
                raise ConfigError("a derived column cannot be the sum of derived columns")


def _inv_softplus(y: torch.Tensor) -> torch.Tensor:
    y = y.clamp(min=1e-4)
    return y + torch.log(-torch.expm1(-y))


class ConstrainedOutput(nn.Module):
    """Raw generator outputs -> a valid feature vector in the original units (see module doc).

    Parameters
    ----------
    spec
        The :class:`OutputSpec`.
    mean, scale
        Per-feature training mean and spread (``n_features``): the softplus columns are
        ``scale * softplus(raw + offset)``, free columns ``mean + scale * raw``. The learnable
        ``offset`` starts where the output equals the training mean (softmax blocks: the
        mean composition).
    """

    def __init__(self, spec: OutputSpec, mean: torch.Tensor, scale: torch.Tensor):
        super().__init__()
        spec.check()
        self.spec = spec
        mean = torch.as_tensor(mean, dtype=torch.float32)
        scale = torch.as_tensor(scale, dtype=torch.float32)
        self.register_buffer("pos_idx", torch.tensor(spec.positive, dtype=torch.long))
        self.register_buffer("free_idx", torch.tensor(spec.free, dtype=torch.long))
        self.register_buffer("pos_scale", scale[spec.positive].clone())
        self.register_buffer("free_mean", mean[spec.free].clone())
        self.register_buffer("free_scale", scale[spec.free].clone())
        init = [_inv_softplus(mean[spec.positive] / scale[spec.positive]), torch.zeros(len(spec.free))]
        self._group_slices = []
        for k, (cols, total) in enumerate(spec.groups):
            self.register_buffer(f"group_idx_{k}", torch.tensor(cols, dtype=torch.long))
            m = (mean[cols] / float(total)).clamp(min=1e-4)
            init.append(torch.log(m / m.sum()))
        self.offset = nn.Parameter(torch.cat(init))
        self.derived = [(d, list(p)) for d, p in spec.derived]

    def forward(self, raw: torch.Tensor) -> torch.Tensor:  # noqa: D102
        raw = raw + self.offset
        n_pos, n_free = len(self.spec.positive), len(self.spec.free)
        out = raw.new_zeros(raw.shape[0], self.spec.n_features)
        out[:, self.pos_idx] = self.pos_scale * nn.functional.softplus(raw[:, :n_pos])
        out[:, self.free_idx] = self.free_mean + self.free_scale * raw[:, n_pos:n_pos + n_free]
        start = n_pos + n_free
        for k, (cols, total) in enumerate(self.spec.groups):
            idx = getattr(self, f"group_idx_{k}")
            out[:, idx] = float(total) * torch.softmax(raw[:, start:start + len(cols)], dim=1)
            start += len(cols)
        for d, parts in self.derived:
            out[:, d] = out[:, parts].sum(dim=1)
        return out


class Generator(nn.Module):
    """``z -> MLP -> Linear -> ConstrainedOutput``; returns standardised features.

    Parameters
    ----------
    latent
        Noise width.
    hidden
        Hidden widths (``Linear -> activation``, no normalisation).
    spec, mean, scale
        Output constraints and the training standardisation (:class:`ConstrainedOutput`).
    activation
        Hidden activation.
    """

    def __init__(self, latent: int, hidden: Sequence[int], spec: OutputSpec, mean, scale, *,
                 activation: str = "leaky_relu"):
        super().__init__()
        if int(latent) < 1:
            raise ConfigError(f"latent must be >= 1, got {latent}")
        self.latent = int(latent)
        self.body = MLP(self.latent, hidden, activation=activation, batch_norm=False)
        self.out = nn.Linear(self.body.n_out, spec.n_raw)
        self.head = ConstrainedOutput(spec, mean, scale)
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).clone())
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32).clone())

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """Feature vectors in the original units (valid by construction)."""
        return self.head(self.out(self.body(z)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return (self.generate(z) - self.mean) / self.scale


class SpectralNormCritic(nn.Module):
    """MLP critic; every ``Linear`` spectrally normalised when ``spectral`` (see module doc).

    Parameters
    ----------
    n_in
        Feature width.
    hidden
        Hidden widths.
    spectral
        Wrap every ``Linear`` in torch's ``spectral_norm`` parametrisation (one power
        iteration per training forward pass); ``False`` for WGAN-GP.
    negative_slope
        Of the LeakyReLU activations (1-Lipschitz for slopes <= 1).
    """

    def __init__(self, n_in: int, hidden: Sequence[int], *, spectral: bool = True,
                 negative_slope: float = 0.2):
        super().__init__()
        if not hidden or any(int(h) < 1 for h in hidden):
            raise ConfigError(f"critic hidden widths must be >= 1 (at least one layer), got {list(hidden)}")
        self.spectral = bool(spectral)
        layers: list[nn.Module] = []
        widths = [int(n_in)] + [int(h) for h in hidden] + [1]
        for k in range(len(widths) - 1):
            lin = nn.Linear(widths[k], widths[k + 1])
            layers.append(spectral_norm(lin) if self.spectral else lin)
            if k < len(widths) - 2:
                layers.append(nn.LeakyReLU(negative_slope))
        self.net = nn.Sequential(*layers)

    @property
    def linears(self) -> list[nn.Linear]:
        """The critic's linear layers, input to output."""
        return [m for m in self.net if isinstance(m, nn.Linear)]

    @torch.no_grad()
    def refine_spectral_norm(self, n_iter: int = 100) -> None:
        """Run ``n_iter`` more power iterations on each layer's ``u, v`` (no-op without SN).

        Training does one iteration per forward pass; before checking or exporting the
        critic this makes the normalising estimate ``u^T W v`` converge, so that the
        weight used in evaluation has spectral norm 1 to high precision.
        """
        if not self.spectral:
            return
        for lin in self.linears:
            sn = lin.parametrizations.weight[0]
            w = lin.parametrizations.weight.original
            sn._power_method(sn._reshape_weight_to_matrix(w), int(n_iter))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.net(x).squeeze(-1)


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     *, generator: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP penalty ``E[(||grad C(x_hat)|| - 1)^2]`` at random interpolates ``x_hat``.

    Built with ``create_graph=True`` so that the critic's loss backpropagates through it
    (double backward).
    """
    n = min(real.shape[0], fake.shape[0])
    real, fake = real[:n], fake[:n]
    eps = torch.rand(n, 1, device=real.device, dtype=real.dtype, generator=generator)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    out = critic(x_hat)
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    return ((grad.norm(2, dim=1) - 1.0) ** 2).mean()


@torch.no_grad()
def layer_spectral_norms(module: nn.Module, *, n_iter: int = 500, seed: int = 0) -> list[float]:
    """Largest singular value of the weight each ``Linear`` of ``module`` actually uses.

    Plain power iteration on ``layer.weight`` (for a spectrally normalised layer that is
    the parametrised weight ``W / sigma_hat``, computed from the current ``u, v`` without
    updating them, i.e. as in evaluation mode), ``n_iter`` iterations from a seeded start.
    """
    was = module.training
    module.eval()
    g = torch.Generator().manual_seed(seed)
    out = []
    try:
        for m in module.modules():
            if isinstance(m, nn.Linear):
                w = m.weight.detach().double().cpu()
                v = torch.randn(w.shape[1], generator=g, dtype=torch.float64)
                v /= v.norm()
                sigma = 0.0
                for _ in range(int(n_iter)):
                    u = w @ v
                    u /= u.norm().clamp(min=1e-300)
                    v = w.t() @ u
                    sigma = float(v.norm())
                    v /= max(sigma, 1e-300)
                out.append(sigma)
    finally:
        module.train(was)
    return out
