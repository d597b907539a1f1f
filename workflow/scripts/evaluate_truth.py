"""Rule evaluate_truth: bioml.metrics.condition_effect_recovery on uncorrected, corrected, twin."""

from _common import run_rule


def main(snakemake):
    import anndata as ad
    import pandas as pd

    import bioml as bm

    data = snakemake.params.data
    sim = ad.read_h5ad(snakemake.input.simulated)
    twin = ad.read_h5ad(snakemake.input.batch_free)
    cond = data["label_key"] or "condition"
    rows = []
    for name, path in (("uncorrected", snakemake.input.qc), ("corrected", snakemake.input.corrected)):
        adata = ad.read_h5ad(path)
        rec = bm.metrics.condition_effect_recovery(
            adata,
            truth=sim.uns["sim"],
            truth_var_names=sim.var_names,
            reference=twin,
            condition_key=cond,
            fdr=snakemake.params.fdr,
        )
        rows += [{"data": name, "metric": k, "value": v} for k, v in rec.items()]
    table = pd.DataFrame(rows, columns=["data", "metric", "value"])
    bm.io.write_table(table, snakemake.output.table, index=False)


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
