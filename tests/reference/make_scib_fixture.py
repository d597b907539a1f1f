"""Make the scib-metrics cross-check fixture (tests/test_evaluate.py reads it).

Run in a throwaway environment with scib-metrics (it needs jax), not the project's::

    python3.11 -m venv /tmp/scibenv && /tmp/scibenv/bin/pip install scib-metrics
    /tmp/scibenv/bin/python tests/reference/make_scib_fixture.py

Writes ``tests/reference/fixtures/scib_fixture.tsv.gz`` (300 samples x 20 dimensions,
3 batches, 3 labels, seeded; values with 17 significant digits) and
``tests/reference/scib_metrics.json`` (scib-metrics' values, its version, and the
neighbour settings). Neighbours: exact (scikit-learn brute force), 90 with the sample
itself for LISI/kBET, the first 15 for the connectivity graph.
"""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
import scib_metrics as sm
from scib_metrics.nearest_neighbors import NeighborsResults
from sklearn.neighbors import NearestNeighbors

HERE = Path(__file__).resolve().parent


def fixture() -> pd.DataFrame:
    rng = np.random.default_rng(20261123)
    n, d = 300, 20
    label = rng.integers(0, 3, n)
    # batches partly follow the labels, as in real data
    batch = np.where(rng.random(n) < 0.4, label, rng.integers(0, 3, n))
    X = rng.normal(size=(n, d))
    X[np.arange(n), label] += 2.5
    X[np.arange(n), 3 + batch] += 1.0
    df = pd.DataFrame(X, columns=[f"d{j}" for j in range(d)])
    df.insert(0, "label", [f"l{v}" for v in label])
    df.insert(0, "batch", [f"b{v}" for v in batch])
    return df


def main() -> None:
    df = fixture()
    out = HERE / "fixtures" / "scib_fixture.tsv.gz"
    df.to_csv(out, sep="\t", index=False, float_format="%.17g")
    df = pd.read_csv(out, sep="\t", float_precision="round_trip")
    X = df.filter(like="d").to_numpy()
    batch, label = df["batch"].to_numpy(), df["label"].to_numpy()
    dist, idx = NearestNeighbors(n_neighbors=90, algorithm="brute").fit(X).kneighbors(X)
    nn90 = NeighborsResults(indices=idx, distances=dist)
    nn15 = nn90.subset_neighbors(15)
    ref = {
        "scib_metrics_version": version("scib-metrics"),
        "jax_version": version("jax"),
        "settings": {"max_neighbors": 90, "n_neighbors": 15, "kbet_k_subset": 50},
        "silhouette_label": float(sm.silhouette_label(X, label)),
        "silhouette_batch": float(sm.silhouette_batch(X, label, batch)),
        "ilisi": float(sm.ilisi_knn(nn90, batch)),
        "clisi": float(sm.clisi_knn(nn90, label)),
        "lisi_batch_per_cell_first10": [float(v) for v in sm.lisi_knn(nn90, batch)[:10]],
        "kbet": float(sm.kbet(nn90, batch)[0]),
        "kbet_k50": float(sm.kbet(nn90.subset_neighbors(50), batch)[0]),
        "kbet_per_label": float(sm.kbet_per_label(nn15, batch, label)),
        "pcr_batch": float(sm.utils.principal_component_regression(X, batch, categorical=True)),
        "graph_connectivity_knn15_strong": float(sm.graph_connectivity(nn15, label)),
        "nmi_ari_leiden_resolution1": {
            k: float(v)
            for k, v in sm.nmi_ari_cluster_labels_leiden(
                nn15, label, optimize_resolution=False, resolution=1.0
            ).items()
        },
    }
    (HERE / "scib_metrics.json").write_text(json.dumps(ref, indent=2) + "\n")
    print(json.dumps(ref, indent=2))


if __name__ == "__main__":
    main()
