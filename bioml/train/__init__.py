"""The one mini-batch SGD engine (``bm.train``).

Every model of bioml (the batch-normalised autoencoder, the flux VAE, the interface GAN)
trains through :class:`Trainer`. A model is a :class:`TrainingModule`: it builds its named
optimisers in ``configure_optimizers()`` and updates itself in ``training_step(batch,
ctx)`` through ``ctx.step_optimizer(name, loss)``; it never writes its own loop, checkpoints or
progress output. See :mod:`bioml.train._module` (interface), :mod:`bioml.train._data`
(data path, last-minibatch rule, class-balanced sampling) and
:mod:`bioml.train._trainer` (the loop, early stopping, checkpoints, progress).
"""

from ._alloc import tune_cpu_allocator
from ._data import balanced_order, batch_bounds
from ._module import StepContext, TrainingModule
from ._optim import OPTIMIZERS, SCHEDULES, Adam, AdamW, PolynomialDecayLR, make_optimizer, make_scheduler
from ._plot import plot_history
from ._trainer import CHECKPOINT_NAME, Trainer, resolve_device

__all__ = [
    "Trainer",
    "TrainingModule",
    "StepContext",
    "make_optimizer",
    "Adam",
    "AdamW",
    "make_scheduler",
    "PolynomialDecayLR",
    "OPTIMIZERS",
    "SCHEDULES",
    "batch_bounds",
    "balanced_order",
    "resolve_device",
    "plot_history",
    "CHECKPOINT_NAME",
    "tune_cpu_allocator",
]
