"""The tutorials (docs/tutorials/*.ipynb) run without error and show what they claim.

Each notebook is executed once by ``docs/execute_tutorials.py`` (skipped when its
executed copy in ``docs/_build/executed/`` is newer than the notebook and the package);
the same copies are rendered by the documentation build. The tests read the
``KEY=VALUE`` lines the notebooks print and check them against what the simulation
makes true. Opt-in: ``pytest -m tutorial tests/test_tutorials.py`` (or
``BIOML_RUN_TUTORIALS=1``).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TUTORIALS = REPO / "docs" / "tutorials"

_LINE = re.compile(r"^([A-Z][A-Z0-9_]*)=(\S+)\s*$", re.M)


def _runner():
    spec = importlib.util.spec_from_file_location("execute_tutorials", REPO / "docs" / "execute_tutorials.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_notebook(name: str):
    """Execute (or reuse the up-to-date executed copy of) one tutorial; return the notebook."""
    import nbformat

    if not (TUTORIALS / name).is_file():
        pytest.skip(f"docs/tutorials/{name} does not exist (yet)")
    runner = _runner()
    rc = runner.main([name])
    assert rc == 0, f"{name} failed to execute (see the output above and {runner.DEFAULT_OUT})"
    return nbformat.read(runner.DEFAULT_OUT / name, as_version=4)


def facts(nb) -> dict[str, str]:
    """The KEY=VALUE lines printed to stdout by the notebook's cells."""
    text = "".join(
        out.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "stream" and out.get("name") == "stdout"
    )
    return dict(_LINE.findall(text))


def n_figures(nb) -> int:
    return sum(
        "image/png" in out.get("data", {})
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
    )


def no_errors(nb) -> None:
    errors = [
        out for cell in nb.cells if cell.cell_type == "code"
        for out in cell.get("outputs", []) if out.get("output_type") == "error"
    ]
    assert not errors, errors


@pytest.fixture(scope="module")
def nb01():
    return run_notebook("01_batch_correction.ipynb")


@pytest.fixture(scope="module")
def nb02():
    return run_notebook("02_autoencoder.ipynb")


def test_tutorials_committed_without_outputs():
    import nbformat

    for path in sorted(TUTORIALS.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path.name} has outputs"
        first_code = next(c for c in nb.cells if c.cell_type == "code")
        assert "parameters" in first_code.metadata.get("tags", []), f"{path.name}: parameters cell first"
        assert "what to try next" in nb.cells[-1].source.lower(), f"{path.name}: last cell says what next"


@pytest.mark.tutorial
def test_01_refuses_the_aliased_design(nb01):
    no_errors(nb01)
    f = facts(nb01)
    assert f["PARTIAL_STATUS"] == "warn"  # confounding 0.6: V above 0.5, still correctable
    assert f["REFUSED"] == "True"
    assert f["ALIASED_STATUS"] == "refused"
    assert f["REFUSAL_DATA_UNCHANGED"] == "True"
    assert f["REFUSAL_SAYS_WHAT_TO_DO"] == "True"


@pytest.mark.tutorial
def test_01_correction_removes_batch_and_keeps_biology(nb01):
    f = facts(nb01)
    before, after = float(f["BATCH_TESTED_FRACTION_BEFORE"]), float(f["BATCH_TESTED_FRACTION_AFTER_COMBAT"])
    assert before > 0.5 and after < 0.05
    # decisions.md item 15: each batch metric improves; label ASW and ARI within 5% of the twin's
    assert float(f["ASW_BATCH_COMBAT"]) > float(f["ASW_BATCH_UNCORRECTED"]) + 0.2
    assert float(f["ILISI_COMBAT"]) > float(f["ILISI_UNCORRECTED"])
    for metric in ("ASW_LABEL", "ARI"):
        twin = float(f[f"{metric}_TWIN"])
        assert abs(float(f[f"{metric}_COMBAT"]) - twin) <= 0.05 * twin, metric
    assert n_figures(nb01) >= 7  # two heatmaps, p-values, metrics, PCA grid, two UMAPs


@pytest.mark.tutorial
def test_02_autoencoder_embeds_and_ranks_anomalies(nb02):
    no_errors(nb02)
    f = facts(nb02)
    n, d = (int(v) for v in f["LATENT_SHAPE"].split("x"))
    assert n > 0 and d > 0
    assert int(f["EPOCHS_RUN"]) >= 1
    # 16 anomalies among 800 samples: a random ranking has recall and AP near 0.02
    assert float(f["ANOMALY_TOP_RECALL"]) >= 0.5
    assert float(f["ANOMALY_AP"]) >= 0.5
    for key in ("BATCH_ASW_PLAIN", "BATCH_ASW_DBN", "LABEL_ASW_PLAIN", "LABEL_ASW_DBN"):
        assert 0.0 <= float(f[key]) <= 1.0
    # what the notebook's prose says: per-batch BatchNorm mixes the batches better
    assert float(f["BATCH_ASW_DBN"]) > float(f["BATCH_ASW_PLAIN"]) + 0.1
    assert n_figures(nb02) >= 5  # two loss curves, UMAP, score histogram, metric bars


@pytest.mark.tutorial
def test_03_flux_mass_balance():
    nb = run_notebook("03_flux.ipynb")
    no_errors(nb)
    f = facts(nb)
    assert "MASS_BALANCE_MAX" in f, "03_flux.ipynb must print MASS_BALANCE_MAX=<max |S v|>"
    assert float(f["MASS_BALANCE_MAX"]) <= 1e-6


@pytest.mark.tutorial
def test_04_interface_gan_spectral_norm():
    nb = run_notebook("04_interface_gan.ipynb")
    no_errors(nb)
    f = facts(nb)
    assert "MAX_SPECTRAL_NORM" in f, "04_interface_gan.ipynb must print MAX_SPECTRAL_NORM=<largest sigma>"
    assert float(f["MAX_SPECTRAL_NORM"]) <= 1.05  # spectral norm with power-iteration slack
