"""MLP building blocks and per-domain (per-batch) BatchNorm."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ConfigError

__all__ = ["DomainBatchNorm1d", "Dropout", "MLP", "make_activation", "ACTIVATIONS"]

ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
}


def make_activation(name: str) -> nn.Module:
    """An activation module by name (one of :data:`ACTIVATIONS`).

    Parameters
    ----------
    name
        Case-insensitive key of :data:`ACTIVATIONS` (e.g. ``"relu"``).

    Returns
    -------
    torch.nn.Module

    Raises
    ------
    ConfigError
        An unknown name.

    Examples
    --------
    >>> from bioml.nn import make_activation
    >>> make_activation("relu")
    ReLU()
    """
    try:
        return ACTIVATIONS[str(name).lower()]()
    except KeyError:
        raise ConfigError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}") from None


class Dropout(nn.Dropout):
    """:class:`torch.nn.Dropout` with a cheaper mask on the CPU.

    On the CPU, torch draws one Mersenne-Twister number per element for the Bernoulli
    mask, which at SCVI's size costs as much as a tenth of a training step. Here the mask
    takes 16 random bits per element, four per 64-bit draw from torch's generator (so
    ``torch.manual_seed`` still makes it reproducible): an element is kept when its
    16-bit lane is at or above ``k = round(p * 65536)`` of 65536, and kept elements are
    scaled by ``65536 / (65536 - k)``. The drop probability is therefore ``k / 65536``,
    within 8e-6 of ``p``, and the expectation is preserved exactly. On other devices, in
    evaluation, or for ``p`` that rounds to 0 or 1, this is :class:`torch.nn.Dropout`.

    Examples
    --------
    >>> import torch
    >>> from bioml.nn import Dropout
    >>> _ = torch.manual_seed(0)
    >>> y = Dropout(0.25)(torch.ones(1000, 100))
    >>> round(float((y == 0).float().mean()), 2), round(float(y.mean()), 1)
    (0.25, 1.0)
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        k = self.lanes_dropped()
        if not self.training or x.device.type != "cpu" or not x.is_floating_point() or k is None:
            return super().forward(x)
        return x * lane_mask(random_words(x.numel()), x.shape, k, x.dtype)

    def lanes_dropped(self) -> int | None:
        """``k = round(p * 65536)``, or ``None`` where the mask would be all or nothing."""
        k = round(self.p * 65536)
        return k if 0 < k < 65536 else None


def random_words(n: int) -> torch.Tensor:
    """``ceil(n / 4)`` uniform 64-bit words from torch's default CPU generator: 16 random
    bits for each of ``n`` elements."""
    return torch.randint(-(2**63), 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64)


