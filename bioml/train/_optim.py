"""Optimisers and learning-rate schedules used by the engine.

A :class:`~bioml.train.TrainingModule` builds its optimisers in
``configure_optimizers()``; :func:`make_optimizer` and :func:`make_scheduler` turn the
user-facing names (``"sgd"``, ``"adam"``, ``"adamw"``; ``"constant"``, ``"step"``,
``"polynomial"``, ``"cosine"``) into torch objects with validated arguments, so every
model offers the same choices.

Schedules count ``t`` in epochs by default (the engine steps them once after each
epoch); a module may ask for per-optimiser-step scheduling instead (see
:class:`~bioml.train.TrainingModule`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.optim.optimizer as _optim_mod
from torch.optim.lr_scheduler import LRScheduler

from ..errors import ConfigError

__all__ = ["Adam", "AdamW", "make_optimizer", "make_scheduler", "PolynomialDecayLR", "OPTIMIZERS",
           "SCHEDULES"]

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "polynomial", "cosine")


def make_optimizer(
    params: Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]],
    name: str = "adam",
    *,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    nesterov: bool = False,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    fused: bool | None = None,
) -> torch.optim.Optimizer:
    """Build an optimiser by name.

    Parameters
    ----------
    params
        The parameters (or parameter groups) to optimise.
    name
        ``"sgd"`` (with ``momentum`` and optionally ``nesterov``), ``"adam"`` (weight decay
        as an L2 term in the gradient) or ``"adamw"`` (decoupled weight decay).
    lr
        Learning rate, > 0.
    weight_decay
        Weight decay, >= 0.
    momentum, nesterov
        SGD only. Nesterov needs ``momentum > 0``.
    betas, eps
        Adam/AdamW only.
    fused
        Adam/AdamW only: use torch's fused kernel (one pass over each parameter instead
        of a chain of elementwise ops). ``None`` (default) uses it when every parameter is
        a floating-point tensor on the CPU or a CUDA device, which it supports; it
        measured 1.24x faster steps for the SCVI-sized autoencoder on the CPU
        (``benchmarks/bench_autoencoder.py``). Results match the unfused optimiser to
        rounding, and a seeded run is still bitwise repeatable. Fused, the optimiser is
        bioml's :class:`Adam`/:class:`AdamW`, subclasses of torch's whose ``step`` skips
        torch's per-step Python set-up once the state exists; the weights and the state
        are bitwise those of torch's fused optimiser.

    Returns
    -------
    torch.optim.Optimizer

    Raises
    ------
    ConfigError
        Unknown name or an invalid value.

    Examples
    --------
    >>> import torch
    >>> from bioml.train import make_optimizer
    >>> opt = make_optimizer(torch.nn.Linear(3, 1).parameters(), "adamw", lr=1e-3, weight_decay=0.01)
    >>> type(opt).__name__
    'AdamW'
    """
    name = str(name).lower()
    if name not in OPTIMIZERS:
        raise ConfigError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    if not lr > 0:
        raise ConfigError(f"lr must be > 0, got {lr!r}")
    if weight_decay < 0:
        raise ConfigError(f"weight_decay must be >= 0, got {weight_decay!r}")
    if name == "sgd":
        if momentum < 0:
            raise ConfigError(f"momentum must be >= 0, got {momentum!r}")
        if nesterov and momentum <= 0:
            raise ConfigError("nesterov=True needs momentum > 0")
        return torch.optim.SGD(
            params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay
        )
    params = [dict(p, params=list(p["params"])) if isinstance(p, dict) else p for p in params]
    if fused is None:
        fused = _fusable(params)
    if fused:
        cls = Adam if name == "adam" else AdamW
    else:
        cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    return cls(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, fused=bool(fused))


class _LeanFusedStep:
    """The short ``step``/``zero_grad`` path of :class:`Adam` and :class:`AdamW`."""

    _lean: tuple | None = None  # (state, [(group, kernel, params, exp_avgs, exp_avg_sqs, steps)])

    def step(self, closure=None):  # noqa: D102
        if (self._optimizer_step_pre_hooks or self._optimizer_step_post_hooks
                or _optim_mod._global_optimizer_pre_hooks or _optim_mod._global_optimizer_post_hooks
                or torch.autograd._profiler_enabled()):
            return _hooked_lean_step(self, closure)
        return self._lean_step(closure)

    # torch wraps an optimiser class's ``step`` unless it is marked like this: its wrapper
    # enters a profiler range and walks the hook tables on every call, which costs about
    # 0.1 ms a step at SCVI's size. Here it runs only when there are hooks or a profiler.
    step.hooked = True

    def _lean_step(self, closure=None):
        lean = self._lean if closure is None else None
        if lean is None or lean[0] is not self.state:
            if closure is None:
                self._lean = None
            out = _torch_adam_step(self, closure)
            if closure is None:
                self._lean = self._gather()
            return out
        grads = [[p.grad for p in ps] for _, _, ps, *_ in lean[1]]
        if (getattr(self, "grad_scale", None) is not None or getattr(self, "found_inf", None) is not None
                or any(g is None for gs in grads for g in gs)):
            self._lean = None
            return _torch_adam_step(self, None)
        with torch.no_grad():
            for (group, kernel, ps, avgs, sqs, steps), gs in zip(lean[1], grads):
                b1, b2 = group["betas"]
                torch._foreach_add_(steps, 1)
                kernel(ps, gs, avgs, sqs, [], steps, amsgrad=False, lr=group["lr"], beta1=b1, beta2=b2,
                       weight_decay=group["weight_decay"], eps=group["eps"], maximize=False)
        return None

    def _gather(self):
        """``(state, [(group, kernel, params, exp_avgs, exp_avg_sqs, steps)])`` or ``None``."""
        out = []
        for group in self.param_groups:
            ps = list(group["params"])
            if not ps:
                continue
            if (not group.get("fused") or group.get("amsgrad") or group.get("maximize")
                    or group.get("capturable") or group.get("differentiable")
                    or not all(isinstance(v, float | int) for v in (group["lr"], *group["betas"]))):
                return None
            decoupled = isinstance(self, torch.optim.AdamW) or group.get("decoupled_weight_decay", False)
            states = [self.state.get(p) for p in ps]
            if any(not st or "exp_avg" not in st for st in states):
                return None
            if len({(p.device, p.dtype) for p in ps}) != 1:
                return None
            out.append((group, torch._fused_adamw_ if decoupled else torch._fused_adam_, ps,
                        [st["exp_avg"] for st in states], [st["exp_avg_sq"] for st in states],
                        [st["step"] for st in states]))
        return (self.state, out) if out else None

    def zero_grad(self, set_to_none: bool = True) -> None:  # noqa: D102
        if not set_to_none:
            return super().zero_grad(set_to_none)
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def load_state_dict(self, state_dict) -> None:  # noqa: D102
        self._lean = None
        super().load_state_dict(state_dict)

    def add_param_group(self, param_group) -> None:  # noqa: D102
        self._lean = None
        super().add_param_group(param_group)


def _torch_adam_step(opt, closure):
    """torch's own Adam step, without the hook wrapper torch puts on ``step`` (the
    caller's ``step`` is already wrapped, so hooks would otherwise run twice)."""
    step = torch.optim.Adam.step
    if getattr(step, "hooked", False):  # torch's profile_hook_step wrapper
        step = step.__wrapped__
    return step(opt, closure)


