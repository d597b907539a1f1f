"""Flux VAE vs cobra's OptGP sampler: valid samples per second, feasibility, distribution match.

Prints two tables, every row measured in the same run:

1. Speed: cobra OptGP (``processes=1``, warm-up included, i.e. what a user waits for)
   drawing ``--n`` samples, against the trained flux VAE generating ``--n`` *valid* samples
   (mass balance <= 1e-6 and within bounds): with the default settings (Dykstra projection
   + rejection) and with plain rejection (no projection). The ratio is the speed-up
   (target: >= 100x on the textbook model).
2. Quality against held-out cobra samples: mass balance, fraction within bounds (before and
   after the projection), KS per reaction (median, worst), errors of means and standard
   deviations, correlation of the correlation matrices and MMD^2 for the VAE, the trivial
   baselines of decisions #20 (random convex mixtures of two training samples; a Gaussian
   in the null space) and the noise floor (a second, independent cobra set of the held-out
   size, the first rows of the speed run's samples).
   ``nn_train`` is the median distance from a generated sample to its nearest training
   sample over that of the held-out samples: about 1 for new samples, near 0 for copies
   (convex mixtures sit in between). The VAE is also sampled through a single Gaussian
   prior, to show what the default Gaussian-mixture prior adds.

Usage::

    python benchmarks/bench_flux.py                     # textbook, 2000 training samples
    python benchmarks/bench_flux.py --n 2000 --epochs 50
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bioml as bm  # noqa: E402


def one_gauss(vae, train, n, seed):
    """The same trained VAE sampled through a single Gaussian prior (the ``aggregate``
    prior), for the mixture prior's effect alone."""
    keep = (vae.prior, vae.prior_weights, vae.prior_mean, vae.prior_chol)
    vae.prior = "aggregate"
    vae._fit_prior(train)
    try:
        return vae.sample(n, seed=seed + 7, project=True, reject=True).X
    finally:
        vae.prior, vae.prior_weights, vae.prior_mean, vae.prior_chol = keep


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="textbook")
    ap.add_argument("--n-train", type=int, default=2000)
    ap.add_argument("--n-heldout", type=int, default=1000)
    ap.add_argument("--n", type=int, default=5000, help="samples drawn by cobra and by the VAE (speed)")
    ap.add_argument("--thinning", type=int, default=100, help="OptGP thinning (cobra's default)")
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    net = bm.flux.FluxNetwork.from_model(args.model)
    print(f"model {net.model_id}: {net.n_reactions} reactions, {len(net.metabolites)} metabolites; "
          f"torch threads {args.threads}", flush=True)

    t0 = time.perf_counter()
    train = bm.flux.sample(args.model, args.n_train, thinning=args.thinning, seed=args.seed + 1)
    heldout = bm.flux.sample(args.model, args.n_heldout, thinning=args.thinning, seed=args.seed + 2)
    print(f"training + held-out sampling: {time.perf_counter() - t0:.1f} s", flush=True)

    vae = bm.flux.FluxVAE(net, seed=args.seed)
    t0 = time.perf_counter()
    vae.fit(train, epochs=args.epochs, batch_size=128, lr=2e-3, device="cpu", progress=False)
    fit_s = time.perf_counter() - t0
    print(f"VAE: null-space dimension {vae.space.dim}, {int(vae.space.fixed.sum())} fixed reactions, "
          f"trained {len(vae.history)} epochs in {fit_s:.1f} s", flush=True)

    # -- speed: the same n, in one run -----------------------------------------------------
    t0 = time.perf_counter()
    cobra_set = bm.flux.sample(args.model, args.n, thinning=args.thinning, seed=args.seed + 3)
    cobra_s = time.perf_counter() - t0
    vae.sample(64, seed=99)  # warm torch up (first-call allocations), not timed
    t0 = time.perf_counter()
    gen = vae.sample(args.n, seed=args.seed, project=True, reject=True)
    vae_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    gen_rej = vae.sample(args.n, seed=args.seed, project=False, reject=True)
    rej_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    gen_pull = vae.sample(args.n, seed=args.seed, project=True, reject=False, max_iter=30)
    pull_s = time.perf_counter() - t0
    cobra_ok = int((cobra_set.obs["within_bounds"] & (cobra_set.obs["mass_balance"] <= 1e-6)).sum())
    rows = [
        ("cobra OptGP (processes=1, warm-up incl.)", args.n, cobra_ok, cobra_s),
        ("flux VAE: projection + rejection (default)", args.n, gen.n_obs, vae_s),
        ("flux VAE: rejection only", args.n, gen_rej.n_obs, rej_s),
        ("flux VAE: 30 Dykstra steps + pull to centre", args.n,
         int((gen_pull.obs["within_bounds"] & (gen_pull.obs["mass_balance"] <= 1e-6)).sum()), pull_s),
    ]
    speed = pd.DataFrame(rows, columns=["generator", "asked", "valid", "seconds"])
    speed["valid_per_s"] = speed["valid"] / speed["seconds"]
    speed["ratio_vs_cobra"] = speed["valid_per_s"] / speed["valid_per_s"].iloc[0]
    print("\n== speed (valid samples per second, same n, same run) ==")
    print(speed.to_string(index=False, float_format=lambda v: f"{v:,.3g}"))
    info = gen.uns["flux_vae"]
    print(f"VAE default: {info['fraction_within_bounds_raw']:.3f} within bounds before projection, "
          f"{info['fraction_within_bounds']:.3f} after {info['projection_iterations']} Dykstra "
          f"iterations; {info['n_drawn']} drawn for {args.n} valid")

    # -- quality -------------------------------------------------------------------------
    noise = cobra_set[: args.n_heldout].copy()
    m = args.n_heldout
    raw = vae.sample(m, seed=args.seed + 7, project=False)
    proj = vae.sample(m, seed=args.seed + 7, project=True)
    sets = {
        "noise floor (cobra, other seed)": noise.X,
        "flux VAE (projection + rejection)": gen.X[:m],
        "flux VAE (projection + pull, no rejection)": proj.X,
        "flux VAE (rejection only)": gen_rej.X[:m],
        "flux VAE (raw decoder)": raw.X,
        "flux VAE, one-Gaussian prior (projection + rejection)": one_gauss(vae, train, m, args.seed),
        "convex mixtures (trivial)": bm.flux.convex_mixtures(train, m, seed=args.seed),
        "null-space Gaussian (trivial)": bm.flux.nullspace_gaussian(train, vae.space, m, seed=args.seed),
    }
    out = []
    for name, X in sets.items():
        f = bm.flux.feasibility(X, net)
        d = bm.flux.distribution_metrics(X, heldout, train=train, names=net.reactions, seed=args.seed,
                                         n_permutations=100)
        out.append({"generator": name, "mass_balance_max": f["mass_balance_max"],
                    "within_bounds": f["fraction_within_bounds"], "ks_median": d["ks_median"],
                    "ks_max": d["ks_max"], "mean_err_med": d["mean_error_median"],
                    "sd_rel_err_med": d["sd_rel_error_median"], "corr_of_corr": d["corr_of_corr"],
                    "mmd2": d["mmd2"], "mmd_p": d["mmd_pvalue"], "nn_train": d["nn_train_ratio"]})
    q = pd.DataFrame(out)
    print(f"\n== quality vs {m} held-out cobra samples (reactions standardised with the training set) ==")
    with pd.option_context("display.width", 200):
        print(q.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    return speed, q


if __name__ == "__main__":
    main()
