"""The one mini-batch SGD engine (:class:`Trainer`).

See :mod:`bioml.train._module` for the model interface and :mod:`bioml.train._data` for
the data path (device-resident tensors, permutation slicing, streaming, the last-minibatch
merge rule, class-balanced sampling and its repeat rate).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..errors import ConfigError, TrainingError
from ..io._atomic import atomic_path, write_table
from ._alloc import tune_cpu_allocator
from ._data import DataPath, balanced_order, batch_bounds
from ._module import StepContext, TrainingModule

__all__ = ["Trainer", "resolve_device", "CHECKPOINT_NAME"]

log = logging.getLogger("bioml.train")

CHECKPOINT_NAME = "last.pt"
_FORMAT = "bioml.train.checkpoint/1"
_HINT = (
    "usual causes: a learning rate that is too high (lower lr, or set clip_grad_norm), "
    "input that is not normalised/log-transformed (huge values), or NaN/inf in the input"
)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` (CUDA when available, honouring ``CUDA_VISIBLE_DEVICES``), ``"cpu"``,
    ``"cuda"`` or ``"cuda:i"`` to a :class:`torch.device`.

    ``"auto"`` is what cluster jobs use: SLURM sets ``CUDA_VISIBLE_DEVICES`` to the GPU(s)
    it assigned to the job (``--gpus``/``--gres``), torch numbers the visible ones from 0, so
    ``"auto"`` takes the first assigned GPU; with none assigned (or
    ``CUDA_VISIBLE_DEVICES=""``) it falls back to the CPU. The choice and the variable's
    value are logged (logger ``bioml.train``, level INFO), so a job's log shows which device
    it trained on.

    Parameters
    ----------
    device
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:i"`` or a :class:`torch.device`.

    Returns
    -------
    torch.device

    Raises
    ------
    ConfigError
        CUDA asked for but not available, or an index beyond the visible devices.

    Examples
    --------
    >>> from bioml.train import resolve_device
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, torch.device):
        dev = device
    else:
        name = str(device).lower()
        if name == "auto":
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            if torch.cuda.is_available():
                dev = torch.device("cuda", torch.cuda.current_device())
                log.info("device auto: %s (%s; CUDA_VISIBLE_DEVICES=%r, %d visible)", dev,
                         torch.cuda.get_device_name(dev), visible, torch.cuda.device_count())
                return dev
            log.info("device auto: cpu (no CUDA device visible; CUDA_VISIBLE_DEVICES=%r)", visible)
            return torch.device("cpu")
        try:
            dev = torch.device(name)
        except RuntimeError as err:
            raise ConfigError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:i', got {device!r}") from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {device!r} asked for, but CUDA is not available "
                f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}); use 'auto' or 'cpu'"
            )
        idx = dev.index if dev.index is not None else torch.cuda.current_device()
        if idx >= torch.cuda.device_count():
            raise ConfigError(
                f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) visible"
            )
        dev = torch.device("cuda", idx)
    elif dev.type != "cpu":
        raise ConfigError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:i', got {device!r}")
    return dev


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython  # type: ignore

        shell = get_ipython()
        return shell is not None and "IPKernelApp" in getattr(shell, "config", {})
    except Exception:  # noqa: BLE001 - IPython absent or odd
        return False


def _scalar(v: Any) -> torch.Tensor:
    if isinstance(v, torch.Tensor):
        return v.detach().float().reshape(())
    return torch.tensor(float(v))


class Trainer:
    """Mini-batch training of a :class:`~bioml.train.TrainingModule`.

    Parameters
    ----------
    epochs
        Maximum number of epochs.
    batch_size
        Rows per minibatch.
    min_batch_size
        A last minibatch with fewer rows is merged into the previous one (default 2, so
        BatchNorm never sees a single row; see :mod:`bioml.train._data`).
    val_fraction
        Fraction of the rows held out for validation (seeded split, at least one row when
        positive). 0: no validation.
    val_batch_size
        Minibatch size for validation (default: ``batch_size``).
    monitor
        Validation metric (a key of ``validation_step``'s dict) for early stopping and
        best weights; without validation the training loss of that name is used.
    early_stopping_patience
        Stop after this many epochs without an improvement of ``monitor`` by more than
        ``min_delta``; ``None``: never stop early.
    restore_best
        At the end, load the weights of the epoch with the best ``monitor`` (when
        monitored).
    clip_grad_norm
        Default maximum total gradient norm for ``ctx.step`` (``None``: no clipping).
    device
        ``"auto" | "cpu" | "cuda" | "cuda:i"`` (see :func:`resolve_device`).
    precision
        ``"auto"`` (bf16 autocast on CUDA when supported, float32 otherwise), ``"bf16"``
        or ``"32"``. bf16 is never used on the CPU (a warning says so).
    seed
        Seeds the data generator (permutations, balanced draws), the validation split and
        the torch RNG (dropout) for the run; the caller's global RNG state is restored
        afterwards. A seeded CPU run is bitwise repeatable.
    checkpoint_dir
        Where ``last.pt`` is written (atomically): every ``checkpoint_every`` epochs and at
        the end. ``None``: no checkpoints.
    checkpoint_every
        Epochs between checkpoints (``None``: only at the end).
    resume
        Continue from ``checkpoint_dir/last.pt`` when it exists (else start afresh).
    max_device_bytes
        Budget for the device-resident copy of the data; above it the data is streamed in
        chunks. ``None``: 50% of free GPU memory, unlimited on the CPU.
    progress
        ``"auto"``: a tqdm bar when stderr is a terminal or in a notebook, one log line per
        epoch otherwise; ``True``/``False`` force the bar / the log lines.
    callbacks
        Functions ``f(trainer, epoch, row)`` called after each epoch (after the
        checkpoint), ``epoch`` 0-based and ``row`` the history row.
    profile
        Time the data path (gathering/moving minibatches) separately, with CUDA
        synchronisation, into the ``data_seconds`` history column. On a GPU the
        synchronisation keeps the host from queueing work ahead of the device, so a
        profiled epoch is slower than an unprofiled one and its data time includes the
        synchronisation's latency (an upper bound).
    tune_allocator
        For CPU training, raise glibc's malloc thresholds once per process so that the
        per-step ``batch x genes`` tensors reuse freed memory instead of page-faulting it
        in afresh (:func:`bioml.train.tune_cpu_allocator`, which says what it costs;
        ``BIOML_TUNE_ALLOCATOR=0`` also turns it off). The outcome is in ``allocator``.
    """

    def __init__(
        self,
        *,
        epochs: int = 100,
        batch_size: int = 256,
        min_batch_size: int = 2,
        val_fraction: float = 0.0,
        val_batch_size: int | None = None,
        monitor: str = "loss",
        early_stopping_patience: int | None = None,
        min_delta: float = 0.0,
        restore_best: bool = True,
        clip_grad_norm: float | None = None,
        device: str | torch.device = "auto",
        precision: str = "auto",
        seed: int = 0,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        checkpoint_every: int | None = None,
        resume: bool = False,
        max_device_bytes: int | None = None,
        progress: bool | str = "auto",
        callbacks: Sequence[Callable[[Trainer, int, dict], None]] = (),
        profile: bool = False,
        tune_allocator: bool = True,
    ):
        if int(epochs) < 1:
            raise ConfigError(f"epochs must be >= 1, got {epochs}")
        if int(batch_size) < 1 or int(min_batch_size) < 1:
            raise ConfigError(
                f"batch_size and min_batch_size must be >= 1, got {batch_size}, {min_batch_size}")
        if not 0.0 <= float(val_fraction) < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
        if early_stopping_patience is not None and int(early_stopping_patience) < 1:
            raise ConfigError(f"early_stopping_patience must be >= 1 or None, got {early_stopping_patience}")
        if clip_grad_norm is not None and not clip_grad_norm > 0:
            raise ConfigError(f"clip_grad_norm must be > 0 or None, got {clip_grad_norm}")
        if checkpoint_every is not None and int(checkpoint_every) < 1:
            raise ConfigError(f"checkpoint_every must be >= 1 or None, got {checkpoint_every}")
        if precision not in ("auto", "bf16", "32"):
            raise ConfigError(f"precision must be 'auto', 'bf16' or '32', got {precision!r}")
        if resume and checkpoint_dir is None:
            raise ConfigError("resume=True needs a checkpoint_dir")
        self.epochs = int(epochs)
        self.batch_size = int(batch_size)
        self.min_batch_size = int(min_batch_size)
        self.val_fraction = float(val_fraction)
        self.val_batch_size = int(val_batch_size or batch_size)
        self.monitor = monitor
        self.patience = None if early_stopping_patience is None else int(early_stopping_patience)
        self.min_delta = float(min_delta)
        self.restore_best = restore_best
        self.clip_grad_norm = clip_grad_norm
        self.device = resolve_device(device)
        self.precision = precision
        self.seed = int(seed)
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.checkpoint_every = None if checkpoint_every is None else int(checkpoint_every)
        self.resume = resume
        self.max_device_bytes = max_device_bytes
        self.progress = progress
        self.callbacks = list(callbacks)
        self.profile = profile
        self.tune_allocator = bool(tune_allocator)
        # results
        self.allocator: str | None = None
        self.history: pd.DataFrame = pd.DataFrame()
        self.best_epoch: int | None = None
        self.best_metric: float | None = None
        self.stopped_early = False
        self.data_mode: str | None = None
        self.train_indices: np.ndarray | None = None
        self.val_indices: np.ndarray | None = None

    # ------------------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path | None:
        """``checkpoint_dir / "last.pt"`` (or ``None``)."""
        return None if self.checkpoint_dir is None else self.checkpoint_dir / CHECKPOINT_NAME

    def _use_bf16(self) -> bool:
        if self.precision == "32":
            return False
        if self.device.type != "cuda" or not torch.cuda.is_available():
            if self.precision == "bf16":
                log.warning("precision='bf16' is used on CUDA only; training in float32 on %s", self.device)
            return False
        return bool(torch.cuda.is_bf16_supported())

    def _split(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        if self.val_fraction <= 0:
            return np.arange(n), np.arange(0)
        n_val = max(1, int(round(self.val_fraction * n)))
        if n - n_val < self.min_batch_size:
            raise ConfigError(f"val_fraction={self.val_fraction} leaves too few of {n} rows for training")
        perm = np.random.default_rng([self.seed, 0x5EED]).permutation(n)
        return np.sort(perm[n_val:]), np.sort(perm[:n_val])

    @staticmethod
    def _normalise_optimizers(conf) -> tuple[dict, dict]:
        if isinstance(conf, tuple) and len(conf) == 2:
            opts, scheds = conf
        else:
            opts, scheds = conf, {}
        if isinstance(opts, torch.optim.Optimizer):
            opts = {"main": opts}
        if not isinstance(opts, Mapping) or not opts:
            raise ConfigError("configure_optimizers() must return {name: optimizer} (non-empty)")
        scheds = {k: v for k, v in dict(scheds or {}).items() if v is not None}
        return dict(opts), scheds

    # ------------------------------------------------------------------------------------
    def fit(
        self,
        module: TrainingModule,
        data: Mapping[str, Any] | Any,
        *,
        balance_by: Sequence | np.ndarray | None = None,
    ) -> pd.DataFrame:
        """Train ``module`` on ``data``; returns the history (also ``self.history``).

        Parameters
        ----------
        module
            The model (a :class:`~bioml.train.TrainingModule`); moved to the device.
        data
            ``{"X": matrix, other per-sample arrays...}`` or just the matrix ``X``
            (dense float32 preferred; scipy sparse is densified per minibatch).
        balance_by
            Per-row class labels for class-balanced sampling (draws with replacement,
            weights 1/class size, per epoch); the history gains ``repeat_rate`` (see
            :func:`bioml.train._data.balanced_order`). ``None``: plain shuffling.

        Returns
        -------
        pandas.DataFrame
            One row per epoch: ``epoch`` (1-based), the mean of each training loss,
            ``val_<metric>``, ``lr`` (or ``lr_<name>`` for several optimisers),
            ``seconds``, and ``repeat_rate`` / ``data_seconds`` when applicable.

        Raises
        ------
        TrainingError
            Non-finite loss (naming epoch and step; the last good checkpoint is kept), or
            a checkpoint that does not match this run.
        ConfigError
            Invalid settings.
        """
        if not isinstance(module, TrainingModule):
            raise ConfigError(f"module must be a bioml.train.TrainingModule, got {type(module).__name__}")
        if not isinstance(data, Mapping):
            data = {"X": data}
        module.to(self.device)
        if self.device.type == "cpu" and self.tune_allocator:
            self.allocator = tune_cpu_allocator()
        cuda = self.device.type == "cuda"
        fork_devices = [self.device.index] if cuda else []
        with torch.random.fork_rng(devices=fork_devices):
            torch.manual_seed(self.seed)
            return self._fit(module, data, balance_by)

    def _fit(self, module, data, balance_by) -> pd.DataFrame:
        dpath = DataPath(data, self.device, max_device_bytes=self.max_device_bytes)
        self.data_mode = dpath.mode
        n = dpath.n
        train_idx, val_idx = self._split(n)
        self.train_indices, self.val_indices = train_idx, val_idx
        train_idx_t = torch.from_numpy(train_idx).long()
        val_idx_t = torch.from_numpy(val_idx).long()
        n_train = train_idx.size
        train_bounds = batch_bounds(n_train, self.batch_size, self.min_batch_size)
        val_bounds = batch_bounds(val_idx.size, self.val_batch_size, 1) if val_idx.size else []
        codes = None
        if balance_by is not None:
            lab = np.asarray(balance_by)
            if lab.shape[0] != n:
                raise ConfigError(f"balance_by has {lab.shape[0]} entries for {n} rows")
            _, inv = np.unique(lab[train_idx], return_inverse=True)
            codes = torch.from_numpy(inv.astype(np.int64))
        validate = module.has_validation and val_idx.size > 0
        monitored = validate or self.patience is not None

        gen = torch.Generator().manual_seed(self.seed)
        opts, scheds = self._normalise_optimizers(module.configure_optimizers())
        epoch_scheds = {k: s for k, s in scheds.items() if not isinstance(s, tuple)}
        step_scheds = {k: s[0] for k, s in scheds.items() if isinstance(s, tuple)}
        for k, s in scheds.items():
            if isinstance(s, tuple) and (len(s) != 2 or s[1] != "step"):
                raise ConfigError(f"scheduler {k!r}: use a scheduler or (scheduler, 'step')")
        ctx = StepContext(
            optimizers=opts, schedulers={**epoch_scheds, **step_scheds}, device=self.device,
            n_epochs=self.epochs, clip_grad_norm=self.clip_grad_norm,
            _step_schedulers={k: s for k, s in step_scheds.items() if k in opts},
        )
        loose_step_scheds = [s for k, s in step_scheds.items() if k not in opts]
        fingerprint = dict(n_rows=n, n_train=int(n_train), batch_size=self.batch_size,
                           seed=self.seed, val_fraction=self.val_fraction,
                           balanced=codes is not None, optimizers=sorted(opts),
                           module=type(module).__name__, settings=module.checkpoint_fingerprint(),
                           clip_grad_norm=self.clip_grad_norm)
        rows: list[dict] = []
        state = dict(best_metric=math.inf, best_epoch=None, bad_epochs=0, best_state=None)
        start_epoch, global_step, finished = 0, 0, False

        ckpt = self.checkpoint_path
        if self.resume and ckpt is not None and ckpt.exists():
            start_epoch, global_step, rows, state, finished = self._load(
                ckpt, module, opts, scheds, gen, fingerprint
            )
            early = self.patience is not None and state["bad_epochs"] >= self.patience
            finished = start_epoch >= self.epochs or early  # more epochs asked: continue
            log.info("resumed from %s after epoch %d", ckpt, start_epoch)

        use_bf16 = self._use_bf16()
        bar = None
        show_bar = self.progress is True or (
            self.progress == "auto" and (sys.stderr.isatty() or _in_notebook())
        )
        if show_bar and not finished and start_epoch < self.epochs:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.epochs, initial=start_epoch, desc="training", unit="epoch",
                       leave=True)
        cuda = self.device.type == "cuda"
        epoch = start_epoch - 1
        try:
            for epoch in range(start_epoch, self.epochs if not finished else start_epoch):
                t0 = time.perf_counter()
                module.train()
                ctx.training = True
                ctx.epoch = epoch
                repeat_rate = None
                if codes is None:
                    pos = torch.randperm(n_train, generator=gen)
                else:
                    pos, repeat_rate = balanced_order(codes, gen)
                order = train_idx_t[pos]
                sums: dict[str, list[torch.Tensor]] = {}
                sizes: list[int] = []
                data_time = 0.0
                it = dpath.iterate(order, train_bounds)
                for step in range(len(train_bounds)):
                    if self.profile:
                        if cuda:
                            torch.cuda.synchronize(self.device)
                        td = time.perf_counter()
                    batch = next(it)
                    if self.profile:
                        if cuda:
                            torch.cuda.synchronize(self.device)
                        data_time += time.perf_counter() - td
                    ctx.step = step
                    ctx.global_step = global_step
                    with (torch.autocast("cuda", dtype=torch.bfloat16) if use_bf16
                          else contextlib.nullcontext()):
                        out = module.training_step(batch, ctx)
                    if not out:
                        raise ConfigError("training_step must return a non-empty dict of losses")
                    for k, v in out.items():
                        sums.setdefault(k, []).append(_scalar(v))
                    sizes.append(train_bounds[step][1] - train_bounds[step][0])
                    for s in loose_step_scheds:
                        s.step()
                    global_step += 1
                # finiteness: one host sync per epoch; names the first bad step
                w = torch.tensor(sizes, dtype=torch.float64)
                means = {}
                for k, vals in sums.items():
                    v = torch.stack(vals).double().cpu()
                    bad = ~torch.isfinite(v)
                    if bool(bad.any()):
                        s = int(bad.nonzero()[0, 0])
                        kept = (f"the last good checkpoint '{ckpt}' is kept"
                                if ckpt is not None and ckpt.exists() else "no checkpoint had been written")
                        raise TrainingError(
                            f"non-finite training loss {k!r} = {float(v[s])} at epoch {epoch + 1} "
                            f"(1-based), step {s} of that epoch (global step "
                            f"{global_step - len(sizes) + s}); {kept}. {_HINT}"
                        )
                    means[k] = float((v * w).sum() / w.sum())
                row: dict[str, Any] = {"epoch": epoch + 1, **means}
                if validate:
                    vals = self._validate(module, dpath, val_idx_t, val_bounds, ctx, use_bf16)
                    row.update({f"val_{k}": v for k, v in vals.items()})
                for name, opt in opts.items():
                    key = "lr" if len(opts) == 1 else f"lr_{name}"
                    row[key] = float(opt.param_groups[0]["lr"])
                for s in epoch_scheds.values():
                    s.step()
                if repeat_rate is not None:
                    row["repeat_rate"] = repeat_rate
                if self.profile:
                    row["data_seconds"] = data_time
                if cuda:
                    torch.cuda.synchronize(self.device)
                row["seconds"] = time.perf_counter() - t0
                rows.append(row)
                stop = False
                if monitored:
                    key = f"val_{self.monitor}" if validate else self.monitor
                    if key not in row:
                        raise ConfigError(
                            f"monitor {self.monitor!r} is not among the "
                            f"{'validation metrics' if validate else 'training losses'}: {sorted(row)}"
                        )
                    metric = row[key]
                    if not math.isfinite(metric):
                        raise TrainingError(
                            f"non-finite validation metric {key!r} at epoch {epoch + 1}. {_HINT}"
                        )
                    if metric < state["best_metric"] - self.min_delta:
                        state.update(best_metric=metric, best_epoch=epoch + 1, bad_epochs=0,
                                     best_state={k: t.detach().to("cpu", copy=True)
                                                 for k, t in module.state_dict().items()})
                    else:
                        state["bad_epochs"] += 1
                        stop = self.patience is not None and state["bad_epochs"] >= self.patience
                self.stopped_early = stop
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix({k: f"{v:.4g}" for k, v in row.items()
                                     if k not in ("epoch", "seconds") and isinstance(v, float)})
                else:
                    log.info("epoch %d/%d %s", epoch + 1, self.epochs, "  ".join(
                        f"{k}={v:.5g}" for k, v in row.items() if k != "epoch" and isinstance(v, float)))
                last = stop or epoch + 1 == self.epochs
                due = self.checkpoint_every and (epoch + 1) % self.checkpoint_every == 0
                if ckpt is not None and (last or due):
                    self._save(ckpt, module, opts, scheds, gen, epoch + 1, global_step, rows, state,
                               fingerprint, finished=last)
                for cb in self.callbacks:
                    cb(self, epoch, row)
                if stop:
                    log.info("early stopping after epoch %d (best epoch %s, %s=%.5g)", epoch + 1,
                             state["best_epoch"], self.monitor, state["best_metric"])
                    break
        finally:
            if bar is not None:
                bar.close()
        if monitored and self.restore_best and state["best_state"] is not None:
            module.load_state_dict(state["best_state"])
        self.best_epoch = state["best_epoch"]
        self.best_metric = None if state["best_epoch"] is None else float(state["best_metric"])
        if finished:
            self.stopped_early = len(rows) < self.epochs
        self.history = pd.DataFrame(rows)
        module.eval()
        return self.history

    @torch.no_grad()
    def _validate(self, module, dpath, val_idx_t, bounds, ctx, use_bf16) -> dict[str, float]:
        module.eval()
        ctx.training = False
        totals: dict[str, torch.Tensor] = {}
        count = 0
        for (a, b), batch in zip(bounds, dpath.iterate(val_idx_t, bounds)):
            with (torch.autocast("cuda", dtype=torch.bfloat16) if use_bf16 else contextlib.nullcontext()):
                out = module.validation_step(batch, ctx) or {}
            m = b - a
            for k, v in out.items():
                totals[k] = totals.get(k, 0.0) + _scalar(v).double().cpu() * m
            count += m
        module.train()
        ctx.training = True
        return {k: float(v / count) for k, v in totals.items()}

    # -- checkpoints ---------------------------------------------------------------------
    def _save(self, path, module, opts, scheds, gen, epoch, global_step, rows, state, fingerprint,
              *, finished):
        rng = {"torch": torch.get_rng_state(), "data": gen.get_state(), "python": random.getstate()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        payload = {
            "format": _FORMAT,
            "epoch": epoch,
            "global_step": global_step,
            "finished": finished,
            "module": module.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in opts.items()},
            "schedulers": {k: (s[0] if isinstance(s, tuple) else s).state_dict() for k, s in scheds.items()},
            "rng": rng,
            "history": rows,
            "early_stopping": state,
            "fingerprint": fingerprint,
        }
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)

    def _load(self, path, module, opts, scheds, gen, fingerprint):
        try:
            ck = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001
            raise TrainingError(f"cannot read checkpoint '{path}': {err}") from err
        if ck.get("format") != _FORMAT:
            raise TrainingError(f"'{path}' is not a bioml training checkpoint")
        if ck["fingerprint"] != fingerprint:
            diff = {k: (ck["fingerprint"].get(k), v) for k, v in fingerprint.items()
                    if ck["fingerprint"].get(k) != v}
            raise TrainingError(
                f"checkpoint '{path}' belongs to a different run (checkpoint vs now: {diff}); "
                "remove it or use another checkpoint_dir"
            )
        module.load_state_dict(ck["module"])
        for k, o in opts.items():
            o.load_state_dict(ck["optimizers"][k])
        for k, s in scheds.items():
            (s[0] if isinstance(s, tuple) else s).load_state_dict(ck["schedulers"][k])
        torch.set_rng_state(ck["rng"]["torch"])
        gen.set_state(ck["rng"]["data"])
        random.setstate(ck["rng"]["python"])
        if "cuda" in ck["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(ck["rng"]["cuda"], self.device)
        return ck["epoch"], ck["global_step"], list(ck["history"]), ck["early_stopping"], ck["finished"]

    # -- outputs -------------------------------------------------------------------------
    def save_history(self, path: str | os.PathLike[str]) -> Path:
        """Write the history as a TSV file (atomically)."""
        return write_table(self.history, path, index=False)
