"""Shared test fixtures: the bladderbatch data (from ../shared) and the R reference outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
BLADDER = SHARED / "data" / "bladderbatch"
FIXTURES = REPO / "tests" / "reference" / "fixtures"


def load_reference(case: str) -> pd.DataFrame:
    """R's output for one case (probes x samples), written by tests/reference/make_reference.R."""
    return pd.read_csv(FIXTURES / f"{case}.tsv.gz", sep="\t", index_col=0, float_precision="round_trip")


def agreement(ours: np.ndarray, ref: np.ndarray) -> float:
    """max |ours - R| / (max(R) - min(R)) (decisions.md item 12), NaN-aware."""
    ref = np.asarray(ref, dtype=np.float64)
    return float(
        np.nanmax(np.abs(np.asarray(ours, dtype=np.float64) - ref)) / (np.nanmax(ref) - np.nanmin(ref))
    )


@pytest.fixture(scope="session")
def bladder():
    """The first 2000 bladderbatch probes (57 samples x 2000 genes, float64), validated,
    with the synthetic columns of the R fixtures (batch2, conc, age) in obs."""
    if not BLADDER.is_dir():
        pytest.skip("../shared/data/bladderbatch is absent")
    import bioml as bm

    a = bm.io.read_table(
        BLADDER / "bladder_expr.tsv.gz", sample_sheet=BLADDER / "bladder_pheno.tsv", dtype="float64"
    )
    a = a[:, :2000].copy()
    extra = pd.read_csv(FIXTURES / "pheno_extra.tsv", sep="\t", index_col=0, float_precision="round_trip")
    for col in extra:
        a.obs[col] = extra.loc[a.obs_names, col].to_numpy()
    return bm.io.validate(a, data_type="log", batch_key="batch", covariates=["cancer"])


# ---- tutorials (docs/tutorials/*.ipynb): opt-in marker (registered in pyproject.toml) ---
def pytest_collection_modifyitems(config, items):
    import os

    selected = "tutorial" in (config.getoption("-m", default="") or "")
    if selected or os.environ.get("BIOML_RUN_TUTORIALS") == "1":
        return
    skip = pytest.mark.skip(reason="tutorial notebooks run only with -m tutorial or BIOML_RUN_TUTORIALS=1")
    for item in items:
        if "tutorial" in item.keywords:
            item.add_marker(skip)
