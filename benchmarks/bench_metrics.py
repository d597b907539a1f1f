"""Timing of the integration-metric table (``bm.metrics.integration_metrics``) on one representation.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_metrics.py [--n-obs 20000] [--n-dims 50] [--threads 2]

The issue's target: the whole metric table for 20000 cells in under a minute on 2 cores.
Data: ``--n-dims`` Gaussian dimensions, 3 labels (separated) and 3 batches (shifted), so
every metric has something to measure. Prints one table: each metric's own time when
called alone (each builds what it needs) and the table's time (one distance pass shared by
the silhouettes and the kNN graph, one graph shared by the graph metrics), with the
scikit-learn silhouette beside ours for reference (``--sklearn``; slow).
Shared machines are noisy: the load average is printed with the table.
"""

from __future__ import annotations

import argparse
import os
import time

import anndata as ad
import numpy as np
import pandas as pd


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-obs", type=int, default=20000)
    p.add_argument("--n-dims", type=int, default=50)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--sklearn", action="store_true", help="also time sklearn.metrics.silhouette_samples")
    a = p.parse_args()
    from threadpoolctl import threadpool_limits

    threadpool_limits(a.threads)
    import bioml as bm

    rng = np.random.default_rng(0)
    lab = rng.integers(0, 3, a.n_obs)
    batch = rng.integers(0, 3, a.n_obs)
    X = rng.normal(size=(a.n_obs, a.n_dims))
    X[np.arange(a.n_obs), lab] += 4.0
    X[np.arange(a.n_obs), 3 + batch] += 1.0
    adata = ad.AnnData(
        obs=pd.DataFrame(
            {"batch": batch.astype(str), "label": lab.astype(str)}, index=np.arange(a.n_obs).astype(str)
        )
    )
    adata.obsm["X_rep"] = X
    bm.metrics.neighbors(X[:200])  # compile numba (UMAP connectivities) outside the timings

    rows = []

    def timed(name, f):
        t = time.perf_counter()
        f()
        rows.append((name, time.perf_counter() - t))

    timed(
        "integration_metrics (whole table)",
        lambda: bm.metrics.integration_metrics(
            adata, batch_key="batch", label_key="label", use_rep="X_rep", n_jobs=a.threads
        ),
    )
    knn = bm.metrics.neighbors(X, n_jobs=a.threads)
    timed(
        "  neighbors (k=90, exact, + UMAP connectivities)", lambda: bm.metrics.neighbors(X, n_jobs=a.threads)
    )
    timed("  asw_label", lambda: bm.metrics.asw_label(X, lab))
    timed("  asw_batch", lambda: bm.metrics.asw_batch(X, batch, lab))
    timed("  ilisi (given the graph)", lambda: bm.metrics.ilisi(knn, batch))
    timed("  clisi (given the graph)", lambda: bm.metrics.clisi(knn, lab))
    timed("  kbet (per label)", lambda: bm.metrics.kbet(X, batch, lab))
    timed("  pcr_batch", lambda: bm.metrics.pcr_batch(X, batch))
    timed("  graph_connectivity", lambda: bm.metrics.graph_connectivity(knn, lab))
    timed("  nmi_ari_leiden (3 seeds)", lambda: bm.metrics.nmi_ari_leiden(knn, lab))
    if a.sklearn:
        from sklearn.metrics import silhouette_samples

        timed("  sklearn silhouette_samples (label ASW, reference)", lambda: silhouette_samples(X, lab))
    load = os.getloadavg()[0]
    print(
        f"integration metrics: {a.n_obs} samples x {a.n_dims} dims, {a.threads} threads, "
        f"load average {load:.1f}"
    )
    print(f"{'step':<55}{'seconds':>10}")
    for name, t in rows:
        print(f"{name:<55}{t:>10.2f}")


if __name__ == "__main__":
    main()
