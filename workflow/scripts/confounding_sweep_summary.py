"""Rule confounding_sweep_summary: the levels' tables in one, and bioml.pl.confounding_sweep."""

from _common import run_rule


def main(snakemake):
    import pandas as pd

    import bioml as bm

    table = pd.concat([pd.read_csv(f, sep="\t") for f in snakemake.input], ignore_index=True)
    table = table.sort_values(["level", "model"], kind="stable", ascending=[True, False])
    bm.io.write_table(table, snakemake.output.table, index=False)
    bm.io.write_figure(bm.pl.confounding_sweep(table), snakemake.output.figure)


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
