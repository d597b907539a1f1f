"""Interface features (bioml.interface), the simulator and the interface GAN."""

from __future__ import annotations

import gzip
import io
import itertools

import numpy as np
import pandas as pd
import pytest
import torch

import bioml as bm
from bioml.errors import ConfigError, DataValueError, InputError, StructureError
from bioml.interface import FEATURE_NAMES, FEATURES, InterfaceGAN, validate_feature_table

BUNDLED = {p.name.split(".")[0]: p for p in bm.interface.example_structures()}


def _pdb_lines(name: str) -> list[str]:
    with gzip.open(BUNDLED[name], "rt") as fh:
        return fh.read().splitlines()


def _write_pdb(path, lines):
    path.write_text("\n".join(lines) + "\nEND\n")
    return path


@pytest.fixture(scope="module")
def f1hvr():
    return bm.interface.extract_features(BUNDLED["1hvr"])


# -- structures and features ------------------------------------------------------------
def test_bundled_structures():
    assert set(BUNDLED) == {"1hvr", "4e43", "4zhl"}
    assert bm.interface.feature_table().shape[0] == len(FEATURE_NAMES) == len(FEATURES)
    assert all(f.unit and f.definition for f in FEATURES)


def test_features_1hvr_plausible_and_constrained(f1hvr):
    assert len(f1hvr) == 1 and (f1hvr.chain_a[0], f1hvr.chain_b[0]) == ("A", "B")
    row = f1hvr.iloc[0]
    # HIV-1 protease dimer: a large, mostly apolar interface (~1800-1900 A^2 per monomer)
    assert 3000 < row.bsa_total < 4500
    assert row.bsa_apolar > row.bsa_polar > 0
    assert row.bsa_total == pytest.approx(row.bsa_polar + row.bsa_apolar)
    comp = row[[f"comp_{r}" for r in bm.interface.STANDARD_RESIDUES]]
    assert comp.sum() == pytest.approx(1.0, abs=1e-12)
    assert row[["nis_apolar", "nis_charged", "nis_polar"]].sum() == pytest.approx(100.0)
    assert row.n_interface_residues == row.n_interface_residues_a + row.n_interface_residues_b
    # a symmetric homodimer: about the same number of interface residues per side
    assert abs(row.n_interface_residues_a - row.n_interface_residues_b) <= 3
    assert 0 < row.centroid_distance < 15 and 5 < row.interface_rg < 25
    validate_feature_table(f1hvr)


def _biopython_model(name):
    from Bio.PDB import PDBParser

    with gzip.open(BUNDLED[name], "rt") as fh:
        model = PDBParser(QUIET=True).get_structure(name, io.StringIO(fh.read()))[0]
    for ch in model:
        for r in list(ch):
            if r.id[0] != " ":
                ch.detach_child(r.id)
            else:
                for a in list(r):
                    if a.element in ("H", "D"):
                        r.detach_child(a.id)
    return model


def test_bsa_agrees_with_biopython_shrake_rupley(f1hvr):
    """An independent SASA (Biopython's Shrake-Rupley, its own radii) within 3%."""
    from Bio.PDB.SASA import ShrakeRupley

    model = _biopython_model("1hvr")
    sr = ShrakeRupley()
    single = 0.0
    for ch in model:
        sr.compute(ch, level="A")
        single += sum(a.sasa for a in ch.get_atoms())
    sr.compute(model, level="A")
    bsa = single - sum(a.sasa for a in model.get_atoms())
    assert f1hvr.bsa_total[0] == pytest.approx(bsa, rel=0.03)


