"""bioml.flux: networks vs cobra, sampling, table validation, the flux VAE's feasibility."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import bioml as bm
from bioml.errors import ConfigError, InputError

cobra = pytest.importorskip("cobra")


@pytest.fixture(scope="module")
def net():
    return bm.flux.FluxNetwork.from_model("textbook")


@pytest.fixture(scope="module")
def train(net):
    return bm.flux.sample("textbook", 400, thinning=10, seed=11)


@pytest.fixture(scope="module")
def trained(net, train):
    vae = bm.flux.FluxVAE(net, latent=16, hidden=(64, 64), beta=0.5, kl_warmup_epochs=3, seed=0)
    return vae.fit(train, epochs=15, batch_size=64, lr=2e-3, device="cpu", progress=False)


# -- networks ------------------------------------------------------------------------------
def test_network_matches_cobra(net):
    from cobra.util.array import create_stoichiometric_matrix

    model = cobra.io.load_model("textbook")
    S = create_stoichiometric_matrix(model)
    assert net.S.shape == (72, 95) and net.S.dtype == np.float64
    np.testing.assert_array_equal(net.S, S)
    assert net.reactions == [r.id for r in model.reactions]
    np.testing.assert_array_equal(net.lb, [r.lower_bound for r in model.reactions])
    np.testing.assert_array_equal(net.ub, [r.upper_bound for r in model.reactions])
    assert net.objective_reaction == "Biomass_Ecoli_core"


def test_load_model_errors(tmp_path):
    with pytest.raises(InputError, match="unknown model 'no_such_model'"):
        bm.flux.load_model("no_such_model")
    with pytest.raises(InputError, match="does not exist"):
        bm.flux.load_model(tmp_path / "missing.xml")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="cannot read model file"):
        bm.flux.load_model(bad)


def test_model_file_round_trip(tmp_path, net):
    model = cobra.io.load_model("textbook")
    path = tmp_path / "core.json"
    cobra.io.save_json_model(model, str(path))
    other = bm.flux.FluxNetwork.from_model(path)
    np.testing.assert_array_equal(other.S, net.S)


def test_nullspace_basis(net):
    N = bm.flux.nullspace_basis(net.S)
    assert N.dtype == np.float64
    assert N.shape == (95, 95 - np.linalg.matrix_rank(net.S))
    np.testing.assert_allclose(N.T @ N, np.eye(N.shape[1]), atol=1e-12)
    assert np.abs(net.S @ N).max() < 1e-12


# -- sampling and validation ---------------------------------------------------------------
def test_sample_feasible_and_seeded(train, net):
    assert train.shape == (400, 95)
    assert list(train.var_names) == net.reactions
    assert train.X.dtype == np.float64
    # cobra's own validation agrees: every sample is feasible
    assert train.obs["mass_balance"].max() < 1e-6
    assert train.obs["within_bounds"].all()
    again = bm.flux.sample("textbook", 20, thinning=10, seed=11)
    np.testing.assert_array_equal(again.X, bm.flux.sample("textbook", 20, thinning=10, seed=11).X)
    with pytest.raises(ConfigError):
        bm.flux.sample("textbook", 0)


def test_validate_flux_table(train, net, tmp_path, caplog):
    df = pd.DataFrame(train.X[:30], index=[f"r{i}" for i in range(30)], columns=net.reactions)
    bad = df.copy()
    bad.iloc[3, net.reactions.index("PGI")] += 5.0  # breaks mass balance
    bad.iloc[7, net.reactions.index("ATPM")] = -1.0  # below ATPM's lower bound 8.39 (and unbalanced)
    path = tmp_path / "fluxes.csv"
    bad.to_csv(path)
    out = bm.flux.validate_flux_table(path, "textbook")
    assert out.n_obs == 30
    assert not out.obs.loc["r3", "valid"] and not out.obs.loc["r7", "valid"]
    assert not out.obs.loc["r7", "within_bounds"]
    assert out.obs["valid"].sum() == 28
    assert out.uns["flux"]["validation"]["n_invalid"] == 2
    assert "2 of 30 rows violate" in caplog.text
    kept = bm.flux.validate_flux_table(bad, net, reject=True)
    assert kept.n_obs == 28 and "r3" not in kept.obs_names and kept.obs["valid"].all()
    # column order does not matter
    shuffled = bm.flux.validate_flux_table(df[df.columns[::-1]], net)
    np.testing.assert_array_equal(shuffled.X, df.to_numpy())
    unknown = df.rename(columns={"PGI": "NOT_A_REACTION"})
    with pytest.raises(InputError, match="NOT_A_REACTION"):
        bm.flux.validate_flux_table(unknown, net)
    with pytest.raises(InputError, match="missing"):
        bm.flux.validate_flux_table(df.drop(columns=["PGI"]), net)
    with pytest.raises(InputError, match="does not exist"):
        bm.flux.validate_flux_table(tmp_path / "nope.tsv", net)


def test_fixed_and_blocked_reactions(train, net):
    fixed, values = bm.flux.fixed_reactions(train.X, net)
    rng = train.X.max(0) - train.X.min(0)
    # textbook: 8 reactions carry no flux in any sample (no fructose, fumarate, ... uptake)
    assert set(np.array(net.reactions)[fixed]) == set(np.array(net.reactions)[rng <= 1e-9 * 1000])
    assert fixed.sum() >= 8 and np.all(values[fixed] == 0)


# -- the VAE -------------------------------------------------------------------------------
def test_nullspace_mass_balance_random_weights(net, train):
    vae = bm.flux.FluxVAE(net, latent=8, hidden=(32,), seed=3).setup(train)
    with torch.no_grad():  # whatever the weights: scramble them to large values
        for p in vae.module.parameters():
            p.normal_(0.0, 3.0)
    gen = vae.sample(500, seed=0, project=False)
    assert gen.X.dtype == np.float64
    r = bm.flux.mass_balance_residual(gen.X, net.S)
    assert r.max() < 1e-6
    assert np.abs(gen.X).max() > 100  # the scrambled decoder does produce large fluxes
    # fixed (blocked) reactions are kept exactly
    fx = vae.space.fixed
    assert np.all(gen.X[:, fx] == vae.space.values[fx])


def test_trained_feasibility(trained, net):
    h = trained.history
    assert np.isfinite(h["loss"]).all() and h["loss"].iloc[-1] < h["loss"].iloc[0]
    assert h["beta"].iloc[0] < h["beta"].iloc[-1] == pytest.approx(0.5)  # KL warm-up
    gen = trained.sample(1000, seed=1, project=True)
    info = gen.uns["flux_vae"]
    assert gen.shape == (1000, 95)
    assert gen.obs["mass_balance"].max() < 1e-6
    assert info["fraction_within_bounds"] >= 0.99
    assert gen.obs["within_bounds"].mean() >= 0.99
    # the projection only moves rows that were outside the bounds
    raw = trained.sample(1000, seed=1, project=False)
    ok = raw.obs["within_bounds"].to_numpy()
    np.testing.assert_array_equal(gen.X[ok], raw.X[ok])
    assert info["fraction_within_bounds_raw"] == pytest.approx(ok.mean())


def test_rejection_yields_exactly_n(trained, net):
    gen = trained.sample(300, seed=2, project=False, reject=True)
    assert gen.n_obs == 300
    assert gen.obs["within_bounds"].all() and gen.obs["mass_balance"].max() < 1e-6
    assert gen.uns["flux_vae"]["n_drawn"] >= 300


def test_fixed_nonzero_reaction_kept_exactly():
    model = cobra.io.load_model("textbook")
    model.reactions.ATPM.bounds = (8.39, 8.39)  # lb == ub, non-zero
    net = bm.flux.FluxNetwork.from_model(model)
    data = bm.flux.sample(model, 150, thinning=5, seed=4)
    vae = bm.flux.FluxVAE(net, latent=4, hidden=(16,), kl_warmup_epochs=0, seed=0)
    vae.fit(data, epochs=2, batch_size=50, device="cpu", progress=False, val_fraction=0.0)
    j = net.reactions.index("ATPM")
    assert vae.space.fixed[j] and vae.space.values[j] == 8.39
    gen = vae.sample(200, seed=0)
    assert np.all(gen.X[:, j] == 8.39)
    assert gen.obs["mass_balance"].max() < 1e-6


def test_penalty_mode(net, train):
    vae = bm.flux.FluxVAE(net, constraint="penalty", latent=8, hidden=(32,), mass_balance_weight=1.0,
                          kl_warmup_epochs=2, seed=0)
    vae.fit(train, epochs=4, batch_size=64, device="cpu", progress=False)
    gen = vae.sample(200, seed=0, project=False)
    # not mass-balanced by construction: the residual is far above float64 rounding
    assert gen.obs["mass_balance"].max() > 1e-6
    assert np.isfinite(vae.history["mass_balance"]).all()
    # the projection makes it feasible
    proj = vae.sample(200, seed=0, project=True)
    assert proj.obs["mass_balance"].max() < 1e-6 and proj.obs["within_bounds"].all()


def test_projection_of_gaussian_baseline(trained, train, net):
    X = bm.flux.nullspace_gaussian(train, trained.space, 400, seed=0)
    before = bm.flux.within_bounds(X, net.lb, net.ub)
    assert before.mean() < 0.5  # decisions #20: the null-space Gaussian leaves the bounds
    P, info = bm.flux.project_feasible(X, trained.space, center=trained.space.center)
    assert info["within_before"] == pytest.approx(before.mean())
    assert info["within_after"] == 1.0
    assert bm.flux.mass_balance_residual(P, net.S).max() < 1e-6
    np.testing.assert_array_equal(P[before], X[before])
    # Dykstra alone (no centre) with enough iterations also gets most rows in
    P2, info2 = bm.flux.project_feasible(X, trained.space, max_iter=300)
    assert info2["within_after"] > before.mean()
    assert bm.flux.mass_balance_residual(P2, net.S).max() < 1e-6


def test_save_load_round_trip(trained, train, tmp_path):
    path = trained.save(tmp_path / "vae.pt")
    again = bm.flux.FluxVAE.load(path)
    a = trained.sample(200, seed=5)
    b = again.sample(200, seed=5)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(trained.encode(train[:20]), again.encode(train[:20]))
    pd.testing.assert_frame_equal(trained.history, again.history, check_dtype=False)
    with pytest.raises(InputError, match="not a bioml flux VAE"):
        torch.save({"format": "x"}, tmp_path / "other.pt")
        bm.flux.FluxVAE.load(tmp_path / "other.pt")


def test_seeded_sampling(trained):
    np.testing.assert_array_equal(trained.sample(50, seed=9).X, trained.sample(50, seed=9).X)
    assert not np.array_equal(trained.sample(50, seed=9).X, trained.sample(50, seed=10).X)


def test_evaluate_table(trained, train, net):
    held = bm.flux.sample("textbook", 200, thinning=10, seed=12)
    noise = bm.flux.sample("textbook", 200, thinning=10, seed=13)
    gen = trained.sample(200, seed=0)
    tab = bm.flux.evaluate(gen, held, noise, net, train=train, n_permutations=20)
    assert list(tab.columns) == ["metric", "value", "noise_floor"]
    m = tab.set_index("metric")
    assert m.loc["mass_balance_max", "value"] < 1e-6
    assert m.loc["fraction_within_bounds", "noise_floor"] == 1.0
    assert 0 < m.loc["ks_median", "noise_floor"] < 1
    # a set compared with itself: KS 0, means exact
    same = bm.flux.distribution_metrics(held, held, train=train, n_permutations=0)
    assert same["ks_max"] == 0 and same["mean_error_max"] == 0 and same["corr_of_corr"] == pytest.approx(1)
    mix = bm.flux.convex_mixtures(train, 300, seed=0)
    assert bm.flux.feasibility(mix, net)["fraction_within_bounds"] == 1.0


def test_gmm_prior(trained, train):
    """The default prior is a Gaussian mixture fitted to posterior draws; draws are seeded."""
    assert trained.prior == "gmm"
    k = trained.prior_weights.size
    assert 1 < k <= trained.prior_components and trained.prior_weights.sum() == pytest.approx(1)
    assert trained.prior_mean.shape == (k, 16) and trained.prior_chol.shape == (k, 16, 16)
    z1, z2 = trained.draw_latent(4000, seed=3), trained.draw_latent(4000, seed=3)
    assert torch.equal(z1, z2) and not torch.equal(z1, trained.draw_latent(4000, seed=4))
    # the draws follow the mixture: their mean is the weighted mean of the components
    want = trained.prior_weights @ trained.prior_mean
    np.testing.assert_allclose(z1.double().mean(0).numpy(), want, atol=0.1)


def test_single_gaussian_prior_and_old_files(net, train, tmp_path):
    """prior='aggregate' is one Gaussian; model files from before the mixture prior (one
    mean vector, one Cholesky factor, no weights) load and sample the same."""
    vae = bm.flux.FluxVAE(net, latent=8, hidden=(32,), prior="aggregate", kl_warmup_epochs=2, seed=0)
    vae.fit(train, epochs=3, batch_size=64, device="cpu", progress=False)
    assert vae.prior_mean.shape == (1, 8)
    path = vae.save(tmp_path / "new.pt")
    p = torch.load(path, weights_only=False)
    p["prior_mean"], p["prior_chol"] = p["prior_mean"][0], p["prior_chol"][0]
    del p["prior_weights"], p["prior_components"]
    torch.save(p, tmp_path / "old.pt")
    old = bm.flux.FluxVAE.load(tmp_path / "old.pt")
    np.testing.assert_array_equal(old.sample(100, seed=2).X, vae.sample(100, seed=2).X)
    std = bm.flux.FluxVAE(net, latent=8, hidden=(32,), prior="standard", seed=0)
    std.fit(train, epochs=2, batch_size=64, device="cpu", progress=False)
    assert std.prior_mean is None and std.draw_latent(5).shape == (5, 8)
    with pytest.raises(ConfigError, match="prior"):
        bm.flux.FluxVAE(net, prior="vamp")
    with pytest.raises(ConfigError, match="prior_components"):
        bm.flux.FluxVAE(net, prior_components=0)


def test_nn_train_ratio_flags_copies(train):
    """Replayed training rows score near 0; an independent draw scores about 1."""
    held = bm.flux.sample("textbook", 300, thinning=10, seed=21)
    fresh = bm.flux.sample("textbook", 300, thinning=10, seed=22)
    copies = train.X[:300] + 1e-9
    r_copy = bm.flux.distribution_metrics(copies, held, train=train, n_permutations=0)["nn_train_ratio"]
    r_new = bm.flux.distribution_metrics(fresh, held, train=train, n_permutations=0)["nn_train_ratio"]
    assert r_copy < 0.01
    assert 0.8 < r_new < 1.25
    assert "nn_train_ratio" not in bm.flux.distribution_metrics(fresh, held, n_permutations=0)


@pytest.mark.slow
def test_vae_beats_trivial_baselines():
    """decisions #20: against held-out OptGP samples the VAE (default settings) beats random
    convex mixtures of training samples on KS and MMD while making new samples, not copies."""
    net = bm.flux.FluxNetwork.from_model("textbook")
    train = bm.flux.sample("textbook", 2000, thinning=50, seed=31)
    held = bm.flux.sample("textbook", 800, thinning=50, seed=32)
    vae = bm.flux.FluxVAE(net, seed=0).fit(train, epochs=150, batch_size=128, lr=2e-3, device="cpu",
                                           progress=False)
    gen = vae.sample(800, seed=1, project=True, reject=True)
    assert gen.n_obs == 800 and gen.obs["within_bounds"].all() and gen.obs["mass_balance"].max() < 1e-6
    kw = dict(train=train, n_permutations=0)
    d_vae = bm.flux.distribution_metrics(gen, held, **kw)
    d_mix = bm.flux.distribution_metrics(bm.flux.convex_mixtures(train, 800, seed=1), held, **kw)
    assert d_vae["ks_median"] < d_mix["ks_median"]
    assert d_vae["mmd2"] < d_mix["mmd2"]
    assert d_vae["nn_train_ratio"] > 0.8 > d_mix["nn_train_ratio"]


def test_bad_config(net, train):
    with pytest.raises(ConfigError):
        bm.flux.FluxVAE(net, constraint="magic")
    with pytest.raises(ConfigError, match="not set up"):
        bm.flux.FluxVAE(net).sample(3)
    with pytest.raises(InputError, match="lack"):
        bm.flux.FluxVAE(net).setup(train[:, :50])


@pytest.mark.slow
def test_ijo1366_reduced_run():
    """Genome scale (2583 reactions): reduced sampling and training; mass balance and bounds."""
    net = bm.flux.FluxNetwork.from_model("iJO1366")
    assert net.n_reactions == 2583
    data = bm.flux.sample("iJO1366", 300, thinning=5, seed=1)
    assert data.obs["mass_balance"].max() < 1e-6
    assert data.obs["within_bounds"].mean() >= 0.99, "cobra's own samples leave the bounds"
    vae = bm.flux.FluxVAE(net, latent=16, hidden=(128,), seed=0)
    vae.fit(data, epochs=5, batch_size=64, device="cpu", progress=False)
    gen = vae.sample(500, seed=0, project=True)
    assert gen.obs["mass_balance"].max() < 1e-6
    tol = bm.flux.bound_tolerance(net.lb, net.ub)
    viol = ((gen.X < net.lb - tol) | (gen.X > net.ub + tol)).sum(axis=0)
    worst = [net.reactions[i] for i in np.argsort(-viol)[:5] if viol[i]]
    assert gen.obs["within_bounds"].mean() >= 0.99, f"reactions most often out of bounds: {worst}"
    fx = vae.space.fixed
    assert fx.sum() > 0 and np.all(gen.X[:, fx] == vae.space.values[fx])
    stats = bm.flux.feasibility(gen, net)
    assert stats["mass_balance_fraction"] == 1.0
