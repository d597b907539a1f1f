"""Rule flux_sample: cobra OptGP samples (bioml.flux.sample) or a validated, split flux table."""

from _common import run_rule


def main(snakemake):
    import logging

    import numpy as np

    import bioml as bm

    flux = dict(snakemake.params.flux)
    split = snakemake.wildcards.split
    n_total = int(flux["n_samples"])
    n_held = max(2, int(round(n_total * float(flux["holdout_fraction"]))))
    n = {"samples": n_total - n_held, "heldout": n_held, "noise": n_held}[split]
    if flux["source"] == "table":
        # one seeded split of the validated table into disjoint train / held-out / noise parts
        table = bm.flux.validate_flux_table(snakemake.input.table, flux["model"], rtol=flux["rtol"],
                                            reject=flux["reject_invalid_rows"])
        order = np.random.default_rng(int(snakemake.params.split_seed)).permutation(table.n_obs)
        n_h = max(2, int(round(table.n_obs * float(flux["holdout_fraction"]) / 2)))
        if table.n_obs - 2 * n_h < 2:
            raise bm.errors.InputError(f"flux table '{snakemake.input.table}': {table.n_obs} valid rows are "
                                       "too few to split into training, held-out and noise-floor sets")
        parts = {"heldout": order[:n_h], "noise": order[n_h:2 * n_h], "samples": order[2 * n_h:]}
        adata = table[np.sort(parts[split])].copy()
    else:
        adata = bm.flux.sample(flux["model"], n, thinning=flux["thinning"], seed=int(snakemake.params.seed),
                               processes=1)
    logging.getLogger("bioml.flux").info("%s: %d x %d fluxes", split, adata.n_obs, adata.n_vars)
    bm.io.write_h5ad(adata, snakemake.output.h5ad)


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