def lane_masks(specs: list[tuple[tuple[int, ...], int]], dtype: torch.dtype) -> list[torch.Tensor]:
    """The masks of several :class:`Dropout` calls in a row, ``specs = [(shape, k), ...]``,
    from one draw: the same words, in the same order, as one :func:`random_words` per
    call (torch's CPU generator fills them serially), so the masks equal
    ``lane_mask(random_words(n), shape, k, dtype)`` called in turn. With one ``k`` for all
    (one dropout rate, as in :class:`MLP`) the lanes are converted in one pass."""
    sizes = [math.prod(shape) for shape, _ in specs]
    n_words = [(n + 3) // 4 for n in sizes]
    words = random_words(4 * sum(n_words))
    ks = {k for _, k in specs}
    out, off = [], 0
    if len(ks) == 1:
        flat = lane_mask(words, (4 * sum(n_words),), ks.pop(), dtype)
        for (shape, _), n, w in zip(specs, sizes, n_words):
            out.append(flat[4 * off : 4 * off + n].view(shape))
            off += w
        return out
    for (shape, k), w in zip(specs, n_words):
        out.append(lane_mask(words[off : off + w], shape, k, dtype))
        off += w
    return out


def lane_mask(words: torch.Tensor, shape: torch.Size | tuple[int, ...], k: int,
              dtype: torch.dtype) -> torch.Tensor:
    """The scaled keep mask of :class:`Dropout`: ``65536 / (65536 - k)`` where an element's
    16-bit lane of ``words`` is at or above ``k`` of 65536, else 0.

    Written with a clamp and integer arithmetic rather than a comparison, because on the
    CPU a comparison's boolean result and its conversion back to floating point are each
    about three times slower than the clamp, subtraction and conversion together."""
    n = math.prod(shape)
    lane = words.view(torch.int16)[:n].view(shape)
    t = k - 32768  # signed lane >= t  <=>  unsigned lane >= k
    return lane.clamp(t - 1, t).sub_(t - 1).to(dtype).mul_(keep_scale(k))


def keep_scale(k: int) -> float:
    """The factor :class:`Dropout` scales kept elements by when ``k`` of 65536 lanes drop."""
    return 65536.0 / (65536 - k)


class DomainBatchNorm1d(nn.Module):
    """BatchNorm1d with separate statistics (and optionally affine parameters) per domain.

    Each row carries a domain label (for bioml: its batch / lab) in ``0..n_domains-1``.

    *Training.* The rows of each domain are normalised by the mean and biased variance of
    that domain's rows in the minibatch (so each lab's data is standardised by its own
    statistics), and that domain's running statistics are updated with ``momentum``
    (unbiased variance, as :class:`torch.nn.BatchNorm1d` does). A domain with a **single
    row** in the minibatch has no usable batch variance: that row is normalised with its
    domain's running statistics (as in evaluation) and the running statistics are not
    updated; a domain absent from the minibatch is untouched. The computation is
    vectorised (one-hot scatter), without Python loops over domains or host syncs.

    *Evaluation.* Each row is normalised by its domain's running statistics.

    Parameters
    ----------
    num_features
        Feature count ``F``.
    n_domains
        Number of domains ``K >= 1``.
    affine
        Learn a scale and shift.
    domain_affine
        With ``affine``: one scale/shift per domain (``K x F``) if True, shared (``F``)
        otherwise.
    eps, momentum
        As in :class:`torch.nn.BatchNorm1d`.

    Raises
    ------
    ConfigError
        ``n_domains < 1``.

    Examples
    --------
    >>> import torch
    >>> from bioml.nn import DomainBatchNorm1d
    >>> bn = DomainBatchNorm1d(4, n_domains=2)
    >>> x, domain = torch.randn(8, 4), torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    >>> bn(x, domain).shape
    torch.Size([8, 4])
    """

    def __init__(self, num_features: int, n_domains: int, *, affine: bool = True,
                 domain_affine: bool = True, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        if n_domains < 1:
            raise ConfigError(f"n_domains must be >= 1, got {n_domains}")
        self.num_features = int(num_features)
        self.n_domains = int(n_domains)
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.domain_affine = domain_affine and affine
        shape = (n_domains, num_features) if self.domain_affine else (num_features,)
        if affine:
            self.weight = nn.Parameter(torch.ones(shape))
            self.bias = nn.Parameter(torch.zeros(shape))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.register_buffer("running_mean", torch.zeros(n_domains, num_features))
        self.register_buffer("running_var", torch.ones(n_domains, num_features))
        self.register_buffer("num_batches_tracked", torch.zeros(n_domains, dtype=torch.long))

    def forward(self, x: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if x.dim() != 2:
            raise ValueError(f"DomainBatchNorm1d expects (N, F) input, got shape {tuple(x.shape)}")
        domain = domain.long()
        if self.training:
            onehot = torch.nn.functional.one_hot(domain, self.n_domains).to(x.dtype)  # N x K
            counts = onehot.sum(0)  # K
            safe = counts.clamp(min=1).unsqueeze(1)
            mean = onehot.t() @ x / safe  # K x F
            centred = x - mean[domain]
            var = onehot.t() @ (centred * centred) / safe  # biased, K x F
            ok = counts >= 2  # K
            ok_row = ok[domain].unsqueeze(1)
            use_mean = torch.where(ok_row, mean[domain], self.running_mean[domain].to(x.dtype))
            use_var = torch.where(ok_row, var[domain], self.running_var[domain].to(x.dtype))
            out = (x - use_mean) / torch.sqrt(use_var + self.eps)
            with torch.no_grad():
                unbiased = var.float() * (counts / (counts - 1).clamp(min=1)).unsqueeze(1).float()
                m = self.momentum
                okf = ok.unsqueeze(1)
                self.running_mean.copy_(torch.where(okf, (1 - m) * self.running_mean + m * mean.float(),
                                                    self.running_mean))
                self.running_var.copy_(torch.where(okf, (1 - m) * self.running_var + m * unbiased,
                                                   self.running_var))
                self.num_batches_tracked.add_(ok.long())
        else:
            out = (x - self.running_mean[domain].to(x.dtype)) / torch.sqrt(
                self.running_var[domain].to(x.dtype) + self.eps)
        if self.affine:
            if self.domain_affine:
                out = out * self.weight[domain] + self.bias[domain]
            else:
                out = out * self.weight + self.bias
        return out

    def extra_repr(self) -> str:  # noqa: D102
        return (f"{self.num_features}, n_domains={self.n_domains}, eps={self.eps}, "
                f"momentum={self.momentum}, affine={self.affine}, domain_affine={self.domain_affine}")


class MLP(nn.Module):
    """Stacked ``Linear -> BatchNorm1d (or DomainBatchNorm1d) -> activation -> Dropout``.

    Parameters
    ----------
    n_in
        Input width.
    hidden
        Widths of the hidden layers (each gets the full block).
    activation
        Activation name (:data:`ACTIVATIONS`).
    dropout
        Dropout probability after each block (0: none).
    batch_norm
        Insert BatchNorm after each Linear.
    n_domains
        > 0: use :class:`DomainBatchNorm1d` with that many domains (``forward`` then needs
        the ``domain`` labels).
    domain_affine
        Per-domain affine parameters of the domain BN.

    Raises
    ------
    ConfigError
        ``dropout`` outside ``[0, 1)``, a hidden width below 1, or an unknown activation.

    Examples
    --------
    >>> import torch
    >>> from bioml.nn import MLP
    >>> mlp = MLP(10, [16, 8], dropout=0.1)
    >>> mlp(torch.randn(5, 10)).shape
    torch.Size([5, 8])
    """

    def __init__(self, n_in: int, hidden: Sequence[int], *, activation: str = "relu",
                 dropout: float = 0.0, batch_norm: bool = True, n_domains: int = 0,
                 domain_affine: bool = True):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {dropout}")
        if any(int(h) < 1 for h in hidden):
            raise ConfigError(f"hidden widths must be >= 1, got {list(hidden)}")
        self.linears = nn.ModuleList()
        self.norms = nn.ModuleList()
        self.acts = nn.ModuleList()
        self.drops = nn.ModuleList()
        self.domain = n_domains > 0 and batch_norm
        width = n_in
        for h in hidden:
            self.linears.append(nn.Linear(width, int(h)))
            if not batch_norm:
                self.norms.append(nn.Identity())
            elif self.domain:
                self.norms.append(DomainBatchNorm1d(int(h), n_domains, domain_affine=domain_affine))
            else:
                self.norms.append(nn.BatchNorm1d(int(h)))
            self.acts.append(make_activation(activation))
            self.drops.append(Dropout(dropout) if dropout > 0 else nn.Identity())
            width = int(h)
        self.n_out = width

    def forward(self, x: torch.Tensor, domain: torch.Tensor | None = None) -> torch.Tensor:  # noqa: D102
        for lin, norm, act, drop in zip(self.linears, self.norms, self.acts, self.drops):
            x = lin(x)
            x = norm(x, domain) if self.domain else norm(x)
            x = drop(act(x))
        return x
