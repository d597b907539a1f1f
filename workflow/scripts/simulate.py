"""Rule simulate: bioml.sim.simulate_counts -> .h5ad, and its batch-free twin."""

from _common import run_rule


def main(snakemake):
    import bioml as bm

    adata, twin = bm.sim.simulate_counts(
        **snakemake.params.sim, seed=snakemake.params.seed, n_threads=snakemake.threads,
        return_batch_free=True,
    )
    bm.io.write_h5ad(adata, snakemake.output.h5ad)
    bm.io.write_h5ad(twin, snakemake.output.batch_free)


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
