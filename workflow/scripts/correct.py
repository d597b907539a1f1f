"""Rule correct: bioml.pp.correct (none | linear | combat) -> corrected .h5ad."""

from _common import run_rule


def main(snakemake):
    import anndata as ad

    import bioml as bm

    data, c = snakemake.params.data, snakemake.params.correction
    adata = ad.read_h5ad(snakemake.input.h5ad)
    bm.pp.correct(
        adata,
        method=c["method"],
        batch_key=data["batch_key"],
        batch_key2=data["batch_key2"],
        covariates=data["covariates"],
        batch_covariates=data["batch_covariates"],
        parametric=c["parametric"],
        mean_only=c["mean_only"],
        ref_batch=c["ref_batch"],
    )
    bm.io.write_h5ad(adata, snakemake.output.h5ad)


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