def test_contacts_match_an_independent_neighbour_search(f1hvr):
    """PRODIGY's residue contacts (NeighborSearch at 5.5 A) and 5 A interface residues."""
    from Bio.PDB import NeighborSearch

    model = _biopython_model("1hvr")
    pairs = NeighborSearch(list(model.get_atoms())).search_all(5.5, level="R")
    ic = [p for p in pairs if p[0].get_parent().id != p[1].get_parent().id]
    assert f1hvr.n_residue_contacts[0] == len(ic)
    near = NeighborSearch(list(model.get_atoms())).search_all(5.0, level="R")
    iface = {(r.get_parent().id, r.id) for p in near
             if p[0].get_parent().id != p[1].get_parent().id for r in p}
    assert f1hvr.n_interface_residues[0] == len(iface)
    chars = {"ASP": "C", "GLU": "C", "HIS": "C", "LYS": "C", "ARG": "C",
             "ASN": "P", "GLN": "P", "SER": "P", "THR": "P"}
    kinds = ["".join(sorted(chars.get(a.get_resname(), "A") + chars.get(b.get_resname(), "A"))).lower()
             for a, b in ic]
    for c in ("cc", "cp", "ac", "pp", "ap", "aa"):
        assert f1hvr[f"contacts_{c}"][0] == kinds.count(c)


def test_every_pair_in_contact_and_mmcif():
    df = bm.interface.extract_features(BUNDLED["4e43"])
    assert [(a, b) for a, b in zip(df.chain_a, df.chain_b)] == [("A", "B"), ("A", "C"), ("B", "C")]
    one = bm.interface.extract_features(BUNDLED["4e43"], chains=("A", "C"))
    pd.testing.assert_frame_equal(one.reset_index(drop=True), df.iloc[[1]].reset_index(drop=True))
    cif = bm.interface.extract_features(BUNDLED["4zhl"])
    assert list(zip(cif.chain_a, cif.chain_b)) == [("U", "P")]
    assert 800 < cif.bsa_total[0] < 2500
    validate_feature_table(pd.concat([df, cif]))


def test_plain_and_gzip_files_agree(tmp_path, f1hvr):
    p = _write_pdb(tmp_path / "x.pdb", _pdb_lines("1hvr"))
    pd.testing.assert_frame_equal(bm.interface.extract_features(p).drop(columns="structure"),
                                  f1hvr.drop(columns="structure"))


def test_hetatm_water_and_hydrogens_are_dropped(tmp_path, f1hvr):
    lines = _pdb_lines("1hvr")
    # an extra water and hydrogen right at the interface must change nothing
    atom = next(ln for ln in lines if ln.startswith("ATOM") and ln[21] == "A")
    water = "HETATM9999  O   HOH W 999" + atom[26:76] + " O"
    hydrogen = atom[:12] + " H  " + atom[16:76] + " H"
    p = _write_pdb(tmp_path / "h.pdb", lines[:-1] + [hydrogen, water])
    got = bm.interface.extract_features(p)
    pd.testing.assert_frame_equal(got.drop(columns="structure"), f1hvr.drop(columns="structure"))


def test_error_unreadable(tmp_path):
    bad = tmp_path / "bad.pdb"
    bad.write_text("this is not a structure\n")
    with pytest.raises(StructureError, match="bad.pdb"):
        bm.interface.extract_features(bad)
    broken = tmp_path / "broken.cif.gz"
    broken.write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(StructureError, match="broken.cif.gz"):
        bm.interface.extract_features(broken)
    with pytest.raises(StructureError, match="missing.pdb"):
        bm.interface.extract_features(tmp_path / "missing.pdb")


def test_error_one_chain(tmp_path):
    lines = [ln for ln in _pdb_lines("1hvr") if not (ln.startswith(("ATOM", "HETATM")) and ln[21] != "A")]
    p = _write_pdb(tmp_path / "mono.pdb", lines)
    with pytest.raises(StructureError, match=r"mono\.pdb.*only one protein chain"):
        bm.interface.extract_features(p)


def test_error_chains_not_in_contact(tmp_path):
    out = []
    for ln in _pdb_lines("1hvr"):
        if ln.startswith(("ATOM", "HETATM")) and ln[21] == "B":
            x = float(ln[30:38]) + 200.0
            ln = f"{ln[:30]}{x:8.3f}{ln[38:]}"
        out.append(ln)
    p = _write_pdb(tmp_path / "apart.pdb", out)
    with pytest.raises(StructureError, match=r"chains 'A' and 'B' of '.*apart\.pdb' are not in contact"):
        bm.interface.extract_features(p, chains=("A", "B"))
    with pytest.raises(StructureError, match=r"no two chains of '.*apart\.pdb' are in contact"):
        bm.interface.extract_features(p)


