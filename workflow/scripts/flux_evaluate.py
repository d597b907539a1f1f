"""Rule flux_evaluate: generate with the flux VAE; feasibility and distribution metrics against
held-out cobra samples beside the noise floor; trivial baselines; figures."""

from _common import run_rule


def main(snakemake):
    import anndata as ad
    import pandas as pd

    import bioml as bm

    flux = dict(snakemake.params.flux)
    seed = int(snakemake.params.seed)
    vae = bm.flux.FluxVAE.load(snakemake.input.model)
    net = vae.network
    train = ad.read_h5ad(snakemake.input.train)
    heldout = ad.read_h5ad(snakemake.input.heldout)
    noise = ad.read_h5ad(snakemake.input.noise)
    n = int(flux["n_generate"])
    gen = vae.sample(n, seed=seed, project=flux["projection"], reject=flux["reject"],
                     max_iter=flux["projection_max_iter"])
    info = gen.uns["flux_vae"]
    kw = dict(train=train, rtol=flux["rtol"], seed=seed, n_permutations=flux["n_permutations"])
    metrics = bm.flux.evaluate(gen, heldout, noise, net, **kw)
    noise_ok = float(noise.obs["within_bounds"].mean())
    cobra_rate = noise.n_obs / float(noise.uns["flux"].get("seconds", float("nan")))
    extra = pd.DataFrame([
        ("fraction_within_bounds_raw", info["fraction_within_bounds_raw"], noise_ok),
        ("fraction_within_bounds_projected", info["fraction_within_bounds"], noise_ok),
        ("valid_samples_per_second", n / info["seconds"], cobra_rate),
    ], columns=["metric", "value", "noise_floor"])
    metrics = pd.concat([metrics, extra], ignore_index=True)

    rows = [metrics.assign(generator="flux_vae")]
    mix = bm.flux.convex_mixtures(train, n, seed=seed)
    rows.append(bm.flux.evaluate(mix, heldout, noise, net, **kw).assign(generator="convex_mixtures"))
    gauss = bm.flux.nullspace_gaussian(train, vae.space, n, seed=seed)
    rows.append(bm.flux.evaluate(gauss, heldout, noise, net, **kw).assign(generator="nullspace_gaussian"))
    baselines = pd.concat(rows, ignore_index=True)[["generator", "metric", "value", "noise_floor"]]

    obj = net.objective_reaction or net.reactions[0]
    j = net.reactions.index(obj)
    fig_res = bm.pl.flux_residuals({"flux VAE": gen.obs["mass_balance"].to_numpy(),
                                    "held-out (cobra)": heldout.obs["mass_balance"].to_numpy()})
    fig_marg = bm.pl.flux_marginals(gen, heldout, n=12, labels=("flux VAE", "held-out (cobra)"))
    fig_obj = bm.pl.flux_objective({"flux VAE": gen.X[:, j], "convex mixtures": mix[:, j]},
                                   heldout.X[:, j], reaction=obj)
    fig_lat = bm.pl.flux_latent(vae.encode(heldout), heldout.X[:, j], prior=gen.obsm["X_latent"],
                                color_label=f"{obj} flux")

    bm.io.write_h5ad(gen, snakemake.output.generated)
    bm.io.write_table(metrics, snakemake.output.metrics, index=False)
    bm.io.write_table(baselines, snakemake.output.baselines, index=False)
    bm.io.write_figure(fig_res, snakemake.output.residuals_png)
    bm.io.write_figure(fig_marg, snakemake.output.marginals_png)
    bm.io.write_figure(fig_obj, snakemake.output.objective_png)
    bm.io.write_figure(fig_lat, snakemake.output.latent_png)


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
