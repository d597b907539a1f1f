"""Rule interface_table: validate a user feature table and split it (seeded) into train / held-out."""

from _common import run_rule


def main(snakemake):
    import numpy as np

    import bioml as bm
    from bioml.errors import InputError

    cfg = dict(snakemake.params.interface)
    table = bm.interface.validate_feature_table(snakemake.input.table)
    n_held = min(int(cfg["n_heldout"]), len(table) // 2)
    if len(table) - n_held < 8 or n_held < 2:
        raise InputError(f"feature table '{snakemake.input.table}' has {len(table)} rows; "
                         "at least 10 are needed to train and hold out")
    order = np.random.default_rng(int(snakemake.params.seed)).permutation(len(table))
    bm.io.write_table(table.iloc[np.sort(order[n_held:])], snakemake.output.train, index=True)
    bm.io.write_table(table.iloc[np.sort(order[:n_held])], snakemake.output.heldout, index=True)


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
