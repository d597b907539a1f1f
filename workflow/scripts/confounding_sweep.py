"""Rule confounding_sweep: bioml.tl.confounding_sweep at one level -> TSV (refusals are rows)."""

from _common import run_rule


def main(snakemake):
    import bioml as bm

    e = snakemake.params.evaluation
    table = bm.tl.confounding_sweep(
        float(snakemake.wildcards.level),
        n_obs=e["sweep_n_obs"],
        n_vars=e["sweep_n_vars"],
        method=e["sweep_method"],
        seed=snakemake.params.seed,
        fdr=e["fdr"],
    )
    bm.io.write_table(table, snakemake.output.table, index=False)


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
