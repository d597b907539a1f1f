"""Rule qc: bioml.pp.qc on the ingested data, plus a summary table and a figure."""

from _common import run_rule


def main(snakemake):
    import anndata as ad

    import bioml as bm

    q = snakemake.params.qc
    adata = ad.read_h5ad(snakemake.input.h5ad)
    n_obs0, n_vars0 = adata.shape
    bm.pp.qc(
        adata,
        data_type=snakemake.params.data_type,
        batch_key=snakemake.params.batch_key,
        min_genes=q["min_genes"],
        min_counts=q["min_counts"],
        max_counts=q["max_counts"],
        min_samples=q["min_samples"],
        max_pct_mt=q["max_pct_mt"],
        mt_prefix=q["mt_prefix"],
        target_sum=q["target_sum"],
        log1p=q["log1p"],
        n_top_genes=q["hvg"]["n_top_genes"],
        hvg_flavor=q["hvg"]["flavor"],
        hvg_batch_aware=q["hvg"]["batch_aware"],
        hvg_subset=q["hvg"]["subset"],
    )
    summary = bm.pp.qc_summary(adata, n_obs_before=n_obs0, n_vars_before=n_vars0)
    fig = bm.pl.qc_metrics(adata, batch_key=snakemake.params.batch_key)
    bm.io.write_h5ad(adata, snakemake.output.h5ad)
    bm.io.write_table(summary, snakemake.output.summary)
    bm.io.write_figure(fig, snakemake.output.figure)


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
