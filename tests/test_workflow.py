"""The Snakemake workflow: config validation, a tiny real run, failures that leave nothing behind.

Each test copies the workflow into its own temporary directory and runs the snakemake of
the running environment there, so runs never touch the checkout's results/.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")

TINY = {
    "run": "tiny",
    "seed": 3,
    "data": {
        "source": "simulate",
        "covariates": ["condition"],
        "simulate": {"n_obs": 150, "n_vars": 300, "n_batches": 3, "n_conditions": 2},
    },
    "qc": {"min_genes": 10, "hvg": {"n_top_genes": 100}},
    "embedding": {"hidden": [32], "latent": 4},
    "interface": {"epochs": 2, "n_simulated": 200, "n_heldout": 100, "n_generate": 100,
                  "n_permutations": 20, "hidden": [16], "latent": 4, "n_critic": 2},
    "train": {"epochs": 3, "batch_size": 64},
}


@pytest.fixture
def wf(tmp_path):
    for name in ("Snakefile", "workflow", "config", "profiles"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    return tmp_path


def smk(wf, *args, config=None):
    cmd = [SNAKEMAKE, "--cores", "2", *args]
    if config is not None:
        (wf / "test.yaml").write_text(yaml.safe_dump(config))
        cmd += ["--configfile", "test.yaml"]
    return subprocess.run(cmd, cwd=wf, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(
    "config, needle",
    [
        ({"run": "x", "seed": 0, "data": {}, "typo": 1}, "typo"),
        ({"run": "x", "seed": 0, "data": {"sourse": "table"}}, "sourse"),
        ({"run": "x", "seed": 0, "data": {}, "qc": {"hvg": {"n_top_gene": 5}}}, "n_top_gene"),
        ({"run": "x", "seed": "zero", "data": {}}, "zero"),
        ({"run": "x", "seed": 0, "data": {"source": "table"}}, "path"),
        ({"run": "x", "seed": 0, "data": {"source": "csv"}}, "csv"),
        ({"run": "x", "seed": 0, "data": {"simulate": {"confounding": 1.5}}}, "1.5"),
    ],
)
def test_bad_config_fails_before_any_job(wf, config, needle):
    # A config file given alone (the default config.yaml is replaced, not merged).
    (wf / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    r = smk(wf, "-n")
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert needle in out, out[-3000:]
    assert not (wf / "results").exists()


def test_tiny_default_run(wf):
    r = smk(wf, config=TINY)
    assert r.returncode == 0, r.stderr[-4000:]
    res = wf / "results" / "tiny"
    raw = ad.read_h5ad(res / "ingest" / "raw.h5ad")
    assert raw.shape == (150, 300)
    assert raw.obs["batch"].dtype == "category"
    q = ad.read_h5ad(res / "qc" / "qc.h5ad")
    assert q.var["highly_variable"].sum() == 100
    assert "counts" in q.layers
    for f in (
        "qc/qc_summary.tsv", "qc/qc_metrics.png", "benchmarks/qc.tsv", "confounding/report.json",
        "confounding/heatmap.png", "batch_tests/summary.tsv", "batch_tests/pvalues.png",
        "embed/loss.png", "embed/umap.png", "embed/history.tsv", "embed/model.pt",
        "interface/real_features.tsv", "interface/metrics.tsv", "interface/training.png",
        "interface/marginals.png", "interface/projection.png",
    ):
        assert (res / f).stat().st_size > 0, f
    corrected = ad.read_h5ad(res / "correct" / "corrected.h5ad")
    assert corrected.uns["bioml"]["correction"]["method"] == "combat"
    embedded = ad.read_h5ad(res / "embed" / "embedded.h5ad")
    assert embedded.obsm["X_bae"].shape == (q.n_obs, 4)
    assert "bae_anomaly_score" in embedded.obs
    # evaluation: one tidy metric table over the representations, truth scores, the sweep
    metrics = pd.read_csv(res / "evaluate" / "metrics.tsv", sep="\t")
    assert list(metrics.columns) == ["representation", "metric", "value", "kind", "higher_is_better"]
    assert set(metrics["representation"]) == {"pca_uncorrected", "pca_corrected", "latent", "pca_batch_free"}
    assert metrics["value"].notna().all()
    for f in ("evaluate/metrics.png", "evaluate/pca.png", "evaluate/umap.png", "evaluate/truth.tsv",
              "sweep/sweep.png"):
        assert (res / f).stat().st_size > 0, f
    sweep = pd.read_csv(res / "sweep" / "summary.tsv", sep="\t").set_index(["level", "model"])
    assert sweep.loc[(1.0, "with_covariate"), "status"] == "refused"
    assert sweep.loc[(0.9, "with_covariate"), "check_status"] == "warn"
    for rule in ("simulate", "ingest", "qc", "confounding", "correct", "batch_tests", "embed", "evaluate"):
        assert (wf / "logs" / "tiny" / f"{rule}.log").exists()
    # The report holds what exists so far.
    r = smk(wf, "--report", "report.html", config=TINY)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (wf / "report.html").stat().st_size > 10_000
    # A second run has nothing to do.
    r = smk(wf, "-n", config=TINY)
    assert "Nothing to be done" in r.stdout + r.stderr


def _table_config(path, sheet):
    return {
        "run": "bad",
        "seed": 0,
        "data": {
            "source": "table",
            "path": path,
            "sample_sheet": sheet,
            "data_type": "log",
            "covariates": ["group"],
        },
        # the generative stages do not read the expression data: independent jobs that
        # would finish beside the failing ingest job and leave their (valid) outputs
        "flux": {"enabled": False},
        "interface": {"enabled": False},
    }


def _write_table(wf, rows, sheet_rows):
    (wf / "expr.tsv").write_text("\n".join("\t".join(r) for r in rows) + "\n")
    (wf / "sheet.tsv").write_text("\n".join("\t".join(r) for r in sheet_rows) + "\n")


def test_bad_input_fails_with_clear_line_and_no_output(wf):
    samples = [f"s{i}" for i in range(6)]
    rows = [["gene_id", *samples]]
    rng = np.random.default_rng(0)
    for g in range(20):
        rows.append([f"g{g}", *[f"{v:.3f}" for v in rng.normal(8, 1, 6)]])
    rows[5][3] = "n/a?"
    sheet = [["sample_id", "batch", "group"]] + [[s, f"b{i % 2}", f"c{i % 3}"] for i, s in enumerate(samples)]
    _write_table(wf, rows, sheet)
    r = smk(wf, config=_table_config("expr.tsv", "sheet.tsv"))
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert "bioml: rule ingest failed" in out
    assert "expr.tsv" in out and "n/a?" in out
    assert not (wf / "results" / "bad" / "ingest" / "raw.h5ad").exists()
    assert not list((wf / "results").rglob("*.h5ad"))
    log = (wf / "logs" / "bad" / "ingest.log").read_text()
    assert "DataValueError" in log


def test_missing_batch_column_names_the_column(wf):
    samples = [f"s{i}" for i in range(6)]
    values = ["1.0", "2.0", "3.0", "1.5", "2.5", "3.5"]
    rows = [["gene_id", *samples]] + [[f"g{g}", *values] for g in range(5)]
    sheet = [["sample_id", "group"]] + [[s, f"c{i % 2}"] for i, s in enumerate(samples)]
    _write_table(wf, rows, sheet)
    r = smk(wf, config=_table_config("expr.tsv", "sheet.tsv"))
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert "SampleSheetError" in out and "'batch'" in out
    assert not (wf / "results" / "bad" / "ingest" / "raw.h5ad").exists()


@pytest.mark.skipif(not (SHARED / "data" / "bladderbatch").is_dir(), reason="../shared/data absent")
def test_bladderbatch_config_runs_through_correction(wf):
    """The real data through ingest, QC, the confounding check (a warning) and ComBat.
    (The whole bladderbatch pipeline, embedding included, runs in .ci/run.)"""
    shutil.copytree(SHARED / "data" / "bladderbatch", wf / "data" / "bladderbatch")
    r = smk(wf, "results/bladderbatch/batch_tests/summary.tsv", "--configfile", "config/bladderbatch.yaml")
    assert r.returncode == 0, r.stderr[-4000:]
    raw = ad.read_h5ad(wf / "results" / "bladderbatch" / "ingest" / "raw.h5ad")
    assert raw.shape == (57, 22283)
    assert list(raw.obs["batch"].cat.categories) == ["1", "2", "3", "4", "5"]
    q = ad.read_h5ad(wf / "results" / "bladderbatch" / "qc" / "qc.h5ad")
    assert q.var["highly_variable"].sum() == 2000
    assert "counts" not in q.layers
    np.testing.assert_allclose(q.X, raw[:, q.var_names].X)  # log data is not transformed
    report = json.loads((wf / "results" / "bladderbatch" / "confounding" / "report.json").read_text())
    assert report["status"] == "warn"
    assert report["associations"][0]["value"] == pytest.approx(0.7428, abs=1e-4)
    summary = (wf / "results" / "bladderbatch" / "batch_tests" / "summary.tsv").read_text()
    assert "fraction_fdr_lt_0.05_after" in summary


def test_aliased_design_reports_refusal_and_correct_rule_fails(wf):
    config = {**TINY, "run": "aliased", "correction": {"method": "linear"}, "embedding": {"enabled": False}}
    config["data"] = {**TINY["data"], "simulate": {**TINY["data"]["simulate"], "confounding": 1.0}}
    r = smk(wf, config=config)
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert "bioml: rule correct failed: ConfoundedDesignError" in out
    res = wf / "results" / "aliased"
    report = json.loads((res / "confounding" / "report.json").read_text())
    assert report["status"] == "refused" and "only has condition" in report["message"]
    assert (res / "confounding" / "heatmap.png").exists()
    assert not (res / "correct").exists() or not list((res / "correct").iterdir())
    assert "ConfoundedDesignError" in (wf / "logs" / "aliased" / "correct.log").read_text()
