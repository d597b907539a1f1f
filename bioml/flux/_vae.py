"""The flux VAE model class (:class:`FluxVAE`): data, scaling, fixed reactions, fit/sample/save/load.

Three layers, as for the autoencoder: :class:`bioml.nn.FluxVAEModule` is the pure torch
module, :class:`FluxVAE` holds the network, the fixed reactions, the feasible space and the
scaling, and :class:`bioml.train.Trainer` owns the loop (KL warm-up through the step
context's epoch).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from anndata import AnnData

from ..errors import ConfigError, InputError, TrainingError
from ..nn import FluxVAEModule
from ..nn._flux import CONSTRAINTS
from ..train import StepContext, Trainer, TrainingModule, make_optimizer, make_scheduler
from ..train._files import load_payload, save_payload
from ._network import FeasibleSpace, FluxNetwork, mass_balance_residual, project_feasible, within_bounds
from ._sampling import fixed_reactions, flux_anndata

__all__ = ["FluxVAE"]

log = logging.getLogger("bioml.flux")

_SAVE_FORMAT = "bioml.flux.FluxVAE/1"

PRIORS = ("gmm", "aggregate", "standard")


class _FluxVAEPlan(TrainingModule):
    """Training plan: one optimiser; the ELBO with KL warm-up plus the feasibility penalties."""

    def __init__(self, module: FluxVAEModule, optim: dict[str, Any], schedule: dict[str, Any], *,
                 beta: float, kl_warmup_epochs: int, mass_balance_weight: float, bounds_weight: float):
        super().__init__()
        self.module = module
        self.optim = optim
        self.schedule = schedule
        self.beta = float(beta)
        self.kl_warmup_epochs = int(kl_warmup_epochs)
        self.weights = dict(mass_balance_weight=float(mass_balance_weight),
                            bounds_weight=float(bounds_weight))

    def checkpoint_fingerprint(self):
        m = self.module
        return {"architecture": dict(constraint=m.constraint, shapes=[list(p.shape) for p in m.parameters()]),
                "optim": dict(self.optim), "schedule": dict(self.schedule), "beta": self.beta,
                "kl_warmup_epochs": self.kl_warmup_epochs, **self.weights}

    def configure_optimizers(self):
        opt = make_optimizer(self.module.parameters(), **self.optim)
        sched = make_scheduler(opt, **self.schedule)
        return {"main": opt}, ({"main": sched} if sched is not None else {})

    def kl_weight(self, epoch: int) -> float:
        """``beta`` ramped linearly over the first ``kl_warmup_epochs`` epochs."""
        if self.kl_warmup_epochs <= 0:
            return self.beta
        return self.beta * min(1.0, (epoch + 1) / self.kl_warmup_epochs)

    def training_step(self, batch, ctx: StepContext):
        beta = self.kl_weight(ctx.epoch)
        out = self.module(batch["X"], beta=beta, **self.weights)
        ctx.step_optimizer("main", out.loss)
        return {"loss": out.loss.detach(), "recon": out.recon.detach(), "kl": out.kl.detach(),
                "mass_balance": out.mass_balance.detach(), "bounds": out.bounds.detach(), "beta": beta}

    def validation_step(self, batch, ctx: StepContext):
        out = self.module(batch["X"], beta=self.beta, **self.weights)
        return {"loss": out.loss, "recon": out.recon, "kl": out.kl}


class FluxVAE:
    """A VAE that generates flux vectors of a metabolic network.

    Parameters
    ----------
    model
        The network: a cobra model, a model name or file (:func:`bioml.flux.load_model`)
        or a :class:`FluxNetwork`.
    constraint
        ``"nullspace"`` (default): the decoder outputs null-space coordinates, so every
        generated vector satisfies ``S v = 0`` to float64 precision whatever the weights;
        ``"penalty"``: the decoder outputs fluxes and ``||S v||^2`` is penalised.
    latent, hidden, activation, dropout, batch_norm
        Architecture (:class:`bioml.nn.FluxVAEModule`).
    beta
        Weight of the KL term after the warm-up.
    kl_warmup_epochs
        Epochs over which the KL weight rises linearly from ``beta / kl_warmup_epochs`` to
        ``beta`` (0: no warm-up).
    mass_balance_weight, bounds_weight
        Weights (lambda) of the penalties ``||S v||^2`` and the squared bound violations,
        both in the original flux units.
    fixed_atol
        A reaction whose range over the training samples is at most ``fixed_atol * max(1,
        max |v|)`` is fixed (kept exactly at its median, e.g. blocked reactions at 0), as
        is every reaction with ``lb == ub``.
    rtol
        Bound tolerance relative to each reaction's bound range (feasibility checks).
    prior
        The latent distribution that :meth:`sample` draws from, fitted after training to
        posterior draws of the training samples (ex-post density estimation, Ghosh et al.
        2020, "From variational to deterministic autoencoders"):

        - ``"gmm"`` (default): a Gaussian mixture with ``prior_components`` full-covariance
          components (:class:`sklearn.mixture.GaussianMixture`). The aggregate posterior
          of a trained VAE is far from Gaussian; on the textbook model the mixture brings
          the generated fluxes much closer to held-out OptGP samples than one Gaussian
          (KS median 0.08-0.10 vs 0.11-0.13, MMD^2 0.004-0.006 vs 0.008-0.010) while the generated
          vectors stay about as far from their nearest training sample as fresh OptGP
          draws do (``nn_train_ratio`` about 0.9; ``benchmarks/bench_flux.py``);
        - ``"aggregate"``: one full-covariance Gaussian;
        - ``"standard"``: N(0, I), nothing fitted.
    prior_components
        Components of the ``"gmm"`` prior (at most one per 50 posterior draws).
    seed
        Seeds the weight initialisation and the training run.

    Attributes
    ----------
    network, space
        The :class:`FluxNetwork` and the :class:`FeasibleSpace` (fixed reactions, ``v0``,
        the null-space basis rotated to the principal axes of the training data).
    module
        The :class:`bioml.nn.FluxVAEModule` (after :meth:`setup`, :meth:`fit` or :meth:`load`).
    history
        Training history (one row per epoch).
    """

    def __init__(self, model: Any = "textbook", *, constraint: str = "nullspace", latent: int = 32,
                 hidden: Sequence[int] = (128, 128), activation: str = "relu", dropout: float = 0.0,
                 batch_norm: bool = False, beta: float = 1.0, kl_warmup_epochs: int = 10,
                 mass_balance_weight: float = 1.0, bounds_weight: float = 100.0, fixed_atol: float = 1e-9,
                 rtol: float = 1e-6, prior: str = "gmm", prior_components: int = 40, seed: int = 0):
        if constraint not in CONSTRAINTS:
            raise ConfigError(f"constraint must be one of {CONSTRAINTS}, got {constraint!r}")
        if beta < 0 or mass_balance_weight < 0 or bounds_weight < 0:
            raise ConfigError("beta, mass_balance_weight and bounds_weight must be >= 0")
        if int(kl_warmup_epochs) < 0:
            raise ConfigError(f"kl_warmup_epochs must be >= 0, got {kl_warmup_epochs}")
        self.network = model if isinstance(model, FluxNetwork) else FluxNetwork.from_model(model)
        self.config = dict(constraint=constraint, latent=int(latent), hidden=[int(h) for h in hidden],
                           activation=str(activation), dropout=float(dropout), batch_norm=bool(batch_norm))
        self.loss_config = dict(beta=float(beta), kl_warmup_epochs=int(kl_warmup_epochs),
                                mass_balance_weight=float(mass_balance_weight),
                                bounds_weight=float(bounds_weight))
        if prior not in PRIORS:
            raise ConfigError(f"prior must be one of {PRIORS}, got {prior!r}")
        if int(prior_components) < 1:
            raise ConfigError(f"prior_components must be >= 1, got {prior_components}")
        self.prior = prior
        self.prior_components = int(prior_components)
        # the fitted prior: mixture weights (k,), means (k, latent), Cholesky factors of the
        # covariances (k, latent, latent); None for the standard normal
        self.prior_weights: np.ndarray | None = None
        self.prior_mean: np.ndarray | None = None
        self.prior_chol: np.ndarray | None = None
        self.fixed_atol = float(fixed_atol)
        self.rtol = float(rtol)
        self.seed = int(seed)
        self.space: FeasibleSpace | None = None
        self.module: FluxVAEModule | None = None
        self.history = pd.DataFrame()
        self.train_params: dict[str, Any] = {}
        self.trainer: Trainer | None = None

    # -- data ----------------------------------------------------------------------------
    def _fluxes(self, adata: AnnData) -> np.ndarray:
        pos = self.network.index(adata.var_names.astype(str))
        if len(set(pos.tolist())) != self.network.n_reactions:
            missing = sorted(set(self.network.reactions) - set(adata.var_names.astype(str)))
            raise InputError(
                f"the flux data lack {len(missing)} reaction(s) of model {self.network.model_id!r}, "
                f"e.g. {missing[:10]}"
            )
        X = adata.X.toarray() if hasattr(adata.X, "toarray") else np.asarray(adata.X)
        out = np.empty((adata.n_obs, self.network.n_reactions), dtype=np.float64)
        out[:, pos] = X
        if not np.isfinite(out).all():
            raise InputError("the flux data hold NaN or inf values")
        return out

    def setup(self, adata: AnnData) -> FluxVAE:
        """Fit the fixed reactions, the feasible space and the scaling on ``adata`` and build
        an untrained module (:meth:`fit` calls it; on its own it gives a model with random
        weights that still generates mass-balanced fluxes)."""
        X = self._fluxes(adata)
        if X.shape[0] < 2:
            raise InputError("the flux VAE needs at least 2 training samples")
        net = self.network
        fixed, values = fixed_reactions(X, net, atol=self.fixed_atol)
        t0 = time.perf_counter()
        space = FeasibleSpace(net, fixed, values)
        log.info("feasible space: %d reactions, %d fixed (%d blocked), null-space dimension %d (%.1f s)",
                 net.n_reactions, int(fixed.sum()), int((fixed & (values == 0)).sum()), space.dim,
                 time.perf_counter() - t0)
        # rotate the basis to the principal axes of the training data (still orthonormal)
        U = space.coordinates(X)
        u_mean = U.mean(axis=0)
        if space.dim:
            _, sv, vt = np.linalg.svd(U - u_mean, full_matrices=False)
            R = vt.T
            space.N = space.N @ R
            U = U @ R
        u_mean = U.mean(axis=0)
        u_sd = U.std(axis=0)
        u_sd = np.maximum(u_sd, 1e-6 * max(float(u_sd.max(initial=0.0)), 1e-12))
        Xf = X[:, space.free]
        x_mean = Xf.mean(axis=0)
        x_sd = Xf.std(axis=0)
        x_sd = np.where(x_sd > 1e-9 * max(1.0, float(np.abs(Xf).max(initial=0.0))), x_sd, 1.0)
        space.set_center(X, rtol=self.rtol)
        self.space = space
        self.module = self._build_module()
        m = self.module
        t = lambda a, dt=torch.float32: torch.as_tensor(np.asarray(a), dtype=dt)  # noqa: E731
        with torch.no_grad():
            m.x_mean.copy_(t(x_mean))
            m.x_scale.copy_(t(x_sd))
            m.basis.copy_(t(space.N))
            m.basis64.copy_(t(space.N, torch.float64))
            m.v0.copy_(t(space.v0[space.free]))
            m.v064.copy_(t(space.v0[space.free], torch.float64))
            m.u_mean.copy_(t(u_mean))
            m.u_scale.copy_(t(u_sd))
            m.S.copy_(t(net.S[:, space.free]))
            m.s_fixed.copy_(t(net.S[:, space.fixed] @ space.values[space.fixed]))
            m.lb.copy_(t(net.lb[space.free]))
            m.ub.copy_(t(net.ub[space.free]))
        self._train_obs = int(X.shape[0])
        return self

    def _build_module(self) -> FluxVAEModule:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            return FluxVAEModule(int(self.space.free.sum()), len(self.network.metabolites), self.space.dim,
                                 **self.config)

    # -- training ------------------------------------------------------------------------
    def fit(
        self,
        adata: AnnData,
        *,
        epochs: int = 100,
        batch_size: int = 256,
        lr: float = 1e-3,
        optimizer: str = "adam",
        weight_decay: float = 0.0,
        schedule: str = "constant",
        schedule_kwargs: dict[str, Any] | None = None,
        clip_grad_norm: float | None = 5.0,
        val_fraction: float = 0.1,
        early_stopping_patience: int | None = None,
        device: str = "auto",
        precision: str = "32",
        checkpoint_dir: str | os.PathLike[str] | None = None,
        checkpoint_every: int | None = None,
        resume: bool = False,
        progress: bool | str = "auto",
    ) -> FluxVAE:
        """Train on flux samples (samples x reactions, e.g. from :func:`bioml.flux.sample`).

        Parameters
        ----------
        adata
            Training fluxes; ``var_names`` must hold every reaction of the model (any order).
        epochs, batch_size, lr, optimizer, weight_decay, schedule, schedule_kwargs,
        clip_grad_norm, val_fraction, early_stopping_patience, device, precision,
        checkpoint_dir, checkpoint_every, resume, progress
            As in :class:`bioml.train.Trainer` (early stopping monitors the validation
            loss at full KL weight; it only starts to count after the warm-up).

        Returns
        -------
        self
        """
        self.setup(adata)
        X = self._fluxes(adata)[:, self.space.free].astype(np.float32)
        optim = dict(name=optimizer, lr=lr, weight_decay=weight_decay)
        sched = dict(name=schedule, **(schedule_kwargs or {}))
        plan = _FluxVAEPlan(self.module, optim, sched, **self.loss_config)
        self.trainer = Trainer(
            epochs=epochs, batch_size=batch_size, val_fraction=val_fraction,
            early_stopping_patience=early_stopping_patience if val_fraction > 0 else None,
            clip_grad_norm=clip_grad_norm, device=device, precision=precision, seed=self.seed,
            checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every, resume=resume,
            progress=progress,
        )
        self.history = self.trainer.fit(plan, {"X": X})
        self.module.to("cpu").eval()
        if self.prior != "standard":
            self._fit_prior(adata)
        self.train_params = dict(
            epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, weight_decay=weight_decay,
            schedule=schedule, schedule_kwargs=dict(schedule_kwargs or {}), clip_grad_norm=clip_grad_norm,
            val_fraction=val_fraction, early_stopping_patience=early_stopping_patience,
            device=str(self.trainer.device), precision=precision, seed=self.seed, n_obs=int(X.shape[0]),
        )
        return self

    @torch.no_grad()
    def _fit_prior(self, adata: AnnData, draws_per_sample: int = 3) -> None:
        """Fit the generation prior (see ``prior``) to ``draws_per_sample`` posterior draws
        (mean + standard deviation times noise) of every training sample, in float64."""
        X = self._fluxes(adata)[:, self.space.free]
        mu, logvar = self.module.eval().encode(torch.from_numpy(X.astype(np.float32)))
        gen = torch.Generator().manual_seed(self.seed)
        sd = torch.exp(0.5 * logvar)
        z = torch.cat([mu + sd * torch.randn(mu.shape, generator=gen) for _ in range(draws_per_sample)])
        z = z.double().numpy()
        d = z.shape[1]
        k = min(self.prior_components, max(1, z.shape[0] // 50)) if self.prior == "gmm" else 1
        if k == 1:
            cov = np.atleast_2d(np.cov(z, rowvar=False)) + 1e-9 * np.eye(d)
            self.prior_weights = np.ones(1)
            self.prior_mean = z.mean(axis=0)[None, :]
            self.prior_chol = np.linalg.cholesky(cov)[None, :, :]
            return
        from sklearn.mixture import GaussianMixture

        gmm = GaussianMixture(k, covariance_type="full", reg_covar=1e-6, random_state=self.seed).fit(z)
        self.prior_weights = gmm.weights_ / gmm.weights_.sum()
        self.prior_mean = gmm.means_
        self.prior_chol = np.linalg.cholesky(gmm.covariances_)

    def draw_latent(self, n: int, *, seed: int = 0) -> torch.Tensor:
        """``n`` draws (float32, ``n x latent``) from the fitted prior (N(0, I) if none)."""
        self._require_module()
        gen = torch.Generator().manual_seed(int(seed))
        eps = torch.randn(int(n), self.module.latent, generator=gen, dtype=torch.float64)
        if self.prior_mean is None:
            return eps.float()
        w = torch.from_numpy(np.asarray(self.prior_weights, dtype=np.float64))
        comp = torch.multinomial(w, int(n), replacement=True, generator=gen) if n else \
            torch.zeros(0, dtype=torch.long)
        z = torch.empty_like(eps)
        means = torch.from_numpy(np.asarray(self.prior_mean, dtype=np.float64))
        chols = torch.from_numpy(np.asarray(self.prior_chol, dtype=np.float64))
        for c in torch.unique(comp).tolist():
            rows = comp == c
            z[rows] = means[c] + eps[rows] @ chols[c].T
        return z.float()

    def _require_module(self):
        if self.module is None:
            raise ConfigError("the flux VAE is not set up: call fit() (or setup()) or load() first")

    # -- generation ----------------------------------------------------------------------
    @torch.no_grad()
    def _decode(self, z: torch.Tensor, batch_size: int = 65536) -> np.ndarray:
        m = self.module.eval()
        out = np.empty((z.shape[0], self.network.n_reactions), dtype=np.float64)
        out[:] = self.space.values
        free = np.flatnonzero(self.space.free)
        parts = [m.decode64(z[a:a + batch_size]).cpu().numpy() for a in range(0, z.shape[0], batch_size)]
        if parts:
            out[:, free] = np.concatenate(parts, axis=0)
        return out

    def generate(self, n: int, *, seed: int = 0, project: bool = True, max_iter: int = 50,
                 retract: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Decode ``n`` draws from the prior (float64), optionally projected onto the bounds
        (``retract``: rows that Dykstra has not brought in after ``max_iter`` iterations are
        pulled towards the feasible centre, see :func:`bioml.flux.project_feasible`).

        Returns ``(fluxes, latent, within_bounds_before_projection, projection_info)``.
        """
        self._require_module()
        z = self.draw_latent(n, seed=seed)
        X = self._decode(z)
        ok_raw = within_bounds(X, self.network.lb, self.network.ub, rtol=self.rtol)
        info: dict[str, Any] = dict(iterations=0, within_before=float(ok_raw.mean()) if n else 1.0,
                                    within_after=float(ok_raw.mean()) if n else 1.0, n_changed=0)
        if project and n:
            X, info = project_feasible(X, self.space, rtol=self.rtol, max_iter=max_iter,
                                       center=self.space.center if retract else None)
            if retract and info["within_after"] < 0.99:
                log.warning("flux VAE: only %.3f of the projected samples are within bounds",
                            info["within_after"])
        return X, z.numpy(), ok_raw, info

    def sample(self, n: int, *, seed: int = 0, project: bool = True, reject: bool = False,
               max_iter: int = 50, max_rounds: int = 50) -> AnnData:
        """Generate ``n`` flux vectors (float64) as an AnnData (obs = samples, var = reactions).

        Parameters
        ----------
        n
            Number of samples.
        seed
            Seeds the prior draws; the same seed gives the same samples.
        project
            Project each decoded vector onto ``{S v = 0} ∩ [lb, ub]`` (Dykstra,
            :func:`bioml.flux.project_feasible`); vectors already within bounds are
            unchanged. Without ``reject``, vectors that Dykstra has not brought within
            bounds after ``max_iter`` iterations are pulled towards the feasible centre, so
            every vector is returned within bounds.
        reject
            Return only valid vectors (within bounds, mass balance <= 1e-6): draw more
            until ``n`` valid ones are collected (with ``project``, vectors that Dykstra has
            not brought in are redrawn rather than pulled, which distorts the distribution
            less).
        max_iter
            Dykstra iterations at most. Most rows that Dykstra brings within bounds at all
            get there in a few dozen iterations; the rest are redrawn (``reject``) or pulled
            (otherwise). On the textbook model 50 iterations gave the most valid samples
            per second with rejection (12,100/s vs 7,600/s at 200, measured in one run)
            and the same distribution match within noise (KS median 0.116 vs 0.108, MMD^2
            0.0098 vs 0.0079 against held-out OptGP samples).
        max_rounds
            With ``reject``: give up after this many rounds of draws.

        Returns
        -------
        AnnData
            ``X`` float64 (samples x all reactions, fixed reactions exactly at their values),
            ``obs["mass_balance"]``, ``obs["within_bounds"]``,
            ``obs["within_bounds_raw"]`` (before projection), ``obsm["X_latent"]`` (the
            prior draws) and ``uns["flux_vae"]`` (``fraction_within_bounds_raw``,
            ``fraction_within_bounds``, ``acceptance_rate``, ``n_drawn``, ``projection``
            iterations, ``seconds``, ``params``).

        Raises
        ------
        TrainingError
            With ``reject``, when ``max_rounds`` rounds did not yield ``n`` valid vectors.
        """
        self._require_module()
        n = int(n)
        if n < 0:
            raise ConfigError(f"n must be >= 0, got {n}")
        t0 = time.perf_counter()
        net = self.network
        rng = np.random.default_rng(int(seed))
        chunks, zs, raws, valids = [], [], [], []
        n_drawn, n_valid, rounds, iters = 0, 0, 0, 0
        raw_ok_total = 0
        proj_ok_total = 0
        want = n
        while True:
            sub_seed = int(seed) if rounds == 0 else int(rng.integers(2**31 - 1))
            X, z, ok_raw, info = self.generate(want, seed=sub_seed, project=project, max_iter=max_iter,
                                               retract=not reject)
            rounds += 1
            iters = max(iters, info["iterations"])
            n_drawn += want
            ok = within_bounds(X, net.lb, net.ub, rtol=self.rtol) & (mass_balance_residual(X, net.S) <= 1e-6)
            raw_ok_total += int(ok_raw.sum())
            proj_ok_total += int(ok.sum())
            if reject:
                X, z, ok_raw, ok = X[ok], z[ok], ok_raw[ok], ok[ok]
            chunks.append(X)
            zs.append(z)
            raws.append(ok_raw)
            valids.append(ok)
            n_valid += X.shape[0]
            if not reject or n_valid >= n:
                break
            if rounds >= max_rounds:
                raise TrainingError(
                    f"rejection sampling: only {n_valid} of {n} valid flux vectors after {rounds} rounds "
                    f"({n_drawn} drawn); train longer, or use project=True"
                )
            rate = max(n_valid / n_drawn, 0.01)
            want = int(math.ceil((n - n_valid) / rate * 1.2)) + 8
        X = np.concatenate(chunks)[:n]
        Z = np.concatenate(zs)[:n]
        seconds = time.perf_counter() - t0
        ad = flux_anndata(X, net, obs_names=[f"vae{i}" for i in range(X.shape[0])], rtol=self.rtol)
        ad.obs["within_bounds_raw"] = np.concatenate(raws)[:n]
        ad.obsm["X_latent"] = Z.astype(np.float32)
        ad.var["fixed"] = self.space.fixed
        ad.uns["flux_vae"] = {
            "fraction_within_bounds_raw": raw_ok_total / max(n_drawn, 1),
            "fraction_within_bounds": proj_ok_total / max(n_drawn, 1),
            "acceptance_rate": proj_ok_total / max(n_drawn, 1),
            "n_drawn": int(n_drawn), "rounds": int(rounds), "projection_iterations": int(iters),
            "seconds": float(seconds),
            "params": dict(n=n, seed=int(seed), project=bool(project), reject=bool(reject),
                           constraint=self.config["constraint"]),
        }
        return ad

    @torch.no_grad()
    def encode(self, adata: AnnData) -> np.ndarray:
        """Posterior means (``n_obs x latent``, float32) of flux rows."""
        self._require_module()
        X = self._fluxes(adata)[:, self.space.free]
        mu, _ = self.module.eval().encode(torch.from_numpy(X.astype(np.float32)))
        return mu.numpy()

    # -- persistence ---------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save network, feasible space, weights, settings and history to one file (atomically)."""
        self._require_module()
        net, sp = self.network, self.space
        payload = {
            "format": _SAVE_FORMAT,
            "config": self.config,
            "loss_config": self.loss_config,
            "fixed_atol": self.fixed_atol,
            "rtol": self.rtol,
            "prior": self.prior,
            "prior_components": self.prior_components,
            "prior_weights": None if self.prior_weights is None else torch.from_numpy(self.prior_weights),
            "prior_mean": None if self.prior_mean is None else torch.from_numpy(self.prior_mean),
            "prior_chol": None if self.prior_chol is None else torch.from_numpy(self.prior_chol),
            "seed": self.seed,
            "network": {"reactions": list(net.reactions), "metabolites": list(net.metabolites),
                        "S": torch.from_numpy(net.S), "lb": torch.from_numpy(net.lb),
                        "ub": torch.from_numpy(net.ub), "objective": dict(net.objective),
                        "model_id": net.model_id},
            "space": {"fixed": torch.from_numpy(sp.fixed), "values": torch.from_numpy(sp.values),
                      "v0": torch.from_numpy(sp.v0), "N": torch.from_numpy(np.ascontiguousarray(sp.N)),
                      "center": None if sp.center is None else torch.from_numpy(sp.center)},
            "state_dict": {k: v.detach().cpu() for k, v in self.module.state_dict().items()},
            "train_params": {k: ("None" if v is None else v) for k, v in self.train_params.items()},
            "history": {c: [float(v) for v in self.history[c]] for c in self.history.columns},
        }
        return save_payload(payload, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FluxVAE:
        """Load a model written by :meth:`save` (on the CPU; no null space is recomputed)."""
        p = load_payload(path, _SAVE_FORMAT, "flux VAE model")
        d = p["network"]
        net = FluxNetwork(reactions=list(d["reactions"]), metabolites=list(d["metabolites"]),
                          S=d["S"].numpy(), lb=d["lb"].numpy(), ub=d["ub"].numpy(),
                          objective=dict(d["objective"]), model_id=d["model_id"])
        self = cls(net, seed=p["seed"], fixed_atol=p["fixed_atol"], rtol=p["rtol"], prior=p["prior"],
                   prior_components=p.get("prior_components", 1),
                   **p["config"], **p["loss_config"])
        if p["prior_mean"] is not None:  # files from before the mixture prior hold one Gaussian
            self.prior_mean = p["prior_mean"].numpy().reshape(-1, int(p["config"]["latent"]))
            d = self.prior_mean.shape[1]
            self.prior_chol = p["prior_chol"].numpy().reshape(-1, d, d)
            w = p.get("prior_weights")
            self.prior_weights = np.ones(1) if w is None else w.numpy()
        s = p["space"]
        self.space = FeasibleSpace.from_arrays(net, s["fixed"].numpy(), s["values"].numpy(),
                                               s["v0"].numpy(), s["N"].numpy(),
                                               None if s["center"] is None else s["center"].numpy())
        self.module = self._build_module()
        self.module.load_state_dict(p["state_dict"])
        self.module.eval()
        self.train_params = {k: (None if v == "None" else v) for k, v in p["train_params"].items()}
        self.history = pd.DataFrame(p["history"])
        return self