_hooked_lean_step = torch.optim.Optimizer.profile_hook_step(_LeanFusedStep._lean_step)


class Adam(_LeanFusedStep, torch.optim.Adam):
    """:class:`torch.optim.Adam` (with ``fused=True``, as :func:`make_optimizer` builds it)
    whose ``step`` and ``zero_grad`` skip torch's per-step Python set-up.

    torch's ``step`` re-gathers every parameter's state, checks it and groups the tensors
    by device and dtype on every call: at SCVI's size on the CPU that Python work costs
    about as much as the fused kernel itself. Here the per-group lists of parameters and
    their state tensors are gathered once, after the first step has created the state,
    and each later step is the two calls torch's fused path ends in
    (``_foreach_add_`` on the step counts, ``_fused_adam_``/``_fused_adamw_``), with the
    group's current hyper-parameters (so schedules still apply). The state is torch's
    own: ``state_dict``/``load_state_dict`` and checkpoints are unchanged, and the update
    is the same kernel with the same arguments, so the weights are bitwise those of the
    torch optimiser.

    Anything else goes through torch's own ``step``: a closure, a missing gradient, a
    gradient scaler's ``grad_scale``/``found_inf``, AMSGrad, ``maximize``, ``capturable``,
    ``differentiable``, a tensor learning rate or betas, or parameters of mixed devices or
    dtypes within a group. Optimiser step hooks and the profiler's ``Optimizer.step`` range
    are as in torch, but torch's wrapper around ``step`` only runs when there is a hook
    or an active profiler. The gathered lists are dropped by ``load_state_dict`` and
    ``add_param_group``.

    Examples
    --------
    >>> import torch
    >>> from bioml.train import Adam
    >>> opt = Adam(torch.nn.Linear(3, 1).parameters(), lr=1e-3, fused=True)
    >>> isinstance(opt, torch.optim.Adam)
    True
    """


class AdamW(_LeanFusedStep, torch.optim.AdamW):
    """:class:`torch.optim.AdamW` with the short step path of :class:`Adam`."""


