"""The batch-normalised autoencoder module (pure torch; trained through bioml.train)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from ..errors import ConfigError
from ._blocks import MLP, Dropout, keep_scale, lane_masks

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


_threshold_backward = torch.ops.aten.threshold_backward.default
_batch_norm_backward = torch.ops.aten.native_batch_norm_backward.default


class _FusedAutoencoder(torch.autograd.Function):
    """A whole training forward pass of the plain autoencoder, with its backward written out.

    ``apply(blocks, n_enc, x, inv, shift, -inv, *params)`` returns ``(loss, z, r, x_std)``:
    the same as :class:`Autoencoder`'s modules followed by :class:`_OutputMSE`, for
    BatchNorm1d hidden blocks with ReLU and :class:`~bioml.nn.Dropout` (or none) in
    training mode. ``blocks`` holds, for each hidden block in order (the encoder's
    ``n_enc``, then the decoder's), its BatchNorm1d module (whose running statistics are
    updated as the module would) and the dropout's ``k`` (or ``None``); ``params`` are
    each block's ``Linear`` weight and bias and BatchNorm weight and bias, with the latent
    ``Linear``'s weight and bias after the encoder's blocks and the output ``Linear``'s
    last. The dropout masks take the same random draws, in the same order, as the
    :class:`~bioml.nn.Dropout` modules, so both paths drop the same elements.

    Why: at SCVI's size on the CPU a step costs about 4 ms of matrix products and, through
    the modules, about 2.5 ms of everything else, mostly per-operation overhead: autograd
    nodes and saved-variable bookkeeping for each layer, the ReLU and dropout passes
    forward and backward, and Python. Here a block is one ``addmm``, one native
    BatchNorm, a ReLU and mask multiply in place forward; one threshold, one BatchNorm
    backward and its products backward, with the dropout scale folded into the scalar
    that already scales the incoming gradient. Exact up to floating-point rounding order.
    """

    @staticmethod
    def forward(ctx, blocks, n_enc, x, inv, shift, neg_inv, *params):  # noqa: D102
        ctx.set_materialize_grads(False)
        outs, saved, ctx.scales, ctx.eps = _fused_forward(blocks, n_enc, x, inv, shift, neg_inv, params)
        ctx.save_for_backward(*saved)
        ctx.n_enc = n_enc
        ctx.mark_non_differentiable(outs[3])
        return outs

    @staticmethod
    @once_differentiable
    def backward(ctx, g_loss, g_z, g_r, _g_xs):  # noqa: D102
        grads = _fused_backward(ctx.saved_tensors, ctx.n_enc, ctx.scales, ctx.eps,
                                ctx.needs_input_grad[6:], g_loss, g_z, g_r)
        return (None, None, None, None, None, None, *grads)


def _fused_forward(blocks, n_enc, x, inv, shift, neg_inv, params):
    """The forward of :class:`_FusedAutoencoder`: ``((loss, z, r, x_std), saved, scales, eps)``
    with ``saved`` the tensors its backward (:func:`_fused_backward`) needs."""
    dropped = [((x.shape[0], bn.num_features), k) for bn, k in blocks if k is not None]
    masks = iter(lane_masks(dropped, x.dtype) if dropped else ())  # in module order
    xs = torch.addcmul(shift, x, inv)
    h, pos, saved, scales, eps = xs, 0, [], [], []
    for i, (bn, k) in enumerate(blocks):
        if i == n_enc:
            z, h, pos = _latent(h, params, pos, saved)
        w, b, g, beta = params[pos : pos + 4]
        pos += 4
        a = torch.addmm(b, h, w.t())  # what F.linear runs for a 2-D input, one call less
        y, mean, invstd = torch.native_batch_norm(a, g, beta, bn.running_mean, bn.running_var,
                                                  True, bn.momentum, bn.eps)
        y.clamp_min_(0)
        if k is not None:
            y.mul_(next(masks))
        saved += [h, a, mean, invstd, y]
        scales.append(keep_scale(k) if k is not None else 1.0)
        eps.append(bn.eps)
        h = y
    if blocks:  # one call for the counters each BatchNorm module would add 1 to
        torch._foreach_add_([bn.num_batches_tracked for bn, _ in blocks], 1)
    if n_enc == len(blocks):
        z, h, pos = _latent(h, params, pos, saved)
    wo, bo = params[pos], params[pos + 1]
    r = torch.addcmul(bo - shift, x, neg_inv)
    r.addmm_(h, wo.t())
    flat = r.view(-1)
    loss = torch.dot(flat, flat) / flat.numel()
    return (loss, z, r, xs), (*saved, h, r, *params), scales, eps


def _fused_backward(st, n_enc, scales, eps, need, g_loss, g_z, g_r):
    """The gradients of :class:`_FusedAutoencoder`'s parameters (``None`` where ``need`` is
    false) from the tensors :func:`_fused_forward` saved and the gradients reaching its
    loss (a tensor or a number), ``z`` and ``r`` (``None`` for none)."""
    n_blocks = len(scales)
    n_params = 4 * n_blocks + 4
    params = st[len(st) - n_params :]
    h, r = st[len(st) - n_params - 2], st[len(st) - n_params - 1]
    grads: list[torch.Tensor | None] = [None] * n_params
    c = (0.0 if g_loss is None else float(g_loss)) * (2.0 / r.numel())  # a CPU scalar
    g = r
    if g_r is not None:
        g, c = g_r + r * c, 1.0
    pos = n_params - 2
    grads[pos] = torch.mm(g.t(), h).mul_(c) if need[pos] else None
    grads[pos + 1] = g.sum(0).mul_(c) if need[pos + 1] else None
    # gradient reaching the last hidden output, times that block's dropout scale
    gh = torch.mm(g, params[pos]).mul_(c * (scales[-1] if n_blocks > n_enc else 1.0))

    # saved: per block [h_in, a, mean, invstd, y]; the latent layer's input after block n_enc-1
    def block_saved(i):
        j = 5 * i + (1 if i >= n_enc else 0)
        return st[j : j + 5]

    for i in range(n_blocks - 1, -1, -1):
        if i == n_enc - 1:  # the latent layer sits between encoder and decoder
            gh = _latent_backward(gh, g_z, st[5 * n_enc], params, 4 * n_enc, need, grads, scales[i])
            g_z = None
        h_in, a, mean, invstd, y = block_saved(i)
        pos = 4 * i + (2 if i >= n_enc else 0)
        w, gamma = params[pos], params[pos + 2]
        gy = _threshold_backward(gh, y, 0)
        ga, gg, gbeta = _batch_norm_backward(gy, a, gamma, None, None, mean, invstd, True, eps[i],
                                             [True, need[pos + 2], need[pos + 3]])
        grads[pos] = torch.mm(ga.t(), h_in) if need[pos] else None
        grads[pos + 1] = ga.sum(0) if need[pos + 1] else None
        grads[pos + 2], grads[pos + 3] = gg, gbeta
        if i > 0:
            gh = torch.mm(ga, w)
            if i != n_enc:  # the previous layer is a block: fold in its dropout scale
                gh.mul_(scales[i - 1])
    if n_enc == 0:  # no encoder blocks: the latent layer is first
        _latent_backward(gh, g_z, st[0], params, 0, need, grads, None)
    return grads


def _latent(h, params, pos, saved):
    z = torch.addmm(params[pos + 1], h, params[pos].t())
    saved.append(h)
    return z, z, pos + 2


def _latent_backward(gz, g_z, h_in, params, pos, need, grads, prev_scale):
    if g_z is not None:
        gz = gz + g_z
    grads[pos] = torch.mm(gz.t(), h_in) if need[pos] else None
    grads[pos + 1] = gz.sum(0) if need[pos + 1] else None
    if prev_scale is None:
        return None
    gh = torch.mm(gz, params[pos])
    return gh.mul_(prev_scale) if prev_scale != 1.0 else gh


def _global_hooks() -> bool:
    g = nn.modules.module
    return bool(g._global_forward_hooks or g._global_forward_pre_hooks or g._global_backward_hooks
                or g._global_backward_pre_hooks)


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
        return self._standardisers()[:2]

    def _standardisers(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(1 / scale, -mean / scale, -1 / scale)``, cached until either buffer is replaced
        or changed in place (its version counter)."""
        mean, scale = self.mean, self.scale
        c = self.__dict__.get("_inv_shift_cache")
        if (c is None or c[0] is not mean or c[1] is not scale or c[2] != mean._version
                or c[3] != scale._version):
            inv = 1.0 / scale
            c = self.__dict__["_inv_shift_cache"] = (mean, scale, mean._version, scale._version,
                                                     inv, -mean * inv, -inv)
        return c[4], c[5], c[6]

    def standardise(self, x: torch.Tensor) -> torch.Tensor:
        """``(x - mean) / scale`` in one fused pass over ``x`` (``addcmul``)."""
        inv, shift = self._inv_shift()
        return torch.addcmul(shift, x, inv)

    def encode(self, x: torch.Tensor, domain: torch.Tensor | None = None) -> torch.Tensor:
        """Latent coordinates of raw rows ``x``."""
        return self.to_latent(self.encoder(self.standardise(x), self._domain(domain)))

    def forward(self, x: torch.Tensor, domain: torch.Tensor | None = None) -> AutoencoderLoss:
        """Encode, decode and return the loss terms (:class:`AutoencoderLoss`).

        A training pass of the plain model on the CPU (BatchNorm1d, ReLU, bioml's
        Dropout; see ``_fused_plan``) runs as one autograd function with its backward
        written out (``_FusedAutoencoder``); anything else runs the modules, with the
        output layer and the loss as one autograd function (``_OutputMSE``). Both keep the
        elementwise work on the ``N x genes`` tensors to two passes forward (standardising
        ``x`` for the encoder; ``bias - x_std`` into which the output product is
        accumulated) and a ``dot``, and to one column sum backward: at SCVI's size this
        model is bound by those passes and by per-operation overhead as much as by its
        matmuls (``benchmarks/bench_autoencoder.py``). The two paths agree to rounding and
        drop the same elements. A training step can skip autograd altogether with
        :meth:`loss_and_gradients` (the engine's plan for this model does).
        """
        domain = self._domain(domain)
        inv, shift, neg_inv = self._standardisers()
        plan = self._fused_plan(x)
        if plan is not None:
            blocks, n_enc, params = plan
            loss, z, residual, xs = _FusedAutoencoder.apply(blocks, n_enc, x, inv, shift, neg_inv,
                                                            *params)
            return AutoencoderLoss(loss=loss, z=z, residual=residual, target=xs)
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

    def loss_and_gradients(self, x: torch.Tensor, domain: torch.Tensor | None = None
                           ) -> tuple[AutoencoderLoss, list[tuple[nn.Parameter, torch.Tensor]] | None]:
        """A training pass with the gradient of the loss computed directly, without autograd.

        Where the fused path of :meth:`forward` applies, its backward is run at once, no
        autograd graph is built, and the result is ``(loss terms, [(parameter, gradient),
        ...])`` for the parameters that require a gradient; the loss terms carry no graph.
        This is what the engine's :meth:`~bioml.train.StepContext.step_optimizer` takes as
        ``grads``: at SCVI's size on the CPU the graph's bookkeeping (the function node,
        saved tensors, one gradient accumulator per parameter) costs several percent of a
        step. The gradients are the ones ``loss.backward()`` gives through :meth:`forward`.

        Anywhere else it returns ``(self(x, domain), None)``: the caller then runs
        ``backward`` on the loss. That includes gradient computation switched off, autograd's
        anomaly mode, and tensor hooks on a parameter (``register_hook``,
        ``register_post_accumulate_grad_hook``), which only autograd would run.

        Examples
        --------
        >>> import torch
        >>> from bioml.nn import Autoencoder
        >>> ae = Autoencoder(20, hidden=(16,), latent=3).train()
        >>> out, grads = ae.loss_and_gradients(torch.randn(8, 20))
        >>> len(grads) == len(list(ae.parameters())), out.loss.requires_grad
        (True, False)
        """
        plan = self._gradient_plan(x)
        return (self(x, domain), None) if plan is None else self._planned_loss_and_gradients(x, plan)

    def _gradient_plan(self, x: torch.Tensor) -> tuple | None:
        """What :meth:`loss_and_gradients` checks before it skips autograd, checked now for
        inputs like ``x`` (its dtype, device and dimensions; not its rows): an opaque plan for
        :meth:`_planned_loss_and_gradients`, or ``None`` where the autograd path must run.

        The check touches every submodule, hook table and parameter; on the CPU after a
        step's large passes have evicted them from the caches it costs about 1-2% of a step
        at SCVI's size. A caller that knows the module is not changed between steps (no
        hook registered, no submodule replaced, no mode, dtype, ``requires_grad``,
        dropout or BatchNorm setting, ``mean`` or ``scale`` changed) can check once and
        reuse the plan: the engine's plan for this model does so once an epoch.
        """
        if not torch.is_grad_enabled() or torch.is_anomaly_enabled():
            return None
        plan = self._fused_plan(x)
        if plan is None:
            return None
        blocks, n_enc, params = plan
        need = [p.requires_grad for p in params]
        if not any(need) or any(p._backward_hooks or p._post_accumulate_grad_hooks for p in params):
            return None
        return blocks, n_enc, params, need, self._standardisers()

    def _planned_loss_and_gradients(self, x: torch.Tensor, plan: tuple
                                   ) -> tuple[AutoencoderLoss, list[tuple[nn.Parameter, torch.Tensor]]]:
        """:meth:`loss_and_gradients` with a plan from :meth:`_gradient_plan` (not re-checked)."""
        blocks, n_enc, params, need, (inv, shift, neg_inv) = plan
        with torch.no_grad():
            outs, saved, scales, eps = _fused_forward(blocks, n_enc, x, inv, shift, neg_inv, params)
            grads = _fused_backward(saved, n_enc, scales, eps, need, 1.0, None, None)
        loss, z, residual, xs = outs
        return (AutoencoderLoss(loss=loss, z=z, residual=residual, target=xs),
                [(p, g) for p, g in zip(params, grads) if g is not None])

    def _fused_plan(self, x: torch.Tensor):
        """``(blocks, n_enc, params)`` for :class:`_FusedAutoencoder` when this forward pass
        can take it, else ``None`` (the modules run as written).

        It can for a training pass on the CPU in one floating-point dtype without autocast,
        with plain BatchNorm1d (affine, running statistics, a momentum), ReLU, bioml's
        :class:`~bioml.nn.Dropout` or none, ``Linear`` layers with biases, an input that
        needs no gradient and no module hooks: everything the default autoencoder is. The
        structural part is cached and rebuilt whenever a submodule is replaced; training
        flags, hooks, dtypes, dropout rates and BatchNorm settings are checked every call.
        """
        if (not self.training or self.domain_bn or x.device.type != "cpu" or x.dim() != 2
                or x.requires_grad or torch.is_autocast_enabled("cpu") or _global_hooks()):
            return None
        key = self._structure()
        cache = self.__dict__.get("_plan_cache")
        if cache is None or len(cache[0]) != len(key) or any(a is not b for a, b in zip(cache[0], key)):
            cache = self.__dict__["_plan_cache"] = (key, self._build_plan())
        plan = cache[1]
        if plan is None:
            return None
        mods, hook_dicts, norms_drops, n_enc, params = plan
        if any(hook_dicts) or not all(m.training for m in mods) or any(p.dtype != x.dtype for p in params):
            return None
        blocks = []
        for norm, drop in norms_drops:
            if not norm.affine or not norm.track_running_stats or norm.momentum is None:
                return None
            k = None
            if drop is not None:
                k = drop.lanes_dropped()
                if k is None and drop.p > 0:
                    return None  # p rounds to 0 or 1 of 65536: the module takes nn.Dropout's path
            blocks.append((norm, k))
        return blocks, n_enc, params

    def _structure(self) -> tuple:
        """The submodules the fused path depends on, in a fixed order (identity = structure)."""
        out = [*self._modules.values()]
        for mlp in (self.encoder, self.decoder):
            for ml in mlp._modules.values():
                out += ml._modules.values()
        return tuple(out)

    def _build_plan(self):
        mods, norms_drops, params = [self.encoder, self.decoder], [], []
        for mlp in (self.encoder, self.decoder):
            for lin, norm, act, drop in zip(mlp.linears, mlp.norms, mlp.acts, mlp.drops):
                if (type(lin) is not nn.Linear or lin.bias is None or type(norm) is not nn.BatchNorm1d
                        or type(act) is not nn.ReLU or type(drop) not in (nn.Identity, Dropout)):
                    return None
                mods += [lin, norm, act, drop]
                norms_drops.append((norm, drop if type(drop) is Dropout else None))
                params += [lin.weight, lin.bias, norm.weight, norm.bias]
            if mlp is self.encoder:
                params += [self.to_latent.weight, self.to_latent.bias]
        for lin in (self.to_latent, self.to_output):
            if type(lin) is not nn.Linear or lin.bias is None:
                return None
            mods.append(lin)
        params += [self.to_output.weight, self.to_output.bias]
        hook_dicts = tuple(d for m in mods for d in (m._forward_hooks, m._forward_pre_hooks,
                                                     m._backward_hooks, m._backward_pre_hooks))
        return tuple(mods), hook_dicts, norms_drops, len(self.encoder.linears), params

    def flops_per_sample(self) -> int:
        """Multiply-add FLOPs (2 per MAC) of one forward pass through the Linear layers."""
        total = 0
        for m in self.modules():
            if isinstance(m, nn.Linear):
                total += 2 * m.in_features * m.out_features
        return total