def test_error_missing_chain_and_bad_arguments():
    with pytest.raises(StructureError, match=r"chain\(s\) \['Z'\] not found in '.*1hvr.pdb.gz'"):
        bm.interface.extract_features(BUNDLED["1hvr"], chains=("A", "Z"))
    with pytest.raises(ConfigError, match="two distinct"):
        bm.interface.extract_features(BUNDLED["1hvr"], chains=("A", "A"))
    with pytest.raises(ConfigError, match="contact_cutoff"):
        bm.interface.extract_features(BUNDLED["1hvr"], contact_cutoff=0)


# -- feature tables and the simulator ---------------------------------------------------
@pytest.fixture(scope="module")
def sim():
    return bm.sim.simulate_interface_features(600, seed=1)


def test_simulator_constraints_and_truth(sim):
    assert list(sim.var_names) == list(FEATURE_NAMES)
    df = validate_feature_table(sim)  # compositions, counts, derived sums, >= 0
    assert sim.uns["sim"]["truth"]["bsa_median"] == 1600.0
    # the sample matches its truth: median BSA and mean composition
    assert np.median(df.bsa_total) == pytest.approx(1600.0, rel=0.06)
    comp = df[[f"comp_{r}" for r in bm.interface.STANDARD_RESIDUES]].mean().to_numpy()
    np.testing.assert_allclose(comp, sim.uns["sim"]["truth"]["composition_mean"], atol=0.006)
    again = bm.sim.simulate_interface_features(600, seed=1)
    np.testing.assert_array_equal(again.X, sim.X)
    with pytest.raises(ConfigError, match="bsa_mediann"):
        bm.sim.simulate_interface_features(5, bsa_mediann=3.0)


def test_validate_feature_table_errors(tmp_path, sim):
    df = validate_feature_table(sim)
    path = tmp_path / "feat.tsv"
    df.to_csv(path, sep="\t")
    pd.testing.assert_frame_equal(validate_feature_table(path).reset_index(drop=True),
                                  df.reset_index(drop=True))
    cases = [
        (lambda d: d.drop(columns="bsa_polar"), InputError, "bsa_polar"),
        (lambda d: d.assign(interface_rg=np.r_[np.nan, d.interface_rg[1:]]), DataValueError, "interface_rg"),
        (lambda d: d.assign(centroid_distance=-d.centroid_distance), DataValueError, "centroid_distance"),
        (lambda d: d.assign(contacts_aa=d.contacts_aa + 0.5), DataValueError, "contacts_aa"),
        (lambda d: d.assign(comp_ARG=d.comp_ARG + 0.1), DataValueError, "composition"),
        (lambda d: d.assign(bsa_total=d.bsa_total + 50), DataValueError, "bsa_total"),
        (lambda d: d.assign(bsa_polar="x"), DataValueError, "bsa_polar"),
        (lambda d: d.iloc[:0], InputError, "at least 1"),
    ]
    for edit, err, needle in cases:
        bad = tmp_path / "bad.tsv"
        edit(df).to_csv(bad, sep="\t")
        with pytest.raises(err, match=needle) as info:
            validate_feature_table(bad)
        assert "bad.tsv" in str(info.value)
    with pytest.raises(InputError, match="nope.tsv"):
        validate_feature_table(tmp_path / "nope.tsv")


# -- the GAN ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(sim):
    torch.set_num_threads(1)
    return InterfaceGAN(latent=8, hidden=(32, 32), n_critic=3, seed=0).fit(
        sim, epochs=4, batch_size=60, lr=1e-3, device="cpu", progress=False)


