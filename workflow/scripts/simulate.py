"""Rule simulate: bioml.sim.simulate_counts -> .h5ad."""

from _common import run_rule


def main(snakemake):
    import bioml as bm

    adata = bm.sim.simulate_counts(
        **snakemake.params.sim, seed=snakemake.params.seed, n_threads=snakemake.threads
    )
    bm.io.write_h5ad(adata, snakemake.output.h5ad)


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
