"""Rule batch_tests: bioml.pp.batch_effect_tests before and after correction."""

from _common import run_rule


def main(snakemake):
    import anndata as ad
    import pandas as pd

    import bioml as bm

    data, fdr = snakemake.params.data, snakemake.params.fdr
    kwargs = dict(
        batch_key=data["batch_key"],
        batch_key2=data["batch_key2"],
        covariates=data["covariates"],
        batch_covariates=data["batch_covariates"],
        fdr=fdr,
        inplace=False,
    )
    before = bm.pp.batch_effect_tests(ad.read_h5ad(snakemake.input.before), **kwargs)
    after = bm.pp.batch_effect_tests(ad.read_h5ad(snakemake.input.after), **kwargs)
    genes = before.add_suffix("_before").join(after.add_suffix("_after"), how="inner")
    genes.index.name = "gene"
    summary = pd.DataFrame(
        {
            "metric": ["genes", f"fraction_fdr_lt_{fdr}_before", f"fraction_fdr_lt_{fdr}_after"],
            "value": pd.Series(
                [len(genes), float((before["fdr"] < fdr).mean()), float((after["fdr"] < fdr).mean())],
                dtype=object,
            ),
        }
    )
    bm.io.write_table(genes, snakemake.output.genes)
    bm.io.write_table(summary, snakemake.output.summary, index=False)
    bm.io.write_figure(bm.pl.batch_pvalues(before, after, fdr=fdr), snakemake.output.figure)


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