def test_spectral_norm_of_every_critic_layer(trained):
    norms = trained.critic_spectral_norms()
    assert len(norms) == 3 and norms.max() <= 1 + 1e-3
    exact = [float(torch.linalg.matrix_norm(lin.weight.detach().double(), ord=2))
             for lin in trained.critic.linears]
    np.testing.assert_allclose(norms, exact, rtol=1e-6)
    assert all(hasattr(lin, "parametrizations") for lin in trained.critic.linears)
    # the critic is 1-Lipschitz: no pair of inputs is pulled apart
    x = torch.randn(200, len(FEATURE_NAMES), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = trained.critic(x)
    ratio = (out[:, None] - out[None, :]).abs() / torch.cdist(x, x).clamp(min=1e-9)
    assert float(ratio.max()) <= 1 + 1e-3


def test_training_history_and_n_critic(trained):
    h = trained.history
    assert len(h) == 4
    assert {"critic_loss", "generator_loss", "wasserstein", "val_wasserstein"} <= set(h.columns)
    assert np.isfinite(h[["critic_loss", "generator_loss", "wasserstein"]].to_numpy()).all()
    # 540 training rows, batch 60: 9 generator updates and 27 critic updates per epoch
    n_train = len(trained.trainer.train_indices)
    assert n_train == 540


def test_n_critic_updates_per_generator_update(sim):
    gan = InterfaceGAN(latent=4, hidden=(8,), n_critic=4, seed=1)
    gan.fit(sim, epochs=2, batch_size=100, val_fraction=0.0, device="cpu", progress=False)
    # 600 rows / 100 = 6 steps per epoch: 12 generator and 48 critic updates
    assert gan.plan.updates == {"generator": 12, "critic": 48}


def test_generated_samples_satisfy_constraints(trained):
    gen = trained.sample(500, seed=3)
    validate_feature_table(gen, source="generated")  # composition sums, integers, derived, >= 0
    comp = gen[[f"comp_{r}" for r in bm.interface.STANDARD_RESIDUES]].sum(1)
    np.testing.assert_allclose(comp, 1.0, atol=1e-12)
    raw = trained.sample(500, seed=3, round_counts=False)
    assert (raw.to_numpy() >= 0).all()
    np.testing.assert_allclose(raw[["nis_apolar", "nis_charged", "nis_polar"]].sum(1), 100.0, rtol=1e-5)
    assert not np.allclose(raw.contacts_aa, np.rint(raw.contacts_aa))  # continuous until export
    np.testing.assert_allclose(raw.bsa_total, raw.bsa_polar + raw.bsa_apolar, rtol=1e-5)
    assert gen.std().min() > 0  # no feature collapsed to a constant


def test_save_load_round_trip(trained, tmp_path):
    path = trained.save(tmp_path / "gan.pt")
    back = InterfaceGAN.load(path)
    pd.testing.assert_frame_equal(back.sample(50, seed=9), trained.sample(50, seed=9))
    np.testing.assert_allclose(back.critic_spectral_norms(), trained.critic_spectral_norms())
    pd.testing.assert_frame_equal(back.history, trained.history, check_dtype=False)
    with pytest.raises(InputError, match="not a bioml interface GAN"):
        torch.save({"format": "x"}, tmp_path / "other.pt")
        InterfaceGAN.load(tmp_path / "other.pt")


def test_seeded_training_is_repeatable(sim):
    kw = dict(epochs=1, batch_size=100, device="cpu", progress=False)
    a = InterfaceGAN(latent=4, hidden=(8,), seed=5).fit(sim, **kw).sample(20)
    b = InterfaceGAN(latent=4, hidden=(8,), seed=5).fit(sim, **kw).sample(20)
    pd.testing.assert_frame_equal(a, b)


def test_gp_variant_trains(sim):
    gan = InterfaceGAN(variant="gp", latent=8, hidden=(16, 16), n_critic=2, seed=0)
    gan.fit(sim, epochs=2, batch_size=100, device="cpu", progress=False)
    h = gan.history
    assert "gradient_penalty" in h and np.isfinite(h.to_numpy(dtype=float)).all()
    assert (h.gradient_penalty >= 0).all()
    assert not any(hasattr(lin, "parametrizations") for lin in gan.critic.linears)
    validate_feature_table(gan.sample(100))
    with pytest.raises(ConfigError, match="variant"):
        InterfaceGAN(variant="wgan")


def test_metrics_tell_a_good_from_a_bad_generator(sim):
    """On simulated data the truth is known: a fresh draw from it is the ideal generator."""
    held = bm.sim.simulate_interface_features(400, seed=11)
    good = bm.sim.simulate_interface_features(400, seed=12)
    X = validate_feature_table(good)
    collapsed = X.iloc[np.arange(400) % 4].reset_index(drop=True)  # mode collapse: 4 vectors
    shifted = bm.sim.simulate_interface_features(400, seed=13, bsa_median=3200.0)
    g_tab, _ = bm.interface.evaluate_generated(good, held, n_permutations=100)
    g = dict(zip(g_tab.metric, g_tab.value))
    assert g["classifier_auc"] < 0.65 and g["mmd_pvalue"] > 0.01 and 0.8 < g["nn_ratio"] < 1.25
    assert g["ks_max"] < 0.15
    c_tab, _ = bm.interface.evaluate_generated(collapsed, held, n_permutations=100)
    c = dict(zip(c_tab.metric, c_tab.value))
    assert c["nn_ratio"] < 0.05 and c["mmd_pvalue"] < 0.05
    s_tab, ks = bm.interface.evaluate_generated(shifted, held, n_permutations=100)
    s = dict(zip(s_tab.metric, s_tab.value))
    assert s["classifier_auc"] > 0.8 and s["mmd_pvalue"] < 0.05
    assert ks.set_index("feature").loc["bsa_total", "ks"] > 0.3


def test_evaluate_table(trained, sim):
    held = bm.sim.simulate_interface_features(200, seed=21)
    ref = bm.sim.simulate_interface_features(200, seed=22)
    real = pd.concat([bm.interface.extract_features(BUNDLED[k]) for k in ("1hvr", "4zhl")])
    metrics, ks, gen = bm.interface.evaluate(trained, held, reference=ref, real=real, n_generate=200,
                                             n_permutations=50)
    assert set(metrics.data) == {"simulated", "model", "real"}
    comparisons = set(metrics.comparison[metrics.data == "simulated"])
    assert comparisons == {"generated_vs_heldout", "truth_vs_heldout"}
    m = metrics.set_index(["comparison", "metric"]).value
    assert m["spectral", "critic_max_spectral_norm"] <= 1 + 1e-3
    assert m["spectral", "constraint_violations"] == 0
    assert m["real_complexes_vs_generated", "n_vectors"] == 2
    assert len(ks) == len(FEATURE_NAMES) and len(gen) == 200
    assert list(itertools.islice(ks.feature, 2)) == list(FEATURE_NAMES[:2])


# -- the workflow's interface stage -----------------------------------------------------
@pytest.mark.slow  # ~2 min of Snakemake start-ups; the tiny default run in test_workflow covers the stage
def test_workflow_interface_stage(tmp_path):
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    repo = Path(__file__).resolve().parents[1]
    for name in ("Snakefile", "workflow", "config", "profiles"):
        src = repo / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    snakemake = str(Path(sys.executable).parent / "snakemake")
    cfg = {"run": "iface", "seed": 1, "data": {},
           "interface": {"epochs": 2, "n_simulated": 120, "n_heldout": 60, "n_generate": 60,
                         "n_permutations": 20, "hidden": [16], "latent": 4, "n_critic": 2}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    target = "results/iface/interface/metrics.tsv"
    r = subprocess.run([snakemake, target, "--cores", "2", "--configfile", "c.yaml"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    res = tmp_path / "results" / "iface" / "interface"
    m = pd.read_csv(res / "metrics.tsv", sep="\t")
    assert list(m.columns) == ["data", "comparison", "metric", "value"]
    assert set(m.data) == {"simulated", "model", "real"}
    sn = m[m.metric == "critic_max_spectral_norm"].value.item()
    assert sn <= 1 + 1e-3
    real = validate_feature_table(res / "real_features.tsv")
    assert len(real) == 5  # 1hvr A-B, 4e43 A-B, A-C, B-C, 4zhl U-P
    # a broken structure: one clear line, no output left behind
    bad = tmp_path / "broken.pdb"
    bad.write_text("nothing here\n")
    cfg["run"] = "broken"
    cfg["interface"]["structures"] = [str(bad)]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    r = subprocess.run([snakemake, "results/broken/interface/real_features.tsv", "--cores", "1",
                        "--configfile", "c.yaml"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode != 0
    assert "bioml: rule interface_features failed: StructureError" in r.stdout + r.stderr
    assert not (tmp_path / "results" / "broken" / "interface" / "real_features.tsv").exists()
