r"""A seeded simulator of count data with known batch and condition effects.

The generative model
--------------------
Samples ``i`` (``n_obs``, called cells), genes ``g`` (``n_vars``), batches ``b``
(``n_batches``), conditions ``k`` (``n_conditions``; condition 0 is the reference). All
logarithms are natural logarithms.

*Genes* (as in Splatter). Relative expression ``w_g ~ Gamma(mean_shape, 1)``; the base mean
is ``base_mean_g = library_size_mean * w_g / sum(w)``, the expected count of gene ``g`` in
a reference-condition sample of size factor 1 and no batch effect (so the base means sum to
``library_size_mean``). The dispersion follows the DESeq2-style trend with log-normal
scatter, ``phi_g = (dispersion_asymptote + dispersion_trend / base_mean_g) *
exp(dispersion_sd * z_g)``, clipped to ``[1e-8, 1e3]``.

*Conditions.* For each condition ``k >= 1`` a random ``round(de_fraction * n_vars)`` genes
are differentially expressed, with log-fold change ``lfc_kg = s * (de_lfc_mean +
de_lfc_sd * z)``, ``s`` a random sign; every other ``lfc_kg`` (and all of row 0) is 0. The
sizes of the conditions are fixed: balanced when ``rare_fraction == 0``; otherwise the last
condition gets ``round(rare_fraction * n_obs)`` samples (at least 1, and at most
``n_obs - n_conditions + 1`` so that every condition has a sample) and the others share the
rest equally. The labels are shuffled over the samples.

*Batches*, with the confounding knob ``c`` (``confounding``; decisions.md item 10). Every
condition owns a *home set* ``H_k`` of batches: when ``n_batches >= n_conditions`` the
batches are split into ``n_conditions`` contiguous near-equal groups
(:func:`numpy.array_split`, so condition 0 owns the first group); when ``n_batches <
n_conditions``, ``H_k = {k mod n_batches}``. A sample of condition ``k`` lands in ``H_k``
with probability ``c + (1 - c) |H_k| / B`` and outside it otherwise; within the chosen set
its batch is uniform. ``c = 0`` is balanced in expectation; ``c = 1`` puts every sample in
its home set, so (when ``n_batches >= n_conditions``) each batch holds one condition and the
design is aliased.

*Batch effects.* Per batch and gene: an additive shift of the log mean,
``shift_bg = batch_shift_sd * z``; a multiplicative scale ``scale_bg = exp(batch_scale_sd *
z)`` of the sample-to-sample (biological) log-variation, the count analogue of ComBat's
``delta_bg`` (see below); and per batch a library-size factor ``exp(lib_b)``, ``lib_b =
batch_library_sd * z``.

*Samples.* Size factor ``s_i = exp(library_size_sd * z_i - library_size_sd**2 / 2)`` (mean
1) times the batch factor ``exp(lib_b)``. ``n_anomalies`` random samples are anomalous: in
each, a random ``round(anomaly_gene_fraction * n_vars)`` genes (at least one) get
``+-anomaly_strength`` (random sign) added to their log mean.

*Counts.* With ``b = batch(i)``, ``k = condition(i)``::

    log mu_ig = log s_i + lib_b + log base_mean_g + lfc_kg + shift_bg + anomaly_ig
    G_ig     ~ Gamma(shape 1/phi_g, scale phi_g)           # mean 1, variance phi_g
    rate_ig  = mu_ig * G_ig ** scale_bg / E[G ** scale_bg]
    X_ig     ~ Poisson(rate_ig)

With ``scale_bg = 1`` this is exactly the negative binomial with mean ``mu_ig`` and
dispersion ``phi_g`` (variance ``mu + phi mu^2``). A batch scale multiplies the log of the
biological noise, ``log G``, by ``scale_bg`` (a spread of ``log G`` about its centre is
scaled by ``scale_bg``) and divides by the mean
(``E[G^l] = Gamma(a + l) / (Gamma(a) a^l)``, ``a = 1/phi``), so the expected count stays
``mu_ig``: ``shift_bg`` moves the mean, ``scale_bg`` the spread around it.

*Random streams.* :class:`numpy.random.SeedSequence` ``(seed)`` is spawned into
independent streams for the design (conditions, batches), the genes, the DE effects, the
batch effects, the size factors, the anomalies, the gamma noise and the Poisson noise, and
each stream draws standard variates that are then scaled. Changing one knob therefore
leaves the other parts unchanged: a confounding sweep keeps the same genes, effects and
conditions (and, with the same uniforms, raising ``c`` only moves samples into their home
sets). The counts are drawn in fixed chunks of rows (their size depends on ``n_vars``
only), chunk ``j`` from the ``j``-th children of the gamma and Poisson streams, in
parallel threads; the result does not depend on the number of threads. The batch-free
twin (``return_batch_free=True``) reuses the gamma draws ``G`` exactly and restarts each
chunk's Poisson stream from the same state, so with all batch standard deviations 0 the
data and its twin are identical.
"""

