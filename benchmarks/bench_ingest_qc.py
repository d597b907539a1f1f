"""Ingest and QC timings beside their floors, side by side in one run.

    .venv/bin/python benchmarks/bench_ingest_qc.py [--n-obs 20000] [--n-vars 2000]

Prints one table. Ratios matter, not seconds (shared machines are noisy):
- reading a gzip'd TSV with ``bm.io.read`` + ``bm.io.validate`` against a bare
  ``pandas.read_csv`` of the same file (the parsing floor);
- ``bm.pp.qc`` against the same scanpy calls made directly (bioml's overhead);
- ``bm.sim.simulate_counts`` against one ``numpy`` negative-binomial draw of the same size.
Each row is the median of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scanpy as sc

import bioml as bm


def timed(fn, repeats):
    times = []
    out = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-obs", type=int, default=20000)
    ap.add_argument("--n-vars", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    n, g, r = args.n_obs, args.n_vars, args.repeats
    rows = []

    t_sim, adata = timed(lambda: bm.sim.simulate_counts(n, g, seed=0), r)
    rng = np.random.default_rng(0)
    t_nb, _ = timed(lambda: rng.negative_binomial(2, 0.3, size=(n, g)), r)
    rows.append(("simulate_counts", t_sim, "numpy NB draw", t_nb))

    with tempfile.TemporaryDirectory() as tmp:
        expr = Path(tmp) / "expr.tsv.gz"
        sheet = Path(tmp) / "sheet.tsv"
        bm.sim.write_table(adata, expr, orientation="samples_x_genes")
        bm.sim.write_sample_sheet(adata, sheet)

        def ours():
            a = bm.io.read("table", path=expr, sample_sheet=sheet, orientation="samples_x_genes")
            return bm.io.validate(a, batch_key="batch", covariates=["condition"])

        t_read, _ = timed(ours, r)
        t_pd, _ = timed(lambda: pd.read_csv(expr, sep="\t", index_col=0), r)
        rows.append(("io.read+validate (tsv.gz)", t_read, "pandas.read_csv", t_pd))

    def ours_qc():
        a = adata.copy()
        bm.pp.qc(a, batch_key="batch", min_genes=100, min_samples=3, n_top_genes=1000)
        return a

    def scanpy_qc():
        a = adata.copy()
        sc.pp.calculate_qc_metrics(a, percent_top=None, log1p=False, inplace=True)
        sc.pp.filter_cells(a, min_genes=100)
        sc.pp.filter_genes(a, min_cells=3)
        a.layers["counts"] = a.X.copy()
        sc.pp.normalize_total(a, target_sum=1e4)
        sc.pp.log1p(a)
        sc.pp.highly_variable_genes(a, n_top_genes=1000, batch_key="batch")
        return a

    t_q, _ = timed(ours_qc, r)
    t_s, _ = timed(scanpy_qc, r)
    rows.append(("pp.qc", t_q, "scanpy calls", t_s))

    print(f"\n{n} samples x {g} genes, median of {r}\n")
    print(f"{'ours':<28}{'s':>8}  {'floor / peer':<18}{'s':>8}{'ratio':>8}")
    for name, t, peer, tp in rows:
        print(f"{name:<28}{t:8.2f}  {peer:<18}{tp:8.2f}{t / tp:8.2f}")


if __name__ == "__main__":
    main()
