"""Rule confounding: bioml.pp.check_confounding -> JSON, table, heatmap."""

from _common import run_rule


def main(snakemake):
    import anndata as ad

    import bioml as bm

    data, t = snakemake.params.data, snakemake.params.thresholds
    obs = ad.read_h5ad(snakemake.input.h5ad, backed="r").obs
    report = bm.pp.check_confounding(
        obs,
        batch_key=data["batch_key"],
        batch_key2=data["batch_key2"],
        covariates=data["covariates"],
        batch_covariates=data["batch_covariates"],
        cramers_v_warn=t["cramers_v_warn"],
        r2_warn=t["r2_warn"],
        vif_warn=t["vif_warn"],
        raise_on_aliased=False,  # the correct rule refuses; this one reports
    )
    bm.io.write_json(report, snakemake.output.json)
    bm.io.write_table(bm.pp.confounding_table(report), snakemake.output.table, index=False)
    bm.io.write_figure(bm.pl.confounding_heatmap(report), snakemake.output.heatmap)


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
