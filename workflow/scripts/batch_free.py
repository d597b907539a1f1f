"""Rule batch_free: bioml.metrics.process_like (the twin with the data's samples, genes, normalisation)."""

from _common import run_rule


def main(snakemake):
    import anndata as ad

    import bioml as bm

    twin = bm.metrics.process_like(ad.read_h5ad(snakemake.input.twin), ad.read_h5ad(snakemake.input.qc))
    bm.io.write_h5ad(twin, snakemake.output.h5ad)


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
