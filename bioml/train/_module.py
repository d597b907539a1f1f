"""The engine's model interface (decisions.md item 16).

A model plugs into :class:`~bioml.train.Trainer` as a :class:`TrainingModule`: a
``torch.nn.Module`` (so its ``state_dict`` is what checkpoints and best-weights restore
hold) with two abstract methods and one optional one:

``configure_optimizers()``
    Returns the named optimisers, ``{"main": opt}`` or ``{"critic": c, "generator": g}``,
    or a pair ``(optimizers, schedulers)`` where ``schedulers`` maps a name to a torch
    LR scheduler (stepped once per epoch) or to ``(scheduler, "step")`` (stepped after
    every optimiser step of the optimiser with the same name, or after every training
    step if no optimiser has that name).
``training_step(batch, ctx)``
    One minibatch. ``batch`` is a dict of tensors on the training device (``"X"`` and
    whatever per-sample tensors travelled with the rows, e.g. ``"batch"``, ``"label"``).
    The module computes its losses and updates through ``ctx.step_optimizer("name", loss)``, as
    often as it likes (a WGAN calls it ``n_critic`` times for the critic, then once for
    the generator; a gradient penalty built with ``create_graph=True`` is just part of
    the critic's loss). It returns a dict of scalar tensors or floats for logging; every
    value is checked for finiteness.
``validation_step(batch, ctx)`` (optional)
    Returns a dict of metrics for one validation minibatch (run under ``torch.no_grad``
    and ``eval()``); the engine averages them over the validation set weighted by
    minibatch size. The key named by the trainer's ``monitor`` (default ``"loss"``) drives
    early stopping.

The context (:class:`StepContext`) gives ``epoch`` (0-based), ``step`` (within the
epoch), ``global_step``, ``n_epochs``, ``optimizers``, ``schedulers``, ``device`` and
the helper :meth:`StepContext.step_optimizer` (zero grad, backward, gradient-norm clipping,
optimiser step). A module that computes its gradients itself (a backward written out,
as :meth:`bioml.nn.Autoencoder.loss_and_gradients` does) passes them as
``ctx.step_optimizer("name", grads=[(param, grad), ...])`` instead of a loss.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import ConfigError

__all__ = ["TrainingModule", "StepContext"]


class TrainingModule(torch.nn.Module, abc.ABC):
    """Base class of everything the engine trains; see the module docstring.

    Examples
    --------
    A least-squares model trained by the engine:

    >>> import torch
    >>> from bioml.train import Trainer, TrainingModule, make_optimizer
    >>> class LeastSquares(TrainingModule):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.linear = torch.nn.Linear(3, 1)
    ...     def configure_optimizers(self):
    ...         return {"main": make_optimizer(self.parameters(), "adam", lr=1e-2)}
    ...     def training_step(self, batch, ctx):
    ...         loss = ((self.linear(batch["X"]) - batch["y"]) ** 2).mean()
    ...         ctx.step_optimizer("main", loss)
    ...         return {"loss": loss}
    >>> x = torch.randn(200, 3)
    >>> data = {"X": x, "y": x @ torch.tensor([[1.0], [2.0], [3.0]])}
    >>> history = Trainer(epochs=5, batch_size=32, val_fraction=0.0, progress=False).fit(LeastSquares(), data)
    >>> len(history)
    5
    """

    @abc.abstractmethod
    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer] | tuple[dict, dict]:
        """Return ``{name: optimizer}`` or ``({name: optimizer}, {name: scheduler})``."""

    @abc.abstractmethod
    def training_step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, Any]:
        """Train on one minibatch (updating through ``ctx.step_optimizer``); return scalar losses."""

    def validation_step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, Any] | None:
        """Return validation metrics for one minibatch; ``None`` (default): no validation."""
        return None

    def checkpoint_fingerprint(self) -> dict[str, Any]:
        """Plain settings (architecture, optimiser, schedule) that a checkpoint must match.

        ``resume=True`` refuses a checkpoint whose fingerprint differs, so a changed
        learning rate or width does not silently continue an old run. Default: ``{}``.
        """
        return {}

    @property
    def has_validation(self) -> bool:
        """Whether the subclass overrides :meth:`validation_step`."""
        return type(self).validation_step is not TrainingModule.validation_step


@dataclass
class StepContext:
    """What a training or validation step knows about the run (see the module docstring).

    Examples
    --------
    Inside :meth:`TrainingModule.training_step`, one optimiser per player (as a GAN does):

    >>> def training_step(self, batch, ctx):  # doctest: +SKIP
    ...     d_loss = self.critic_loss(batch)
    ...     ctx.step_optimizer("critic", d_loss)
    ...     if ctx.global_step % 5 == 0:
    ...         ctx.step_optimizer("generator", self.generator_loss(batch))
    ...     return {"d_loss": d_loss}
    """

    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, Any]
    device: torch.device
    n_epochs: int
    clip_grad_norm: float | None = None
    epoch: int = 0
    step: int = 0
    global_step: int = 0
    training: bool = True
    grad_norms: dict[str, float] = field(default_factory=dict)
    _step_schedulers: dict[str, Any] = field(default_factory=dict)

    def step_optimizer(
        self,
        name: str,
        loss: torch.Tensor | None = None,
        *,
        clip: float | None | bool = True,
        retain_graph: bool = False,
        zero_grad: bool = True,
        grads: Sequence[tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> torch.Tensor | None:
        """Update the parameters of optimiser ``name`` with the gradient of ``loss``.

        Parameters
        ----------
        name
            Which optimiser (a key of :meth:`TrainingModule.configure_optimizers`).
        loss
            A scalar; ``None`` if the caller already ran ``backward`` itself.
        clip
            ``True``: clip the total gradient norm of the optimiser's parameters at the
            trainer's ``clip_grad_norm`` (if set); a number: clip at that norm;
            ``False``/``None``: no clipping.
        retain_graph
            Passed to ``backward`` (keep the graph for a second backward).
        zero_grad
            Zero the optimiser's gradients before ``backward`` (set ``False`` to
            accumulate).
        grads
            Instead of ``loss``: ``(parameter, gradient)`` pairs that the module computed
            itself (a backward written out, as
            :meth:`bioml.nn.Autoencoder.loss_and_gradients` returns). They become the
            parameters' ``.grad`` (added to it with ``zero_grad=False``); clipping and the
            step follow as for a loss.

        Returns
        -------
        The total gradient norm before clipping when clipping was applied, else ``None``.
        """
        opt = self.optimizers[name]
        if loss is not None and grads is not None:
            raise ConfigError(f"step_optimizer({name!r}): give a loss or grads, not both")
        if zero_grad and (loss is not None or grads is not None):
            opt.zero_grad(set_to_none=True)
        if loss is not None:
            loss.backward(retain_graph=retain_graph)
        for p, g in grads or ():
            if p.grad is None:
                p.grad = g
            else:
                p.grad.add_(g)
        max_norm = self.clip_grad_norm if clip is True else (clip or None)
        norm = None
        if max_norm is not None and max_norm is not False:
            params = [p for g in opt.param_groups for p in g["params"] if p.grad is not None]
            if params:
                norm = torch.nn.utils.clip_grad_norm_(params, float(max_norm))
                self.grad_norms[name] = norm
        opt.step()
        sched = self._step_schedulers.get(name)
        if sched is not None:
            sched.step()
        return norm


def _finite(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return bool(torch.isfinite(value).all())
    return math.isfinite(float(value))
