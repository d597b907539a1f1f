"""The batch-normalised autoencoder embedding: model class and ``bm.tl.autoencoder``.

Three layers (as in scvi-tools): :class:`bioml.nn.Autoencoder` is the pure torch module;
:class:`AutoencoderModel` holds the gene names, the per-gene standardisation, the batch
categories and the training settings, and offers ``fit``/``transform``/``save``/``load``;
:class:`bioml.train.Trainer` owns the loop.

The input is log-normalised expression (e.g. ``results/{run}/correct/corrected.h5ad``):
genes are standardised with the mean and standard deviation of the training data (stored
in the model; a gene with zero spread gets scale 1).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from scipy import sparse

from ..errors import ConfigError, InputError
from ..nn import Autoencoder
from ..nn._autoencoder import _global_hooks
from ..train import StepContext, Trainer, TrainingModule, make_optimizer, make_scheduler
from ..train._files import load_payload, save_payload

__all__ = ["AutoencoderModel", "autoencoder", "anomaly_threshold"]

log = logging.getLogger("bioml.tl")

_SAVE_FORMAT = "bioml.tl.AutoencoderModel/1"


class _AutoencoderPlan(TrainingModule):
    """Training plan: one Adam/AdamW/SGD optimiser over the module, the MSE loss."""

    def __init__(self, module: Autoencoder, optim: dict[str, Any], schedule: dict[str, Any],
                 cuda_graphs: bool = True):
        super().__init__()
        self.module = module
        self.optim = optim
        self.schedule = schedule
        self._grad_plan: tuple | None = None  # Autoencoder._gradient_plan, checked at each epoch's step 0
        self._grad_plan_checked = False
        self.cuda_graphs = bool(cuda_graphs)
        self._graph: _GraphedStep | None = None  # captured at each epoch's step 1 (CUDA)
        self._graph_ok = False

    def checkpoint_fingerprint(self):
        m = self.module
        arch = dict(n_input=int(m.mean.numel()), domain_bn=m.domain_bn,
                    shapes=[list(p.shape) for p in m.parameters()])
        return {"architecture": arch, "optim": dict(self.optim), "schedule": dict(self.schedule)}

    def configure_optimizers(self):
        opt = make_optimizer(self.module.parameters(), **self.optim)
        sched = make_scheduler(opt, **self.schedule)
        return {"main": opt}, ({"main": sched} if sched is not None else {})

    def training_step(self, batch, ctx: StepContext):
        # The fused path's gradients come without an autograd graph (else: backward). Whether
        # it applies is checked at each epoch's first step and the plan reused within the
        # epoch: between steps the engine only steps the optimiser and the schedules, and
        # whatever may change the module (callbacks, validation, a resumed run) happens
        # between epochs. The check after every step's large passes costs 1-2% of a step.
        x, domain = batch["X"], batch.get("domain")
        if x.device.type == "cuda":
            return self._cuda_step(x, domain, ctx)
        if ctx.step == 0 or not self._grad_plan_checked:
            self._grad_plan, self._grad_plan_checked = self.module._gradient_plan(x), True
        plan = self._grad_plan
        if plan is None:  # what loss_and_gradients falls back to
            return {"loss": self._eager_step(x, domain, ctx)}
        out, grads = self.module._planned_loss_and_gradients(x, plan)
        ctx.step_optimizer("main", grads=grads)
        return {"loss": out.loss.detach()}

    def _cuda_step(self, x, domain, ctx: StepContext):
        # On a GPU this model's step is bound by launching about a hundred small kernels
        # from Python: replaying forward and backward as one CUDA graph makes the step
        # several times faster (benchmarks/bench_autoencoder.py). Each epoch's first step
        # runs eagerly on a side stream (the warm-up CUDA graphs need, and the place where
        # whatever changed the module between epochs takes effect); the second captures
        # the graph; later steps of the same shape replay it. The optimiser, clipping and
        # schedules stay eager, so they behave exactly as without graphs.
        if ctx.step == 0:
            self._graph = None
            self._graph_ok = self._graph_wanted()  # checked once an epoch, like the CPU plan
            with torch.cuda.device(x.device):
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    loss = self._eager_step(x, domain, ctx)
                torch.cuda.current_stream().wait_stream(side)
            return {"loss": loss}
        if self._graph is None and self._graph_ok:
            self._graph = _GraphedStep(self.module, x, domain)
        if self._graph is None or not self._graph.fits(x, domain):  # e.g. a merged last minibatch
            return {"loss": self._eager_step(x, domain, ctx)}
        loss, grads = self._graph(x, domain)
        ctx.step_optimizer("main", grads=grads)
        return {"loss": loss}

    def _eager_step(self, x, domain, ctx: StepContext) -> torch.Tensor:
        out = self.module(x, domain)
        ctx.step_optimizer("main", out.loss)
        return out.loss.detach()

    def _graph_wanted(self) -> bool:
        """Whether this step may be captured: graphs on, training with gradients, no
        anomaly mode, no hooks that only an eager pass would run."""
        if (not self.cuda_graphs or not torch.is_grad_enabled() or torch.is_anomaly_enabled()
                or _global_hooks()):
            return False
        mods = list(self.module.modules())
        return (all(m.training for m in mods)
                and not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks
                            or m._backward_pre_hooks for m in mods)
                and not any(p._backward_hooks or p._post_accumulate_grad_hooks
                            for p in self.module.parameters()))

    def validation_step(self, batch, ctx: StepContext):
        out = self.module(batch["X"], batch.get("domain"))
        return {"loss": out.loss}


class _GraphedStep:
    """Forward and backward of the autoencoder captured as one CUDA graph.

    Inputs are copied into static tensors; each replay writes the loss and the gradients
    into the same static tensors, which are handed to the optimiser as ``grads``. The
    parameters' ``.grad`` are cleared before the capture, so that the captured backward
    writes fresh gradients rather than adding to old ones. Under autocast the casts are
    not cached (a graph must recompute them each replay).
    """

    def __init__(self, module: Autoencoder, x: torch.Tensor, domain: torch.Tensor | None):
        self.x = x.detach().clone()
        self.domain = None if domain is None else domain.detach().clone()
        params = [p for p in module.parameters() if p.requires_grad]
        for p in params:
            p.grad = None
        dev = x.device.type
        cast = (torch.autocast(dev, dtype=torch.get_autocast_dtype(dev), cache_enabled=False)
                if torch.is_autocast_enabled(dev) else contextlib.nullcontext())
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.device(x.device), torch.cuda.graph(self.graph):  # on x's GPU
            with cast:
                out = module(self.x, self.domain)
            out.loss.backward()
        self.loss = out.loss.detach()
        self.grads = [(p, p.grad) for p in params]
        for p in params:
            p.grad = None

    def fits(self, x: torch.Tensor, domain: torch.Tensor | None) -> bool:
        same = x.shape == self.x.shape and x.dtype == self.x.dtype and x.device == self.x.device
        if domain is None or self.domain is None:
            return same and domain is None and self.domain is None
        return same and domain.shape == self.domain.shape and domain.dtype == self.domain.dtype

    def __call__(self, x: torch.Tensor, domain: torch.Tensor | None):
        self.x.copy_(x)
        if domain is not None:
            self.domain.copy_(domain)
        with torch.cuda.device(x.device):
            self.graph.replay()
        return self.loss.clone(), self.grads


def _matrix(adata: AnnData, layer: str | None):
    X = adata.X if layer is None else adata.layers.get(layer) if layer in adata.layers else None
    if X is None:
        raise InputError(f"layer {layer!r} is not in adata.layers ({list(adata.layers)})")
    return X


def _dense_f32(X) -> np.ndarray:
    if sparse.issparse(X):
        X = X.toarray()
    return np.ascontiguousarray(np.asarray(X), dtype=np.float32)


def anomaly_threshold(scores: np.ndarray, method: str = "quantile", value: float = 0.99) -> float:
    """The anomaly threshold on reconstruction errors.

    Parameters
    ----------
    scores
        Per-sample reconstruction errors.
    method
        ``"quantile"``: the ``value`` quantile of the scores (``value`` in (0, 1)).
        ``"zscore"``: robust z-score, ``median + value * 1.4826 * MAD``.
    value
        The quantile or the z cut-off.

    Returns
    -------
    float
        Samples with a score strictly above it are flagged.

    Raises
    ------
    ConfigError
        An unknown ``method``, a quantile outside (0, 1) or a non-positive z cut-off.

    Examples
    --------
    >>> import numpy as np
    >>> import bioml as bm
    >>> bm.tl.anomaly_threshold(np.arange(101.0), "quantile", 0.9)
    90.0
    """
    s = np.asarray(scores, dtype=np.float64)
    if method == "quantile":
        if not 0 < value < 1:
            raise ConfigError(f"anomaly quantile must be in (0, 1), got {value}")
        return float(np.quantile(s, value))
    if method in ("zscore", "robust_z", "robust_zscore"):
        if not value > 0:
            raise ConfigError(f"anomaly z-score cut-off must be > 0, got {value}")
        med = np.median(s)
        mad = 1.4826 * np.median(np.abs(s - med))
        return float(med + value * mad)
    raise ConfigError(f"anomaly threshold method must be 'quantile' or 'zscore', got {method!r}")


_threshold = anomaly_threshold  # the name is shadowed by autoencoder()'s argument


class AutoencoderModel:
    """A batch-normalised autoencoder for expression data (samples x genes).

    Parameters
    ----------
    hidden
        Encoder widths (the decoder mirrors them).
    latent
        Latent size.
    dropout, activation
        Of each hidden block.
    domain_bn
        Separate BatchNorm statistics per batch (needs ``batch_key`` in :meth:`fit`).
    domain_affine
        With ``domain_bn``: per-batch affine parameters too (else shared).
    seed
        Seeds the weight initialisation and the training run.

    Attributes
    ----------
    module
        The :class:`bioml.nn.Autoencoder` (after :meth:`fit` or :meth:`load`).
    genes
        Gene names seen in training (the order :meth:`transform` expects).
    batch_key, batch_categories
        The batch column and its categories (``None`` without ``batch_key``).
    history
        Training history (a DataFrame; one row per epoch).
    trainer
        The :class:`bioml.train.Trainer` of the last :meth:`fit` (not saved).

    Raises
    ------
    ConfigError
        From :meth:`fit`: ``domain_bn=True`` without ``batch_key``, invalid settings;
        from :meth:`transform` before training.
    InputError
        Genes or batches in new data that the model did not see, or an unreadable model
        file in :meth:`load`.

    Examples
    --------
    >>> import bioml as bm
    >>> adata = bm.sim.simulate_counts(300, 200, seed=0)
    >>> bm.pp.qc(adata, min_genes=0, n_top_genes=100, hvg_subset=True)
    >>> model = bm.tl.AutoencoderModel(hidden=(64,), latent=4)
    >>> model = model.fit(adata, batch_key="batch", epochs=5, progress=False)
    >>> model.transform(adata).shape
    (300, 4)
    >>> model.save("ae.pt")  # doctest: +SKIP
    >>> bm.tl.AutoencoderModel.load("ae.pt")  # doctest: +SKIP
    """

    def __init__(self, *, hidden: Sequence[int] = (512, 128), latent: int = 32, dropout: float = 0.1,
                 activation: str = "relu", domain_bn: bool = False, domain_affine: bool = True,
                 seed: int = 0):
        self.config = dict(hidden=[int(h) for h in hidden], latent=int(latent), dropout=float(dropout),
                           activation=str(activation), domain_bn=bool(domain_bn),
                           domain_affine=bool(domain_affine))
        self.seed = int(seed)
        self.module: Autoencoder | None = None
        self.genes: list[str] | None = None
        self.layer: str | None = None
        self.batch_key: str | None = None
        self.batch_categories: list[str] | None = None
        self.history = pd.DataFrame()
        self.train_params: dict[str, Any] = {}
        self.trainer: Trainer | None = None

    # -- data ----------------------------------------------------------------------------
    def _domains(self, adata: AnnData) -> np.ndarray | None:
        if self.batch_key is None:
            return None
        if self.batch_key not in adata.obs:
            raise InputError(f"batch_key {self.batch_key!r} is not an obs column")
        col = adata.obs[self.batch_key].astype(str).to_numpy()
        cats = {c: i for i, c in enumerate(self.batch_categories)}
        unknown = sorted(set(col) - set(cats))
        if unknown:
            raise InputError(
                f"batches {unknown[:10]} of obs[{self.batch_key!r}] were not seen in training "
                f"(known: {self.batch_categories[:10]}); domain BN has no statistics for them"
            )
        return np.fromiter((cats[c] for c in col), dtype=np.int64, count=col.size)

    def _aligned_matrix(self, adata: AnnData, layer: str | None):
        names = adata.var_names.astype(str)
        if list(names) == self.genes:
            return _matrix(adata, layer)
        missing = [g for g in self.genes if g not in set(names)]
        if missing:
            raise InputError(
                f"{len(missing)} of the model's {len(self.genes)} genes are missing from the data, "
                f"e.g. {missing[:10]}"
            )
        pos = pd.Index(names).get_indexer(self.genes)
        return _matrix(adata, layer)[:, pos]

    # -- training ------------------------------------------------------------------------
    def fit(
        self,
        adata: AnnData,
        *,
        layer: str | None = None,
        batch_key: str | None = None,
        balance_key: str | None = None,
        epochs: int = 100,
        batch_size: int = 256,
        lr: float = 1e-3,
        optimizer: str = "adam",
        weight_decay: float = 0.0,
        momentum: float = 0.9,
        nesterov: bool = False,
        schedule: str = "constant",
        schedule_kwargs: dict[str, Any] | None = None,
        clip_grad_norm: float | None = None,
        val_fraction: float = 0.1,
        early_stopping_patience: int | None = 10,
        device: str = "auto",
        precision: str = "auto",
        checkpoint_dir: str | os.PathLike[str] | None = None,
        checkpoint_every: int | None = None,
        resume: bool = False,
        max_device_bytes: int | None = None,
        progress: bool | str = "auto",
        cuda_graphs: bool = True,
    ) -> AutoencoderModel:
        """Train on ``adata`` (log-normalised expression) through :class:`bioml.train.Trainer`.

        Parameters
        ----------
        adata
            Samples x genes.
        layer
            Use ``adata.layers[layer]`` instead of ``X``.
        batch_key
            obs column of batch labels; needed for ``domain_bn`` (the domains), optional
            otherwise (then only recorded).
        balance_key
            obs column for class-balanced sampling (see :class:`bioml.train.Trainer`).
        epochs, batch_size, lr, optimizer, weight_decay, momentum, nesterov
            Training settings (:func:`bioml.train.make_optimizer`).
        schedule, schedule_kwargs
            Learning-rate schedule and its arguments (:func:`bioml.train.make_scheduler`).
        clip_grad_norm, val_fraction, early_stopping_patience, device, precision,
        checkpoint_dir, checkpoint_every, resume, max_device_bytes, progress
            As in :class:`bioml.train.Trainer` (early stopping monitors the validation
            reconstruction loss; the best weights are restored).
        cuda_graphs
            On a GPU, replay each epoch's forward and backward passes as a CUDA graph
            (captured at the epoch's second step; the first runs eagerly, as does any
            minibatch of another size). Several times faster at this model's sizes, where
            launching kernels from Python is the bottleneck; ``False`` runs every step
            eagerly. Not used on the CPU.

        Returns
        -------
        self
        """
        if self.config["domain_bn"] and batch_key is None:
            raise ConfigError("domain_bn=True needs a batch_key")
        X = _matrix(adata, layer)
        if adata.n_obs < 2:
            raise InputError("the autoencoder needs at least 2 samples")
        self.genes = list(adata.var_names.astype(str))
        self.layer = layer
        self.batch_key = batch_key
        if batch_key is not None:
            if batch_key not in adata.obs:
                raise InputError(
                    f"batch_key {batch_key!r} is not an obs column ({list(adata.obs.columns)[:20]})")
            col = adata.obs[batch_key]
            cats = col.cat.categories if isinstance(col.dtype, pd.CategoricalDtype) else pd.unique(col)
            self.batch_categories = [str(c) for c in cats]
        dense = not sparse.issparse(X)
        Xd = _dense_f32(X) if dense else sparse.csr_matrix(X, dtype=np.float32)
        if dense:
            if not np.isfinite(Xd).all():
                raise InputError("the expression matrix holds NaN or inf values")
            mean = Xd.mean(axis=0, dtype=np.float64)
            sd = Xd.std(axis=0, dtype=np.float64)
        else:
            if not np.isfinite(Xd.data).all():
                raise InputError("the expression matrix holds NaN or inf values")
            mean = np.asarray(Xd.mean(axis=0, dtype=np.float64)).ravel()
            sq = np.asarray(Xd.multiply(Xd).mean(axis=0, dtype=np.float64)).ravel()
            sd = np.sqrt(np.maximum(sq - mean**2, 0))
        sd = np.where(sd > 1e-8, sd, 1.0)
        n_domains = len(self.batch_categories) if (self.config["domain_bn"]) else 0
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.module = Autoencoder(len(self.genes), n_domains=n_domains, **self.config)
        self.module.mean.copy_(torch.from_numpy(mean.astype(np.float32)))
        self.module.scale.copy_(torch.from_numpy(sd.astype(np.float32)))
        optim = dict(name=optimizer, lr=lr, weight_decay=weight_decay)
        if str(optimizer).lower() == "sgd":
            optim.update(momentum=momentum, nesterov=nesterov)
        sched = dict(name=schedule, **(schedule_kwargs or {}))
        plan = _AutoencoderPlan(self.module, optim, sched, cuda_graphs=cuda_graphs)
        data: dict[str, Any] = {"X": Xd}
        dom = self._domains(adata)
        if dom is not None and self.config["domain_bn"]:
            data["domain"] = dom
        balance = None
        if balance_key is not None:
            if balance_key not in adata.obs:
                raise InputError(f"balance_key {balance_key!r} is not an obs column")
            balance = adata.obs[balance_key].astype(str).to_numpy()
        self.trainer = Trainer(
            epochs=epochs, batch_size=batch_size, val_fraction=val_fraction,
            early_stopping_patience=early_stopping_patience if val_fraction > 0 else None,
            clip_grad_norm=clip_grad_norm, device=device, precision=precision, seed=self.seed,
            checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every, resume=resume,
            max_device_bytes=max_device_bytes, progress=progress,
        )
        self.history = self.trainer.fit(plan, data, balance_by=balance)
        self.module.to("cpu").eval()
        self.train_params = dict(
            layer=layer, batch_key=batch_key, balance_key=balance_key, epochs=epochs,
            batch_size=batch_size, lr=lr, optimizer=optimizer, weight_decay=weight_decay,
            momentum=momentum, nesterov=nesterov, schedule=schedule,
            schedule_kwargs=dict(schedule_kwargs or {}), clip_grad_norm=clip_grad_norm,
            val_fraction=val_fraction, early_stopping_patience=early_stopping_patience,
            device=str(self.trainer.device), precision=precision, seed=self.seed,
        )
        return self

    def _require_fitted(self):
        if self.module is None:
            raise ConfigError("the model is not trained: call fit() or load() first")

    @torch.no_grad()
    def _run(self, adata: AnnData, *, layer: str | None, batch_size: int, what: str) -> np.ndarray:
        self._require_fitted()
        X = self._aligned_matrix(adata, self.layer if layer is None else layer)
        dom = self._domains(adata) if self.config["domain_bn"] else None
        m = self.module.eval()
        device = next(m.parameters()).device
        out = []
        for a in range(0, adata.n_obs, batch_size):
            xb = X[a : a + batch_size]
            xb = torch.from_numpy(_dense_f32(xb)).to(device)
            db = None if dom is None else torch.from_numpy(dom[a : a + batch_size]).to(device)
            if what == "z":
                out.append(m.encode(xb, db).float().cpu().numpy())
            else:
                out.append(m(xb, db).recon.float().cpu().numpy())
        return np.concatenate(out, axis=0)

    def transform(self, adata: AnnData, *, layer: str | None = None, batch_size: int = 4096) -> np.ndarray:
        """Latent coordinates (``n_obs x latent``, float32) of ``adata``.

        The data must hold every training gene (any order; extra genes are ignored) and,
        with ``domain_bn``, only batches seen in training.

        Raises
        ------
        InputError
            Naming the missing genes or unknown batches.
        """
        return self._run(adata, layer=layer, batch_size=batch_size, what="z")

    def reconstruction_error(self, adata: AnnData, *, layer: str | None = None,
                             batch_size: int = 4096) -> np.ndarray:
        """Per-sample reconstruction MSE in the standardised space (the anomaly score)."""
        return self._run(adata, layer=layer, batch_size=batch_size, what="recon")

    # -- persistence ---------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save weights, scaling, genes, batches, settings and history to one file (atomically)."""
        self._require_fitted()
        payload = {
            "format": _SAVE_FORMAT,
            "config": self.config,
            "seed": self.seed,
            "state_dict": {k: v.detach().cpu() for k, v in self.module.state_dict().items()},
            "genes": self.genes,
            "layer": self.layer,
            "batch_key": self.batch_key,
            "batch_categories": self.batch_categories,
            "train_params": _plain(self.train_params),
            "history": {c: [float(v) for v in self.history[c]] for c in self.history.columns},
        }
        return save_payload(payload, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> AutoencoderModel:
        """Load a model written by :meth:`save` (on the CPU)."""
        p = load_payload(path, _SAVE_FORMAT, "autoencoder model")
        self = cls(seed=p["seed"], **p["config"])
        self.genes = list(p["genes"])
        self.layer = p["layer"]
        self.batch_key = p["batch_key"]
        self.batch_categories = p["batch_categories"]
        self.train_params = dict(p["train_params"])
        self.history = pd.DataFrame(p["history"])
        n_domains = len(self.batch_categories) if self.config["domain_bn"] else 0
        self.module = Autoencoder(len(self.genes), n_domains=n_domains, **self.config)
        self.module.load_state_dict(p["state_dict"])
        self.module.eval()
        return self


def _plain(obj):
    """Plain Python / h5ad-friendly values (None -> 'None', tuples -> lists)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if obj is None:
        return "None"
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _parse_threshold(anomaly_threshold) -> tuple[str, float]:
    if isinstance(anomaly_threshold, dict):
        return str(anomaly_threshold["method"]), float(anomaly_threshold["value"])
    if isinstance(anomaly_threshold, (tuple, list)) and len(anomaly_threshold) == 2:
        return str(anomaly_threshold[0]), float(anomaly_threshold[1])
    raise ConfigError(
        "anomaly_threshold must be ('quantile', q), ('zscore', z) or {'method': ..., 'value': ...}, "
        f"got {anomaly_threshold!r}"
    )


def autoencoder(
    adata: AnnData,
    *,
    layer: str | None = None,
    batch_key: str | None = None,
    domain_bn: bool = False,
    domain_affine: bool = True,
    hidden: Sequence[int] = (512, 128),
    latent: int = 32,
    dropout: float = 0.1,
    activation: str = "relu",
    epochs: int = 100,
    batch_size: int = 256,
    lr: float = 1e-3,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    schedule: str = "constant",
    schedule_kwargs: dict[str, Any] | None = None,
    clip_grad_norm: float | None = None,
    val_fraction: float = 0.1,
    early_stopping_patience: int | None = 10,
    balance_key: str | None = None,
    anomaly_threshold: tuple[str, float] | dict = ("quantile", 0.99),
    key_added: str = "X_bae",
    seed: int = 0,
    device: str = "auto",
    precision: str = "auto",
    checkpoint_dir: str | os.PathLike[str] | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    progress: bool | str = "auto",
    copy: bool = False,
) -> AutoencoderModel | tuple[AnnData, AutoencoderModel]:
    """Embed samples with a batch-normalised autoencoder and score anomalies.

    Trains an :class:`AutoencoderModel` (through :class:`bioml.train.Trainer`) on
    log-normalised expression, writes its latent coordinates and each sample's
    reconstruction error, and flags samples above a threshold.

    Parameters
    ----------
    adata
        Samples x genes, log-normalised (e.g. the corrected data).
    layer
        Use ``adata.layers[layer]`` instead of ``X``.
    batch_key
        obs column with the batch; needed for ``domain_bn``.
    domain_bn, domain_affine
        Per-batch BatchNorm statistics (and affine parameters) instead of plain BN.
    hidden, latent, dropout, activation
        Architecture (:class:`bioml.nn.Autoencoder`).
    epochs, batch_size, lr, optimizer, weight_decay, schedule, schedule_kwargs,
    clip_grad_norm, val_fraction, early_stopping_patience, balance_key
        Training (:meth:`AutoencoderModel.fit`).
    anomaly_threshold
        ``("quantile", q)``: flag the samples above the ``q`` quantile of the scores;
        ``("zscore", z)``: flag robust z-scores (median/MAD) above ``z``.
    key_added
        obsm key of the latent; the other keys use its name without a leading ``X_``
        (``prefix``, ``"bae"`` by default).
    seed
        Seeds initialisation, split and training.
    device, precision, checkpoint_dir, checkpoint_every, resume, progress
        As in :class:`bioml.train.Trainer`.
    copy
        Work on a copy of ``adata`` and return ``(copy, model)``.

    Returns
    -------
    The trained :class:`AutoencoderModel` (``(adata_copy, model)`` with ``copy=True``).
    Writes ``obsm[key_added]`` (latent, float32), ``obs[f"{prefix}_anomaly_score"]``
    (per-sample reconstruction MSE, standardised genes), ``obs[f"{prefix}_anomaly"]``
    (bool) and ``uns[prefix]`` with ``params``, ``history`` (``n_epochs``,
    ``best_epoch``, ``stopped_early``, ``final_loss``, ``best_val_loss``, ``seconds``,
    ``data_mode``, ``device``) and ``anomaly`` (``method``, ``value``, ``threshold``,
    ``n_flagged``).

    Raises
    ------
    InputError
        A missing ``layer``, ``batch_key`` or ``balance_key``, fewer than 2 samples, or
        non-finite values.
    ConfigError
        ``domain_bn=True`` without ``batch_key``, or an invalid training or threshold
        setting.
    TrainingError
        The loss became non-finite, or a checkpoint to resume from does not fit.

    Examples
    --------
    >>> import numpy as np
    >>> import bioml as bm
    >>> adata = bm.sim.simulate_counts(300, 200, n_anomalies=5, seed=0)
    >>> bm.pp.qc(adata, min_genes=0, n_top_genes=100, hvg_subset=True)
    >>> model = bm.tl.autoencoder(adata, batch_key="batch", domain_bn=True, hidden=(64,),
    ...                           latent=4, epochs=5, progress=False)
    >>> adata.obsm["X_bae"].shape
    (300, 4)
    >>> adata.obs["bae_anomaly_score"].nlargest(5).index  # doctest: +SKIP
    """
    method, value = _parse_threshold(anomaly_threshold)
    _threshold(np.zeros(3), method, value)  # validate before training
    ad = adata.copy() if copy else adata
    model = AutoencoderModel(hidden=hidden, latent=latent, dropout=dropout, activation=activation,
                             domain_bn=domain_bn, domain_affine=domain_affine, seed=seed)
    model.fit(ad, layer=layer, batch_key=batch_key, balance_key=balance_key, epochs=epochs,
              batch_size=batch_size, lr=lr, optimizer=optimizer, weight_decay=weight_decay,
              schedule=schedule, schedule_kwargs=schedule_kwargs, clip_grad_norm=clip_grad_norm,
              val_fraction=val_fraction, early_stopping_patience=early_stopping_patience,
              device=device, precision=precision, checkpoint_dir=checkpoint_dir,
              checkpoint_every=checkpoint_every, resume=resume, progress=progress)
    prefix = key_added[2:] if key_added.startswith("X_") else key_added
    z = model.transform(ad, layer=layer)
    score = model.reconstruction_error(ad, layer=layer)
    thr = _threshold(score, method, value)
    ad.obsm[key_added] = z
    ad.obs[f"{prefix}_anomaly_score"] = score.astype(np.float64)
    ad.obs[f"{prefix}_anomaly"] = score > thr
    h = model.history
    tr = model.trainer
    summary = {
        "n_epochs": int(len(h)),
        "best_epoch": int(tr.best_epoch) if tr.best_epoch is not None else -1,
        "stopped_early": bool(tr.stopped_early),
        "final_loss": float(h["loss"].iloc[-1]),
        "best_val_loss": float(tr.best_metric) if tr.best_metric is not None else float("nan"),
        "seconds": float(h["seconds"].sum()),
        "data_mode": str(tr.data_mode),
        "device": str(tr.device),
    }
    ad.uns[prefix] = {
        "params": _plain(dict(key_added=key_added, **model.config, **model.train_params,
                              anomaly_threshold=[method, value])),
        "history": summary,
        "anomaly": {"method": method, "value": value, "threshold": thr,
                    "n_flagged": int((score > thr).sum())},
    }
    log.info("autoencoder: %d epochs, latent %d, %d anomalies flagged", len(h), latent,
             int((score > thr).sum()))
    return (ad, model) if copy else model