from __future__ import annotations

import math
import numbers
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy.special import gammaln

from ..errors import ConfigError

__all__ = ["simulate_counts"]

#: elements per chunk of rows when sampling the counts (bounds the temporary memory)
_CHUNK_ELEMENTS = 1 << 18
_PHI_MIN, _PHI_MAX = 1e-8, 1e3

# Order of the spawned streams; append only, so existing seeds keep their data.
_STREAMS = ("design", "genes", "de", "batch", "library", "anomalies", "gamma", "poisson")


# --------------------------------------------------------------------------- validation
def _int_arg(name: str, value: Any, *, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ConfigError(f"{name} must be {bounds}, got {value}")
    return value


def _float_arg(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    value = float(value)
    bad = not math.isfinite(value)
    if low is not None:
        bad |= value <= low if low_open else value < low
    if high is not None:
        bad |= value >= high if high_open else value > high
    if bad:
        lo = "" if low is None else ("(" if low_open else "[") + f"{low:g}"
        hi = "" if high is None else f"{high:g}" + (")" if high_open else "]")
        if low is not None and high is not None:
            where = f"in {lo}, {hi}"
        elif low is not None:
            where = f"{'>' if low_open else '>='} {low:g}"
        else:
            where = "finite"
        raise ConfigError(f"{name} must be {where}, got {value!r}")
    return value


# ------------------------------------------------------------------------------- design
def _home_batches(n_batches: int, n_conditions: int) -> list[np.ndarray]:
    """The home set of batches of each condition (decisions.md item 10)."""
    if n_batches >= n_conditions:
        groups = np.array_split(np.arange(n_batches), n_conditions)
        return [np.asarray(h, dtype=np.int64) for h in groups]
    return [np.array([k % n_batches], dtype=np.int64) for k in range(n_conditions)]


def _condition_sizes(n_obs: int, n_conditions: int, rare_fraction: float) -> np.ndarray:
    def split(n: int, k: int) -> np.ndarray:
        sizes = np.full(k, n // k, dtype=np.int64)
        sizes[: n % k] += 1
        return sizes

    if rare_fraction == 0.0:
        return split(n_obs, n_conditions)
    n_rare = min(max(1, round(rare_fraction * n_obs)), n_obs - (n_conditions - 1))
    return np.concatenate([split(n_obs - n_rare, n_conditions - 1), [n_rare]])


def _assign_batches(
    condition: np.ndarray,
    homes: list[np.ndarray],
    n_batches: int,
    confounding: float,
    u_home: np.ndarray,
    u_pick: np.ndarray,
) -> np.ndarray:
    """Batch of each sample from two uniforms per sample (vectorised per condition)."""
    batch = np.empty(condition.shape[0], dtype=np.int64)
    all_batches = np.arange(n_batches)
    for k, home in enumerate(homes):
        idx = np.flatnonzero(condition == k)
        away = np.setdiff1d(all_batches, home)
        p_home = confounding + (1.0 - confounding) * home.size / n_batches
        at_home = (u_home[idx] < p_home) | (away.size == 0)
        for target, where in ((home, at_home), (away, ~at_home)):
            if target.size == 0 or not where.any():
                continue
            pick = np.minimum((u_pick[idx[where]] * target.size).astype(np.int64), target.size - 1)
            batch[idx[where]] = target[pick]
    return batch


# ------------------------------------------------------------------------------ sampling
def _child_seed(parent: np.random.SeedSequence, index: int) -> np.random.SeedSequence:
    """The ``index``-th child of ``parent``, as ``parent.spawn`` makes it, but stateless."""
    return np.random.SeedSequence(parent.entropy, spawn_key=(*parent.spawn_key, index))


def _n_threads(n_threads: int | None) -> int:
    if n_threads is not None:
        return n_threads
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        available = os.cpu_count() or 1
    return max(1, min(available, 8))


def _sample_counts(
    *,
    log_base: np.ndarray,
    lfc: np.ndarray,
    condition: np.ndarray,
    batch: np.ndarray,
    log_size: np.ndarray,
    anomaly_row: np.ndarray,
    anomaly_lfc: np.ndarray,
    shift: np.ndarray,
    scale: np.ndarray,
    log_norm: np.ndarray,
    shape: np.ndarray,
    seed_gamma: np.random.SeedSequence,
    seed_poisson: np.random.SeedSequence,
    n_threads: int,
) -> np.ndarray:
    """Draw the count matrix in chunks of rows, each from its own pair of generators.

    Chunk ``j`` (a fixed number of rows that depends on ``n_vars`` only) draws its gamma
    and Poisson variates from the ``j``-th children of ``seed_gamma`` and
    ``seed_poisson``, so the result does not depend on ``n_threads``, and a second call
    with other effects (the batch-free twin) reuses the same gamma draws and restarts each
    chunk's Poisson stream from the same state. numpy's samplers release the GIL, so the
    chunks run in parallel threads.
    """
    n_obs, n_vars = condition.shape[0], log_base.shape[0]
    gamma_scale = 1.0 / shape
    use_scale = not bool(np.all(scale == 1.0))
    X = np.empty((n_obs, n_vars), dtype=np.float32)
    step = max(1, _CHUNK_ELEMENTS // n_vars)
    starts = range(0, n_obs, step)

    def run(j: int) -> None:
        rows = slice(starts[j], min(starts[j] + step, n_obs))
        b = batch[rows]
        eta = lfc[condition[rows]] + shift[b]
        eta += log_base
        eta += log_size[rows][:, None]
        eta -= log_norm[b]
        a_rows = anomaly_row[rows]
        has = a_rows >= 0
        if has.any():
            eta[has] += anomaly_lfc[a_rows[has]]
        rng_gamma = np.random.default_rng(_child_seed(seed_gamma, j))
        noise = rng_gamma.gamma(shape, gamma_scale, size=eta.shape)
        if use_scale:
            np.power(noise, scale[b], out=noise)
        np.exp(eta, out=eta)
        eta *= noise
        rng_poisson = np.random.default_rng(_child_seed(seed_poisson, j))
        X[rows] = rng_poisson.poisson(eta)

    if n_threads == 1 or len(starts) == 1:
        for j in range(len(starts)):
            run(j)
    else:
        with ThreadPoolExecutor(max_workers=n_threads) as pool:
            list(pool.map(run, range(len(starts))))
    return X


# ---------------------------------------------------------------------------- simulator
def simulate_counts(
    n_obs: int = 600,
    n_vars: int = 1000,
    *,
    n_batches: int = 3,
    n_conditions: int = 3,
    confounding: float = 0.0,
    rare_fraction: float = 0.0,
    de_fraction: float = 0.1,
    de_lfc_mean: float = 1.0,
    de_lfc_sd: float = 0.5,
    batch_shift_sd: float = 0.5,
    batch_scale_sd: float = 0.2,
    library_size_mean: float = 10_000.0,
    library_size_sd: float = 0.3,
    batch_library_sd: float = 0.3,
    mean_shape: float = 0.6,
    dispersion_asymptote: float = 0.1,
    dispersion_trend: float = 0.5,
    dispersion_sd: float = 0.3,
    n_anomalies: int = 0,
    anomaly_strength: float = 3.0,
    anomaly_gene_fraction: float = 0.1,
    return_batch_free: bool = False,
    seed: int = 0,
    n_threads: int | None = None,
) -> AnnData | tuple[AnnData, AnnData]:
    """Simulate negative-binomial counts with known batch and condition effects.

    The generative model is described in the docstring of :mod:`bioml.sim._counts`
    (``help(bioml.sim)`` shows it too). All logarithms are natural logarithms.

    Parameters
    ----------
    n_obs
        Number of samples (cells), at least ``n_conditions``.
    n_vars
        Number of genes.
    n_batches
        Number of batches ``B >= 1``.
    n_conditions
        Number of biological conditions ``K >= 1``; condition 0 is the reference.
    confounding
        The confounding knob ``c`` in ``[0, 1]``: a sample lands in its condition's home
        set of batches with probability ``c + (1 - c) |home| / B``. 0 is balanced in
        expectation, 1 makes batch determine condition (when ``B >= K``).
    rare_fraction
        In ``[0, 1)``. If positive, the last condition gets this fraction of the samples
        (at least one) and the others share the rest equally; 0 means balanced. Needs
        ``K >= 2`` when positive.
    de_fraction
        Fraction of the genes that are differentially expressed in each non-reference
        condition (drawn independently per condition).
    de_lfc_mean, de_lfc_sd
        DE log-fold changes are ``sign * Normal(de_lfc_mean, de_lfc_sd)`` with a random
        sign.
    batch_shift_sd
        Standard deviation of the per-batch, per-gene additive shift of the log mean.
    batch_scale_sd
        Standard deviation of the log of the per-batch, per-gene scale of the biological
        log-variation (``scale = exp(Normal(0, batch_scale_sd))``).
    library_size_mean
        Sum of the base means: the expected library size of a reference sample with
        size factor 1 and no batch effect.
    library_size_sd
        Standard deviation of the log size factor (log-normal, mean 1).
    batch_library_sd
        Standard deviation of the per-batch log library-size factor.
    mean_shape
        Shape of the gamma distribution of the relative gene means (Splatter's 0.6).
    dispersion_asymptote, dispersion_trend, dispersion_sd
        Dispersion ``phi = (asymptote + trend / base_mean) * exp(Normal(0, sd))``; the
        first two may not both be 0.
    n_anomalies
        Number of anomalous samples, ``0 <= n_anomalies <= n_obs``.
    anomaly_strength
        Log-scale change (``+-``, random sign) of the affected genes of an anomaly.
    anomaly_gene_fraction
        Fraction of the genes (in ``(0, 1]``) changed in each anomalous sample.
    return_batch_free
        Also return the batch-free twin: the same samples, conditions, genes, DE effects,
        size factors (without the batch library factor) and anomalies, the same gamma
        draws and the same Poisson stream, but shift 0, scale 1 and batch library factor 1.
    seed
        Non-negative integer seed; the same seed gives identical data.
    n_threads
        Threads that sample the counts; ``None`` uses the available CPUs (at most 8).
        It does not change the result and is not recorded in ``uns["sim"]["params"]``.

    Returns
    -------
    AnnData | tuple[AnnData, AnnData]
        ``adata`` (or ``(adata, twin)``) with

        ``X``
            Raw integer counts, dense ``float32``, ``n_obs x n_vars``.
        ``obs_names``, ``var_names``
            ``"cell0000"``, ... and ``"gene0000"``, ... (zero-padded to at least 4 digits).
        ``obs["batch"]``
            Categorical, ``"batch0"`` ... ``"batch{B-1}"`` in that category order. The
            twin keeps the labels.
        ``obs["condition"]``
            Categorical, ``"cond0"`` (the reference) ... ``"cond{K-1}"``; with
            ``rare_fraction > 0`` the last one is rare.
        ``obs["is_anomaly"]``
            Bool, ``True`` for the ``n_anomalies`` anomalous samples.
        ``obs["library_size_factor"]``
            The sample's total size factor ``s_i * exp(lib_b)`` (the twin: ``s_i``).
        ``var["base_mean"]``, ``var["dispersion"]``
            ``base_mean_g`` and ``phi_g``.
        ``var["is_de"]``
            Bool, DE in any non-reference condition.
        ``uns["sim"]``
            The ground truth, a dict that round-trips through ``.h5ad``:

            ``"params"``: every argument, as plain Python values;
            ``"true_condition_lfc"``: ``K x n_vars`` float, row 0 zeros;
            ``"de_genes"``: ``K x n_vars`` bool, the non-zero entries of the above;
            ``"true_batch_shift"``: ``B x n_vars`` float (twin: zeros);
            ``"true_batch_scale"``: ``B x n_vars`` float (twin: ones);
            ``"true_batch_library"``: ``B`` log library factors (twin: zeros);
            ``"home_batches"``: dict condition name -> int array of batch indices (a
            dict rather than a list of lists, since ragged lists do not round-trip);
            ``"anomaly_index"``: int array, sorted positions of the anomalous samples;
            ``"anomaly_lfc"``: ``n_anomalies x n_vars`` float, the log-scale change of
            each anomalous sample (rows in the order of ``"anomaly_index"``);
            ``"batch_free"``: ``False`` (the twin: ``True``).

    Raises
    ------
    ConfigError
        If an argument is of the wrong type or out of range.

    Examples
    --------
    >>> import bioml as bm
    >>> adata, twin = bm.sim.simulate_counts(600, 1000, confounding=0.5,
    ...                                      return_batch_free=True, seed=1)
    >>> adata.obs["batch"].cat.categories.tolist()
    ['batch0', 'batch1', 'batch2']
    """
    # ---- validate everything before drawing anything
    n_obs = _int_arg("n_obs", n_obs, low=1)
    n_vars = _int_arg("n_vars", n_vars, low=1)
    n_batches = _int_arg("n_batches", n_batches, low=1)
    n_conditions = _int_arg("n_conditions", n_conditions, low=1)
    if n_obs < n_conditions:
        raise ConfigError(f"n_obs ({n_obs}) must be at least n_conditions ({n_conditions})")
    confounding = _float_arg("confounding", confounding, low=0.0, high=1.0)
    rare_fraction = _float_arg("rare_fraction", rare_fraction, low=0.0, high=1.0, high_open=True)
    if rare_fraction > 0.0 and n_conditions < 2:
        raise ConfigError("rare_fraction > 0 needs n_conditions >= 2")
    de_fraction = _float_arg("de_fraction", de_fraction, low=0.0, high=1.0)
    de_lfc_mean = _float_arg("de_lfc_mean", de_lfc_mean, low=0.0)
    de_lfc_sd = _float_arg("de_lfc_sd", de_lfc_sd, low=0.0)
    batch_shift_sd = _float_arg("batch_shift_sd", batch_shift_sd, low=0.0)
    batch_scale_sd = _float_arg("batch_scale_sd", batch_scale_sd, low=0.0)
    library_size_mean = _float_arg("library_size_mean", library_size_mean, low=0.0, low_open=True)
    library_size_sd = _float_arg("library_size_sd", library_size_sd, low=0.0)
    batch_library_sd = _float_arg("batch_library_sd", batch_library_sd, low=0.0)
    mean_shape = _float_arg("mean_shape", mean_shape, low=0.0, low_open=True)
    dispersion_asymptote = _float_arg("dispersion_asymptote", dispersion_asymptote, low=0.0)
    dispersion_trend = _float_arg("dispersion_trend", dispersion_trend, low=0.0)
    dispersion_sd = _float_arg("dispersion_sd", dispersion_sd, low=0.0)
    if dispersion_asymptote == 0.0 and dispersion_trend == 0.0:
        raise ConfigError("dispersion_asymptote and dispersion_trend may not both be 0")
    n_anomalies = _int_arg("n_anomalies", n_anomalies, low=0, high=n_obs)
    anomaly_strength = _float_arg("anomaly_strength", anomaly_strength, low=0.0)
    anomaly_gene_fraction = _float_arg(
        "anomaly_gene_fraction", anomaly_gene_fraction, low=0.0, high=1.0, low_open=True
    )
    if not isinstance(return_batch_free, (bool, np.bool_)):
        raise ConfigError(f"return_batch_free must be a bool, got {return_batch_free!r}")
    return_batch_free = bool(return_batch_free)
    seed = _int_arg("seed", seed, low=0)
    if n_threads is not None:
        n_threads = _int_arg("n_threads", n_threads, low=1)
    n_threads = _n_threads(n_threads)

    params: dict[str, Any] = dict(
        n_obs=n_obs,
        n_vars=n_vars,
        n_batches=n_batches,
        n_conditions=n_conditions,
        confounding=confounding,
        rare_fraction=rare_fraction,
        de_fraction=de_fraction,
        de_lfc_mean=de_lfc_mean,
        de_lfc_sd=de_lfc_sd,
        batch_shift_sd=batch_shift_sd,
        batch_scale_sd=batch_scale_sd,
        library_size_mean=library_size_mean,
        library_size_sd=library_size_sd,
        batch_library_sd=batch_library_sd,
        mean_shape=mean_shape,
        dispersion_asymptote=dispersion_asymptote,
        dispersion_trend=dispersion_trend,
        dispersion_sd=dispersion_sd,
        n_anomalies=n_anomalies,
        anomaly_strength=anomaly_strength,
        anomaly_gene_fraction=anomaly_gene_fraction,
        return_batch_free=return_batch_free,
        seed=seed,
    )

    seeds = dict(zip(_STREAMS, np.random.SeedSequence(seed).spawn(len(_STREAMS))))
    rng = {name: np.random.default_rng(seeds[name]) for name in _STREAMS[:6]}

    # ---- design: conditions (fixed sizes, shuffled), then batches
    sizes = _condition_sizes(n_obs, n_conditions, rare_fraction)
    condition = rng["design"].permutation(np.repeat(np.arange(n_conditions), sizes))
    u_home = rng["design"].random(n_obs)
    u_pick = rng["design"].random(n_obs)
    homes = _home_batches(n_batches, n_conditions)
    batch = _assign_batches(condition, homes, n_batches, confounding, u_home, u_pick)

    # ---- genes: base means and dispersions
    w = rng["genes"].gamma(mean_shape, 1.0, size=n_vars)
    w = np.maximum(w, np.finfo(np.float64).tiny)
    base_mean = library_size_mean * w / w.sum()
    z_disp = rng["genes"].standard_normal(n_vars)
    phi = (dispersion_asymptote + dispersion_trend / base_mean) * np.exp(dispersion_sd * z_disp)
    phi = np.clip(phi, _PHI_MIN, _PHI_MAX)
    shape = 1.0 / phi

    # ---- condition effects (the same draws whatever de_fraction is)
    n_de = int(round(de_fraction * n_vars))
    lfc = np.zeros((n_conditions, n_vars))
    de_genes = np.zeros((n_conditions, n_vars), dtype=bool)
    for k in range(1, n_conditions):
        order = rng["de"].permutation(n_vars)
        sign = np.where(rng["de"].random(n_vars) < 0.5, -1.0, 1.0)
        z = rng["de"].standard_normal(n_vars)
        genes = order[:n_de]
        lfc[k, genes] = sign[genes] * (de_lfc_mean + de_lfc_sd * z[genes])
        de_genes[k, genes] = True

    # ---- batch effects
    shift = batch_shift_sd * rng["batch"].standard_normal((n_batches, n_vars))
    scale = np.exp(batch_scale_sd * rng["batch"].standard_normal((n_batches, n_vars)))
    batch_library = batch_library_sd * rng["batch"].standard_normal(n_batches)
    # log E[G ** scale] for G ~ Gamma(a, 1/a): exact 0 where scale is exactly 1
    log_norm = gammaln(shape + scale) - gammaln(shape) - scale * np.log(shape)
    log_norm[scale == 1.0] = 0.0

    # ---- size factors
    log_size = library_size_sd * rng["library"].standard_normal(n_obs) - library_size_sd**2 / 2

    # ---- anomalies
    anomaly_index = np.sort(rng["anomalies"].permutation(n_obs)[:n_anomalies])
    n_anom_genes = max(1, int(round(anomaly_gene_fraction * n_vars)))
    ranks = np.argsort(rng["anomalies"].random((n_anomalies, n_vars)), axis=1)[:, :n_anom_genes]
    sign = np.where(rng["anomalies"].random((n_anomalies, n_vars)) < 0.5, -1.0, 1.0)
    anomaly_lfc = np.zeros((n_anomalies, n_vars))
    rows = np.arange(n_anomalies)[:, None]
    anomaly_lfc[rows, ranks] = anomaly_strength * sign[rows, ranks]
    anomaly_row = np.full(n_obs, -1, dtype=np.int64)
    anomaly_row[anomaly_index] = np.arange(n_anomalies)

    # ---- counts
    common = dict(
        log_base=np.log(base_mean),
        lfc=lfc,
        condition=condition,
        batch=batch,
        anomaly_row=anomaly_row,
        anomaly_lfc=anomaly_lfc,
        shape=shape,
        seed_gamma=seeds["gamma"],
        seed_poisson=seeds["poisson"],
        n_threads=n_threads,
    )
    X = _sample_counts(
        **common,
        log_size=log_size + batch_library[batch],
        shift=shift,
        scale=scale,
        log_norm=log_norm,
    )

    # ---- assemble
    w_obs, w_var = (max(4, len(str(n - 1))) for n in (n_obs, n_vars))
    obs_names = pd.Index([f"cell{i:0{w_obs}d}" for i in range(n_obs)])
    var_names = pd.Index([f"gene{g:0{w_var}d}" for g in range(n_vars)])
    batch_names = [f"batch{b}" for b in range(n_batches)]
    cond_names = [f"cond{k}" for k in range(n_conditions)]
    is_anomaly = np.zeros(n_obs, dtype=bool)
    is_anomaly[anomaly_index] = True

    def build(X: np.ndarray, log_total: np.ndarray, truth: dict[str, Any]) -> AnnData:
        obs = pd.DataFrame(
            {
                "batch": pd.Categorical.from_codes(batch, categories=batch_names),
                "condition": pd.Categorical.from_codes(condition, categories=cond_names),
                "is_anomaly": is_anomaly.copy(),
                "library_size_factor": np.exp(log_total),
            },
            index=obs_names.copy(),
        )
        var = pd.DataFrame(
            {"base_mean": base_mean, "dispersion": phi, "is_de": de_genes.any(axis=0)},
            index=var_names.copy(),
        )
        sim = {
            "params": dict(params),
            "true_condition_lfc": lfc.copy(),
            "de_genes": de_genes.copy(),
            **truth,
            "home_batches": {cond_names[k]: h.copy() for k, h in enumerate(homes)},
            "anomaly_index": anomaly_index.astype(np.int64),
            "anomaly_lfc": anomaly_lfc.copy(),
        }
        return AnnData(X=X, obs=obs, var=var, uns={"sim": sim})

    adata = build(
        X,
        log_size + batch_library[batch],
        {
            "true_batch_shift": shift,
            "true_batch_scale": scale,
            "true_batch_library": batch_library,
            "batch_free": False,
        },
    )
    if not return_batch_free:
        return adata

    zeros = np.zeros((n_batches, n_vars))
    X_free = _sample_counts(
        **common,
        log_size=log_size,
        shift=zeros,
        scale=np.ones((n_batches, n_vars)),
        log_norm=zeros,
    )
    twin = build(
        X_free,
        log_size,
        {
            "true_batch_shift": zeros.copy(),
            "true_batch_scale": np.ones((n_batches, n_vars)),
            "true_batch_library": np.zeros(n_batches),
            "batch_free": True,
        },
    )
    return adata, twin