def _fusable(params: list) -> bool:
    tensors = []
    for p in params:
        tensors.extend(p["params"] if isinstance(p, dict) else [p])
    return bool(tensors) and all(
        isinstance(t, torch.Tensor) and t.is_floating_point() and t.device.type in ("cpu", "cuda")
        for t in tensors
    )


class PolynomialDecayLR(LRScheduler):
    """Polynomial (inverse-time) decay ``eta_t = eta_0 / (1 + t / t0) ** power``.

    ``t`` is the number of times :meth:`step` has been called (epochs, or optimiser
    steps for per-step scheduling). ``power=1`` is the classic ``1/t`` schedule of
    stochastic approximation; ``power=0.5`` the ``1/sqrt(t)`` one.

    Parameters
    ----------
    optimizer
        The optimiser whose learning rates are scheduled (``eta_0`` = its initial lr).
    t0
        Time scale, > 0: the lr has fallen by ``2 ** power`` at ``t = t0``.
    power
        Exponent ``p >= 0``.

    Examples
    --------
    >>> import torch
    >>> from bioml.train import PolynomialDecayLR, make_optimizer
    >>> opt = make_optimizer(torch.nn.Linear(3, 1).parameters(), "sgd", lr=1.0)
    >>> sched = PolynomialDecayLR(opt, t0=10.0, power=1.0)
    >>> for _ in range(10):
    ...     opt.step(); sched.step()
    >>> round(opt.param_groups[0]["lr"], 3)
    0.5
    """

    def __init__(self, optimizer: torch.optim.Optimizer, *, t0: float = 10.0, power: float = 1.0,
                 last_epoch: int = -1):
        if not t0 > 0:
            raise ConfigError(f"polynomial schedule: t0 must be > 0, got {t0!r}")
        if power < 0:
            raise ConfigError(f"polynomial schedule: power must be >= 0, got {power!r}")
        self.t0 = float(t0)
        self.power = float(power)
        super().__init__(optimizer, last_epoch)

    def _factor(self) -> float:
        return 1.0 / (1.0 + self.last_epoch / self.t0) ** self.power

    def get_lr(self) -> list[float]:  # noqa: D102 - torch API
        return [base * self._factor() for base in self.base_lrs]

    def _get_closed_form_lr(self) -> list[float]:
        return self.get_lr()


def make_scheduler(
    optimizer: torch.optim.Optimizer,
    name: str = "constant",
    *,
    step_size: int = 30,
    gamma: float = 0.1,
    t0: float = 10.0,
    power: float = 1.0,
    T_0: int = 10,
    T_mult: int = 1,
    eta_min: float = 0.0,
) -> LRScheduler | None:
    """Build a learning-rate schedule by name (``None`` for ``"constant"``).

    Parameters
    ----------
    optimizer
        The optimiser to schedule.
    name
        ``"constant"``: no schedule. ``"step"``: multiply the lr by ``gamma`` every
        ``step_size`` units of ``t``. ``"polynomial"``: ``eta_0 / (1 + t/t0) ** power``
        (:class:`PolynomialDecayLR`). ``"cosine"``: cosine annealing with warm restarts
        (:class:`torch.optim.lr_scheduler.CosineAnnealingWarmRestarts` with ``T_0``,
        ``T_mult``, ``eta_min``).
    step_size, gamma
        ``"step"`` only.
    t0, power
        ``"polynomial"`` only.
    T_0, T_mult, eta_min
        ``"cosine"`` only.

    Returns
    -------
    The scheduler, or ``None`` for a constant learning rate.

    Raises
    ------
    ConfigError
        Unknown name or an invalid value.

    Examples
    --------
    >>> import torch
    >>> from bioml.train import make_optimizer, make_scheduler
    >>> opt = make_optimizer(torch.nn.Linear(3, 1).parameters(), "sgd", lr=0.1)
    >>> sched = make_scheduler(opt, "step", step_size=10, gamma=0.5)
    >>> make_scheduler(opt, "constant") is None
    True
    """
    name = str(name).lower()
    if name not in SCHEDULES:
        raise ConfigError(f"schedule must be one of {SCHEDULES}, got {name!r}")
    if name == "constant":
        return None
    if name == "step":
        if int(step_size) < 1 or not 0 < gamma <= 1:
            raise ConfigError(
                f"step schedule needs step_size >= 1 and 0 < gamma <= 1, got {step_size!r}, {gamma!r}"
            )
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=int(step_size), gamma=gamma)
    if name == "polynomial":
        return PolynomialDecayLR(optimizer, t0=t0, power=power)
    if int(T_0) < 1 or int(T_mult) < 1 or eta_min < 0:
        raise ConfigError(
            f"cosine schedule needs T_0 >= 1, T_mult >= 1, eta_min >= 0; got {T_0!r}, {T_mult!r}, {eta_min!r}"
        )
    return torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        optimizer, T_0=int(T_0), T_mult=int(T_mult), eta_min=eta_min
    )
