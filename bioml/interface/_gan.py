"""The interface GAN: a Wasserstein GAN over interface feature vectors.

Three layers (as in scvi-tools): :class:`bioml.nn.Generator` and
:class:`bioml.nn.SpectralNormCritic` are pure torch; :class:`InterfaceGAN` holds the
feature names, the standardisation and the settings and offers ``fit``/``sample``/
``save``/``load``; :class:`bioml.train.Trainer` owns the loop (the two-player step is
:class:`_GANPlan.training_step`).

Training (Arjovsky et al. 2017; Miyato et al. 2018; Gulrajani et al. 2017)
    Features are standardised with the training mean and standard deviation; the critic
    sees standardised vectors. Each training step takes one minibatch of ``batch_size``
    real rows and makes ``n_critic`` critic updates, each on its own slice of the
    minibatch (fresh real rows per critic update) and fresh noise, minimising
    ``E[C(fake)] - E[C(real)]`` (plus ``gp_weight * penalty`` for ``variant="gp"``), then
    one generator update minimising ``-E[C(G(z))]``. With ``variant="spectral"`` every
    critic layer is spectrally normalised (torch's parametrisation), so the critic is
    1-Lipschitz and ``E[C(real)] - E[C(fake)]`` is a lower bound of the Wasserstein-1
    distance in standardised units: the history's ``wasserstein`` column (training
    minibatches) and ``val_wasserstein`` (held-out real rows, when ``val_fraction > 0``).
Constraints by construction
    The generator's output layer (:class:`bioml.nn.ConstrainedOutput`) makes the
    composition blocks softmaxes (``comp_*`` sum to 1, ``nis_*`` to 100), every other
    feature non-negative through a scaled softplus, and derived columns (``bsa_total``,
    ``n_interface_residues``, ``n_residue_contacts``, ``hydrophobic_fraction``) exact sums
    of their parts. Counts stay continuous in training; :meth:`InterfaceGAN.sample`
    rounds them to integers (``round_counts=True``) and then recomputes the derived sums.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..errors import ConfigError, InputError
from ..nn import Generator, OutputSpec, SpectralNormCritic, gradient_penalty, layer_spectral_norms
from ..train import StepContext, Trainer, TrainingModule, make_optimizer
from ..train._files import load_payload, save_payload
from ._features import FEATURE_NAMES, FEATURES
from ._table import validate_feature_table

__all__ = ["InterfaceGAN", "evaluate", "evaluate_generated", "critic_spectral_norms", "output_spec"]

log = logging.getLogger("bioml.interface")

_SAVE_FORMAT = "bioml.interface.InterfaceGAN/1"
VARIANTS = ("spectral", "gp")


def output_spec() -> OutputSpec:
    """The :class:`bioml.nn.OutputSpec` of :data:`FEATURES` (column indices in order)."""
    idx = {f.name: i for i, f in enumerate(FEATURES)}
    spec = OutputSpec(n_features=len(FEATURES))
    groups: dict[str, tuple[list[int], float]] = {}
    for i, f in enumerate(FEATURES):
        if f.kind in ("nonneg", "count"):
            spec.positive.append(i)
        elif f.kind == "composition":
            groups.setdefault(f.group, ([], float(f.total)))[0].append(i)
        elif f.kind == "derived":
            spec.derived.append((i, [idx[p] for p in f.parts]))
        else:
            spec.free.append(i)
    spec.groups = list(groups.values())
    return spec


class _GANPlan(TrainingModule):
    """The two-player step: ``n_critic`` critic updates, then one generator update."""

    def __init__(self, generator: Generator, critic: SpectralNormCritic, *, variant: str, n_critic: int,
                 gp_weight: float, optim: dict[str, Any]):
        super().__init__()
        self.generator = generator
        self.critic = critic
        self.variant = variant
        self.n_critic = int(n_critic)
        self.gp_weight = float(gp_weight)
        self.optim = optim
        self.updates = {"critic": 0, "generator": 0}  # optimiser steps taken (this process)

    def checkpoint_fingerprint(self):
        return {"variant": self.variant, "n_critic": self.n_critic, "gp_weight": self.gp_weight,
                "optim": {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.optim.items()},
                "shapes": [list(p.shape) for p in self.parameters()]}

    def configure_optimizers(self):
        o = dict(self.optim)
        lr_c, lr_g = o.pop("lr_critic"), o.pop("lr_generator")
        return {
            "critic": make_optimizer(self.critic.parameters(), lr=lr_c, **o),
            "generator": make_optimizer(self.generator.parameters(), lr=lr_g, **o),
        }

    def _noise(self, n: int, like: torch.Tensor) -> torch.Tensor:
        return torch.randn(n, self.generator.latent, device=like.device, dtype=like.dtype)

    def training_step(self, batch, ctx: StepContext):
        x = batch["X"]
        chunks = x.chunk(self.n_critic) if x.shape[0] >= self.n_critic else (x,)
        c_losses, w_est, gps = [], [], []
        for k in range(self.n_critic):
            real = chunks[k % len(chunks)]
            with torch.no_grad():
                fake = self.generator(self._noise(real.shape[0], real))
            d_real = self.critic(real).mean()
            d_fake = self.critic(fake).mean()
            loss = d_fake - d_real
            if self.variant == "gp":
                gp = gradient_penalty(self.critic, real, fake)
                loss = loss + self.gp_weight * gp
                gps.append(gp.detach())
            ctx.step_optimizer("critic", loss)
            self.updates["critic"] += 1
            c_losses.append(loss.detach())
            w_est.append((d_real - d_fake).detach())
        for p in self.critic.parameters():
            p.requires_grad_(False)
        try:
            g_loss = -self.critic(self.generator(self._noise(x.shape[0], x))).mean()
            ctx.step_optimizer("generator", g_loss)
            self.updates["generator"] += 1
        finally:
            for p in self.critic.parameters():
                p.requires_grad_(True)
        out = {"critic_loss": torch.stack(c_losses).mean(), "generator_loss": g_loss.detach(),
               "wasserstein": torch.stack(w_est).mean()}
        if self.variant == "gp":
            out["gradient_penalty"] = torch.stack(gps).mean()
        return out

    def validation_step(self, batch, ctx: StepContext):
        x = batch["X"]
        fake = self.generator(self._noise(x.shape[0], x))
        return {"wasserstein": self.critic(x).mean() - self.critic(fake).mean()}


class InterfaceGAN:
    """A Wasserstein GAN that learns the distribution of interface feature vectors.

    Parameters
    ----------
    variant
        ``"spectral"``: every critic layer spectrally normalised (the default);
        ``"gp"``: a plain critic with the WGAN-GP gradient penalty (for comparison).
    latent
        Noise width of the generator.
    hidden
        Hidden widths of the generator.
    critic_hidden
        Hidden widths of the critic (default: ``hidden``).
    n_critic
        Critic updates per generator update.
    gp_weight
        Gradient-penalty weight (``variant="gp"`` only).
    seed
        Seeds the initialisation (including the spectral-norm vectors) and training.

    Attributes
    ----------
    generator, critic
        The torch modules (after :meth:`fit` or :meth:`load`).
    features
        Feature names in order (:data:`~bioml.interface.FEATURE_NAMES`).
    mean, scale
        Training standardisation (float64 arrays).
    history
        One row per epoch: ``critic_loss``, ``generator_loss``, ``wasserstein``
        (``gradient_penalty`` for GP), ``val_wasserstein`` with validation,
        ``lr_critic``, ``lr_generator``, ``seconds``.
    trainer, plan
        The :class:`bioml.train.Trainer` and the training plan of the last :meth:`fit`
        (not saved); ``plan.updates`` counts the critic and generator optimiser steps.
    """

    def __init__(self, *, variant: str = "spectral", latent: int = 16, hidden: Sequence[int] = (128, 128),
                 critic_hidden: Sequence[int] | None = None, n_critic: int = 5, gp_weight: float = 10.0,
                 seed: int = 0):
        if variant not in VARIANTS:
            raise ConfigError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if int(n_critic) < 1:
            raise ConfigError(f"n_critic must be >= 1, got {n_critic}")
        if not gp_weight >= 0:
            raise ConfigError(f"gp_weight must be >= 0, got {gp_weight}")
        self.config = dict(variant=variant, latent=int(latent), hidden=[int(h) for h in hidden],
                           critic_hidden=[int(h) for h in (critic_hidden or hidden)],
                           n_critic=int(n_critic), gp_weight=float(gp_weight))
        self.seed = int(seed)
        self.generator: Generator | None = None
        self.critic: SpectralNormCritic | None = None
        self.features = list(FEATURE_NAMES)
        self.mean: np.ndarray | None = None
        self.scale: np.ndarray | None = None
        self.history = pd.DataFrame()
        self.train_params: dict[str, Any] = {}
        self.trainer: Trainer | None = None
        self.plan: _GANPlan | None = None

    # -- modules -------------------------------------------------------------------------
    def _build(self) -> None:
        c = self.config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.generator = Generator(c["latent"], c["hidden"], output_spec(),
                                       torch.from_numpy(self.mean), torch.from_numpy(self.scale))
            self.critic = SpectralNormCritic(len(self.features), c["critic_hidden"],
                                             spectral=c["variant"] == "spectral")

    def standardise(self, table) -> np.ndarray:
        """Features of ``table`` (DataFrame/AnnData/path) in the training standardisation."""
        self._require_fitted()
        df = table if isinstance(table, pd.DataFrame) and list(table.columns) == self.features \
            else validate_feature_table(table)
        return (df[self.features].to_numpy(np.float64) - self.mean) / self.scale

    # -- training ------------------------------------------------------------------------
    def fit(
        self,
        data,
        *,
        epochs: int = 200,
        batch_size: int = 256,
        lr: float = 2e-4,
        lr_generator: float | None = None,
        betas: tuple[float, float] = (0.5, 0.9),
        val_fraction: float = 0.1,
        device: str = "auto",
        checkpoint_dir: str | os.PathLike[str] | None = None,
        checkpoint_every: int | None = None,
        resume: bool = False,
        progress: bool | str = "auto",
    ) -> InterfaceGAN:
        """Train on a feature table through :class:`bioml.train.Trainer`.

        Parameters
        ----------
        data
            Feature vectors: DataFrame, AnnData (e.g. :func:`bioml.sim.simulate_interface_features`)
            or a TSV/CSV/h5ad path; validated by :func:`validate_feature_table`.
        epochs, batch_size
            Epochs and real rows per generator update (each of the ``n_critic`` critic
            updates sees ``batch_size / n_critic`` of them).
        lr, lr_generator
            Adam learning rates of the critic and of the generator (default: ``lr``).
        betas
            Adam betas (WGAN-GP's ``(0.5, 0.9)`` by default).
        val_fraction
            Held-out real rows for the ``val_wasserstein`` curve (0: none).
        device, checkpoint_dir, checkpoint_every, resume, progress
            As in :class:`bioml.train.Trainer`.

        Returns
        -------
        self
        """
        df = validate_feature_table(data)
        X = df[self.features].to_numpy(np.float64)
        if X.shape[0] < 4:
            raise InputError(f"the GAN needs at least 4 training vectors, got {X.shape[0]}")
        self.mean = X.mean(axis=0)
        sd = X.std(axis=0)
        self.scale = np.where(sd > 1e-8 * np.maximum(1.0, np.abs(self.mean)), sd, 1.0)
        self._build()
        optim = dict(name="adam", lr_critic=float(lr), lr_generator=float(lr_generator or lr),
                     betas=tuple(float(b) for b in betas))
        c = self.config
        plan = _GANPlan(self.generator, self.critic, variant=c["variant"], n_critic=c["n_critic"],
                        gp_weight=c["gp_weight"], optim=optim)
        Z = ((X - self.mean) / self.scale).astype(np.float32)
        self.trainer = Trainer(
            epochs=epochs, batch_size=batch_size, min_batch_size=max(2, c["n_critic"]),
            val_fraction=val_fraction, monitor="wasserstein", restore_best=False,
            early_stopping_patience=None, device=device, precision="32", seed=self.seed,
            checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every, resume=resume,
            progress=progress,
        )
        self.plan = plan
        self.history = self.trainer.fit(plan, {"X": Z})
        self.generator.to("cpu").eval()
        self.critic.to("cpu").eval()
        self.critic.refine_spectral_norm(200)
        self.train_params = dict(epochs=epochs, batch_size=batch_size, lr=lr,
                                 lr_generator=lr_generator or lr, betas=list(betas),
                                 val_fraction=val_fraction, n_train=int(X.shape[0]),
                                 device=str(self.trainer.device))
        return self

    def _require_fitted(self):
        if self.generator is None:
            raise ConfigError("the GAN is not trained: call fit() or load() first")

    # -- generation ----------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, *, seed: int | None = None, round_counts: bool = True) -> pd.DataFrame:
        """Draw ``n`` new feature vectors (original units).

        Parameters
        ----------
        n
            Number of vectors.
        seed
            Seed of the noise (default: the model's seed).
        round_counts
            Round the integer-valued counts to the nearest integer (>= 0) and recompute
            the derived sums from the rounded parts; compositions are renormalised in
            float64 so they sum to their total to machine precision. ``False``: the raw
            continuous output (counts not integers).

        Returns
        -------
        pandas.DataFrame
            ``n x`` :data:`FEATURE_NAMES`, float64; passes :func:`validate_feature_table`
            when ``round_counts``.
        """
        self._require_fitted()
        g = torch.Generator().manual_seed(self.seed if seed is None else int(seed))
        z = torch.randn(int(n), self.config["latent"], generator=g)
        self.generator.eval()
        X = self.generator.generate(z).double().numpy()
        X = np.maximum(X, 0.0)
        if round_counts:
            idx = {f: i for i, f in enumerate(self.features)}
            spec = output_spec()
            for cols, total in spec.groups:
                X[:, cols] *= total / X[:, cols].sum(axis=1, keepdims=True)
            for i, f in enumerate(FEATURES):
                if f.integer and f.kind != "derived":
                    X[:, i] = np.rint(X[:, i])
            for f in FEATURES:
                if f.kind == "derived":
                    X[:, idx[f.name]] = X[:, [idx[p] for p in f.parts]].sum(axis=1)
        return pd.DataFrame(X, columns=self.features, index=pd.RangeIndex(int(n), name="generated"))

    def critic_spectral_norms(self, *, n_iter: int = 500) -> np.ndarray:
        """Spectral norm of each critic layer's weight as used (power iteration; see
        :func:`bioml.nn.layer_spectral_norms`). At most ``1 + 1e-3`` for ``"spectral"``."""
        self._require_fitted()
        return np.asarray(layer_spectral_norms(self.critic, n_iter=n_iter))

    # -- persistence ---------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save both networks, the standardisation, settings and history (atomically)."""
        self._require_fitted()
        payload = {
            "format": _SAVE_FORMAT,
            "config": self.config,
            "seed": self.seed,
            "features": self.features,
            "mean": torch.from_numpy(self.mean),
            "scale": torch.from_numpy(self.scale),
            "generator": {k: v.detach().cpu() for k, v in self.generator.state_dict().items()},
            "critic": {k: v.detach().cpu() for k, v in self.critic.state_dict().items()},
            "train_params": {k: (list(v) if isinstance(v, tuple) else v)
                             for k, v in self.train_params.items()},
            "history": {c: [float(v) for v in self.history[c]] for c in self.history.columns},
        }
        return save_payload(payload, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> InterfaceGAN:
        """Load a model written by :meth:`save` (on the CPU)."""
        p = load_payload(path, _SAVE_FORMAT, "interface GAN")
        if list(p["features"]) != list(FEATURE_NAMES):
            raise InputError(f"'{path}' was trained on other features than this bioml version's")
        self = cls(seed=p["seed"], **p["config"])
        self.mean = p["mean"].numpy().astype(np.float64)
        self.scale = p["scale"].numpy().astype(np.float64)
        self._build()
        self.generator.load_state_dict(p["generator"])
        self.critic.load_state_dict(p["critic"])
        self.generator.eval()
        self.critic.eval()
        self.train_params = dict(p["train_params"])
        self.history = pd.DataFrame(p["history"])
        return self


def critic_spectral_norms(model: InterfaceGAN, *, n_iter: int = 500) -> np.ndarray:
    """Alias of :meth:`InterfaceGAN.critic_spectral_norms`."""
    return model.critic_spectral_norms(n_iter=n_iter)


def evaluate_generated(generated, real, *, mean=None, scale=None, seed: int = 0,
                       n_permutations: int = 200) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two-sample metrics of generated against held-out real vectors (``bm.metrics``).

    Both sets are standardised with ``mean``/``scale`` (e.g. the GAN's training
    standardisation; default: the real set's), then compared with
    :func:`bioml.metrics.two_sample_table` (MMD² and its permutation p-value, classifier
    AUC, median/max KS, nearest-neighbour diversity ratio) and
    :func:`bioml.metrics.ks_per_feature`.

    Returns
    -------
    (table, ks)
        The tidy ``metric, value`` table and the per-feature KS table.
    """
    from ..metrics import ks_per_feature, two_sample_table

    g = validate_feature_table(generated) if not isinstance(generated, np.ndarray) else generated
    r = validate_feature_table(real) if not isinstance(real, np.ndarray) else real
    G = np.asarray(g[list(FEATURE_NAMES)] if isinstance(g, pd.DataFrame) else g, dtype=np.float64)
    R = np.asarray(r[list(FEATURE_NAMES)] if isinstance(r, pd.DataFrame) else r, dtype=np.float64)
    mu = R.mean(0) if mean is None else np.asarray(mean, dtype=np.float64)
    sd = R.std(0) if scale is None else np.asarray(scale, dtype=np.float64)
    sd = np.where(sd > 1e-12, sd, 1.0)
    Gs, Rs = (G - mu) / sd, (R - mu) / sd
    table = two_sample_table(Gs, Rs, names=list(FEATURE_NAMES), seed=seed, n_permutations=n_permutations)
    ks = ks_per_feature(Gs, Rs, names=list(FEATURE_NAMES))
    return table, ks


def _nn_to(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance from each row of ``a`` to its nearest row of ``b``."""
    from scipy.spatial import cKDTree

    return cKDTree(b).query(a, k=1)[0]


def evaluate(
    gan: InterfaceGAN,
    heldout,
    *,
    data_label: str = "simulated",
    reference=None,
    real=None,
    n_generate: int = 1000,
    seed: int = 0,
    n_permutations: int = 200,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Score a trained GAN: generated vectors against held-out ones, and beside real complexes.

    Every comparison is in the GAN's training standardisation.

    Parameters
    ----------
    gan
        A trained :class:`InterfaceGAN`.
    heldout
        Held-out vectors of the training distribution (not seen in training).
    data_label
        The ``data`` value of those rows: ``"simulated"`` (known distribution) or e.g.
        ``"table"``.
    reference
        Optional second independent sample of the training distribution (for simulated
        data: a fresh draw from the truth): its metrics against ``heldout`` are the noise
        floor a perfect generator would reach (``comparison = "truth_vs_heldout"``).
    real
        Optional real complexes' vectors (a handful): ``data = "real"`` rows with the
        mean distance of each real vector to its nearest generated vector
        (``nn_distance_to_generated``) beside the same statistic for held-out vectors
        (``heldout_nn_distance_to_generated``), the fraction of real feature values inside
        the generated 1-99% range (``marginal_coverage``), and the critic's
        ``E[C(real)] - E[C(generated)]``.
    n_generate, seed, n_permutations
        Generated vectors, seed (noise and metrics), MMD permutations.

    Returns
    -------
    (metrics, ks, generated)
        ``metrics``: tidy table ``data, comparison, metric, value`` (rows of
        :func:`bioml.metrics.two_sample_table` per comparison, plus
        ``critic_max_spectral_norm`` and ``constraint_violations`` under ``data =
        "model"``); ``ks``: per-feature KS of generated vs held-out; ``generated``: the
        sampled vectors (counts rounded).
    """
    from ..metrics import ks_per_feature, two_sample_table

    gen = gan.sample(int(n_generate), seed=seed)
    H = gan.standardise(validate_feature_table(heldout))
    G = gan.standardise(gen)
    rows = []

    def add(data, comparison, table):
        for m, v in zip(table["metric"], table["value"]):
            rows.append((data, comparison, m, float(v)))

    add(data_label, "generated_vs_heldout",
        two_sample_table(G, H, names=gan.features, seed=seed, n_permutations=n_permutations))
    if reference is not None:
        Rf = gan.standardise(validate_feature_table(reference))
        add(data_label, "truth_vs_heldout",
            two_sample_table(Rf, H, names=gan.features, seed=seed, n_permutations=n_permutations))
    ks = ks_per_feature(G, H, names=gan.features)
    try:
        validate_feature_table(gen, source="the generated vectors")
        violations = 0.0
    except InputError as err:  # reported, not raised: the metrics table says it
        log.warning("generated vectors violate a constraint: %s", err)
        violations = 1.0
    norms = gan.critic_spectral_norms()
    rows.append(("model", gan.config["variant"], "critic_max_spectral_norm", float(norms.max())))
    rows.append(("model", gan.config["variant"], "constraint_violations", violations))
    if real is not None:
        rdf = validate_feature_table(real) if not isinstance(real, pd.DataFrame) or \
            list(real.columns) != gan.features else real
        Rr = gan.standardise(rdf[gan.features])
        lo, hi = np.quantile(G, 0.01, axis=0), np.quantile(G, 0.99, axis=0)
        with torch.no_grad():
            c = gan.critic.eval()
            w = float(c(torch.from_numpy(Rr).float()).mean() - c(torch.from_numpy(G).float()).mean())
        for m, v in (
            ("n_vectors", float(Rr.shape[0])),
            ("nn_distance_to_generated", float(_nn_to(Rr, G).mean())),
            ("heldout_nn_distance_to_generated", float(_nn_to(H, G).mean())),
            ("marginal_coverage", float(((Rr >= lo) & (Rr <= hi)).mean())),
            ("critic_wasserstein", w),
        ):
            rows.append(("real", "real_complexes_vs_generated", m, v))
    metrics = pd.DataFrame(rows, columns=["data", "comparison", "metric", "value"])
    return metrics, ks, gen
